import type { ClientCertificateBinding, ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import type { EventToRecord } from '../k8s/events.ts';
import type { TokenBucket } from '../runner/token-bucket.ts';

/** One binding's status as a reconcile computed it, waiting to be written. */
export interface StatusToWrite {
  binding: ClientCertificateBinding;
  status: ClientCertificateBindingStatus;
  /** The transitions this status announces, in order; a write that replaced a waiting one carries both's. */
  events: EventToRecord[];
  now: Date;
}

export interface StatusWriterOptions {
  /** The API write itself. */
  write: (binding: ClientCertificateBinding, status: ClientCertificateBindingStatus) => Promise<void>;
  /** Every write takes a token first: the cap on what a cold start asks of the API server. */
  limiter: TokenBucket;
  /** Writes in flight at once, never two for one binding. */
  maxInFlight?: number;
  written: (key: string, write: StatusToWrite) => void;
  failed: (key: string, write: StatusToWrite, err: unknown) => void;
  /** After every change in the number of writes waiting, and every write replaced before it was sent. */
  observe?: { waiting(count: number): void; coalesced(): void };
}

/**
 * Status writes, off the reconcile's path: a reconcile hands over what it computed and
 * returns. Writes wait their turn for a token, first come first served, and a binding
 * whose status changes again while its write still waits (CertificateValid, then
 * Programmed a moment later) costs one write, of the newer status. One binding's writes
 * are never in flight together, so they reach the API server in the order computed.
 */
export class StatusWriter {
  readonly #o: StatusWriterOptions;
  /** Insertion-ordered: a replaced write keeps its place in line. */
  readonly #waiting = new Map<string, StatusToWrite>();
  readonly #inFlight = new Set<string>();
  #pumping = false;
  /** Resumes a pump that waits for a slot or for a binding it may write. */
  #wake: (() => void) | undefined;

  constructor(options: StatusWriterOptions) {
    this.#o = options;
  }

  /** Writes not yet sent. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Queues a binding's status; one still waiting for the same binding is replaced by it. */
  enqueue(key: string, write: StatusToWrite): void {
    const replaced = this.#waiting.get(key);
    this.#waiting.set(key, replaced ? { ...write, events: [...replaced.events, ...write.events] } : write);
    if (replaced) this.#o.observe?.coalesced();
    else this.#o.observe?.waiting(this.#waiting.size);
    this.#resume();
    void this.#pump();
  }

  /** Drops a binding's write that has not been sent (the binding is gone). */
  forget(key: string): void {
    if (this.#waiting.delete(key)) this.#o.observe?.waiting(this.#waiting.size);
  }

  /** Drops every write not yet sent: the leadership term that computed them ended. */
  clear(): void {
    this.#waiting.clear();
    this.#o.observe?.waiting(0);
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#waiting.size > 0) {
        if (this.#inFlight.size >= (this.#o.maxInFlight ?? 4) || this.#next() === undefined) {
          // Every slot is busy, or every waiting binding has a write in flight.
          await new Promise<void>((resolve) => (this.#wake = resolve));
          continue;
        }
        await this.#o.limiter.take('high');
        // Chosen after the wait: what arrived meanwhile replaced what was waiting.
        const key = this.#next();
        const write = key === undefined ? undefined : this.#waiting.get(key);
        if (key === undefined || write === undefined) continue;
        this.#waiting.delete(key);
        this.#o.observe?.waiting(this.#waiting.size);
        this.#inFlight.add(key);
        void this.#send(key, write).finally(() => {
          this.#inFlight.delete(key);
          this.#resume();
        });
      }
    } finally {
      this.#pumping = false;
    }
  }

  #resume(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The longest-waiting binding that has no write in flight. */
  #next(): string | undefined {
    for (const key of this.#waiting.keys()) if (!this.#inFlight.has(key)) return key;
    return undefined;
  }

  async #send(key: string, write: StatusToWrite): Promise<void> {
    try {
      await this.#o.write(write.binding, write.status);
    } catch (err) {
      this.#o.failed(key, write, err);
      return;
    }
    this.#o.written(key, write);
  }
}
