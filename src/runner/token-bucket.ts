import { systemClock, type Clock, type Timer } from './clock.ts';

/** 'urgent': what a serving proxy waits on (a rotated binding's object); 'high': status; 'low': Events, other proxy objects. */
export type Priority = 'urgent' | 'high' | 'low';

/**
 * A token bucket, as client-go limits a client's requests (flowcontrol's
 * NewTokenBucketRateLimiter): it holds at most `burst` tokens, starts full, and gains
 * `qps` a second. take() resolves once a token is the caller's. Waiters are served in
 * order, every urgent one before any high one and every high one before any low one, so
 * status writes never wait behind Events or new proxy objects that share the budget, and
 * a rotation the proxy waits on never waits behind status. Urgent callers are few at a
 * time (one per proxy-config worker). When the API server, not the bucket, is what limits
 * (tokens to spare, high-priority work queued for a free connection instead),
 * holdLowWhile() keeps the low-priority callers out of its way. A qps of 0 means no limit.
 */
export class TokenBucket {
  readonly #qps: number;
  readonly #burst: number;
  readonly #clock: Clock;
  readonly #waiters: Record<Priority, Array<() => void>> = { urgent: [], high: [], low: [] };
  #tokens: number;
  #refilledAt: number;
  #timer: Timer | undefined;
  #lowHeld: () => boolean = () => false;

  constructor(options: { qps: number; burst: number; clock?: Clock }) {
    if (!(options.qps >= 0) || !(options.burst >= 1)) throw new RangeError('a token bucket wants qps >= 0 and burst >= 1');
    this.#qps = options.qps;
    this.#burst = options.burst;
    this.#clock = options.clock ?? systemClock;
    this.#tokens = options.burst;
    this.#refilledAt = this.#clock.now();
  }

  /** Callers waiting for a token. */
  get waiting(): number {
    return this.#waiters.urgent.length + this.#waiters.high.length + this.#waiters.low.length;
  }

  /** Resolves when the caller may make one request. */
  take(priority: Priority = 'high'): Promise<void> {
    if (this.#qps === 0 && (priority !== 'low' || !this.#lowHeld())) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters[priority].push(resolve);
      this.#serve();
    });
  }

  /**
   * Low-priority callers get no token while `held()` says so (high-priority work is
   * waiting elsewhere); whoever holds calls resume() once it no longer does.
   */
  holdLowWhile(held: () => boolean): void {
    this.#lowHeld = held;
  }

  resume(): void {
    this.#serve();
  }

  #serve(): void {
    const now = this.#clock.now();
    this.#tokens = this.#qps === 0 ? this.#burst : Math.min(this.#burst, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#qps);
    this.#refilledAt = now;
    while (this.#tokens >= 1) {
      const next =
        this.#waiters.urgent.shift() ??
        this.#waiters.high.shift() ??
        (this.#waiters.low.length > 0 && !this.#lowHeld() ? this.#waiters.low.shift() : undefined);
      if (!next) return;
      if (this.#qps > 0) this.#tokens--;
      next();
    }
    if (this.waiting === 0 || this.#timer) return;
    // Wake when the next whole token is there.
    const ms = Math.max(1, Math.ceil(((1 - this.#tokens) / this.#qps) * 1000));
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      this.#serve();
    }, ms);
  }
}
