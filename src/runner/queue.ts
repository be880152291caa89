import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { systemClock, type Clock, type Timer } from './clock.ts';

export const defaultBackoff: BackoffOptions = { baseMs: 100, maxMs: 5 * 60 * 1000 };

/**
 * A work queue with client-go's guarantees: a key waits in the queue at most once
 * however often it is added, a key is never handed to two workers at once (an add during
 * processing is replayed after done), and failures back off per key, exponentially.
 */
export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { at: number; timer: Timer }>();
  readonly #waiters: Array<(key: string | undefined) => void> = [];
  readonly #backoff: BackoffOptions;
  readonly #clock: Clock;
  #shutDown = false;

  constructor(backoff: BackoffOptions = defaultBackoff, clock: Clock = systemClock) {
    this.#backoff = backoff;
    this.#clock = clock;
  }

  get length(): number {
    return this.#queue.length;
  }

  add(key: string): void {
    if (this.#shutDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter(key);
    else this.#queue.push(key);
  }

  /** Adds the key after a delay; an earlier pending delay for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#shutDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = this.#clock.now() + delayMs;
    const pending = this.#timers.get(key);
    if (pending && pending.at <= at) return;
    pending?.timer.cancel();
    const timer = this.#clock.setTimer(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    this.#timers.set(key, { at, timer });
  }

  /** Re-adds after this key's next backoff step: base · 2^failures, capped. */
  addRateLimited(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = backoffDelay(failures, this.#backoff);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count after a success. */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Resolves with the next key, or undefined once the queue is shut down or `signal` aborts. */
  get(signal?: AbortSignal): Promise<string | undefined> {
    const take = (key: string): string => {
      this.#dirty.delete(key);
      this.#processing.add(key);
      return key;
    };
    // An aborted caller gets nothing, even from a full queue: a worker that put back the
    // key it was handed as its run ended must not be handed it again, forever.
    if (this.#shutDown || signal?.aborted) return Promise.resolve(undefined);
    const key = this.#queue.shift();
    if (key !== undefined) return Promise.resolve(take(key));
    return new Promise((resolve) => {
      const waiter = (k: string | undefined): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(k === undefined ? undefined : take(k));
      };
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve(undefined);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  done(key: string): void {
    this.#processing.delete(key);
    if (!this.#dirty.has(key) || this.#shutDown) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter(key);
    else this.#queue.push(key);
  }

  shutDown(): void {
    this.#shutDown = true;
    for (const { timer } of this.#timers.values()) timer.cancel();
    this.#timers.clear();
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }
}
