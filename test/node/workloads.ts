// Pods for node tests, all from the project's own image (the only workload image on the
// node, and the one users run): an HTTP server behind a Service, and clients that
// fetch from inside the cluster. Everything goes through the real kubectl, as a user's would.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import type { NodeClusterHandle } from '../harness/use-node-cluster.ts';
import { pollUntil } from '../harness/poll.ts';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The restricted Pod Security level's demands on every container, as deploy/ meets them. */
const restrictedContainer = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  readOnlyRootFilesystem: true,
};

/** Answers every request with its own name and uid. */
const serverScript = `const name = process.env.SERVER_NAME;
require('node:http').createServer((request, response) => response.end(name + ' uid=' + process.getuid() + '\\n'))
  .listen(8080, () => console.log(name + ' listening on 8080'));`;

/** Fetches argv[1] with a deadline; prints the body, or the failure's code and exits 1. */
const fetchScript = `fetch(process.argv[1], { signal: AbortSignal.timeout(Number(process.argv[2])) })
  .then((response) => response.text()).then((body) => console.log(body.trim()),
    (error) => { console.log('failed: ' + (error.cause?.code ?? error.name)); process.exitCode = 1; });`;

export class NodeWorkloads {
  readonly #cluster: NodeClusterHandle;
  /** The project image as deploy/ names it (`mtls-egress:0.1.0`): the kubelet must find it without a registry. */
  readonly image: string;
  readonly #namespaces: string[] = [];

  constructor(cluster: NodeClusterHandle, options: { deleteAfterTests?: boolean } = {}) {
    this.#cluster = cluster;
    this.image = cluster.projectImage.reference.replace(/^docker\.io\/library\//, '');
    // Best effort: the run's cluster goes away with the run, a developer's stays tidy.
    if (options.deleteAfterTests ?? true) after(() => Promise.all(this.#namespaces.map((name) => this.kubectl(['delete', 'namespace', name, '--wait=false']))));
  }

  /** kubectl against the node cluster; resolves with the exit code rather than throwing. */
  kubectl(args: readonly string[], input?: string): Promise<KubectlResult> {
    return new Promise((resolve) => {
      const child = execFile(
        this.#cluster.kubectl,
        ['--kubeconfig', this.#cluster.kubeConfigPath, ...args],
        { maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
        },
      );
      child.stdin?.end(input ?? '');
    });
  }

  async kubectlOk(args: readonly string[], input?: string): Promise<string> {
    const result = await this.kubectl(args, input);
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
    return result.stdout;
  }

  async apply(objects: readonly unknown[]): Promise<void> {
    // JSON is YAML: one List, applied in one call.
    await this.kubectlOk(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  }

  /** A namespace of this test's own, `prefix-<random>`, enforcing the restricted Pod Security level. */
  async namespace(prefix: string): Promise<string> {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    await this.apply([
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } },
      },
    ]);
    this.#namespaces.push(name);
    return name;
  }

  pod(
    namespace: string,
    name: string,
    command: string[],
    extra: { labels?: Record<string, string>; env?: Record<string, string>; readinessPort?: number } = {},
  ): unknown {
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels: { app: name, ...extra.labels } },
      spec: {
        // No runAsUser: the image's own USER (65532) must satisfy runAsNonRoot.
        securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name,
            image: this.image,
            imagePullPolicy: 'IfNotPresent',
            command,
            env: Object.entries(extra.env ?? {}).map(([envName, value]) => ({ name: envName, value })),
            securityContext: restrictedContainer,
            ...(extra.readinessPort === undefined ? {} : { readinessProbe: { tcpSocket: { port: extra.readinessPort }, periodSeconds: 1 } }),
          },
        ],
      },
    };
  }

  async waitForReady(namespace: string, name: string): Promise<void> {
    await this.kubectlOk(['wait', '--namespace', namespace, '--for=condition=Ready', `pod/${name}`, '--timeout=120s']);
  }

  /** An HTTP server pod on 8080 behind a Service `name` on port 80; resolves once it is Ready. */
  async httpServer(namespace: string, name: string): Promise<void> {
    await this.apply([
      this.pod(namespace, name, ['node', '-e', serverScript], { env: { SERVER_NAME: name }, readinessPort: 8080 }),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace },
        spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    ]);
    await this.waitForReady(namespace, name);
  }

  /** A pod that idles, to run fetches from with exec. */
  async client(namespace: string, name: string, labels: Record<string, string> = {}): Promise<void> {
    await this.apply([this.pod(namespace, name, ['node', '-e', 'setInterval(() => {}, 1 << 30)'], { labels })]);
    await this.waitForReady(namespace, name);
  }

  exec(namespace: string, pod: string, command: readonly string[]): Promise<KubectlResult> {
    return this.kubectl(['exec', '--namespace', namespace, pod, '--', ...command]);
  }

  /** GET `url` from inside `pod`: `ok` with the body, or the failure (a refused or timed-out connection, an unknown name). */
  async fetchFrom(namespace: string, pod: string, url: string, timeoutMs = 2_000): Promise<{ ok: boolean; output: string }> {
    const result = await this.exec(namespace, pod, ['node', '-e', fetchScript, url, String(timeoutMs)]);
    // exit 1 is the script's own failure; anything else is kubectl's, which no verdict may hide.
    if (result.code !== 0 && result.code !== 1) throw new Error(`kubectl exec exited ${result.code}: ${result.stderr.trim()}`);
    return { ok: result.code === 0, output: result.stdout.trim() };
  }

  /** Polls until a fetch from `pod` to `url` gets through (or, with `expectOk: false`, until it is refused or times out). */
  async waitForFetch(namespace: string, pod: string, url: string, expectOk: boolean): Promise<string> {
    return pollUntil(
      async () => {
        const result = await this.fetchFrom(namespace, pod, url);
        if (result.ok === expectOk) return result.output;
        throw new Error(`last attempt: ${result.output}`);
      },
      { what: `${namespace}/${pod} to ${expectOk ? 'reach' : 'be denied'} ${url}`, timeoutMs: 60_000, intervalMs: 500 },
    );
  }
}
