import type { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as types from '../../src/api/v1alpha1/types.ts';
import { KubeClient, isNotFound } from '../../src/k8s/client.ts';
import { pollUntil } from '../harness/poll.ts';
import { toPfx, type Issued } from './partner-pki.ts';

export type Binding = types.ClientCertificateBinding;

/** Thin helpers over the real API for integration tests: each test works in a namespace of its own. */
export class TestKube {
  readonly client: KubeClient;
  readonly #kubeconfig: KubeConfig;

  constructor(kubeconfig: KubeConfig) {
    this.client = new KubeClient(kubeconfig);
    this.#kubeconfig = kubeconfig;
  }

  /**
   * A kubeconfig file that authenticates as exactly this ServiceAccount (a token from the
   * TokenRequest API): to run a component with the RBAC an install gives it, nothing more.
   */
  async serviceAccountKubeconfig(namespace: string, name: string, options: { boundToPod?: { name: string; uid: string } } = {}): Promise<string> {
    // Bound to a Pod, the token is what the kubelet mounts in that Pod: the API server
    // puts the Pod's name and uid in the user's extra (authentication.kubernetes.io/pod-name, pod-uid).
    const bound = options.boundToPod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', ...options.boundToPod } } : {};
    const token = await this.client.create<{ status: { token: string } }>(`/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: 3600, ...bound },
    });
    const path = join(mkdtempSync(join(tmpdir(), 'mtls-egress-sa-')), 'kubeconfig');
    const cluster = this.#kubeconfig.getCurrentCluster()!;
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData } }],
        users: [{ name: 'sa', user: { token: token.status.token } }],
        contexts: [{ name: 'sa', context: { cluster: 'c', user: 'sa' } }],
        'current-context': 'sa',
      }),
      { mode: 0o600 },
    );
    return path;
  }

  /** A new namespace named `prefix-<random>`, or exactly `prefix` when `exact`. */
  async namespace(prefix: string, options: { exact?: boolean } = {}): Promise<string> {
    const name = options.exact ? prefix : `${prefix}-${randomBytes(3).toString('hex')}`;
    await this.client.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    // The harness runs no controller-manager, which would create this; Pods need it.
    await this.client.create(`/api/v1/namespaces/${name}/serviceaccounts`, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'default', namespace: name },
    });
    return name;
  }

  /**
   * An unconditional replace of a Secret that exists: one PUT without a resourceVersion,
   * as a tool that owns the Secret writes it (no read first). Returns the version stored.
   */
  async replaceSecret(namespace: string, name: string, data: Record<string, string | Uint8Array>, type = 'Opaque'): Promise<string> {
    const stored = await this.client.replace<{ metadata: { resourceVersion: string } }>(
      `/api/v1/namespaces/${namespace}/secrets/${name}`,
      secretBody(namespace, name, data, type),
    );
    return stored.metadata.resourceVersion;
  }

  /** Creates or replaces a Secret; resolves with the resourceVersion the write stored. */
  async putSecret(namespace: string, name: string, data: Record<string, string | Uint8Array>, type = 'Opaque'): Promise<string> {
    const body = secretBody(namespace, name, data, type);
    try {
      const existing = await this.client.get<{ metadata: { resourceVersion: string } }>(`/api/v1/namespaces/${namespace}/secrets/${name}`);
      const stored = await this.client.replace<{ metadata: { resourceVersion: string } }>(`/api/v1/namespaces/${namespace}/secrets/${name}`, {
        ...body,
        metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion },
      });
      return stored.metadata.resourceVersion;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const stored = await this.client.create<{ metadata: { resourceVersion: string } }>(`/api/v1/namespaces/${namespace}/secrets`, body);
      return stored.metadata.resourceVersion;
    }
  }

  /**
   * A PFX Secret as users store one: keystore.p12 (made by the real `openssl pkcs12
   * -export`) and the password beside it. `storedPassword` stores a different one, for
   * wrong-password cases.
   */
  async putPfxSecret(namespace: string, name: string, client: Issued, password: string, options: { storedPassword?: string } = {}): Promise<void> {
    await this.putSecret(namespace, name, { 'keystore.p12': toPfx(client, { password }), password: options.storedPassword ?? password });
  }

  deleteSecret(namespace: string, name: string): Promise<unknown> {
    return this.client.delete(`/api/v1/namespaces/${namespace}/secrets/${name}`);
  }

  createBinding(namespace: string, name: string, spec: types.ClientCertificateBindingSpec): Promise<Binding> {
    return this.client.create<Binding>(`/apis/${types.group}/${types.version}/namespaces/${namespace}/${types.plural}`, {
      apiVersion: types.apiVersion,
      kind: types.kind,
      metadata: { name, namespace },
      spec,
    });
  }

  patchBinding(namespace: string, name: string, patch: unknown): Promise<Binding> {
    return this.client.mergePatch<Binding>(`/apis/${types.group}/${types.version}/namespaces/${namespace}/${types.plural}/${name}`, patch);
  }

  deleteBinding(namespace: string, name: string): Promise<unknown> {
    return this.client.delete(`/apis/${types.group}/${types.version}/namespaces/${namespace}/${types.plural}/${name}`);
  }

  getBinding(namespace: string, name: string): Promise<Binding> {
    return this.client.get<Binding>(`/apis/${types.group}/${types.version}/namespaces/${namespace}/${types.plural}/${name}`);
  }

  /** Polls until the binding's status satisfies `check` (returns the binding). */
  waitForBinding(namespace: string, name: string, what: string, check: (b: Binding) => boolean, timeoutMs = 30_000): Promise<Binding> {
    return pollUntil(
      async () => {
        const b = await this.getBinding(namespace, name);
        return check(b) ? b : undefined;
      },
      { what: `${namespace}/${name}: ${what}`, timeoutMs, intervalMs: 100 },
    );
  }

  /**
   * The binding's Events once there are at least `count` of them. Events are written
   * asynchronously, after the status they announce, so a test that has just seen the
   * status must wait for them; it then asserts on the whole list, so an extra Event still
   * fails it.
   */
  waitForEvents(namespace: string, name: string, count: number, timeoutMs = 30_000): Promise<Array<{ type: string; reason: string; message: string }>> {
    return pollUntil(
      async () => {
        const events = await this.events(namespace, name);
        return events.length >= count ? events : undefined;
      },
      { what: `${namespace}/${name}: ${count} Event${count === 1 ? '' : 's'}`, timeoutMs, intervalMs: 100 },
    );
  }

  async events(namespace: string, name: string): Promise<Array<{ type: string; reason: string; message: string }>> {
    const list = await this.client.list<{
      type: string;
      reason: string;
      message: string;
      involvedObject: { name: string; kind: string };
      firstTimestamp: string;
      metadata: { name: string; creationTimestamp: string };
    }>(`/api/v1/namespaces/${namespace}/events`);
    return list.items
      .filter((e) => e.involvedObject.kind === types.kind && e.involvedObject.name === name)
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
      .map(({ type, reason, message }) => ({ type, reason, message }));
  }
}

export function readyOf(b: Binding): { status?: string; reason?: string } {
  const c = b.status?.conditions?.find((x) => x.type === types.ConditionReady);
  return { status: c?.status, reason: c?.reason };
}

/** True when the controller has seen this generation and Ready has the given reason. */
export function hasReason(reason: string): (b: Binding) => boolean {
  return (b) => b.status?.observedGeneration === b.metadata.generation && readyOf(b).reason === reason;
}

function secretBody(namespace: string, name: string, data: Record<string, string | Uint8Array>, type: string) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type,
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
}
