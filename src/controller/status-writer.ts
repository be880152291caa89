import type { ClientCertificateBinding, ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import type { EventToRecord } from '../k8s/events.ts';
import { systemClock, type Clock, type Timer } from '../runner/clock.ts';
import type { TokenBucket } from '../runner/token-bucket.ts';

/** One binding's status as a reconcile computed it, waiting to be written. */
export interface StatusToWrite {
  binding: ClientCertificateBinding;
  status: ClientCertificateBindingStatus;
  /** The status `events` were computed against: the one last written or handed over before this. */
  since: ClientCertificateBindingStatus | undefined;
  /** The transitions this status announces, in order. */
  events: EventToRecord[];
  now: Date;
}

export interface StatusWriterOptions {
  /** The API write itself. */
  write: (binding: ClientCertificateBinding, status: ClientCertificateBindingStatus) => Promise<void>;
  /** Every write takes a token first: the cap on what a cold start asks of the API server. */
  limiter: TokenBucket;
  /**
   * The transitions from one status to another, by the rule evaluation announces them
   * with. A write that replaced a waiting one announces those since the status before
   * both: a step that was never written is never announced (a rotation's ProgrammingPending,
   * over by the time it could be written, is not a Warning).
   */
  transitions: (before: ClientCertificateBindingStatus | undefined, after: ClientCertificateBindingStatus) => EventToRecord[];
  /**
   * How long a write may be held back for a newer status to replace it; 0 for none. For
   * work in progress that usually ends within a moment, so that the moment costs the API
   * server no write and no Event. A hold never restarts: a status that keeps changing is
   * still written once its first hold ends.
   */
  holdMs?: (write: StatusToWrite) => number;
  clock?: Clock;
  /** Writes in flight at once, never two for one binding. */
  maxInFlight?: number;
  written: (key: string, write: StatusToWrite) => void;
  failed: (key: string, write: StatusToWrite, err: unknown) => void;
  /** After every change in the number of writes due and waiting for a token, and every write replaced before it was sent. */
  observe?: { waiting(count: number): void; coalesced(): void };
}

/**
 * Status writes, off the reconcile's path: a reconcile hands over what it computed and
 * returns. Writes wait their turn for a token, first come first served, and a binding
 * whose status changes again while its write still waits (CertificateValid, then
 * Programmed a moment later) costs one write, of the newer status. A write that only says
 * work is in progress may be held back a moment for exactly that. One binding's writes
 * are never in flight together, so they reach the API server in the order computed.
 */
export class StatusWriter {
  readonly #o: StatusWriterOptions;
  readonly #clock: Clock;
  /** Due, waiting for a token. Insertion-ordered: a replaced write keeps its place in line. */
  readonly #waiting = new Map<string, StatusToWrite>();
  /** Held back until `dueAt`. Every hold is as long as the others, so insertion order is due order. */
  readonly #held = new Map<string, { write: StatusToWrite; dueAt: number }>();
  #holdTimer: Timer | undefined;
  readonly #inFlight = new Set<string>();
  #pumping = false;
  /** Resumes a pump that waits for a slot or for a binding it may write. */
  #wake: (() => void) | undefined;

  constructor(options: StatusWriterOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Writes not yet sent, held or due. */
  get waiting(): number {
    return this.#waiting.size + this.#held.size;
  }

  /** Writes due and not yet sent: what the API server's time should go to first. */
  get due(): number {
    return this.#waiting.size;
  }

  /** Queues a binding's status; one not yet sent for the same binding is replaced by it. */
  enqueue(key: string, write: StatusToWrite): void {
    const held = this.#held.get(key);
    const replaced = this.#waiting.get(key) ?? held?.write;
    const merged = replaced ? { ...write, since: replaced.since, events: this.#o.transitions(replaced.since, write.status) } : write;
    if (replaced) this.#o.observe?.coalesced();
    const holdMs = this.#waiting.has(key) ? 0 : (this.#o.holdMs?.(write) ?? 0);
    if (holdMs > 0) {
      this.#held.set(key, { write: merged, dueAt: held?.dueAt ?? this.#clock.now() + holdMs });
      this.#armHold();
      return;
    }
    this.#held.delete(key);
    this.#waiting.set(key, merged);
    if (!replaced || held) this.#o.observe?.waiting(this.#waiting.size);
    this.#resume();
    void this.#pump();
  }

  /** Drops a binding's write that has not been sent (the binding is gone). */
  forget(key: string): void {
    this.#held.delete(key);
    if (this.#waiting.delete(key)) this.#o.observe?.waiting(this.#waiting.size);
  }

  /** Drops every write not yet sent: the leadership term that computed them ended. */
  clear(): void {
    this.#waiting.clear();
    this.#held.clear();
    this.#holdTimer?.cancel();
    this.#holdTimer = undefined;
    this.#o.observe?.waiting(0);
  }

  /** Moves every held write now due into line, then waits for the next. */
  #release(): void {
    this.#holdTimer = undefined;
    const now = this.#clock.now();
    let moved = false;
    for (const [key, { write, dueAt }] of this.#held) {
      if (dueAt > now) break;
      this.#held.delete(key);
      this.#waiting.set(key, write);
      moved = true;
    }
    this.#armHold();
    if (!moved) return;
    this.#o.observe?.waiting(this.#waiting.size);
    this.#resume();
    void this.#pump();
  }

  #armHold(): void {
    if (this.#holdTimer) return;
    const first = this.#held.values().next().value;
    if (first) this.#holdTimer = this.#clock.setTimer(() => this.#release(), Math.max(0, first.dueAt - this.#clock.now()));
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
