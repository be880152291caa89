// Starts one control plane per `node --test` run and shares it with every test file
// (each of which runs in a process of its own) through an environment variable:
//
//   node --test --test-global-setup=test/harness/global-setup.ts "test/integration/**/*.test.ts"
//
// Test files get it from useControlPlane(). The runner starts the test-file processes
// after globalSetup returns, so they inherit the variable.
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { sharedKubeconfigEnv } from './use-control-plane.ts';

let controlPlane: ControlPlane | undefined;

export async function globalSetup(): Promise<void> {
  // Respect a control plane the developer already points at (`cluster-cli up`).
  if (process.env[sharedKubeconfigEnv]) return;
  controlPlane = await startControlPlane();
  process.env[sharedKubeconfigEnv] = controlPlane.kubeConfigPath;
}

export async function globalTeardown(): Promise<void> {
  await controlPlane?.stop();
}
