import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  annotationBinding,
  annotationBundles,
  annotationContentHash,
  annotationFingerprint,
  componentConfig,
  componentCredentials,
  managedLabels,
} from '../api/labels.ts';

// The contract between the proxy-config controller (writes) and the proxy agent (reads).
// Both directions are pure functions here, so the two sides cannot drift apart. It knows
// files, bindings and digests, and no data plane: what a plane adds to a binding beyond
// its files (HAProxy's server) travels as an opaque JSON value the plane's driver makes
// on the controller's side and checks on the agent's (src/dataplane/).
//
//   one Secret per binding     mtls-egress-cred-<hash of the key>: everything the binding
//                              adds to the proxy (its config file or server, its
//                              certificate and key, its partner CA) and binding.json,
//                              which says where each goes. A change to a binding writes
//                              this object alone.
//   one Secret per CA bundle   mtls-egress-ca-<sha256 of the bundle>: a file several bindings
//                              may share (a partner's serverCA), stored once and named by its
//                              content; a binding object references it by that digest. Written
//                              before the first binding object that references it, removed
//                              after the last one stops: the agent reads both kinds through one
//                              watch, so it never sees a reference to a bundle it cannot read.
//   one ConfigMap              mtls-egress-proxy-config: the files no binding owns
//                              (nginx.conf; HAProxy's options and 502 page), and the index:
//                              the digest over every binding object's content hash, so an
//                              agent knows when it holds exactly what the controller wrote.
//                              Its size does not grow with the number of bindings.

export const proxyConfigMapName = 'mtls-egress-proxy-config';
/** The index, gzip-compressed JSON in binaryData. */
export const manifestKey = 'manifest.json.gz';
/** The data key of a binding object that describes the rest. */
export const bindingManifestKey = 'binding.json';
/** Bumped when the objects change shape: an agent refuses a format it does not know rather than misread it. */
export const manifestFormat = 3;

export {
  annotationAppliedHash,
  annotationApplyError,
  annotationBinding,
  annotationBundles,
  annotationContentHash,
  annotationFingerprint,
  componentConfig,
  componentCredentials,
  credentialsSelector,
  labelComponent,
  labelManagedBy,
  managedByValue,
} from '../api/labels.ts';

/** A file the proxy runs from, as a renderer makes it and the objects carry it. */
export interface RenderedFile {
  /** Relative to the directory the data plane's config is in. */
  path: string;
  content: string;
  /** 0o600 marks key material: it belongs in a Secret, never in a ConfigMap or a log. */
  mode: 0o600 | 0o644;
  /** The binding ("namespace/name") the file belongs to, for files that belong to one. */
  binding?: string;
  /**
   * A file several bindings may share (a partner's CA bundle): its path is bundlePath of
   * its content's sha256, and the objects carry it once, in a bundle object, whichever
   * bindings reference it.
   */
  bundle?: true;
}

/**
 * A path the objects may name: relative, below the generation directory, made of plain
 * segments. The objects come from the API, so a path such as "../current" or
 * "/etc/passwd" must never reach the file system.
 */
export function isSafeRelativePath(path: string): boolean {
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(path)) return false;
  return path.split('/').every((segment) => segment !== '.' && segment !== '..');
}

/** A shared file, as the index lists it. */
export interface ManifestFile {
  path: string;
  mode: 0o600 | 0o644;
  sha256: string;
  /** The gzip-compressed binaryData key of the ConfigMap. */
  configMapKey: string;
}

/** The index: what the proxy must serve, by digest. */
export interface ProxyManifest {
  format: typeof manifestFormat;
  /** configDigest over the shared files and every binding object: the config hash replicas report. */
  hash: string;
  /** The kind of data plane the files are for (src/dataplane/registry.ts); an agent serves only its own. */
  dataPlane: string;
  /** The files no binding owns. */
  files: ManifestFile[];
  /** How many binding objects the digest covers. */
  bindings: number;
}

/** What one binding adds to the proxy, before it becomes an object. */
export interface BindingPart {
  key: string;
  listenerPort: number;
  fingerprintSha256: string;
  serialNumber: string;
  /** The binding's own files, each with `binding` set to its key. */
  files: RenderedFile[];
  /**
   * What the data plane adds beyond the files, as JSON, carried unread (HAProxy: the
   * server the agent adds at run time and renders into haproxy.cfg). On the agent's side
   * it comes from the API: the plane's driver checks it before any use.
   */
  server?: unknown;
}

/** binding.json: the part without its files' bytes, which are the Secret's other keys. */
export interface BindingManifest {
  key: string;
  listenerPort: number;
  fingerprintSha256: string;
  serialNumber: string;
  /** Each file is a data key of this object, or a bundle object named by `bundle`, the file's sha256. */
  files: Array<{ path: string; mode: 0o600 | 0o644; key: string } | { path: string; mode: 0o644; bundle: string }>;
  server?: unknown;
}

export interface ConfigMapObject {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  data: Record<string, string>;
  binaryData: Record<string, string>;
}

export interface BindingObject {
  apiVersion: 'v1';
  kind: 'Secret';
  type: 'Opaque';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  /** base64, as the API wants it. */
  data: Record<string, string>;
}

const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');

/** Where a bundle's file goes, named by its content: one file per distinct bundle, whichever bindings use it. */
export function bundlePath(digest: string): string {
  return `ca/${digest}.pem`;
}

const bundleObjectPrefix = 'mtls-egress-ca-';
/** The data key of a bundle object. */
export const bundleDataKey = 'bundle.pem';
/**
 * A bundle is at most what a serverCA may be (512 certificates, about 900 KiB of PEM);
 * the API server refuses a Secret over 1 MiB anyway, and an agent refuses more than that.
 */
export const maxBundleBytes = 1 << 20;

/** The object that holds one bundle, named by the sha256 of its content. */
export function bundleObjectName(digest: string): string {
  return `${bundleObjectPrefix}${digest}`;
}

export function isBundleObjectName(name: string): boolean {
  return name.startsWith(bundleObjectPrefix);
}

const isDigest = (value: unknown): value is string => typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);

/** Deterministic, DNS-safe and collision-resistant; the full key is in an annotation. */
export function credentialSecretName(bindingKey: string): string {
  return `mtls-egress-cred-${sha256(bindingKey).slice(0, 20)}`;
}

/** ConfigMap keys allow [-._a-zA-Z0-9]; the index maps each back to its path. */
function configMapKey(path: string): string {
  return `${path.replace(/[^-._a-zA-Z0-9]/g, '_')}.gz`;
}

/** A binding has at most one file per directory and extension ("certs/….crt" → "certs.crt"), which names its data key. */
function dataKey(path: string): string {
  const slash = path.indexOf('/');
  const dot = path.lastIndexOf('.');
  return `${slash < 0 ? 'root' : path.slice(0, slash)}${dot > slash ? path.slice(dot) : ''}`.replace(/[^-._a-zA-Z0-9]/g, '_');
}

/** sha256 over a Secret's data, key by key in code-unit order: the same whatever order the API returns them in. */
export function contentHash(data: Readonly<Record<string, string>>): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(data).sort()) hash.update(`${key}\0${data[key]!.length}\0${data[key]}\0`);
  return hash.digest('hex');
}

/**
 * The config hash: the data plane, the shared files' hash and every binding object's
 * content hash, by binding key. The controller computes it over what it wrote, the agent
 * over what it holds: equal means the agent holds exactly what the controller wrote.
 */
export function configDigest(dataPlane: string, sharedHash: string, bindings: Iterable<readonly [string, string]>): string {
  const hash = createHash('sha256').update(`mtls-egress/${manifestFormat}\0${dataPlane}\0${sharedHash}\0`);
  for (const [key, content] of [...bindings].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) hash.update(`${key}\0${content}\n`);
  return hash.digest('hex');
}

/**
 * One binding's Secret. Its bundles are referenced by digest, never copied (bundleObjects
 * makes the objects that hold them). Throws on a part whose files cannot be told apart by
 * data key, or a bundle not named by its content (a renderer's bug).
 */
export function bindingObject(part: BindingPart, namespace: string): BindingObject {
  const data: Record<string, string> = {};
  const files: BindingManifest['files'] = [];
  const bundles: string[] = [];
  for (const file of [...part.files].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    if (file.bundle) {
      const digest = bundleDigest(file);
      files.push({ path: file.path, mode: 0o644, bundle: digest });
      bundles.push(digest);
      continue;
    }
    const key = dataKey(file.path);
    if (key === bindingManifestKey || key in data) throw new Error(`bindingObject: ${part.key} has two files for data key ${key}`);
    data[key] = Buffer.from(file.content, 'utf8').toString('base64');
    files.push({ path: file.path, mode: file.mode, key });
  }
  const manifest: BindingManifest = {
    key: part.key,
    listenerPort: part.listenerPort,
    fingerprintSha256: part.fingerprintSha256,
    serialNumber: part.serialNumber,
    files,
    ...(part.server === undefined ? {} : { server: part.server }),
  };
  data[bindingManifestKey] = Buffer.from(JSON.stringify(manifest), 'utf8').toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: credentialSecretName(part.key),
      namespace,
      labels: managedLabels(componentCredentials),
      annotations: {
        [annotationBinding]: part.key,
        [annotationContentHash]: contentHash(data),
        [annotationFingerprint]: part.fingerprintSha256,
        // So a new leadership term knows which bundles are in use from the watch's metadata alone.
        ...(bundles.length > 0 ? { [annotationBundles]: [...new Set(bundles)].sort().join(',') } : {}),
      },
    },
    data,
  };
}

/** A bundle file's digest, checked against its path: a renderer names a bundle by its content. */
function bundleDigest(file: RenderedFile): string {
  const digest = sha256(file.content);
  if (file.path !== bundlePath(digest) || file.mode !== 0o644) throw new Error(`bindingObject: bundle ${file.path} is not ${bundlePath(digest)} at 0644`);
  return digest;
}

/** The bundles a binding object references (its annotation), as object names. */
export function bundleNamesOf(object: { metadata: { annotations?: Record<string, string> } }): string[] {
  const listed = object.metadata.annotations?.[annotationBundles];
  return listed ? listed.split(',').filter(isDigest).map(bundleObjectName) : [];
}

/**
 * Bundle objects already made, by bundle path (which names the content's digest): every
 * binding that trusts one 900 KiB bundle would otherwise hash and base64 it again on each
 * reconcile. For one namespace; bounded by bytes, so a few huge bundles cannot hold the
 * controller's memory (a miss only costs the work again).
 */
export class BundleObjectMemo {
  static readonly maxBytes = 16 * 1024 * 1024;
  readonly #made = new Map<string, BindingObject>();
  #bytes = 0;

  get(path: string): BindingObject | undefined {
    return this.#made.get(path);
  }

  set(path: string, object: BindingObject): void {
    const size = object.data[bundleDataKey]!.length;
    if (this.#bytes + size > BundleObjectMemo.maxBytes) {
      this.#made.clear();
      this.#bytes = 0;
    }
    this.#made.set(path, object);
    this.#bytes += size;
  }
}

/** The objects that hold a part's bundles, one per distinct content. */
export function bundleObjects(part: Pick<BindingPart, 'files'>, namespace: string, memo?: BundleObjectMemo): BindingObject[] {
  const objects = new Map<string, BindingObject>();
  for (const file of part.files) {
    if (!file.bundle) continue;
    const made = memo?.get(file.path);
    if (made) {
      objects.set(made.metadata.name, made);
      continue;
    }
    const digest = bundleDigest(file);
    const name = bundleObjectName(digest);
    if (objects.has(name)) continue;
    const data = { [bundleDataKey]: Buffer.from(file.content, 'utf8').toString('base64') };
    const object: BindingObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: { name, namespace, labels: managedLabels(componentCredentials), annotations: { [annotationContentHash]: contentHash(data) } },
      data,
    };
    memo?.set(file.path, object);
    objects.set(name, object);
  }
  return [...objects.values()];
}

/** The shared files' hash, as configDigest takes it. */
export function sharedHash(files: ReadonlyArray<Pick<ManifestFile, 'path' | 'mode' | 'sha256'>>): string {
  return sha256([...files].map((f) => `${f.path}\0${f.mode.toString(8)}\0${f.sha256}\n`).join(''));
}

/**
 * gzip at level 9 costs a millisecond or more per file: the shared files change only with
 * the controller's flags, so a writer that builds the index again and again keeps the
 * compressed form of each content by its sha256 (the proxy-config controller owns one).
 */
export class CompressedFiles {
  readonly #packed = new Map<string, string>();

  gzipped(digest: string, content: string): string {
    let packed = this.#packed.get(digest);
    if (packed === undefined) {
      if (this.#packed.size > 64) this.#packed.clear();
      packed = gzipSync(content, { level: 9 }).toString('base64');
      this.#packed.set(digest, packed);
    }
    return packed;
  }
}

/** The shared ConfigMap: the shared files and the index over `bindings` (binding key → content hash). */
export function sharedConfigMap(
  dataPlane: string,
  shared: readonly RenderedFile[],
  bindings: ReadonlyMap<string, string>,
  namespace: string,
  compressed: CompressedFiles = new CompressedFiles(),
): { configMap: ConfigMapObject; manifest: ProxyManifest } {
  const binaryData: Record<string, string> = {};
  const files: ManifestFile[] = [];
  for (const file of [...shared].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    if (file.mode === 0o600 || file.binding !== undefined || file.bundle)
      throw new Error(`sharedConfigMap: ${file.path} belongs in a binding or bundle object`);
    const digest = sha256(file.content);
    const key = configMapKey(file.path);
    binaryData[key] = compressed.gzipped(digest, file.content);
    files.push({ path: file.path, mode: file.mode, sha256: digest, configMapKey: key });
  }
  const manifest: ProxyManifest = {
    format: manifestFormat,
    hash: configDigest(dataPlane, sharedHash(files), bindings),
    dataPlane,
    files,
    bindings: bindings.size,
  };
  binaryData[manifestKey] = gzipSync(JSON.stringify(manifest), { level: 9 }).toString('base64');
  return {
    configMap: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: proxyConfigMapName, namespace, labels: managedLabels(componentConfig), annotations: { [annotationContentHash]: manifest.hash } },
      data: {},
      binaryData,
    },
    manifest,
  };
}

/** The index, if the ConfigMap holds one this agent can read. */
export function parseManifest(configMap: { binaryData?: Record<string, string> }): ProxyManifest | undefined {
  const packed = configMap.binaryData?.[manifestKey];
  if (!packed) return undefined;
  try {
    const manifest = JSON.parse(gunzipSync(Buffer.from(packed, 'base64'), { maxOutputLength: 1 << 20 }).toString('utf8')) as ProxyManifest;
    return manifest && typeof manifest === 'object' && manifest.format === manifestFormat ? manifest : undefined;
  } catch {
    return undefined;
  }
}

/** A file with its bytes and the digest the agent's generations share files by. */
export interface ProxyFile extends RenderedFile {
  sha256: string;
}

/**
 * A file as the agent's cache holds it: its digest, not its bytes, which wait in the
 * agent's content store (src/proxy/content-store.ts) and then live on disk once. No
 * `content` at all, rather than an optional one, so that code which may meet one cannot
 * read bytes without asking the store.
 */
export type StoredFile = Omit<ProxyFile, 'content'>;

/** A file of the agent's config: bytes in hand (shared and rendered files), or in the store (binding files). */
export type HeldFile = ProxyFile | StoredFile;

/** The file's bytes when it carries them; undefined for a StoredFile, whose bytes only the store can give. */
export function contentOf(file: HeldFile): string | undefined {
  return 'content' in file ? file.content : undefined;
}

export type SharedFiles = { ok: true; files: ProxyFile[] } | { ok: false; waitingFor: string } | { ok: false; problem: string };

/** The shared files the index lists, checked against its digests (the ConfigMap and the index arrive as one object, but are checked anyway). */
export function readSharedFiles(manifest: ProxyManifest, configMap: { binaryData?: Record<string, string> }): SharedFiles {
  if (!Array.isArray(manifest.files)) return { ok: false, problem: 'the index lists no files' };
  const files: ProxyFile[] = [];
  for (const file of manifest.files as unknown[]) {
    const { path, mode, sha256: digest, configMapKey: key } = (file ?? {}) as Partial<ManifestFile>;
    if (typeof path !== 'string' || !isSafeRelativePath(path) || path.includes('/'))
      return { ok: false, problem: `the index names an unsafe shared path ${JSON.stringify(path)}` };
    if (mode !== 0o644) return { ok: false, problem: `${path}: a shared file is 0644` };
    if (typeof key !== 'string' || typeof digest !== 'string') return { ok: false, problem: `${path}: no source` };
    const packed = configMap.binaryData?.[key];
    let content: string | undefined;
    try {
      content = packed === undefined ? undefined : gunzipSync(Buffer.from(packed, 'base64'), { maxOutputLength: 1 << 20 }).toString('utf8');
    } catch (err) {
      return { ok: false, problem: `${path}: the ConfigMap's data does not decode: ${(err as Error).message}` };
    }
    if (content === undefined || sha256(content) !== digest) return { ok: false, waitingFor: `ConfigMap key ${key}` };
    files.push({ path, mode, content, sha256: digest });
  }
  return { ok: true, files };
}

/** A bundle a binding object references: its file's path and the digest that names its object. */
export interface BundleRef {
  path: string;
  sha256: string;
}

/**
 * One binding object as the agent read it: its part with its own files, and the bundles
 * it references (resolveBundles adds their files); or why it cannot be used.
 */
export type ReadBinding<F extends HeldFile = ProxyFile> =
  { ok: true; contentHash: string; part: Omit<BindingPart, 'files'> & { files: F[] }; bundles: BundleRef[] } | { ok: false; problem: string };

/** Where a binding's files may go: its own, under the directories renderers use. */
export const bindingDirectories: readonly string[] = ['bindings', 'certs', 'ca'];

/**
 * A binding object, checked: the content hash is computed here, never taken from the
 * annotation; binding.json must name only files the object holds (or bundles named by
 * their content), under the binding directories, with safe paths. Anyone who can write
 * Secrets in the proxy namespace could write one, and one bad object must cost only that
 * binding.
 */
export function readBindingObject(secret: { metadata: { name: string }; data?: Record<string, string> }): ReadBinding {
  const data = secret.data ?? {};
  const fail = (problem: string): ReadBinding => ({ ok: false, problem: `Secret ${secret.metadata.name}: ${problem}` });
  const raw = data[bindingManifestKey];
  if (typeof raw !== 'string') return fail(`no ${bindingManifestKey}`);
  let manifest: BindingManifest;
  try {
    manifest = JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as BindingManifest;
  } catch {
    return fail(`${bindingManifestKey} is not JSON`);
  }
  if (typeof manifest !== 'object' || manifest === null) return fail(`${bindingManifestKey} is not an object`);
  const { key, listenerPort, fingerprintSha256, serialNumber, server } = manifest;
  if (typeof key !== 'string' || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\/[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(key))
    return fail('the binding key is not namespace/name');
  if (!Number.isInteger(listenerPort) || listenerPort < 1 || listenerPort > 65535) return fail('the listener port is not a port number');
  if (typeof fingerprintSha256 !== 'string' || typeof serialNumber !== 'string') return fail('no certificate fingerprint or serial');
  if (!Array.isArray(manifest.files)) return fail('binding.json lists no files');
  if (credentialSecretName(key) !== secret.metadata.name) return fail(`it is named for another binding than ${key}`);
  const files: ProxyFile[] = [];
  const bundles: BundleRef[] = [];
  for (const file of manifest.files as unknown[]) {
    const { path, mode, key: source, bundle } = (file ?? {}) as { path?: unknown; mode?: unknown; key?: unknown; bundle?: unknown };
    if (typeof path !== 'string' || !isSafeRelativePath(path) || !bindingDirectories.includes(path.split('/')[0]!) || path.split('/').length !== 2)
      return fail(`an unsafe path ${JSON.stringify(path)}`);
    if (mode !== 0o600 && mode !== 0o644) return fail(`${path}: mode ${String(mode)} is neither 0600 nor 0644`);
    if (bundle !== undefined) {
      // Content-addressed: the path is fixed by the digest, so two bindings that name one
      // path name the same bytes.
      if (!isDigest(bundle) || path !== bundlePath(bundle) || mode !== 0o644) return fail(`${path}: a bundle is ${bundlePath('<sha256>')} at 0644`);
      bundles.push({ path, sha256: bundle });
      continue;
    }
    const value = typeof source === 'string' && source !== bindingManifestKey ? data[source] : undefined;
    if (typeof value !== 'string') return fail(`${path}: the data key ${JSON.stringify(source)} is missing`);
    const content = Buffer.from(value, 'base64').toString('utf8');
    files.push({ path, mode, content, sha256: sha256(content), binding: key });
  }
  return {
    ok: true,
    contentHash: contentHash(data),
    part: { key, listenerPort, fingerprintSha256, serialNumber, files, ...(server === undefined ? {} : { server }) },
    bundles,
  };
}

/** One bundle object as the agent read it: its file, or why it cannot be used. */
export type ReadBundle<F extends HeldFile = ProxyFile> = { ok: true; file: F } | { ok: false; problem: string };

/**
 * A bundle object, checked: its content must hash to the digest its name carries, so a
 * hand edit cannot put other bytes under a name the bindings trust, and it is bounded
 * like any bundle. A bad one costs the bindings that reference it, which wait.
 */
export function readBundleObject(secret: { metadata: { name: string }; data?: Record<string, string> }): ReadBundle {
  const name = secret.metadata.name;
  const digest = name.slice(bundleObjectPrefix.length);
  const fail = (problem: string): ReadBundle => ({ ok: false, problem: `Secret ${name}: ${problem}` });
  if (!isBundleObjectName(name) || !isDigest(digest)) return fail('not named mtls-egress-ca-<sha256>');
  const value = secret.data?.[bundleDataKey];
  if (typeof value !== 'string') return fail(`no ${bundleDataKey}`);
  if (Buffer.byteLength(value, 'base64') > maxBundleBytes) return fail(`the bundle is over ${maxBundleBytes} bytes`);
  const content = Buffer.from(value, 'base64').toString('utf8');
  if (sha256(content) !== digest) return fail('its content does not hash to its name');
  return { ok: true, file: { path: bundlePath(digest), mode: 0o644, content, sha256: digest, bundle: true } };
}

/** A binding's part with every file it serves from, its bundles' included. */
export type HeldPart<F extends HeldFile = ProxyFile> = Omit<BindingPart, 'files'> & { files: F[] };

/**
 * A binding's part with its bundles' files, the very objects `bundles` holds, so each
 * bundle's bytes are in memory once however many bindings use it. Kept by the read part:
 * a pass over ten thousand bindings gets the same part objects as the last (the caches of
 * assembly are kept by part), and makes a new one only where a bundle changed.
 */
export class BundleResolver<F extends HeldFile = ProxyFile> {
  readonly #resolved = new WeakMap<object, { files: readonly F[]; part: HeldPart<F> }>();

  resolve(read: Extract<ReadBinding<F>, { ok: true }>, bundles: ReadonlyMap<string, F>): { ok: true; part: HeldPart<F> } | { ok: false; waitingFor: string } {
    if (read.bundles.length === 0) return { ok: true, part: read.part };
    const files: F[] = [];
    for (const ref of read.bundles) {
      const file = bundles.get(ref.sha256);
      if (!file) return { ok: false, waitingFor: `bundle ${bundleObjectName(ref.sha256)}` };
      files.push(file);
    }
    const known = this.#resolved.get(read.part);
    if (known && known.files.length === files.length && known.files.every((f, i) => f === files[i])) return { ok: true, part: known.part };
    const part = { ...read.part, files: [...read.part.files, ...files] };
    this.#resolved.set(read.part, { files, part });
    return { ok: true, part };
  }
}

/**
 * Binding and bundle objects (as a list or watch gives them) → the bindings they serve,
 * each with its bundles' files: for tools and tests that read the objects at once.
 * Unusable objects, and bindings waiting for a bundle, are named in `problems`.
 */
export function readProxySecrets(secrets: ReadonlyArray<{ metadata: { name: string }; data?: Record<string, string> }>): {
  held: Array<{ contentHash: string; part: HeldPart }>;
  problems: string[];
} {
  const bundles = new Map<string, ProxyFile>();
  const problems: string[] = [];
  const reads: Array<Extract<ReadBinding, { ok: true }>> = [];
  for (const secret of secrets) {
    if (isBundleObjectName(secret.metadata.name)) {
      const read = readBundleObject(secret);
      if (read.ok) bundles.set(read.file.sha256, read.file);
      else problems.push(read.problem);
      continue;
    }
    const read = readBindingObject(secret);
    if (read.ok) reads.push(read);
    else problems.push(read.problem);
  }
  const resolver = new BundleResolver();
  const held: Array<{ contentHash: string; part: HeldPart }> = [];
  for (const read of reads) {
    const resolved = resolver.resolve(read, bundles);
    if (resolved.ok) held.push({ contentHash: read.contentHash, part: resolved.part });
    else problems.push(`${read.part.key}: waiting for ${resolved.waitingFor}`);
  }
  return { held, problems };
}

export interface ProxyObjects {
  configMap: ConfigMapObject;
  /** One per served binding. */
  secrets: BindingObject[];
  /** One per distinct bundle the bindings reference, sorted by name: written before `secrets`. */
  bundles: BindingObject[];
  manifest: ProxyManifest;
}

/**
 * A whole render as the objects the controller writes: each binding's part in its
 * Secret, each distinct bundle once, the shared files in the ConfigMap with the index.
 * For tools and tests that render every binding at once (a driver splits its render into
 * these: see objectsOfRender in src/dataplane/registry.ts); the controller builds the
 * same objects one binding at a time.
 */
export function proxyObjects(dataPlane: string, shared: readonly RenderedFile[], parts: readonly BindingPart[], namespace: string): ProxyObjects {
  const sorted = [...parts].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const secrets = sorted.map((part) => bindingObject(part, namespace));
  const bundles = new Map(sorted.flatMap((part) => bundleObjects(part, namespace)).map((o) => [o.metadata.name, o]));
  const hashes = new Map(secrets.map((s) => [s.metadata.annotations[annotationBinding]!, s.metadata.annotations[annotationContentHash]!]));
  const { configMap, manifest } = sharedConfigMap(dataPlane, shared, hashes, namespace);
  return { configMap, secrets, bundles: [...bundles.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1)), manifest };
}
