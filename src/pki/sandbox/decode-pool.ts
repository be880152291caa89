import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { PfxMalformed } from '../../api/v1alpha1/reasons.ts';
import { CodedError } from '../../errors.ts';
import { DecodeBudget, exceeded, type BudgetUse, type DecodeLimits } from '../budget.ts';
import { PkiError } from '../errors.ts';
import type { DecodedIdentity } from '../identity.ts';
import type { PasswordInput } from '../password.ts';
import { Sensitive } from '../sensitive.ts';
import type { DecodeTask, WorkerMessage, WorkerSettings } from './protocol.ts';

// The decode sandbox: PFX and PEM files are decoded in a small pool of worker threads, so
// that the operator's event loop, which also serves watches, leases and health probes,
// never parses, derives a key or decrypts. Each file is decoded
// - under the decode budget (budget.ts), which refuses a file whose stated costs are too
//   high before any of the work starts;
// - with a wall-clock limit: a worker that has not answered in time is terminated and
//   replaced, and its file gets DecodeBudgetExceeded;
// - with a heap limit (resourceLimits): a worker that runs out is replaced the same way.
// A file occupies one worker at most, and the queue takes files round-robin by fairness
// key, so a hostile file, or a tenant's many, cannot starve everyone else's.

/** What a decode is asked to do; the shape of CertificateInput, so callers pass theirs on. */
export type DecodeRequest =
  | { readonly kind: 'pfx'; readonly pfx: Uint8Array | Sensitive<Uint8Array>; readonly password?: PasswordInput }
  | {
      readonly kind: 'pem';
      readonly cert: string | Uint8Array;
      readonly key: string | Uint8Array | Sensitive<string | Uint8Array>;
      readonly password?: PasswordInput;
    };

export interface DecodeCallOptions {
  /**
   * Files with the same key take turns with other keys' files: pass the namespace (or the
   * tenant) so that one namespace's many Secrets cannot hold up another's. Without a key,
   * each file is its own turn, which is first come, first served.
   */
  readonly fairnessKey?: string;
  /** Told what the decode was charged (see BudgetUse): for benches and the corpus test. */
  readonly onBudgetUse?: (use: BudgetUse) => void;
}

export interface DecodePoolOptions {
  /**
   * Worker threads. The default is the machine's parallelism, at least 2 and at most 4:
   * decoding is CPU-bound, so more workers than cores buys nothing, but with fewer than 2 a
   * single slow file would stop all the others until its time limit; each worker costs
   * about 21 MB of memory while it lives, so no more than 4.
   */
  readonly size?: number;
  /**
   * The most one file may take in a worker, in milliseconds: 10 s. A file within the decode
   * budget needs at most about 2.5 s of one core (see DecodeLimits.maxKdfWork); the margin is
   * for a busy machine. Time waiting in the queue does not count.
   */
  readonly taskTimeoutMs?: number;
  /**
   * How long a new worker may take to start (load its modules) before the pool gives up on
   * it: 30 s. Apart from taskTimeoutMs because it is the pool's cost, not the file's: a busy
   * machine can take longer to start a thread than a file may take to decode.
   */
  readonly startTimeoutMs?: number;
  /** Each worker's old-generation heap, in MiB: 64. A decode within the budget needs a few. */
  readonly heapMb?: number;
  /** A worker idle this long is stopped, to give its memory back: 30 s. The next decode starts one again (tens of milliseconds). */
  readonly idleMs?: number;
  /**
   * Another worker starts only when every running one has been on its current file this
   * long: 50 ms. Ordinary files take a few milliseconds, so one worker keeps up with a
   * cold start of thousands and the pool costs one isolate's memory; a slow (hostile)
   * file makes room for another worker beside it, up to `size`, so it holds up no one.
   */
  readonly growAfterMs?: number;
  /** Overrides of defaultDecodeLimits, for every decode in this pool. */
  readonly limits?: Partial<DecodeLimits>;
}

/** Why a decode did not happen at all: the pool was closed, or could not start a worker. Not a verdict on the file. */
export class DecoderUnavailable extends CodedError<'ERR_DECODER_CLOSED' | 'ERR_DECODER_UNAVAILABLE'> {}

export function defaultPoolSize(): number {
  return Math.min(4, Math.max(2, availableParallelism()));
}

/** Counts for tests and benches: where the work went, and what the limits stopped. */
export interface DecodePoolStats {
  readonly workersStarted: number;
  /** Workers terminated because a file hit the time or heap limit. */
  readonly workersStopped: number;
  readonly tasksCompleted: number;
  readonly running: number;
  readonly queued: number;
}

interface Task {
  readonly message: DecodeTask;
  readonly lane: string | symbol;
  readonly onBudgetUse: ((use: BudgetUse) => void) | undefined;
  readonly resolve: (identity: DecodedIdentity) => void;
  readonly reject: (error: Error) => void;
}

interface PoolWorker {
  readonly worker: Worker;
  ready: boolean;
  task: Task | undefined;
  /** performance.now() when the current task was handed over. */
  taskStartedAt: number;
  deadline: NodeJS.Timeout | undefined;
  idle: NodeJS.Timeout | undefined;
  /** Set once the pool has decided this worker's fate (limit hit, crash, close): later events are ignored. */
  retired: boolean;
}

// The entry file sits beside this one: decode-worker.ts under src/ (tests, type stripping),
// decode-worker.js under dist/ (the build, the image).
const workerUrl = new URL(`./decode-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);

let nextTaskId = 1;

export class DecodePool {
  readonly #size: number;
  readonly #taskTimeoutMs: number;
  readonly #startTimeoutMs: number;
  readonly #heapMb: number;
  readonly #idleMs: number;
  readonly #growAfterMs: number;
  #growCheck: NodeJS.Timeout | undefined;
  readonly #settings: WorkerSettings;
  readonly #workers = new Set<PoolWorker>();
  // Round-robin over lanes: each lane is one fairness key's queue, in arrival order.
  readonly #lanes = new Map<string | symbol, Task[]>();
  readonly #turns: (string | symbol)[] = [];
  #closed = false;
  #stats = { workersStarted: 0, workersStopped: 0, tasksCompleted: 0 };

  constructor(options: DecodePoolOptions = {}) {
    this.#size = Math.max(1, options.size ?? defaultPoolSize());
    this.#taskTimeoutMs = options.taskTimeoutMs ?? 10_000;
    this.#startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.#heapMb = options.heapMb ?? 64;
    this.#idleMs = options.idleMs ?? 30_000;
    this.#growAfterMs = options.growAfterMs ?? 50;
    this.#settings = { limits: { ...options.limits } };
  }

  stats(): DecodePoolStats {
    let running = 0;
    for (const entry of this.#workers) if (entry.task !== undefined) running++;
    let queued = 0;
    for (const lane of this.#lanes.values()) queued += lane.length;
    return { ...this.#stats, running, queued };
  }

  /** Decodes in a worker; rejects with a PkiError for anything about the file, DecoderUnavailable otherwise. */
  decode(request: DecodeRequest, options: DecodeCallOptions = {}): Promise<DecodedIdentity> {
    if (this.#closed) return Promise.reject(new DecoderUnavailable('ERR_DECODER_CLOSED', 'the decode sandbox is closed'));
    let message: DecodeTask;
    try {
      message = taskMessage(request, nextTaskId++, this.#settings.limits);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise((resolve, reject) => {
      this.#enqueue({ message, lane: options.fairnessKey ?? Symbol('task'), onBudgetUse: options.onBudgetUse, resolve, reject });
      this.#dispatch();
    });
  }

  /** Rejects what waits or runs with DecoderUnavailable and stops every worker. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#growCheck);
    const closed = () => new DecoderUnavailable('ERR_DECODER_CLOSED', 'the decode sandbox was closed before this decode finished');
    for (const lane of this.#lanes.values()) for (const task of lane) task.reject(closed());
    this.#lanes.clear();
    this.#turns.length = 0;
    await Promise.all([...this.#workers].map((entry) => this.#retire(entry, closed())));
  }

  #enqueue(task: Task): void {
    const lane = this.#lanes.get(task.lane);
    if (lane !== undefined) {
      lane.push(task);
      return;
    }
    this.#lanes.set(task.lane, [task]);
    this.#turns.push(task.lane);
  }

  #dequeue(): Task | undefined {
    const key = this.#turns.shift();
    if (key === undefined) return undefined;
    const lane = this.#lanes.get(key)!;
    const task = lane.shift()!;
    if (lane.length > 0) this.#turns.push(key);
    else this.#lanes.delete(key);
    return task;
  }

  #dispatch(): void {
    while (!this.#closed && this.#turns.length > 0) {
      let entry = [...this.#workers].find((candidate) => candidate.task === undefined && !candidate.retired);
      if (entry === undefined) {
        if (this.#workers.size >= this.#size) return;
        const waitMs = this.#growWaitMs();
        if (waitMs > 0) {
          // Everyone is busy, but not for long yet: most likely with ordinary files. Look
          // again when the newest of those files has taken long enough to be a slow one.
          clearTimeout(this.#growCheck);
          this.#growCheck = setTimeout(() => this.#dispatch(), waitMs);
          this.#growCheck.unref();
          return;
        }
        entry = this.#start();
      }
      this.#assign(entry, this.#dequeue()!);
    }
  }

  /** How long until every running worker has been on its file for growAfterMs; 0 when there is none, or already. */
  #growWaitMs(): number {
    const live = [...this.#workers].filter((w) => !w.retired);
    if (live.length === 0) return 0;
    const newest = Math.max(...live.map((w) => w.taskStartedAt));
    return Math.max(0, newest + this.#growAfterMs - performance.now());
  }

  #start(): PoolWorker {
    // A worker costs about 21 MB of RSS at rest (a V8 isolate and Node's environment); a
    // young generation of 8 MB keeps it near that while decoding without slowing it down.
    const worker = new Worker(workerUrl, {
      workerData: this.#settings,
      resourceLimits: { maxOldGenerationSizeMb: this.#heapMb, maxYoungGenerationSizeMb: 8, stackSizeMb: 4 },
      // Nothing of the parent's command line: the worker needs none of it, and some flags are not allowed in workers.
      execArgv: [],
    });
    const entry: PoolWorker = { worker, ready: false, task: undefined, taskStartedAt: performance.now(), deadline: undefined, idle: undefined, retired: false };
    this.#stats.workersStarted++;
    this.#workers.add(entry);
    worker.on('message', (message: WorkerMessage) => this.#onMessage(entry, message));
    worker.on('error', (error: Error & { code?: string }) => {
      if (entry.retired) return;
      const reason =
        error.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? exceeded(`decoding the file needed more than ${this.#heapMb} MiB of heap, the most one file may use`)
          : entry.ready
            ? new PkiError(PfxMalformed, 'the file could not be decoded: the decoder stopped on it')
            : new DecoderUnavailable('ERR_DECODER_UNAVAILABLE', 'the decode sandbox could not start a worker thread');
      void this.#retire(entry, reason, error.code === 'ERR_WORKER_OUT_OF_MEMORY');
    });
    worker.on('exit', () => {
      if (entry.retired) return;
      void this.#retire(entry, new PkiError(PfxMalformed, 'the file could not be decoded: the decoder stopped on it'));
    });
    return entry;
  }

  #assign(entry: PoolWorker, task: Task): void {
    clearTimeout(entry.idle);
    entry.idle = undefined;
    entry.task = task;
    entry.taskStartedAt = performance.now();
    entry.worker.ref();
    entry.worker.postMessage(task.message);
    if (entry.ready) {
      this.#startDeadline(entry);
    } else {
      // A worker that does not start at all is the pool's failure, not the file's.
      entry.deadline = setTimeout(() => {
        void this.#retire(entry, new DecoderUnavailable('ERR_DECODER_UNAVAILABLE', 'a decode worker thread did not start in time'));
      }, this.#startTimeoutMs);
    }
  }

  /** The file's time starts when a worker is ready for it: a new worker's start-up is the pool's cost, not the file's. */
  #startDeadline(entry: PoolWorker): void {
    entry.deadline = setTimeout(() => {
      // A verdict of the clock, not of the file's stated costs: a busy machine can cause it,
      // so it is marked transient and looked at again rather than remembered for the version.
      void this.#retire(
        entry,
        exceeded(`decoding the file took longer than ${seconds(this.#taskTimeoutMs)}, the most one file may take`, { transient: true }),
        true,
      );
    }, this.#taskTimeoutMs);
  }

  #onMessage(entry: PoolWorker, message: WorkerMessage): void {
    if (entry.retired) return;
    if (message.type === 'ready') {
      entry.ready = true;
      clearTimeout(entry.deadline);
      if (entry.task !== undefined) this.#startDeadline(entry);
      return;
    }
    const task = entry.task;
    if (task === undefined || task.message.id !== message.id) return;
    clearTimeout(entry.deadline);
    entry.deadline = undefined;
    entry.task = undefined;
    this.#stats.tasksCompleted++;
    if (message.use !== undefined) task.onBudgetUse?.(message.use);
    if (message.ok) {
      const { leaf, chain, privateKeyPem, facts } = message.identity;
      task.resolve({ leaf, chain, privateKey: new Sensitive(privateKeyPem), facts });
    } else {
      task.reject(new PkiError(message.reason, message.message));
    }
    this.#idle(entry);
    this.#dispatch();
  }

  #idle(entry: PoolWorker): void {
    // An idle worker does not keep the process alive: a CLI exits, and a test ends, without closing the pool.
    entry.worker.unref();
    entry.idle = setTimeout(() => void this.#retire(entry, undefined), this.#idleMs);
    entry.idle.unref();
  }

  /** Takes a worker out of the pool: its task (if any) rejected with `error`, the thread terminated; then the queue moves on. */
  async #retire(entry: PoolWorker, error: Error | undefined, limitHit = false): Promise<void> {
    if (entry.retired) return;
    entry.retired = true;
    clearTimeout(entry.deadline);
    clearTimeout(entry.idle);
    this.#workers.delete(entry);
    if (limitHit) this.#stats.workersStopped++;
    const task = entry.task;
    entry.task = undefined;
    if (task !== undefined) task.reject(error ?? new DecoderUnavailable('ERR_DECODER_CLOSED', 'the decode sandbox stopped this decode'));
    this.#dispatch();
    await entry.worker.terminate();
  }
}

function taskMessage(request: DecodeRequest, id: number, limits: Partial<DecodeLimits>): DecodeTask {
  // The size check is the one piece of the budget that costs nothing to check here, and
  // spares copying an oversized value into a worker. Everything else happens there.
  const budget = new DecodeBudget(limits);
  const password = passwordForWire(request.password);
  if (request.kind === 'pfx') {
    const pfx = request.pfx instanceof Sensitive ? request.pfx.reveal() : request.pfx;
    budget.checkInput(pfx.length, 'the PFX');
    return { id, kind: 'pfx', pfx, password };
  }
  const key = request.key instanceof Sensitive ? request.key.reveal() : request.key;
  budget.checkInput(request.cert.length, 'the certificate PEM');
  budget.checkInput(key.length, 'the key PEM');
  return { id, kind: 'pem', cert: request.cert, key, password };
}

/** Strings and bytes cross as they are (bytes that are not UTF-8 are read as ISO-8859-1 in the worker). */
function passwordForWire(password: PasswordInput): string | Uint8Array | undefined {
  return password instanceof Sensitive ? password.reveal() : password;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

// --- The process's pool: what the controller, inspect, render and validate use.

let shared: DecodePool | undefined;

/**
 * Decodes a PFX or PEM pair in the decode sandbox, with the default limits. The pool
 * starts on first use; its idle workers never keep the process alive. Rejects with a
 * PkiError (the reason is the condition reason) for anything about the file.
 */
export function decodeIdentity(request: DecodeRequest, options: DecodeCallOptions = {}): Promise<DecodedIdentity> {
  shared ??= new DecodePool();
  return shared.decode(request, options);
}

/** Stops the process's pool (for a clean shutdown); decodes still waiting reject with DecoderUnavailable. A later decodeIdentity starts a new one. */
export async function closeDecodeSandbox(): Promise<void> {
  const pool = shared;
  shared = undefined;
  await pool?.close();
}
