import { objectKey, type SecretLike } from '../api/meta.ts';
import { isNotFound, type KubeClient } from './client.ts';
import type { Informer } from './informer.ts';

/**
 * Secrets as the controllers read them: from the Secret informer, which keeps only the
 * Secrets some binding references, with the one read that informer cannot serve. When a
 * binding starts referencing a Secret that already exists, the watch delivered that
 * Secret before anyone referenced it and the informer dropped it; it will not see it
 * again until it changes. So a miss is read with one GET and seeded into the informer
 * (cert-manager keeps this fallback inside its lister, as this does). A Secret the GET
 * did not find is remembered as missing until the watch says otherwise, so a binding
 * waiting for its Secret costs no request per reconcile.
 */
export class SecretCache {
  readonly #client: KubeClient;
  readonly #informer: Informer<SecretLike>;
  /** Secrets a GET did not find, by key, with the event count when it was asked. */
  readonly #missing = new Set<string>();
  /** Watch events per key since start: a GET that raced a watch event must not mark the Secret missing. */
  readonly #events = new Map<string, number>();

  constructor(client: KubeClient, informer: Informer<SecretLike>) {
    this.#client = client;
    this.#informer = informer;
    const seen = (s: SecretLike): void => {
      const key = objectKey(s.metadata.namespace ?? '', s.metadata.name);
      this.#missing.delete(key);
      this.#events.set(key, (this.#events.get(key) ?? 0) + 1);
    };
    informer.addHandlers({ onAdd: seen, onUpdate: seen, onDelete: seen });
  }

  /** Calls `handler` with "namespace/name" whenever a referenced Secret is added, changed or deleted. */
  onChange(handler: (secretKey: string) => void): void {
    const changed = (s: SecretLike): void => handler(objectKey(s.metadata.namespace ?? '', s.metadata.name));
    this.#informer.addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed });
  }

  /** The cached Secret, or what one GET finds. */
  async get(namespace: string, name: string): Promise<SecretLike | undefined> {
    const key = objectKey(namespace, name);
    const cached = this.#informer.get(key);
    if (cached || this.#missing.has(key)) return cached;
    const eventsBefore = this.#events.get(key) ?? 0;
    try {
      const secret = await this.#client.get<SecretLike>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`);
      this.#informer.seed(secret);
      return this.#informer.get(key) ?? secret;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      if ((this.#events.get(key) ?? 0) === eventsBefore) this.#missing.add(key);
      return this.#informer.get(key);
    }
  }

  /** Every Secret a set of names in one namespace resolves to (the names a binding references), for a synchronous lookup. */
  async getAll(namespace: string, names: Iterable<string>): Promise<Map<string, SecretLike>> {
    const found = new Map<string, SecretLike>();
    for (const name of new Set(names)) {
      const secret = await this.get(namespace, name);
      if (secret) found.set(name, secret);
    }
    return found;
  }

  /** The cached Secret only, with no request: for a translation over every binding. */
  peek(namespace: string, name: string): SecretLike | undefined {
    return this.#informer.get(objectKey(namespace, name));
  }
}
