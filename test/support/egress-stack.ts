import type { KubeConfig } from '@kubernetes/client-node';
import type { ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import { defaultDataPlane, type DataPlaneKind } from '../../src/dataplane/registry.ts';
import { startAgent, type AgentProcess } from './agent-process.ts';
import { startController, type ControllerProcess } from './controller-process.ts';
import { TestKube } from './kube.ts';
import { startMtlsPartner, type MtlsPartner } from './mtls-partner.ts';
import { PartnerPki, type Issued } from './partner-pki.ts';
import { freePort } from '../harness/ports.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';

export interface EgressStack {
  kube: TestKube;
  /** Where bindings live, and where the proxy's objects and Pod live. */
  namespace: string;
  proxyNamespace: string;
  proxyPod: string;
  partnerPki: PartnerPki;
  partner: MtlsPartner;
  controller: ControllerProcess;
  /** The agent running now (restartAgent replaces it). */
  agent: AgentProcess;
  dataPlane: DataPlaneKind;
  /** The agent's config dir and nginx prefix: generations, error.log, access.log. */
  configDir: string;
  password: string;
  /** A PFX Secret (made by openssl) and a binding to `target` (default: the partner), verified against the partner CA. */
  putBinding(name: string, client: Issued, extra?: Partial<ClientCertificateBindingSpec>, target?: MtlsPartner): Promise<void>;
  rotate(name: string, client: Issued): Promise<void>;
  /** Kills the agent's process group (and with it the data plane it manages) and starts it again on the same config directory. */
  restartAgent(): Promise<void>;
  /** Every line of every agent started so far. */
  agentLogs(): string[];
  stop(): Promise<void>;
}

/**
 * The whole product on one machine, as the e2e suite, the demo and the rotation bench
 * use it: the controller, the agent running nginx, and a real mTLS partner on localhost,
 * against a real control plane. Only the kubelet is played: the proxy Pod is created and
 * marked Ready by hand, since no kubelet runs here.
 */
export async function startEgressStack(options: {
  kubeconfig: KubeConfig;
  kubeConfigPath: string;
  password?: string;
  agentArgs?: string[];
  dataPlane?: DataPlaneKind;
  /** The partner's CA, which issues the clients' certificates (default: a new one). */
  partnerPki?: PartnerPki;
  /** The proxy's access log: a file in the config dir (default access.log, nginx; HAProxy writes to the agent's stdout), or "off". */
  accessLog?: string;
  /** Keep every request the partner saw (default true; off for benchmarks). */
  recordPartner?: boolean;
  /** Fixed namespace names (the demo); default: fresh random ones. */
  namespaces?: { bindings: string; proxy: string };
  /** More controller flags, after the stack's own (a later flag wins). */
  controllerArgs?: string[];
  /** The partner's server certificate names (default: localhost) and address (default: 127.0.0.1). */
  partner?: { dnsNames: string[]; host: string };
}): Promise<EgressStack> {
  const kube = new TestKube(options.kubeconfig);
  const password = options.password ?? 'egress-stack-password';
  const namespace = await kube.namespace(options.namespaces?.bindings ?? 'team-a', { exact: Boolean(options.namespaces) });
  const proxyNamespace = await kube.namespace(options.namespaces?.proxy ?? 'mtls-egress', { exact: Boolean(options.namespaces) });
  const proxyPod = 'mtls-egress-proxy-0';
  const partnerPki = options.partnerPki ?? new PartnerPki('Partner CA');
  const server = partnerPki.issueServer({ cn: 'localhost', dnsNames: options.partner?.dnsNames ?? ['localhost'] });
  const partner = await startMtlsPartner({
    cert: server.certPem,
    key: server.keyPem,
    clientCA: partnerPki.ca.certPem,
    record: options.recordPartner ?? true,
    ...(options.partner ? { host: options.partner.host } : {}),
  });
  await kube.putSecret(namespace, 'partner-ca', { 'ca.crt': partnerPki.ca.certPem });

  await kube.client.create(`/api/v1/namespaces/${proxyNamespace}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: proxyPod, namespace: proxyNamespace, labels: { 'app.kubernetes.io/name': 'mtls-egress-proxy' } },
    spec: { containers: [{ name: 'proxy', image: 'mtls-egress:local' }] },
  });
  await kube.client.mergePatch(`/api/v1/namespaces/${proxyNamespace}/pods/${proxyPod}/status`, { status: { conditions: [{ type: 'Ready', status: 'True' }] } });

  // Below the ephemeral ports (32768 and up): HAProxy binds the whole range, and one port
  // of it in use by some outgoing connection would keep it from starting.
  const base = 20000 + Math.floor(Math.random() * 120) * 100;
  const dataPlane = options.dataPlane ?? defaultDataPlane;
  const controller = await startController({
    kubeConfigPath: options.kubeConfigPath,
    namespaces: [namespace],
    id: 'controller-0',
    args: [
      '--namespace',
      proxyNamespace,
      '--data-plane',
      dataPlane,
      '--proxy-listen-address',
      '127.0.0.1',
      '--proxy-status-port',
      String(await freePort()),
      '--listener-ports',
      `${base}-${base + 99}`,
      // The agent runs nginx as its child here, whose stdout is a socket nginx cannot open
      // as /dev/stdout; in a pod it is the container's log pipe and the default works.
      '--proxy-access-log',
      options.accessLog ?? 'access.log',
      '--proxy-error-log',
      'error.log',
      ...(options.controllerArgs ?? []),
    ],
  });
  const configDir = temporaryDirectory('egress-proxy');
  const agentOptions = {
    kubeConfigPath: options.kubeConfigPath,
    namespace: proxyNamespace,
    podName: proxyPod,
    configDir,
    nginxPrefix: configDir,
    args: ['--data-plane', dataPlane, ...(options.agentArgs ?? [])],
  };
  const earlierLogs: string[] = [];

  const putPfx = (name: string, client: Issued) => kube.putPfxSecret(namespace, `${name}-pfx`, client, password);
  const stack: EgressStack = {
    kube,
    namespace,
    proxyNamespace,
    proxyPod,
    partnerPki,
    partner,
    controller,
    agent: await startAgent(agentOptions),
    dataPlane,
    configDir,
    password,
    async putBinding(name, client, extra = {}, target = partner) {
      await putPfx(name, client);
      await kube.createBinding(namespace, name, {
        host: 'localhost',
        port: target.port,
        certificate: { secretRef: { name: `${name}-pfx` }, passwordSecretRef: { name: `${name}-pfx` } },
        serverCA: { secretRef: { name: 'partner-ca' } },
        ...extra,
      });
    },
    rotate: putPfx,
    async restartAgent() {
      await stack.agent.kill();
      earlierLogs.push(...stack.agent.logs);
      stack.agent = await startAgent(agentOptions);
    },
    agentLogs: () => [...earlierLogs, ...stack.agent.logs],
    async stop() {
      await stack.agent.stop();
      await controller.stop();
      await partner.close();
    },
  };
  return stack;
}

/** One sample of the running agent's /metrics, by its name and labels as Prometheus prints them; 0 when absent. */
export async function agentMetric(stack: EgressStack, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${stack.agent.healthPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}
