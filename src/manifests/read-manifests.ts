import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAll, YAMLException } from 'js-yaml';
import { CodedError } from '../errors.ts';
import { apiVersion as bindingApiVersion, bindingKey, kind as bindingKind, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import type { SecretLike } from '../api/meta.ts';
import type { LeftOut } from '../model/egress-routes.ts';
import type { SecretLookup } from '../translate/translate.ts';

// Reading Kubernetes manifests from disk, for the offline commands (`render`, `validate`):
// files and directories as `kubectl -f` takes them, multi-document YAML, `kind: List`,
// and Secrets with `data` and `stringData`.

/** A problem with the input files that no object can be blamed for: the commands exit 2. */
export class InputError extends CodedError<'ERR_INPUT'> {
  constructor(message: string) {
    super('ERR_INPUT', message);
  }
}

/** One object of the input, with where it came from. */
export interface ManifestDocument {
  file: string;
  /** Position among the file's objects, the items of a `kind: List` counted one by one. */
  index: number;
  object: Record<string, unknown>;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function yamlFiles(path: string): Promise<string[]> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new InputError(`-f ${path}: no such file or directory`);
  if (!info.isDirectory()) return [path];
  // Like kubectl -f DIR without -R: the directory's own manifests, in name order.
  const names = (await readdir(path)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
  return names.map((n) => join(path, n));
}

/**
 * Reads every document with js-yaml's loadAll rather than client-node's loadAllYaml,
 * which throws on an empty document (a trailing `---`, which kubectl accepts) and
 * rewrites known kinds through its serializer. Objects stay as the API server would
 * receive them, in file order; documents that are not objects are skipped.
 */
export async function readManifestDocuments(paths: readonly string[]): Promise<ManifestDocument[]> {
  const documents: ManifestDocument[] = [];
  for (const path of paths) {
    for (const file of await yamlFiles(path)) {
      let loaded: unknown[];
      try {
        loaded = loadAll(await readFile(file, 'utf8'));
      } catch (err) {
        // Only the reason and position: the message quotes the source, which may be a Secret.
        if (err instanceof YAMLException) {
          const at = err.mark ? ` at line ${err.mark.line + 1}, column ${err.mark.column + 1}` : '';
          throw new InputError(`${file}: not valid YAML${at}: ${err.reason}`);
        }
        throw new InputError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      const objects = loaded.flatMap((d) => (isObject(d) && d.kind === 'List' && Array.isArray(d.items) ? d.items : [d]));
      objects.forEach((object, index) => {
        if (isObject(object)) documents.push({ file, index, object });
      });
    }
  }
  return documents;
}

export function isBindingObject(object: Record<string, unknown>): boolean {
  return object.apiVersion === bindingApiVersion && object.kind === bindingKind;
}

export function isSecretObject(object: Record<string, unknown>): boolean {
  return object.apiVersion === 'v1' && object.kind === 'Secret';
}

/** metadata.namespace, or "default" as kubectl would use without a context namespace. */
export function namespaceOf(object: Record<string, unknown>): string {
  const metadata = isObject(object.metadata) ? object.metadata : {};
  return typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : 'default';
}

/** Namespace defaults to "default", as kubectl's would; the spec is checked later, by the model. */
export function bindingFrom(object: Record<string, unknown>): ClientCertificateBinding | undefined {
  const metadata = isObject(object.metadata) ? object.metadata : {};
  if (typeof metadata.name !== 'string' || metadata.name === '') return undefined;
  const status = isObject(object.status) ? object.status : undefined;
  return {
    apiVersion: bindingApiVersion,
    kind: bindingKind,
    metadata: {
      name: metadata.name,
      namespace: namespaceOf(object),
      ...(typeof metadata.creationTimestamp === 'string' ? { creationTimestamp: metadata.creationTimestamp } : {}),
    },
    spec: (isObject(object.spec) ? object.spec : {}) as unknown as ClientCertificateBinding['spec'],
    ...(status ? { status: status as ClientCertificateBinding['status'] } : {}),
  };
}

/** `stringData` is folded into `data` (base64) and wins over it, as the API server does on write. */
export function secretFrom(object: Record<string, unknown>): SecretLike | undefined {
  const metadata = isObject(object.metadata) ? object.metadata : {};
  if (typeof metadata.name !== 'string' || metadata.name === '') return undefined;
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(isObject(object.data) ? object.data : {})) if (typeof v === 'string') data[k] = v;
  for (const [k, v] of Object.entries(isObject(object.stringData) ? object.stringData : {})) {
    if (typeof v === 'string') data[k] = Buffer.from(v, 'utf8').toString('base64');
  }
  return {
    metadata: { name: metadata.name, namespace: namespaceOf(object) },
    ...(typeof object.type === 'string' ? { type: object.type } : {}),
    data,
  };
}

/** The Secrets of a manifest set by namespace and name; later definitions of the same Secret win, as `kubectl apply` would. */
export function secretLookup(secrets: Iterable<SecretLike>): SecretLookup {
  const byKey = new Map<string, SecretLike>();
  for (const secret of secrets) byKey.set(`${secret.metadata.namespace ?? 'default'}/${secret.metadata.name}`, secret);
  return (namespace, name) => byKey.get(`${namespace}/${name}`);
}

export interface Manifests {
  bindings: ClientCertificateBinding[];
  secrets: SecretLookup;
  /** Binding-shaped objects that cannot even be keyed, reported like left-out bindings. */
  unreadable: LeftOut[];
}

/**
 * The bindings and Secrets among the documents, as `render` serves them. Later
 * definitions of the same object win, as `kubectl apply` would; `warn` gets a line for
 * each binding defined twice and one for the objects of other kinds.
 */
export function collectManifests(documents: readonly ManifestDocument[], warn: (line: string) => void): Manifests {
  const bindings = new Map<string, ClientCertificateBinding>();
  const secrets: SecretLike[] = [];
  const unreadable: LeftOut[] = [];
  let ignored = 0;
  for (const { file, index, object } of documents) {
    if (isBindingObject(object)) {
      const binding = bindingFrom(object);
      if (!binding) {
        unreadable.push({ key: `${file}[${index}]`, reason: 'InvalidSpec', message: 'a ClientCertificateBinding without metadata.name' });
        continue;
      }
      const key = bindingKey(binding);
      if (bindings.has(key)) warn(`warning: ClientCertificateBinding ${key} is defined more than once; using the last\n`);
      bindings.set(key, binding);
    } else if (isSecretObject(object)) {
      const secret = secretFrom(object);
      if (secret) secrets.push(secret);
    } else {
      ignored++;
    }
  }
  if (ignored > 0) warn(`note: ignored ${ignored} object${ignored === 1 ? '' : 's'} of other kinds\n`);
  return { bindings: [...bindings.values()], secrets: secretLookup(secrets), unreadable };
}
