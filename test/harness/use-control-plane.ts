import { after } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from './control-plane.ts';

/**
 * Set by global-setup.ts for the test files of one `node --test` run. Point it at
 * `.cluster/kubeconfig` to run tests against a control plane from `cluster-cli up`.
 */
export const sharedKubeconfigEnv = 'MTLS_EGRESS_TEST_KUBECONFIG';

/** What a test may do with a control plane it shares with other test files: talk to it, not stop or restart it. */
export interface ControlPlaneConnection {
  kubeconfig: KubeConfig;
  kubeConfigPath: string;
  apiServerUrl: string;
}

function connectToSharedControlPlane(kubeConfigPath: string): ControlPlaneConnection {
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(kubeConfigPath);
  const cluster = kubeconfig.getCurrentCluster();
  if (cluster === null) throw new Error(`${sharedKubeconfigEnv}=${kubeConfigPath} has no current cluster`);
  return { kubeconfig, kubeConfigPath, apiServerUrl: cluster.server };
}

/**
 * A control plane of this test file's own, stopped after the file's tests. Use it for
 * tests that restart the apiserver or etcd, or that otherwise disturb the cluster, so
 * they cannot break test files running against the shared one.
 */
export async function usePrivateControlPlane(options?: ControlPlaneOptions): Promise<ControlPlane> {
  const controlPlane = await startControlPlane(options);
  after(() => controlPlane.stop());
  return controlPlane;
}

/**
 * The run's shared control plane when the run has one (`--test-global-setup=test/harness/global-setup.ts`),
 * else a private one. Call it at the top of a test file: `const cluster = await useControlPlane();`.
 * Tests sharing a control plane should work in namespaces of their own.
 */
export async function useControlPlane(): Promise<ControlPlaneConnection> {
  const sharedKubeconfig = process.env[sharedKubeconfigEnv];
  if (sharedKubeconfig) return connectToSharedControlPlane(sharedKubeconfig);
  return usePrivateControlPlane();
}
