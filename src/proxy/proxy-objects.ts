import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { EgressRoute } from '../model/egress-routes.ts';
import { annotationBinding, annotationContentHash, componentConfig, componentCredentials, managedLabels } from '../api/labels.ts';
import { extname } from 'node:path';
import type { RenderedConfig, RenderedFile } from '../render/files.ts';
import type { HaproxyServer } from '../render/haproxy.ts';

// The contract between the proxy-config controller (writes) and the proxy agent (reads).
// Both directions are pure functions here, so the two sides cannot drift apart.

export const proxyConfigMapName = 'mtls-egress-proxy-config';
/** gzip-compressed JSON in binaryData: per-file hashes are most of it, and they add up. */
export const manifestKey = 'manifest.json.gz';

export {
  annotationAppliedHash,
  annotationApplyError,
  annotationBinding,
  annotationContentHash,
  componentConfig,
  componentCredentials,
  credentialsSelector,
  labelComponent,
  labelManagedBy,
  managedByValue,
} from '../api/labels.ts';

export interface ManifestFile {
  path: string;
  mode: 0o600 | 0o644;
  sha256: string;
  /** The binding the file belongs to, for files that belong to one. */
  binding?: string;
  /** A gzip-compressed binaryData key of the ConfigMap, or a data key of a credential Secret. */
  from: { configMapKey: string } | { secret: string; key: string };
}

/** What the proxy must serve: every file, and which certificate each binding presents. */
export interface ProxyManifest {
  hash: string;
  files: ManifestFile[];
  bindings: Record<string, { fingerprintSha256: string; serialNumber: string; listenerPort: number }>;
  /** Which data plane the files are for; absent means nginx. */
  dataPlane?: 'nginx' | 'haproxy';
  /** HAProxy: the servers the agent keeps HAProxy running through its runtime API, and checks. */
  servers?: HaproxyServer[];
  /** HAProxy: the hash of what only a reload changes; equal to the running one, a change needs no reload. */
  skeletonHash?: string;
}

export interface ConfigMapObject {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  data: Record<string, string>;
  binaryData: Record<string, string>;
}

export interface CredentialSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  type: 'Opaque';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  /** base64, as the API wants it. */
  data: Record<string, string>;
}

export interface ProxyObjects {
  configMap: ConfigMapObject;
  /** One per binding: a Secret holds at most 1 MiB, so never one Secret for everything. */
  secrets: CredentialSecret[];
  manifest: ProxyManifest;
}

const owner = (file: { binding?: string | undefined }): { binding?: string } => (typeof file.binding === 'string' ? { binding: file.binding } : {});

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Deterministic, DNS-safe and collision-resistant; the full key is in an annotation. */
export function credentialSecretName(bindingKey: string): string {
  return `mtls-egress-cred-${sha256(bindingKey).slice(0, 20)}`;
}

/** ConfigMap keys allow [-._a-zA-Z0-9]; the manifest maps each back to its path. */
function configMapKey(path: string): string {
  return `${path.replace(/[^-._a-zA-Z0-9]/g, '_')}.gz`;
}

/**
 * The rendered proxy config as Kubernetes objects. Key files (and the certificate that
 * goes with each) travel in a per-binding Secret, so a rotation updates one small object
 * and a key is never in a ConfigMap. Everything else (nginx.conf, partner CA bundles) is
 * gzip-compressed in one ConfigMap: nginx.conf grows by about a kilobyte a binding and
 * compresses well, which keeps thousands of bindings under the 1 MiB object limit.
 */
export function proxyObjects(
  rendered: RenderedConfig & { servers?: readonly HaproxyServer[]; skeletonHash?: string },
  routes: readonly EgressRoute[],
  namespace: string,
): ProxyObjects {
  const byKey = new Map(routes.map((route) => [route.key, route]));
  const secretData = new Map<string, { route: EgressRoute; data: Record<string, string> }>();
  const binaryData: Record<string, string> = {};
  const files: ManifestFile[] = [];
  for (const file of rendered.files) {
    // A binding's client certificate and key (certs/…) travel in its credential Secret.
    const route = file.binding !== undefined && file.path.startsWith('certs/') ? byKey.get(file.binding) : undefined;
    const digest = sha256(file.content);
    if (route) {
      const name = credentialSecretName(route.key);
      const key = `tls${extname(file.path)}`;
      const entry = secretData.get(name) ?? { route, data: {} };
      entry.data[key] = Buffer.from(file.content, 'utf8').toString('base64');
      secretData.set(name, entry);
      files.push({ path: file.path, mode: file.mode, sha256: digest, ...owner(file), from: { secret: name, key } });
    } else {
      if (file.mode === 0o600) throw new Error(`proxyObjects: key file ${file.path} belongs to no route`);
      const key = configMapKey(file.path);
      binaryData[key] = gzipSync(file.content, { level: 9 }).toString('base64');
      files.push({ path: file.path, mode: file.mode, sha256: digest, ...owner(file), from: { configMapKey: key } });
    }
  }
  const bindings: ProxyManifest['bindings'] = {};
  for (const route of [...routes].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    bindings[route.key] = {
      fingerprintSha256: route.clientCertificate.fingerprintSha256,
      serialNumber: route.clientCertificate.serialNumber,
      listenerPort: route.listenerPort,
    };
  }
  const manifest: ProxyManifest = {
    hash: rendered.hash,
    files,
    bindings,
    ...(rendered.dataPlane === 'haproxy'
      ? { dataPlane: 'haproxy' as const, servers: [...(rendered.servers ?? [])], ...(rendered.skeletonHash ? { skeletonHash: rendered.skeletonHash } : {}) }
      : {}),
  };
  const secrets = [...secretData]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, { route, data }]): CredentialSecret => ({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name,
        namespace,
        labels: managedLabels(componentCredentials),
        annotations: { [annotationBinding]: route.key, [annotationContentHash]: sha256(JSON.stringify(data)) },
      },
      data,
    }));
  binaryData[manifestKey] = gzipSync(JSON.stringify(manifest), { level: 9 }).toString('base64');
  return {
    configMap: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: proxyConfigMapName, namespace, labels: managedLabels(componentConfig), annotations: { [annotationContentHash]: rendered.hash } },
      data: {},
      binaryData,
    },
    secrets,
    manifest,
  };
}

export function parseManifest(configMap: { binaryData?: Record<string, string> }): ProxyManifest | undefined {
  const packed = configMap.binaryData?.[manifestKey];
  if (!packed) return undefined;
  try {
    return JSON.parse(gunzipSync(Buffer.from(packed, 'base64')).toString('utf8')) as ProxyManifest;
  } catch {
    return undefined;
  }
}

export type Materialized = { ok: true; hash: string; files: RenderedFile[] } | { ok: false; waitingFor: string };

/**
 * The files a manifest describes, read from the ConfigMap and the credential Secrets the
 * agent has seen. Watches on different objects arrive in any order, so a manifest can
 * name a Secret version the agent does not have yet: each file's sha256 must match, or
 * the result says what it is still waiting for, and the agent keeps serving what it has.
 */
export function materialize(
  manifest: ProxyManifest,
  configMap: { binaryData?: Record<string, string> },
  secretData: (name: string) => Record<string, string> | undefined,
): Materialized {
  const files: RenderedFile[] = [];
  for (const file of manifest.files) {
    let content: string | undefined;
    if ('configMapKey' in file.from) {
      const packed = configMap.binaryData?.[file.from.configMapKey];
      content = packed === undefined ? undefined : gunzipSync(Buffer.from(packed, 'base64')).toString('utf8');
    } else {
      const value = secretData(file.from.secret)?.[file.from.key];
      content = value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
    }
    if (content === undefined || sha256(content) !== file.sha256) {
      return { ok: false, waitingFor: 'configMapKey' in file.from ? `ConfigMap key ${file.from.configMapKey}` : `Secret ${file.from.secret}` };
    }
    files.push({ path: file.path, mode: file.mode, content, ...owner(file) });
  }
  return { ok: true, hash: manifest.hash, files };
}
