import type { Logger } from 'pino';
import { isObjectName, objectKey, splitKey, type SecretLike } from '../api/meta.ts';
import { errorSummary } from '../errors.ts';
import { backoffDelay, type BackoffOptions } from '../runner/backoff.ts';
import { systemClock, type Clock, type Timer } from '../runner/clock.ts';
import { isNotFound, type KubeClient, type KubeObject } from './client.ts';
import { Informer } from './informer.ts';

export interface SecretCacheOptions {
  client: KubeClient;
  logger: Logger;
  /** Secret collections to watch: one for all namespaces, or one per namespace. */
  paths: string[];
  /** Whether some binding reads this Secret ("namespace/name"): only those are kept and read in full. */
  isReferenced: (secretKey: string) => boolean;
  /** Full Secrets read at once (default 8). */
  readConcurrency?: number;
  /** How long a read that failed in the background waits before it is tried again. */
  retryBackoff?: BackoffOptions;
  clock?: Clock;
  /** After every failed list or watch. */
  onWatchError?: (err: unknown) => void;
  /** After every GET of one Secret. */
  onRead?: (result: 'found' | 'not_found' | 'error') => void;
}

/** What a GET of one Secret found, and how current that is. */
interface Read {
  /** The Secret as resolution reads it; undefined: the GET found none. */
  secret: SecretLike | undefined;
  /** The key's count of metadata events when the GET was sent: a later event may be a newer version. */
  asOf: number;
}

/** When the cache met one version of a Secret. */
interface SecretStageTimes {
  resourceVersion: string;
  seenAt: number;
  /** undefined until a GET returned this version. */
  readAt: number | undefined;
}

/** What the watch last said of a key. */
interface Seen {
  events: number;
  /** undefined after a delete. */
  resourceVersion: string | undefined;
}

const defaultRetryBackoff: BackoffOptions = { baseMs: 500, maxMs: 60_000 };

/**
 * SecretCache's bookkeeping, without I/O: what the watch last said of each Secret, what
 * GETs found, and from those whether what is held is current and whether a GET that just
 * finished may be trusted. Reads are ordered per key by the cache (one GET in flight), and
 * a GET sent after a watch event returns that version or a newer one (the API server reads
 * from etcd with quorum); so a GET is trusted unless an event arrived while it was out
 * whose version it did not return: that event may be newer, or a delete.
 */
export class SecretVersions {
  readonly #reads = new Map<string, Read>();
  readonly #seen = new Map<string, Seen>();

  /** Secrets held in full. */
  get size(): number {
    let n = 0;
    for (const read of this.#reads.values()) if (read.secret) n++;
    return n;
  }

  /** What was read: the Secret, or undefined if the GET found none (or nothing was read). */
  secret(key: string): SecretLike | undefined {
    return this.#reads.get(key)?.secret;
  }

  /** The watch showed this resourceVersion of the Secret. */
  changed(key: string, resourceVersion: string | undefined): void {
    this.#seen.set(key, { events: (this.#seen.get(key)?.events ?? 0) + 1, resourceVersion });
  }

  /**
   * The watch deleted the Secret, or dropped it because no binding references it any more:
   * hold nothing, so a binding that still asks reads it once. A GET out now must not be
   * trusted; with none out, the key is forgotten altogether.
   */
  deleted(key: string, readInFlight: boolean): void {
    this.#reads.delete(key);
    if (readInFlight) this.changed(key, undefined);
    else this.#seen.delete(key);
  }

  /** Whether what was read is still the newest the watch knows of. A key never read is not. */
  current(key: string): boolean {
    const read = this.#reads.get(key);
    if (!read) return false;
    const seen = this.#seen.get(key);
    if (!seen || read.asOf === seen.events) return true;
    return read.secret !== undefined && read.secret.metadata.resourceVersion === seen.resourceVersion;
  }

  /** The version the watch last showed of a key; undefined after a delete or before any event. */
  seenVersion(key: string): string | undefined {
    return this.#seen.get(key)?.resourceVersion;
  }

  /** A GET is about to be sent: what it must hand back to finished(). */
  begin(key: string): number {
    return this.#seen.get(key)?.events ?? 0;
  }

  /**
   * A GET begun at `asOf` found `secret` (undefined: not found). Stored unless an event
   * overtook it ('stale': read again); 'changed' when the version held is another than before.
   */
  finished(key: string, asOf: number, secret: SecretLike | undefined): 'stale' | 'changed' | 'same' {
    const seen = this.#seen.get(key);
    if ((seen?.events ?? 0) !== asOf && !(secret && secret.metadata.resourceVersion === seen?.resourceVersion)) return 'stale';
    const before = this.#reads.get(key)?.secret?.metadata.resourceVersion;
    this.#reads.set(key, { secret, asOf });
    return before === secret?.metadata.resourceVersion ? 'same' : 'changed';
  }
}

/**
 * Secrets as the controllers read them. The watch is metadata-only (PartialObjectMetadata:
 * names and resourceVersions, no data), so the first list of a big cluster, whose
 * Secrets carry key material, costs kilobytes per thousand Secrets rather than
 * megabytes; the watch keeps only the Secrets some binding references. The data of
 * those is read with one GET each, when first referenced and whenever the watch shows a
 * new resourceVersion, a few at a time. onChange fires once the new data is here, not
 * when the watch event arrives, so a binding woken by it reads the new version.
 *
 * A Secret the GET did not find is remembered as missing until the watch says otherwise,
 * so a binding waiting for its Secret costs no request per reconcile. One GET per key is
 * in flight at a time, and one that a watch event overtook is sent again (SecretVersions),
 * so a slow GET cannot leave an old version, or a deleted Secret, in the cache.
 */
export class SecretCache {
  readonly #o: SecretCacheOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #watch: Informer<KubeObject>;
  readonly #versions = new SecretVersions();
  /** One read in flight per key; get() joins it. */
  readonly #reading = new Map<string, Promise<SecretLike | undefined>>();
  readonly #retries = new Map<string, { failures: number; timer: Timer | undefined }>();
  readonly #handlers: Array<(secretKey: string) => void> = [];
  readonly #slotWaiters: Array<() => void> = [];
  /** When the watch showed, and a GET returned, each key's newest version: wall-clock ms, for the rotation stamps. */
  readonly #times = new Map<string, SecretStageTimes>();
  #activeReads = 0;
  #closed = false;

  constructor(options: SecretCacheOptions) {
    this.#o = options;
    this.#log = options.logger.child({ cache: 'secrets' });
    this.#clock = options.clock ?? systemClock;
    this.#watch = new Informer<KubeObject>({
      client: options.client,
      logger: options.logger,
      paths: options.paths,
      metadataOnly: true,
      keep: (s) => options.isReferenced(keyOf(s)),
      transform: (s) => ({
        metadata: { name: s.metadata.name, namespace: s.metadata.namespace, uid: s.metadata.uid, resourceVersion: s.metadata.resourceVersion },
      }),
      ...(options.onWatchError ? { onError: options.onWatchError } : {}),
    });
    const changed = (s: KubeObject): void => {
      const key = keyOf(s);
      this.#versions.changed(key, s.metadata.resourceVersion);
      // A GET sent for an earlier event may have returned this version already.
      if (s.metadata.resourceVersion !== undefined && this.#times.get(key)?.resourceVersion !== s.metadata.resourceVersion)
        this.#times.set(key, { resourceVersion: s.metadata.resourceVersion, seenAt: Date.now(), readAt: undefined });
      if (!this.#versions.current(key)) void this.#refresh(key);
    };
    this.#watch.addHandlers({
      onAdd: changed,
      onUpdate: changed,
      onDelete: (s) => {
        const key = keyOf(s);
        this.#versions.deleted(key, this.#reading.has(key));
        this.#times.delete(key);
        this.#emit(key);
      },
    });
  }

  /** Secrets held in full. */
  get size(): number {
    return this.#versions.size;
  }

  /** Lists the Secrets' metadata and reads the referenced ones; resolves once those reads have settled. */
  async start(): Promise<void> {
    await this.#watch.start();
    await Promise.allSettled([...this.#reading.values()]);
  }

  async stop(): Promise<void> {
    this.#closed = true;
    for (const retry of this.#retries.values()) retry.timer?.cancel();
    this.#retries.clear();
    await this.#watch.stop();
  }

  /** Calls `handler` with "namespace/name" once a referenced Secret's new data (or its absence) is in the cache. */
  onChange(handler: (secretKey: string) => void): void {
    this.#handlers.push(handler);
  }

  /** The cached Secret if it is current; else what one GET finds (joined with any GET already in flight). */
  async get(namespace: string, name: string): Promise<SecretLike | undefined> {
    // No Secret has such a name, and "." or ".." in the GET's path would make it a LIST.
    if (!isObjectName(name) || !isObjectName(namespace)) return undefined;
    const key = objectKey(namespace, name);
    const reading = this.#reading.get(key);
    if (reading) return reading;
    if (this.#versions.current(key)) return this.#versions.secret(key);
    return this.#read(key);
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

  /** Whether a referenced Secret exists, as the watch (and the reads, which seed it) last said: no request. */
  exists(namespace: string, name: string): boolean {
    return this.#watch.get(objectKey(namespace, name)) !== undefined;
  }

  /**
   * When the watch showed this version of a Secret, and when its data was read: wall-clock
   * ms, whatever clock the controllers are shown (they time real work). A version read
   * before any watch event showed it (the first read of a newly referenced Secret) counts
   * as seen when read.
   */
  stageTimes(namespace: string, name: string, resourceVersion: string): { seenAt: number; readAt: number } | undefined {
    const times = this.#times.get(objectKey(namespace, name));
    if (times?.resourceVersion !== resourceVersion || times.readAt === undefined) return undefined;
    return { seenAt: times.seenAt, readAt: times.readAt };
  }

  /** The cached Secret only, with no request: for a translation over every binding. */
  peek(namespace: string, name: string): SecretLike | undefined {
    return this.#versions.secret(objectKey(namespace, name));
  }

  #read(key: string): Promise<SecretLike | undefined> {
    let reading = this.#reading.get(key);
    if (!reading) {
      reading = this.#readUntilCurrent(key).finally(() => this.#reading.delete(key));
      this.#reading.set(key, reading);
    }
    return reading;
  }

  async #readUntilCurrent(key: string): Promise<SecretLike | undefined> {
    for (;;) {
      const asOf = this.#versions.begin(key);
      const secret = await this.#fetch(key, this.#versions.seenVersion(key));
      const outcome = this.#versions.finished(key, asOf, secret);
      if (outcome === 'stale') continue;
      if (secret?.metadata.resourceVersion !== undefined && outcome === 'changed') {
        const readAt = Date.now();
        const seen = this.#times.get(key);
        const seenAt = seen?.resourceVersion === secret.metadata.resourceVersion ? seen.seenAt : readAt;
        this.#times.set(key, { resourceVersion: secret.metadata.resourceVersion, seenAt, readAt });
      }
      // Held by the watch from now on, even if its list dropped it: so its deletion is reported.
      if (secret) this.#watch.seed(secret);
      if (outcome === 'changed') this.#emit(key);
      return secret;
    }
  }

  /** A read the watch asked for: on failure, tried again with backoff while the key is referenced and stale. */
  async #refresh(key: string): Promise<void> {
    try {
      await this.#read(key);
      this.#retries.delete(key);
    } catch (err) {
      if (this.#closed) return;
      const retry = this.#retries.get(key) ?? { failures: 0, timer: undefined };
      const delay = backoffDelay(retry.failures++, this.#o.retryBackoff ?? defaultRetryBackoff);
      this.#log.warn({ secret: key, err: errorSummary(err), retryInMs: delay }, 'could not read a referenced Secret; retrying');
      retry.timer?.cancel();
      retry.timer = this.#clock.setTimer(() => {
        retry.timer = undefined;
        if (this.#closed || !this.#o.isReferenced(key) || this.#versions.current(key)) this.#retries.delete(key);
        else void this.#refresh(key);
      }, delay);
      this.#retries.set(key, retry);
    }
  }

  /**
   * One GET, within the concurrency limit: the Secret, or undefined when it does not exist.
   * With the version the watch showed, the API server answers from its watch cache (any
   * version not older than that one) instead of a quorum read from etcd: the event came
   * from that cache, so it holds the version already, and a rotation's read skips a hop.
   */
  async #fetch(key: string, notOlderThan: string | undefined): Promise<SecretLike | undefined> {
    if (this.#activeReads >= (this.#o.readConcurrency ?? 8)) await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
    else this.#activeReads++;
    try {
      const { namespace, name } = splitKey(key);
      const secret = await this.#o.client.get<SecretLike>(
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`,
        notOlderThan === undefined ? undefined : { resourceVersion: notOlderThan },
      );
      this.#o.onRead?.('found');
      return slim(secret);
    } catch (err) {
      if (isNotFound(err)) {
        this.#o.onRead?.('not_found');
        return undefined;
      }
      this.#o.onRead?.('error');
      throw err;
    } finally {
      // The slot passes straight to the next waiter, if any.
      const next = this.#slotWaiters.shift();
      if (next) next();
      else this.#activeReads--;
    }
  }

  #emit(key: string): void {
    for (const handler of this.#handlers) handler(key);
  }
}

function keyOf(obj: KubeObject): string {
  return objectKey(obj.metadata.namespace ?? '', obj.metadata.name);
}

/** Only what resolution reads: no labels, annotations or managedFields. */
function slim(s: SecretLike): SecretLike {
  return {
    metadata: { name: s.metadata.name, namespace: s.metadata.namespace, uid: s.metadata.uid, resourceVersion: s.metadata.resourceVersion },
    ...(s.type !== undefined ? { type: s.type } : {}),
    ...(s.data !== undefined ? { data: s.data } : {}),
  };
}
