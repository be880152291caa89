// Time as the loops see it. Production uses the system clock; tests inject a clock they
// move by hand, so expiry and backoff are tested without waiting (controller-runtime's
// clock.Clock, Kubernetes' testingclock.FakeClock).

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `callback` once `ms` have passed on this clock. The timer never keeps the process alive. */
  setTimer(callback: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(callback, ms) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};
