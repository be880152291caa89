import { annotationContentHash } from '../api/labels.ts';
import type { KubeObject } from '../api/meta.ts';
import type { Priority, TokenBucket } from '../runner/token-bucket.ts';
import { isNotFound, type KubeClient } from './client.ts';
import type { Informer } from './informer.ts';

/** An object a controller owns, with the content-hash annotation that says whether it changed. */
export interface OwnedObject extends KubeObject {
  metadata: KubeObject['metadata'] & { annotations?: Record<string, string> };
}

export interface OwnedObjectsOptions<R extends string> {
  client: KubeClient;
  /** Where the objects live. */
  namespace: string;
  /** Each resource's API prefix ('/api/v1', '/apis/networking.k8s.io/v1'). */
  apiPrefixes: Record<R, string>;
  /**
   * A metadata watch per resource, of the owned objects only (a label selector), keeping
   * name, resourceVersion and our annotations: what exists is read from these, never
   * listed with its data, and an edit that is not ours shows up here.
   */
  informers: Partial<Record<R, Informer<KubeObject>>>;
  /** Paces every write, after the writes that go first ('low', unless a put says otherwise). */
  limiter?: TokenBucket;
  /** After each write that reached the API server. */
  wrote?: (resource: R, verb: 'create' | 'replace' | 'delete') => void;
  /** Someone else created, changed or deleted one of our objects (never an echo of our own write): its owner should put it right. */
  changedElsewhere: (resource: R, object: OwnedObject) => void;
}

interface Known {
  hash: string | undefined;
  resourceVersion: string | undefined;
}

/**
 * The objects a controller owns, written like controller-runtime's CreateOrUpdate: put
 * creates an object, or replaces it when its content hash differs from what is known, and
 * remove deletes it. What is known is seeded from the owned watches when a leadership term
 * starts, so a term starts from the cluster rather than from what the last term wrote,
 * and kept from each write's answer. A watch event is an echo of our own write when it
 * carries the resourceVersion the write returned (or arrives while the write is under
 * way); any other event is someone else's, and `changedElsewhere` names the object.
 * At ten thousand bindings, an unchanged object costs a map lookup, never a request.
 */
export class OwnedObjects<R extends string> {
  readonly #o: OwnedObjectsOptions<R>;
  /** Per resource: name → content hash and resourceVersion. A resource is absent until seeded, and its events are ignored until then. */
  readonly #known = new Map<R, Map<string, Known>>();
  /** "resource/name" of writes under way: their own watch events may arrive before the write returns. */
  readonly #inFlight = new Set<string>();

  constructor(options: OwnedObjectsOptions<R>) {
    this.#o = options;
    for (const [resource, informer] of Object.entries(options.informers) as Array<[R, Informer<KubeObject>]>) {
      informer.addHandlers({
        onAdd: (o) => this.#observed(resource, o, false),
        onUpdate: (o) => this.#observed(resource, o, false),
        onDelete: (o) => this.#observed(resource, o, true),
      });
    }
  }

  /** What exists, from the owned watches: call when a term starts, once they have synced. */
  seed(): void {
    for (const resource of Object.keys(this.#o.apiPrefixes) as R[]) {
      const objects = new Map<string, Known>();
      for (const o of this.list(resource)) {
        objects.set(o.metadata.name, { hash: o.metadata.annotations?.[annotationContentHash], resourceVersion: o.metadata.resourceVersion });
      }
      this.#known.set(resource, objects);
    }
  }

  /** The owned objects of a resource as the watch shows them: metadata and our annotations. */
  list(resource: R): OwnedObject[] {
    return this.#o.informers[resource]?.list() ?? [];
  }

  /** The names of a resource's objects known to exist: seeded from the watch, kept from our writes (which the watch may not show yet). */
  known(resource: R): string[] {
    return [...this.#knownOf(resource).keys()];
  }

  /** One object, whole, from the API server; undefined when it does not exist. */
  async read<T extends KubeObject>(resource: R, name: string): Promise<T | undefined> {
    try {
      return await this.#o.client.get<T>(this.#path(resource, name));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Creates the object, or replaces it when its content hash differs from what is known;
   * true when it wrote. `atSend` adds annotations made once the write has its turn (the
   * rotation stamps' send time); they are outside the hash, so they never cause a write.
   * `priority` is its place in the write budget (default 'low').
   */
  async put(resource: R, desired: OwnedObject, options: { atSend?: () => Record<string, string>; priority?: Priority } = {}): Promise<boolean> {
    const { atSend } = options;
    const name = desired.metadata.name;
    const objects = this.#knownOf(resource);
    const current = objects.get(name);
    const hash = desired.metadata.annotations?.[annotationContentHash];
    if (current && current.hash === hash) return false;
    const stored = await this.#write(resource, name, options.priority ?? 'low', () => {
      const metadata = atSend ? { ...desired.metadata, annotations: { ...desired.metadata.annotations, ...atSend() } } : desired.metadata;
      return current
        ? this.#o.client.replace<OwnedObject>(this.#path(resource, name), { ...desired, metadata: { ...metadata, resourceVersion: current.resourceVersion } })
        : this.#o.client.create<OwnedObject>(this.#path(resource), { ...desired, metadata });
    });
    objects.set(name, { hash, resourceVersion: stored?.metadata?.resourceVersion });
    this.#o.wrote?.(resource, current ? 'replace' : 'create');
    return true;
  }

  /** Deletes the object if it is known to exist. */
  async remove(resource: R, name: string): Promise<void> {
    const objects = this.#knownOf(resource);
    if (!objects.has(name)) return;
    await this.#write(resource, name, 'low', async () => {
      try {
        await this.#o.client.delete(this.#path(resource, name));
        this.#o.wrote?.(resource, 'delete');
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    });
    objects.delete(name);
  }

  /**
   * A watch event on an object we own. Our own writes come back with the resourceVersion
   * we stored (or while the write is in flight); anything else is someone else's: the
   * object is marked stale, so the next put writes it whatever its hash.
   */
  #observed(resource: R, o: OwnedObject, deleted: boolean): void {
    const name = o.metadata.name;
    if (this.#inFlight.has(`${resource}/${name}`)) return;
    const objects = this.#known.get(resource);
    if (!objects) return;
    const known = objects.get(name);
    if (deleted) {
      if (!known) return;
      objects.delete(name);
    } else {
      if (known?.resourceVersion === o.metadata.resourceVersion) return;
      objects.set(name, { hash: undefined, resourceVersion: o.metadata.resourceVersion });
    }
    this.#o.changedElsewhere(resource, o);
  }

  #path(resource: R, name?: string): string {
    const collection = `${this.#o.apiPrefixes[resource]}/namespaces/${this.#o.namespace}/${resource}`;
    return name === undefined ? collection : `${collection}/${name}`;
  }

  #knownOf(resource: R): Map<string, Known> {
    let objects = this.#known.get(resource);
    if (!objects) this.#known.set(resource, (objects = new Map()));
    return objects;
  }

  /** A write that fails leaves this object unsure: its state is read again from the watch, and the caller's runner retries. */
  async #write<T>(resource: R, name: string, priority: Priority, request: () => Promise<T>): Promise<T> {
    await this.#o.limiter?.take(priority);
    const id = `${resource}/${name}`;
    this.#inFlight.add(id);
    try {
      return await request();
    } catch (err) {
      const seen = this.#o.informers[resource]?.get(`${this.#o.namespace}/${name}`);
      const objects = this.#knownOf(resource);
      if (seen) objects.set(name, { hash: undefined, resourceVersion: seen.metadata.resourceVersion });
      else objects.delete(name);
      throw err;
    } finally {
      this.#inFlight.delete(id);
    }
  }
}
