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
    const secrets = [...new Set(secretReferences(spec).map((r) => objectKey(namespace, r.name)))];
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
