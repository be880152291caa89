// The Kubernetes object shapes every layer shares: what the API returns, as plain types.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface ObjectList<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** The part of a Secret that the operator reads. `data` values are base64, as the API returns them. */
export interface SecretLike {
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
  type?: string;
  data?: Record<string, string>;
}

/** The cache and queue key of a namespaced object: "namespace/name". */
export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** Longest quoted value a message carries; a manifest value can be megabytes. */
const maxQuotedLength = 128;

/**
 * A value from a manifest as a message quotes it: JSON-escaped (no raw control
 * characters), cut short with "…" when long. Never used for Secret data.
 */
export function quoteValue(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const cut = text.length > maxQuotedLength ? `${text.slice(0, maxQuotedLength)}…` : text;
  return typeof value === 'string' ? JSON.stringify(cut) : cut;
}
