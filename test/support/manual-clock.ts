import type { Clock, Timer } from '../../src/runner/clock.ts';

/**
 * A clock that moves only when a test says so (Kubernetes' testingclock.FakeClock):
 * expiry thresholds days away are crossed in a moment, and nothing depends on how fast
 * the machine is.
 */
export class ManualClock implements Clock {
  #now: number;
  #timers: Array<{ at: number; callback: () => void; cancelled: boolean }> = [];

  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(callback: () => void, ms: number): Timer {
    const timer = { at: this.#now + ms, callback, cancelled: false };
    this.#timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward and fires every timer now due, earliest first. */
  advance(ms: number): void {
    this.#now += ms;
    const due = this.#timers.filter((t) => !t.cancelled && t.at <= this.#now).sort((a, b) => a.at - b.at);
    this.#timers = this.#timers.filter((t) => !t.cancelled && t.at > this.#now);
    for (const timer of due) timer.callback();
  }
}
