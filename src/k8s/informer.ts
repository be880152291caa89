import type { Logger } from 'pino';
import { CodedError, errorSummary } from '../errors.ts';
import { Backoff, sleep } from '../runner/backoff.ts';
import { contentTypes, KubeApiError, type KubeClient, type KubeObject, type Query, type WatchEvent } from './client.ts';

export interface InformerHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(obj: T, old: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions<T extends KubeObject> {
  client: KubeClient;
  /** Collection paths to list and watch: one for all namespaces, or one per namespace. */
  paths: string[];
  /**
   * Sent with every list and watch, e.g. a labelSelector or fieldSelector, so the server
   * filters and objects outside the selection never cross the wire (unlike `keep`).
   */
  query?: Query;
  /**
   * List and watch PartialObjectMetadata: names, versions, labels, never data. For a
   * resource whose bodies are large and mostly unwanted (every Secret in the cluster).
   */
  metadataOnly?: boolean;
  logger: Logger;
  /**
   * Which objects to store and report. The Secret informer keeps only Secrets that some
   * binding references, so a cluster's thousands of unrelated Secrets pass through once
   * and are never held in memory.
   */
  keep?: (obj: T) => boolean;
  /** Drops fields the controller never reads before storing (managedFields, say). */
  transform?: (obj: T) => T;
  backoff?: { baseMs: number; maxMs: number };
  /** Called after every failed list or watch, for metrics and readiness. */
  onError?: (err: unknown) => void;
}

export function objectCacheKey(obj: KubeObject): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

/**
 * A list-then-watch cache like client-go's reflector. It resumes watches from the last
 * resourceVersion (bookmarks keep it fresh), relists on 410 Gone, and restarts failed
 * lists and watches with exponential backoff forever, so an apiserver restart or a
 * dropped connection heals without restarting the process.
 */
export class Informer<T extends KubeObject> {
  readonly #options: InformerOptions<T>;
  readonly #store = new Map<string, T>();
  readonly #handlers: InformerHandlers<T>[] = [];
  readonly #abort = new AbortController();
  readonly #synced: Promise<void>[] = [];
  #running: Promise<void>[] = [];

  constructor(options: InformerOptions<T>) {
    this.#options = options;
  }

  addHandlers(handlers: InformerHandlers<T>): void {
    this.#handlers.push(handlers);
  }

  get(key: string): T | undefined {
    return this.#store.get(key);
  }

  list(): T[] {
    return [...this.#store.values()];
  }

  get size(): number {
    return this.#store.size;
  }

  /** Stores an object fetched directly (a cache miss), unless the watch already delivered one. */
  seed(obj: T): void {
    if (this.#keep(obj) && !this.#store.has(objectCacheKey(obj))) this.#store.set(objectCacheKey(obj), this.#transform(obj));
  }

  /** Starts every path's loop; resolves once each has completed its first list. */
  start(): Promise<void> {
    this.#running = this.#options.paths.map((path) => {
      let markSynced!: () => void;
      this.#synced.push(new Promise<void>((resolve) => (markSynced = resolve)));
      return this.#run(path, markSynced);
    });
    return Promise.all(this.#synced).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled(this.#running);
  }

  async #run(path: string, markSynced: () => void): Promise<void> {
    const backoff = new Backoff(this.#options.backoff ?? { baseMs: 200, maxMs: 30_000 });
    const log = this.#options.logger.child({ informer: path });
    let resourceVersion: string | undefined;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      try {
        if (resourceVersion === undefined) {
          resourceVersion = await this.#relist(path);
          markSynced();
        }
        // The server ends a watch after timeoutSeconds; a random spread keeps replicas
        // from reconnecting in lockstep (client-go does the same).
        const timeoutSeconds = 240 + Math.floor(Math.random() * 120);
        await this.#options.client.watch<T>(
          path,
          { ...this.#options.query, resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
          (event) => {
            resourceVersion = this.#apply(path, event) ?? resourceVersion;
            backoff.succeeded();
          },
          signal,
          this.#options.metadataOnly ? { accept: contentTypes.metadata } : {},
        );
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof GoneError || (err instanceof KubeApiError && err.status === 410)) {
          log.debug('watch expired (410 Gone); relisting');
          resourceVersion = undefined;
          continue;
        }
        this.#options.onError?.(err);
        const delay = backoff.failed();
        log.warn({ err: errorSummary(err), retryInMs: delay }, 'list/watch failed; retrying');
        await sleep(delay, signal);
      }
    }
  }

  async #relist(path: string): Promise<string> {
    const fresh = new Map<string, T>();
    let continueToken: string | undefined;
    let resourceVersion: string;
    do {
      const page = await this.#options.client.list<T>(
        path,
        { ...this.#options.query, limit: 500, continue: continueToken },
        this.#options.metadataOnly ? { accept: contentTypes.metadataList } : {},
      );
      // A PartialObjectMetadataList with nothing in it says `items: null`.
      for (const item of page.items ?? []) {
        if (this.#keep(item)) fresh.set(objectCacheKey(item), this.#transform(item));
      }
      continueToken = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion ?? '';
    } while (continueToken);

    // Replace only this path's share of the store: other namespaces' paths own theirs.
    for (const [key, old] of this.#store) {
      if (!this.#ownedBy(path, old) || fresh.has(key)) continue;
      this.#store.delete(key);
      for (const h of this.#handlers) h.onDelete?.(old);
    }
    for (const [key, obj] of fresh) this.#upsert(key, obj);
    return resourceVersion;
  }

  /** Applies one watch event; returns the resourceVersion to resume from. */
  #apply(path: string, event: WatchEvent<T>): string | undefined {
    if (event.type === 'ERROR') {
      const status = event.object as unknown as { code?: number; message?: string };
      if (status.code === 410) throw new GoneError();
      throw new KubeApiError(status.code ?? 500, undefined, `watch ${path}: ${status.message ?? 'error event'}`);
    }
    const rv = event.object.metadata.resourceVersion;
    if (event.type === 'BOOKMARK') return rv;
    const key = objectCacheKey(event.object);
    if (event.type === 'DELETED' || !this.#keep(event.object)) {
      const old = this.#store.get(key);
      if (old) {
        this.#store.delete(key);
        for (const h of this.#handlers) h.onDelete?.(old);
      }
      return rv;
    }
    this.#upsert(key, this.#transform(event.object));
    return rv;
  }

  #upsert(key: string, obj: T): void {
    const old = this.#store.get(key);
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    this.#store.set(key, obj);
    for (const h of this.#handlers) {
      if (old) h.onUpdate?.(obj, old);
      else h.onAdd?.(obj);
    }
  }

  #ownedBy(path: string, obj: T): boolean {
    const match = /\/namespaces\/([^/]+)\//.exec(path);
    return !match || obj.metadata.namespace === match[1];
  }

  #keep(obj: T): boolean {
    return this.#options.keep ? this.#options.keep(obj) : true;
  }

  #transform(obj: T): T {
    const { managedFields: _drop, ...metadata } = obj.metadata as T['metadata'] & { managedFields?: unknown };
    const slim = { ...obj, metadata } as T;
    return this.#options.transform ? this.#options.transform(slim) : slim;
  }
}

class GoneError extends CodedError<'ERR_WATCH_GONE'> {
  constructor() {
    super('ERR_WATCH_GONE', 'the watch resourceVersion expired');
  }
}
