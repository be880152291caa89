// Runs CPU-bound work on the main thread in short slices, so that no amount of it, and no
// number of concurrent decodes, holds the event loop for longer than one slice.
//
// Why slices and not a worker_threads pool (measured on the 2-core target, Node 24):
// - The only CPU-bound loop that node:crypto cannot run natively is the PKCS#12 key
//   derivation: an iterated hash (RFC 7292 Appendix B) that costs ~0.22 µs per iteration
//   through crypto.hash. The default 2048 iterations take ~0.45 ms; 600,000 take ~140 ms,
//   and they take the same ~135 ms inside a worker, so a worker buys no speed.
// - A worker costs ~24 ms to start, ~0.2 ms per round trip and its own heap, and it needs
//   an entry file that resolves both from src/*.ts and from dist/*.js.
// - A worker only moves large jobs away; a burst of many small ones (a controller
//   resyncing 1,000 Secrets) would still run back to back on the main thread. The queue
//   below bounds that case as well: every job, large or small, runs inside a slice.
// PBKDF2 does not come here: crypto.pbkdf2 already runs on the libuv threadpool.

/** Runs until finished (returns true) or until performance.now() reaches the deadline (returns false). */
export type SlicedJob = (deadline: number) => boolean;

// Short enough to keep timers and I/O responsive (the requirement is < 50 ms per block),
// long enough that the ~µs cost of a setImmediate hop between slices is noise.
const SLICE_MS = 4;

interface QueuedJob {
  readonly run: SlicedJob;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

const queue: QueuedJob[] = [];
let pumpScheduled = false;

/**
 * Queues a job; it first runs on a later turn of the event loop, never synchronously, so
 * that callers starting many decodes at once only queue them. Unfinished jobs go to the
 * back of the queue (round robin), so one 600,000-iteration file does not hold up the
 * 2,048-iteration files queued behind it.
 */
export function runInTimeSlices(run: SlicedJob): Promise<void> {
  return new Promise((resolve, reject) => {
    queue.push({ run, resolve, reject });
    schedulePump();
  });
}

/**
 * Runs one piece of synchronous work inside a slice and resolves with its result. For the
 * start of a decode (parsing, dispatching PBKDF2): cheap once, but a caller starting 1,000
 * decodes at once would otherwise run 1,000 of them back to back.
 */
export async function runInTimeSlice<T>(work: () => T): Promise<T> {
  let result: T | undefined;
  await runInTimeSlices(() => {
    result = work();
    return true;
  });
  return result as T;
}

function schedulePump(): void {
  if (pumpScheduled) return;
  pumpScheduled = true;
  // A pending immediate keeps the process alive, which is what an awaited decode needs;
  // once the queue is empty nothing is scheduled and nothing holds the process open.
  setImmediate(pump);
}

function pump(): void {
  pumpScheduled = false;
  const deadline = performance.now() + SLICE_MS;
  do {
    const job = queue.shift();
    if (job === undefined) break;
    let finished: boolean;
    try {
      finished = job.run(deadline);
    } catch (error) {
      job.reject(error);
      continue;
    }
    if (finished) job.resolve();
    else queue.push(job);
  } while (performance.now() < deadline);
  if (queue.length > 0) schedulePump();
}
