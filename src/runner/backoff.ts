// Waiting, and how long to wait after failures: the one implementation every loop uses
// (the work queue, informers, the agent, the Pod reporter, nginx restarts).

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/** The n-th delay (n = failures so far, from 0) of an exponential backoff: base · 2^n, capped. */
export function backoffDelay(failures: number, options: BackoffOptions): number {
  return Math.min(options.baseMs * 2 ** Math.min(failures, 52), options.maxMs);
}

/**
 * Consecutive failures of one thing and the delay each earns; `succeeded()` starts over.
 * For loops that retry one piece of work; the work queue keeps one count per key instead.
 */
export class Backoff {
  readonly #options: BackoffOptions;
  #failures = 0;

  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  get failures(): number {
    return this.#failures;
  }

  /** Records a failure and returns how long to wait before the next attempt. */
  failed(): number {
    return backoffDelay(this.#failures++, this.#options);
  }

  succeeded(): void {
    this.#failures = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts; never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}
