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

// Kubernetes' own rules for the names of the objects a binding points at. The CRD checks
// them at admission; the controller checks again, because a binding stored before the CRD
// did (or read offline) can hold anything, and a name such as "." or ".." in a request
// path turns a GET of one Secret into a LIST of the namespace.

/** A DNS-1123 subdomain (k8s.io/apimachinery IsDNS1123Subdomain): Secret and most object names. */
export const objectNamePattern = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const objectName = new RegExp(objectNamePattern);
/**
 * A Secret or ConfigMap data key (IsConfigMapKey): `[-._a-zA-Z0-9]+`, not "." and not
 * starting with "..". One RE2-compatible expression, so the CRD can carry it as a pattern.
 */
export const secretDataKeyPattern = '^\\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$';
const secretDataKey = new RegExp(secretDataKeyPattern);
/** The longest name or data key the API server accepts. */
export const maxObjectNameLength = 253;

/** Whether the API server would accept this as a Secret's name. */
export function isObjectName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= maxObjectNameLength && objectName.test(value);
}

/** Whether the API server would accept this as a key of a Secret's data. */
export function isSecretDataKey(value: unknown): value is string {
  return typeof value === 'string' && value.length <= maxObjectNameLength && secretDataKey.test(value);
}
