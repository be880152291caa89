import type { Logger } from 'pino';
import { errorSummary, isTransient } from '../errors.ts';
import type { BackoffOptions } from './backoff.ts';
import { systemClock, type Clock } from './clock.ts';
import { defaultBackoff, WorkQueue } from './queue.ts';

// The one reconcile loop every controller and the proxy agent run on, in controller-
// runtime's shape: keys in a de-duplicating queue, workers that take one key at a time,
// and a reconcile that returns "done", "look again after D", or throws.
//
//   - returned { requeueAfterMs }: the key comes back after that long (time alone will
//     change the verdict: a certificate about to expire);
//   - returned nothing: done until something enqueues the key again (a watch event);
//   - threw a transient error (a 409, a timeout, a surprise): the key comes back after
//     its next backoff step, exponentially longer per consecutive failure;
//   - threw a terminal error: logged, and not retried until something enqueues the key
//     again, because trying the same input again cannot help (controller-runtime's
//     TerminalError). Problems with user input are not errors at all: a reconcile turns
//     them into status and returns.

export interface ReconcileResult {
  /** Look at this key again after this long, even if nothing changes. */
  requeueAfterMs?: number | undefined;
}

export type Reconcile = (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>;

/** What a runner reports per reconcile, for the controller's metrics. */
export interface RunnerObserver {
  /** Called when a reconcile starts; the returned function when it ends, with its result. */
  started(): (result: 'success' | 'requeue' | 'error') => void;
}

export interface RunnerOptions {
  /** Names the loop in logs ({ controller: name }) and metrics. */
  name: string;
  reconcile: Reconcile;
  logger: Logger;
  /** Concurrent reconciles; a key is never reconciled by two at once. */
  workers?: number;
  backoff?: BackoffOptions;
  clock?: Clock;
  observer?: RunnerObserver;
}

export class Runner {
  readonly #o: RunnerOptions;
  readonly #queue: WorkQueue;
  readonly #log: Logger;
  #reconciled = 0;

  constructor(options: RunnerOptions) {
    this.#o = options;
    this.#queue = new WorkQueue(options.backoff ?? defaultBackoff, options.clock ?? systemClock);
    this.#log = options.logger.child({ controller: options.name });
  }

  get logger(): Logger {
    return this.#log;
  }

  /** Reconciles finished so far, whatever their result: a positive signal that work was done, for tests and benchmarks. */
  get reconciled(): number {
    return this.#reconciled;
  }

  add(key: string): void {
    this.#queue.add(key);
  }

  /** Adds the key after a delay; a burst of calls within the delay coalesces into one reconcile. */
  addAfter(key: string, delayMs: number): void {
    this.#queue.addAfter(key, delayMs);
  }

  /**
   * Runs the workers until `signal` aborts (a lost lease, a stop). Keys that arrive
   * meanwhile wait in the queue for the next run, which may start on the same runner.
   */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all(Array.from({ length: this.#o.workers ?? 1 }, () => this.#worker(signal)));
  }

  /** Stops for good: releases waiting workers and drops delayed keys. */
  shutDown(): void {
    this.#queue.shutDown();
  }

  async #worker(signal: AbortSignal): Promise<void> {
    const queue = this.#queue;
    for (let key = await queue.get(signal); key !== undefined; key = await queue.get(signal)) {
      const finished = this.#o.observer?.started();
      try {
        if (signal.aborted) {
          // Taken just as the run ended: leave it for the next run.
          queue.add(key);
          continue;
        }
        const result = await this.#o.reconcile(key, signal);
        queue.forget(key);
        const requeueAfterMs = result?.requeueAfterMs;
        if (requeueAfterMs !== undefined) queue.addAfter(key, requeueAfterMs);
        finished?.(requeueAfterMs === undefined ? 'success' : 'requeue');
      } catch (err) {
        finished?.('error');
        if (isTransient(err)) {
          const retryInMs = queue.addRateLimited(key);
          this.#log.info({ key, err: errorSummary(err), retryInMs }, 'reconcile failed; retrying');
        } else {
          queue.forget(key);
          this.#log.error({ key, err: errorSummary(err) }, 'reconcile failed; not retrying until the input changes');
        }
      } finally {
        this.#reconciled++;
        queue.done(key);
      }
    }
  }
}

/** The soonest of several "look again after" delays, for a reconcile with more than one reason to. */
export function earliest(...delays: Array<number | undefined>): number | undefined {
  const defined = delays.filter((d): d is number => d !== undefined);
  return defined.length === 0 ? undefined : Math.min(...defined);
}
