import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { CodedError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { Backoff, sleep } from '../runner/backoff.ts';
import { redactKeyMaterial } from './redact.ts';

// A data-plane server (nginx, HAProxy) as the agent's child, for pods that run one
// container: started once a config has been applied, restarted with backoff when it
// dies, and stopped gracefully with the agent.
//
// It runs in a process group of its own. A master killed outright (OOM, SIGKILL) leaves
// its workers running, still holding the listeners, and a new master could not bind
// them; the group is the handle that reaches those orphans, so they are killed before a
// restart, and on every exit of the agent that can run code.

export interface SupervisedProcessOptions {
  /** For logs: "nginx", "haproxy". */
  name: string;
  binary: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** The server's stdout (an access log): the container's, or nowhere (tests that check requests at the partner). */
  stdout?: 'inherit' | 'ignore';
  /** Polled every 25 ms after a spawn until it resolves true: the process serves. */
  isReady: (pid: number) => Promise<boolean>;
  /** How long a start may take to serve; asked at each start, a restart's too (a config grows). */
  startTimeoutMs: number | (() => number);
  /** The signals of a graceful stop, each with how long to wait before the next. */
  stopSignals: ReadonlyArray<readonly [NodeJS.Signals, number]>;
  /** The one line of the server's own stderr that says why it failed. */
  reason: (stderrTail: string) => string;
  /** The error a failed start throws. */
  startError: (message: string) => CodedError;
  logger: Logger;
  /** Called when the process exits on its own; for metrics. */
  onUnexpectedExit?: () => void;
  /** Called after a restart that followed an unexpected exit: whatever was applied only at run time is gone. */
  onRestarted?: () => void;
}

/** A process that ran this long before it died starts the backoff afresh. */
const stableAfterMs = 60_000;
const stderrTailLines = 20;

export class SupervisedProcess {
  readonly #options: SupervisedProcessOptions;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #up = false;
  #everUp = false;
  #starting: Promise<void> | undefined;
  #stopping = false;
  #restartTimer: NodeJS.Timeout | undefined;
  readonly #restarts = new Backoff({ baseMs: 200, maxMs: 30_000 });
  #stderrTail: string[] = [];

  constructor(options: SupervisedProcessOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: options.name });
  }

  running(): boolean {
    return this.#up;
  }

  /** The running process's pid, once it serves. */
  pid(): number | undefined {
    return this.#up ? this.#child?.pid : undefined;
  }

  /** Whether `child` is still the process this supervisor runs: a reload's wait gives up when it is not. */
  isCurrent(pid: number): boolean {
    return this.#child?.pid === pid;
  }

  /** The last lines of the process's stderr, redacted: the reason a reload or start failed. */
  stderrTail(): string {
    return this.#stderrTail.join('\n');
  }

  /** Starts the process (once, however many callers ask) and resolves when it serves. */
  start(): Promise<void> {
    clearTimeout(this.#restartTimer);
    this.#starting ??= this.#spawnAndWait().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  /** Waits for a start in progress, if any. */
  async settled(): Promise<void> {
    await this.#starting?.catch(() => undefined);
  }

  async #spawnAndWait(): Promise<void> {
    const o = this.#options;
    if (this.#stopping) throw o.startError('the agent is stopping');
    this.#stderrTail = [];
    const child = spawn(o.binary, [...o.args], { stdio: ['ignore', o.stdout ?? 'inherit', 'pipe'], detached: true, ...(o.env ? { env: o.env } : {}) });
    const pid = child.pid;
    const killGroup = (): void => signalQuietly(-pid!, 'SIGKILL');
    let exited = pid === undefined;
    let spawnError: string | undefined;
    child.once('error', (err) => (spawnError = err.message));
    if (pid !== undefined) {
      this.#child = child;
      process.once('exit', killGroup);
      const startedAt = Date.now();
      child.once('exit', (code, signal) => {
        exited = true;
        process.off('exit', killGroup);
        this.#onExit(child, code, signal, startedAt);
      });
    }
    // The server's own stderr: passed on as it is (operators know its format), redacted,
    // and the last lines kept as the reason when a start fails.
    createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', (line) => {
      const safe = redactKeyMaterial(line);
      process.stderr.write(`${safe}\n`);
      this.#stderrTail.push(safe);
      if (this.#stderrTail.length > stderrTailLines) this.#stderrTail.shift();
    });

    const timeoutMs = typeof o.startTimeoutMs === 'number' ? o.startTimeoutMs : o.startTimeoutMs();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited || pid === undefined) {
        // The 'exit' event can precede the last stderr lines; give them a moment.
        await sleep(50);
        throw o.startError(`${o.name} did not start: ${spawnError ?? o.reason(this.stderrTail())}`);
      }
      if (await o.isReady(pid)) {
        this.#up = true;
        this.#everUp = true;
        this.#log.info({ pid }, `${o.name} started`);
        return;
      }
      await sleep(25);
    }
    killGroup();
    throw o.startError(`${o.name} did not start within ${Math.round(timeoutMs / 1000)}s`);
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, startedAt: number): void {
    if (this.#child !== child) return;
    const wasUp = this.#up;
    this.#child = undefined;
    this.#up = false;
    if (this.#stopping) return;
    // Orphaned workers of a killed master would keep the listeners from the next one.
    signalQuietly(-child.pid!, 'SIGKILL');
    this.#options.onUnexpectedExit?.();
    if (Date.now() - startedAt >= stableAfterMs) this.#restarts.succeeded();
    // Before its first successful start, the next apply starts it; after that, it is restarted here.
    if (!this.#everUp) return;
    const retryInMs = this.#restarts.failed();
    this.#log.warn({ code, signal, wasUp, retryInMs, reason: this.#options.reason(this.stderrTail()) }, `${this.#options.name} exited; restarting it`);
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.start().then(
        () => this.#options.onRestarted?.(),
        (err: unknown) => this.#log.warn({ err: { message: (err as Error).message } }, `${this.#options.name} restart failed`),
      );
    }, retryInMs);
  }

  /** The stop ladder, then SIGKILL to the whole group. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    await this.settled();
    const child = this.#child;
    if (child?.pid === undefined) return;
    const pid = child.pid;
    const exited = new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
    let stopped = false;
    for (const [signal, waitMs] of this.#options.stopSignals) {
      signalQuietly(pid, signal);
      stopped = await settlesWithin(exited, waitMs);
      if (stopped) break;
      this.#log.warn({ pid, signal, waitedMs: waitMs }, `${this.#options.name} did not stop; escalating`);
    }
    // A master that quit gracefully took its workers with it, and this finds nobody; a
    // master that had to be killed did not.
    signalQuietly(-pid, 'SIGKILL');
    if (!stopped) await settlesWithin(exited, 5_000);
    this.#log.info({ pid }, `${this.#options.name} stopped`);
  }
}

/** Whether `promise` settles within `ms`; the timer does not outlive the answer. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timeout = new AbortController();
  try {
    return await Promise.race([promise.then(() => true), sleep(ms, timeout.signal).then(() => false)]);
  } finally {
    timeout.abort();
  }
}

export function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
