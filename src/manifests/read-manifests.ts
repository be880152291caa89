import { constants } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAll, YAMLException } from 'js-yaml';
import { CodedError } from '../errors.ts';
import { printable } from '../printable.ts';
import { apiVersion as bindingApiVersion, bindingKey, kind as bindingKind, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import type { SecretLike } from '../api/meta.ts';
import type { LeftOut } from '../model/egress-routes.ts';
import type { SecretLookup } from '../translate/translate.ts';

// Reading Kubernetes manifests from disk, for the offline commands (`render`, `validate`):
// files and directories as `kubectl -f` takes them, multi-document YAML, lists (any object
// with an `items` array, as kubectl flattens them), and Secrets with `data` and
// `stringData`. The files may come from anyone (a pull request to a GitOps repository),
// so reading them is bounded: by size, by aliases and what they expand to, by nesting,
// and no error message quotes what the file says.

/** A file larger than this is refused: the API server takes at most 3 MiB in one request. */
export const maxManifestFileBytes = 4 * 1024 * 1024;
/** All the files of one run together. */
export const maxManifestSetBytes = 64 * 1024 * 1024;
/** YAML aliases (`*name`) per document; Kubernetes manifests rarely have any. */
export const maxAliasesPerDocument = 1000;
/**
 * Values a file may hold once its aliases are expanded. An alias is a reference, so a few
 * hundred of them nest into billions of values ("billion laughs") that every later walk
 * (the schema, the translation, JSON) would visit one by one.
 */
export const maxExpandedValuesPerFile = 1_000_000;
/** Lists nested in lists, as kubectl flattens them. */
const maxListDepth = 8;

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
  if (!info) throw new InputError(`-f ${printable(path)}: no such file or directory`);
  if (!info.isDirectory()) return [path];
  // Like kubectl -f DIR without -R: the directory's own manifests, in name order.
  const names = (await readdir(path)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
  return names.map((n) => join(path, n));
}

/**
 * A file's text, read only if it is a regular file within the size limits: a FIFO or
 * /dev/zero would never end, and a huge file would be held whole in memory.
 */
async function readBounded(file: string, budget: { remaining: number }): Promise<string> {
  // Non-blocking, so that a FIFO is refused below instead of waiting forever for a writer.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`${printable(file)}: cannot be read (${err.code ?? 'error'})`);
  });
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new InputError(`${printable(file)}: not a regular file`);
    if (info.size > maxManifestFileBytes)
      throw new InputError(`${printable(file)}: ${info.size} bytes is more than the ${maxManifestFileBytes} a manifest file may have`);
    if (info.size > budget.remaining)
      throw new InputError(`${printable(file)}: the files together are more than the ${maxManifestSetBytes} bytes one run reads`);
    // Read at most one byte past the limit: a file that grows while we read is refused too.
    const buffer = Buffer.alloc(maxManifestFileBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxManifestFileBytes) throw new InputError(`${printable(file)}: more than the ${maxManifestFileBytes} bytes a manifest file may have`);
    }
    budget.remaining -= length;
    return buffer.toString('utf8', 0, length);
  } finally {
    await handle.close();
  }
}

/**
 * How many values a document holds with every alias expanded, up to `limit`. Shared
 * subtrees are counted once per reference, through a memo, so the count itself is
 * linear in the distinct values; a recursive alias (a value that contains itself)
 * counts as unbounded.
 */
export function expandedSize(document: unknown, limit: number): number {
  const sizes = new Map<object, number>();
  const inProgress = new Set<object>();
  const size = (value: unknown): number => {
    if (typeof value !== 'object' || value === null) return 1;
    const known = sizes.get(value);
    if (known !== undefined) return known;
    if (inProgress.has(value)) return Infinity;
    inProgress.add(value);
    let total = 1;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      total += size(child);
      if (total > limit) break;
    }
    inProgress.delete(value);
    sizes.set(value, total);
    return total;
  };
  return size(document);
}

/** A YAML error's reason without anything it quotes from the file (a tag, an alias name, a value). */
function yamlReason(reason: string): string {
  return printable(reason.replace(/"[^"]*"|'[^']*'|!<[^>]*>|![^\s]*/g, '…')).slice(0, 120);
}

/** The objects of a document: lists (anything with an `items` array, as kubectl sees them) flattened. */
function flattenLists(value: unknown, depth = 0): unknown[] {
  if (!isObject(value) || !Array.isArray(value.items) || depth >= maxListDepth) return [value];
  return value.items.flatMap((item) => flattenLists(item, depth + 1));
}

/**
 * Reads every document with js-yaml's loadAll rather than client-node's loadAllYaml,
 * which throws on an empty document (a trailing `---`, which kubectl accepts) and
 * rewrites known kinds through its serializer. Objects stay as the API server would
 * receive them, in file order; documents that are not objects are skipped.
 */
export async function readManifestDocuments(paths: readonly string[]): Promise<ManifestDocument[]> {
  const documents: ManifestDocument[] = [];
  const budget = { remaining: maxManifestSetBytes };
  for (const path of paths) {
    for (const file of await yamlFiles(path)) {
      const text = await readBounded(file, budget);
      let loaded: unknown[];
      try {
        loaded = loadAll(text, { maxAliases: maxAliasesPerDocument });
      } catch (err) {
        // Only the reason and position: the message quotes the source, which may be a Secret.
        if (err instanceof YAMLException) {
          const at = err.mark ? ` at line ${err.mark.line + 1}, column ${err.mark.column + 1}` : '';
          throw new InputError(`${printable(file)}: not valid YAML${at}: ${yamlReason(err.reason)}`);
        }
        throw err;
      }
      if (expandedSize(loaded, maxExpandedValuesPerFile) > maxExpandedValuesPerFile) {
        throw new InputError(`${printable(file)}: its YAML aliases expand to more than ${maxExpandedValuesPerFile} values`);
      }
      const objects = loaded.flatMap((d) => flattenLists(d));
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
      if (bindings.has(key)) warn(`warning: ClientCertificateBinding ${printable(key)} is defined more than once; using the last\n`);
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
