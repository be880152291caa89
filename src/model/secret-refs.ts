import { isObjectName, isSecretDataKey, quoteValue } from '../api/meta.ts';
import { defaultCAKey, defaultPasswordKey, defaultPfxKey, objectKey, type ClientCertificateBindingSpec } from '../api/v1alpha1/types.ts';

export type SecretRole = 'pfx' | 'password' | 'tls' | 'serverCA';

export interface SecretReference {
  role: SecretRole;
  name: string;
  /** The data key; for tls it is implied (tls.crt and tls.key). */
  key: string;
}

/** Every Secret a binding reads, with defaults applied (the API server defaults them too, but offline render does not). */
export function secretReferences(spec: ClientCertificateBindingSpec): SecretReference[] {
  const refs: SecretReference[] = [];
  const cert = spec.certificate ?? {};
  if (cert.secretRef) refs.push({ role: 'pfx', name: cert.secretRef.name, key: cert.secretRef.key ?? defaultPfxKey });
  if (cert.passwordSecretRef) refs.push({ role: 'password', name: cert.passwordSecretRef.name, key: cert.passwordSecretRef.key ?? defaultPasswordKey });
  if (cert.tlsSecretRef) refs.push({ role: 'tls', name: cert.tlsSecretRef.name, key: 'tls.crt' });
  if (spec.serverCA?.secretRef) refs.push({ role: 'serverCA', name: spec.serverCA.secretRef.name, key: spec.serverCA.secretRef.key ?? defaultCAKey });
  return refs;
}

/** The spec field that names each role's Secret, as messages and findings name it. */
export const secretRefField: Readonly<Record<SecretRole, string>> = {
  pfx: 'spec.certificate.secretRef',
  password: 'spec.certificate.passwordSecretRef',
  tls: 'spec.certificate.tlsSecretRef',
  serverCA: 'spec.serverCA.secretRef',
};

/**
 * Why a reference names no Secret the API server could hold, or undefined. The CRD refuses
 * these at admission; a binding stored before it did, or a manifest read offline, is
 * refused here, before any request: "." or ".." in the path of a GET makes it a LIST.
 */
export function secretReferenceProblem(ref: SecretReference): string | undefined {
  if (!isObjectName(ref.name)) {
    return `${secretRefField[ref.role]}.name ${quoteValue(ref.name)} is not a Secret name (a lowercase RFC 1123 subdomain of at most 253 characters)`;
  }
  if (!isSecretDataKey(ref.key)) {
    return `${secretRefField[ref.role]}.key ${quoteValue(ref.key)} is not a Secret data key (letters, digits, '-', '_' and '.', at most 253, neither "." nor starting with "..")`;
  }
  return undefined;
}

/** The names of the Secrets a binding may read: those its spec names validly, the only ones ever requested. */
export function readableSecretNames(spec: ClientCertificateBindingSpec): string[] {
  return secretReferences(spec)
    .filter((r) => secretReferenceProblem(r) === undefined)
    .map((r) => r.name);
}

/**
 * Secret "namespace/name" → binding keys, kept in step with the binding cache, so a
 * rotated Secret wakes exactly the bindings that read it (cert-manager's
 * EnqueueCertificatesForResourceUsingPredicates).
 */
export class SecretIndex {
  readonly #bySecret = new Map<string, Set<string>>();
  readonly #byBinding = new Map<string, string[]>();

  set(bindingKey: string, namespace: string, spec: ClientCertificateBindingSpec): void {
    this.delete(bindingKey);
    const secrets = [...new Set(readableSecretNames(spec).map((name) => objectKey(namespace, name)))];
    this.#byBinding.set(bindingKey, secrets);
    for (const s of secrets) {
      let set = this.#bySecret.get(s);
      if (!set) this.#bySecret.set(s, (set = new Set()));
      set.add(bindingKey);
    }
  }

  delete(bindingKey: string): void {
    for (const s of this.#byBinding.get(bindingKey) ?? []) {
      const set = this.#bySecret.get(s);
      set?.delete(bindingKey);
      if (set?.size === 0) this.#bySecret.delete(s);
    }
    this.#byBinding.delete(bindingKey);
  }

  bindingsFor(secretKey: string): string[] {
    return [...(this.#bySecret.get(secretKey) ?? [])];
  }

  isReferenced(secretKey: string): boolean {
    return this.#bySecret.has(secretKey);
  }
}
