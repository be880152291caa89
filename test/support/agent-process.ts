import type { ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { contentTypes, isNotFound, type KubeClient } from '../../src/k8s/client.ts';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import { annotationContentHash, credentialSecretName, type ProxyObjects } from '../../src/contract/proxy-objects.ts';
import { objectsOfRender as proxyObjects } from '../../src/dataplane/registry.ts';
import type { RenderedNginx } from '../../src/dataplane/nginx/render.ts';
import { pollUntil, StopPolling } from '../harness/poll.ts';
import { dataPlaneBinaryFlags } from '../harness/data-planes.ts';
import { killProcessGroupOnExit, spawnComponent } from '../harness/processes.ts';
import { safeJson } from './controller-process.ts';
import type { Issued } from './partner-pki.ts';

const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  pid: number;
  /** Every line the agent (and the nginx it manages) printed: tests assert that no key is among them. */
  logs: string[];
  healthPort: number;
  exited: Promise<number | null>;
  /** Parsed JSON log lines with this message. */
  logged(msg: string): Array<Record<string, unknown>>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL to the agent's process group and every nginx it started. */
  kill(): Promise<void>;
}

export interface AgentOptions {
  kubeConfigPath: string;
  namespace: string;
  podName: string;
  configDir: string;
  nginxPrefix: string;
  /** Default true; false signals an nginx the test runs itself. */
  manageNginx?: boolean;
  args?: string[];
  /** Node's own flags (a proxy pod's NODE_OPTIONS), before the script. */
  nodeOptions?: string[];
  /** The script: src/cli.ts unless told (a bench runs the built dist/cli.js, as the image does). */
  cli?: string;
}

/**
 * Runs `mtls-egress agent` (with --manage unless told otherwise) as a real process,
 * as a proxy pod would, in a process group of its own. kill() and this process's exit
 * kill that group and every nginx group the agent started, so nothing is left behind
 * however a test ends.
 */
export async function startAgent(options: AgentOptions): Promise<AgentProcess> {
  const args = [
    ...(options.nodeOptions ?? []),
    options.cli ?? cli,
    'agent',
    '--kubeconfig',
    options.kubeConfigPath,
    '--namespace',
    options.namespace,
    '--pod-name',
    options.podName,
    '--config-dir',
    options.configDir,
    '--nginx-prefix',
    options.nginxPrefix,
    ...(options.manageNginx === false ? [] : ['--manage']),
    '--health-addr',
    '127.0.0.1:0',
    // The image's HAProxy and nginx, built for this host, never the host's own.
    ...dataPlaneBinaryFlags(),
    ...(options.args ?? []),
  ];
  const logs: string[] = [];
  const logged = (msg: string): Array<Record<string, unknown>> => logs.map(safeJson).filter((line): line is Record<string, unknown> => line?.msg === msg);
  const component = spawnComponent({
    name: `agent ${options.podName}`,
    binary: process.execPath,
    args,
    onOutputLine: (line) => {
      logs.push(line);
      // nginx and HAProxy run in a process group of their own (their master's pid), which
      // the agent kills on its way out; a SIGKILLed agent cannot, so this process does.
      const parsed = safeJson(line);
      if ((parsed?.msg === 'nginx started' || parsed?.msg === 'haproxy started') && typeof parsed.pid === 'number') killProcessGroupOnExit(parsed.pid);
    },
    killOnExit: true,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'debug' },
  });
  const healthPort = await pollUntil(
    () => {
      if (component.hasExited()) throw new StopPolling(`agent exited early:\n${logs.join('\n')}`);
      const port = logged('agent starting')[0]?.port;
      return typeof port === 'number' ? port : undefined;
    },
    { what: 'the agent to start', timeoutMs: 30_000, intervalMs: 50 },
  );
  return {
    child: component.child,
    pid: component.pid,
    logs,
    healthPort,
    exited: component.exitCode,
    logged,
    async stop() {
      if (!component.hasExited()) component.child.kill('SIGTERM');
      return component.exitCode;
    },
    async kill() {
      const serverGroups = [...logged('nginx started'), ...logged('haproxy started')].map((line) => line.pid as number);
      for (const group of [component.pid, ...serverGroups]) {
        try {
          process.kill(-group, 'SIGKILL');
        } catch {
          // the group is empty
        }
      }
      await component.exitCode;
    },
  };
}

/** A binding's route to a partner on localhost, as the model builds it from a decoded certificate. */
export function partnerRoute(options: {
  namespace: string;
  name: string;
  listenerPort: number;
  partnerPort: number;
  client: Issued;
  partnerCA: string;
}): EgressRoute {
  return {
    key: `${options.namespace}/${options.name}`,
    namespace: options.namespace,
    name: options.name,
    listenerPort: options.listenerPort,
    host: 'localhost',
    addresses: ['127.0.0.1'],
    port: options.partnerPort,
    serverName: 'localhost',
    clientCertificate: {
      chainPem: options.client.certPem,
      privateKey: new Sensitive(options.client.keyPem),
      serialNumber: options.client.serial,
      fingerprintSha256: new X509Certificate(options.client.certPem).fingerprint256,
    },
    serverCA: { pem: options.partnerCA },
  };
}

/**
 * Writes the proxy objects as the proxy-config controller does, with server-side apply:
 * the credential Secrets that changed (by their content-hash annotation), then the
 * ConfigMap. Apply also removes ConfigMap keys the new rendering no longer has.
 */
export class ProxyConfigWriter {
  readonly #client: KubeClient;
  /** Secret name → the content hash last written. */
  readonly #written = new Map<string, string>();
  readonly namespace: string;

  constructor(client: KubeClient, namespace: string) {
    this.#client = client;
    this.namespace = namespace;
  }

  objects(rendered: RenderedNginx, routes: readonly EgressRoute[]): ProxyObjects {
    return proxyObjects(rendered, routes, this.namespace);
  }

  /** Every bundle, then every credential Secret but those of `withhold` (binding keys), then the ConfigMap. */
  async publish(objects: ProxyObjects, options: { withhold?: string[] } = {}): Promise<void> {
    const withheld = new Set((options.withhold ?? []).map(credentialSecretName));
    for (const bundle of objects.bundles) {
      const name = bundle.metadata.name;
      if (this.#written.get(name) !== bundle.metadata.annotations[annotationContentHash]) {
        await this.#apply(`/api/v1/namespaces/${this.namespace}/secrets/${name}`, bundle);
        this.#written.set(name, bundle.metadata.annotations[annotationContentHash]!);
      }
    }
    for (const secret of objects.secrets) {
      const name = secret.metadata.name;
      if (!withheld.has(name) && this.#written.get(name) !== secret.metadata.annotations[annotationContentHash]) await this.applySecret(objects, name);
    }
    await this.#apply(`/api/v1/namespaces/${this.namespace}/configmaps/${objects.configMap.metadata.name}`, objects.configMap);
  }

  async applySecret(objects: ProxyObjects, name: string): Promise<void> {
    const secret = objects.secrets.find((s) => s.metadata.name === name);
    if (!secret) throw new Error(`no credential Secret ${name}`);
    await this.#apply(`/api/v1/namespaces/${this.namespace}/secrets/${name}`, secret);
    this.#written.set(name, secret.metadata.annotations[annotationContentHash]!);
  }

  async deleteCredentials(bindingKey: string): Promise<void> {
    this.#written.delete(credentialSecretName(bindingKey));
    await this.#client.delete(`/api/v1/namespaces/${this.namespace}/secrets/${credentialSecretName(bindingKey)}`).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  async #apply(path: string, body: unknown): Promise<void> {
    await this.#client.request('PATCH', path, { body, contentType: contentTypes.apply, query: { fieldManager: 'test-proxy-config-controller', force: true } });
  }
}

/** A Pod object for the agent to annotate. No kubelet runs it: it stays Pending, which is all the agent needs. */
export async function createAgentPod(client: KubeClient, namespace: string, name: string): Promise<void> {
  await client
    .create(`/api/v1/namespaces/${namespace}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } })
    .catch(() => undefined);
  await client.create(`/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    spec: { automountServiceAccountToken: false, containers: [{ name: 'proxy', image: 'mtls-egress:test' }] },
  });
}

export async function podAnnotations(client: KubeClient, namespace: string, name: string): Promise<Record<string, string>> {
  const pod = await client.get<{ metadata: { annotations?: Record<string, string> } }>(`/api/v1/namespaces/${namespace}/pods/${name}`);
  return pod.metadata.annotations ?? {};
}
