import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CodedError, type ErrorCode } from '../../errors.ts';
import { sleep } from '../../runner/backoff.ts';
import { redactKeyMaterial } from '../../proxy/redact.ts';
import { SupervisedProcess } from '../../proxy/supervised-process.ts';

export { redactKeyMaterial } from '../../proxy/redact.ts';
import type { Logger } from '../../log.ts';

// Everything the agent does to nginx: test a config, start it, reload it and confirm the
// reload, stop it. The decisions (what an error line means, whether a reload happened)
// are pure functions at the top, tested without nginx.

export type NginxErrorCode = Extract<ErrorCode, `ERR_NGINX_${string}`>;

export class NginxError extends CodedError<NginxErrorCode> {}

const maxReasonLength = 300;

/**
 * The one line of nginx's output that says why: the first [emerg], [alert], [crit] or
 * [error] message, without its timestamp and pid, with the generation directory cut from
 * file names ("unknown directive "x" in nginx.conf:12"), redacted and short enough for
 * an annotation.
 */
export function nginxErrorReason(output: string, options: { directory?: string } = {}): string {
  const lines = redactKeyMaterial(options.directory ? output.split(`${options.directory}/`).join('') : output)
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const line = lines.find((l) => /\[(emerg|alert|crit|error)\]/.test(l)) ?? lines[0] ?? 'nginx gave no reason';
  const reason = line.replace(/^.*?\[(emerg|alert|crit|error)\]\s+(\d+#\d+:\s+)?/, '');
  return reason.length > maxReasonLength ? `${reason.slice(0, maxReasonLength - 1)}…` : reason;
}

/** A process's children: pid → title as /proc shows it ("nginx: worker process"). */
export type ProcessTitles = ReadonlyMap<number, string>;

/**
 * Whether nginx has taken a reload, judged from its master's children before SIGHUP and
 * now. A master that loads the new config starts new workers and, 100 ms later, tells
 * the old ones to quit; they retitle themselves "worker process is shutting down" and
 * exit once their connections finish. From then on only new workers accept connections.
 * A master that rejects the config (a port already bound, say: `nginx -t` does not bind)
 * logs the error and keeps its workers as they were. So the reload took effect when a new
 * child exists and no old child is still an active worker.
 *
 * Why not something simpler: "the pid file still names a live master" holds after a
 * refused reload too; "a new worker pid appeared" also happens when one worker crashes
 * and is respawned (its siblings stay active here, so that does not pass); parsing the
 * error log depends on where the rendered config sends it (a file, or /dev/stderr in a
 * container). Worker titles are what nginx itself shows in `ps`.
 */
export function reloadObserved(before: ProcessTitles, now: ProcessTitles): boolean {
  const started = [...now.keys()].some((pid) => !before.has(pid));
  const oldStillActive = [...before.keys()].some((pid) => {
    const title = now.get(pid);
    return title !== undefined && !title.includes('shutting down');
  });
  return started && !oldStillActive;
}

/**
 * Children of `parent` from /proc (every process's stat names its parent), skipping
 * zombies. /proc/<pid>/task/<pid>/children would be cheaper but needs
 * CONFIG_PROC_CHILDREN, which not every kernel (or sandbox) has.
 */
export async function childProcesses(parent: number): Promise<Map<number, string>> {
  const children = new Map<number, string>();
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return children;
  }
  await Promise.all(
    entries
      .filter((entry) => /^\d+$/.test(entry))
      .map(async (entry) => {
        try {
          const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
          // "pid (comm) state ppid …"; comm may itself contain ") ".
          const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          if (state === 'Z' || Number(ppid) !== parent) return;
          const title = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' ').trim();
          children.set(Number(entry), title);
        } catch {
          // exited while we looked
        }
      }),
  );
  return children;
}

/** Alive: signalable and not a zombie. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return false;
  }
}

export interface NginxPaths {
  binary: string;
  /** nginx's -p: pid, logs and temp files. */
  prefix: string;
}

export type NginxTestResult = { ok: true } | { ok: false; reason: string };

/**
 * `nginx -t` on one config file, with the prefix nginx runs with, so relative paths
 * resolve as they will at run time: certificates next to the file, temp paths in the
 * prefix. `-e stderr` sends what nginx says before and while it reads the config to us
 * instead of a compiled-in log path that may not be writable.
 */
export async function testNginxConfig(paths: NginxPaths, confPath: string, timeoutMs = 60_000): Promise<NginxTestResult> {
  // nginx -t opens every log file the config names, and a config that logs to
  // /dev/stdout cannot be opened when stdout is a socket (ENXIO), which is what Node gives
  // a child for a pipe. A regular file can be, so nginx's output goes to one.
  const dir = await mkdtemp(join(tmpdir(), 'mtls-egress-nginx-t-'));
  const outputPath = join(dir, 'output');
  const output = await open(outputPath, 'w', 0o600);
  try {
    const exit = await new Promise<{ code: number | null; error?: Error; timedOut: boolean }>((resolve) => {
      const child = spawn(paths.binary, ['-t', '-q', '-p', paths.prefix, '-c', confPath, '-e', 'stderr'], { stdio: ['ignore', output.fd, output.fd] });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve({ code: null, timedOut: true });
      }, timeoutMs);
      child.once('error', (error) => {
        clearTimeout(timer);
        resolve({ code: null, error, timedOut: false });
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, timedOut: false });
      });
    });
    if (exit.code === 0) return { ok: true };
    if (typeof exit.code === 'number') return { ok: false, reason: nginxErrorReason(await readFile(outputPath, 'utf8'), { directory: dirname(confPath) }) };
    // Not nginx's verdict on the config: no binary, a timeout. Worth retrying.
    const why = exit.timedOut ? `timed out after ${Math.round(timeoutMs / 1000)}s` : (exit.error?.message ?? 'unknown');
    throw new NginxError('ERR_NGINX_TEST_DID_NOT_RUN', `nginx -t did not run: ${redactKeyMaterial(why)}`);
  } finally {
    await output.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Sends SIGHUP to a master and waits until its workers show that the new config took. */
async function reloadAndConfirm(masterPid: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const before = await childProcesses(masterPid);
  process.kill(masterPid, 'SIGHUP');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await sleep(25);
    if (!alive()) throw new NginxError('ERR_NGINX_NOT_RUNNING', `nginx (pid ${masterPid}) exited during a reload`);
    if (reloadObserved(before, await childProcesses(masterPid))) return;
  }
  throw new NginxError(
    'ERR_NGINX_RELOAD_UNCONFIRMED',
    `nginx (pid ${masterPid}) started no new workers within ${Math.round(timeoutMs / 1000)}s of SIGHUP: ` +
      'it rejected the config at run time (see its error log) or is still loading it',
  );
}

/** What the agent needs of nginx, whether it runs nginx itself or nginx runs beside it. */
export interface NginxControl {
  /** Makes nginx serve DIR/current: starts it, or reloads it; resolves once that took effect. */
  apply(): Promise<void>;
  /** Whether a master runs now (for /readyz). */
  running(): boolean;
  /** Stops nginx gracefully if the agent started it; otherwise does nothing. */
  stop(): Promise<void>;
}

/**
 * nginx started by someone else (a workstation's nginx, or one in another container of
 * the pod with `shareProcessNamespace: true`, so that the agent can see and signal it);
 * the master's pid is in its pid file. deploy/ runs nginx as the agent's child instead.
 */
export class ExternalNginx implements NginxControl {
  readonly #pidFile: string;
  readonly #reloadTimeoutMs: number;

  constructor(options: { pidFile: string; reloadTimeoutMs: number }) {
    this.#pidFile = options.pidFile;
    this.#reloadTimeoutMs = options.reloadTimeoutMs;
  }

  #pid(): number | undefined {
    const pid = readPidFile(this.#pidFile);
    return pid !== undefined && isProcessAlive(pid) ? pid : undefined;
  }

  running(): boolean {
    return this.#pid() !== undefined;
  }

  async apply(): Promise<void> {
    const pid = this.#pid();
    if (pid === undefined) throw new NginxError('ERR_NGINX_NOT_RUNNING', `no nginx master runs (pid file ${this.#pidFile})`);
    await reloadAndConfirm(pid, this.#reloadTimeoutMs, () => isProcessAlive(pid));
  }

  async stop(): Promise<void> {
    // Not ours to stop.
  }
}

export interface ManagedNginxOptions extends NginxPaths {
  /** DIR/current/nginx.conf: always the current generation, through the symlink. */
  confPath: string;
  pidFile: string;
  reloadTimeoutMs: number;
  /** How long a graceful stop (SIGQUIT) may take before SIGTERM, then SIGKILL. */
  stopTimeoutMs: number;
  logger: Logger;
  /** Called when nginx exits on its own; for metrics. */
  onUnexpectedExit?: () => void;
}

/**
 * nginx as the agent's child (`--manage`), for pods that run one container: supervised
 * (started once a config has been applied, restarted when it dies, stopped gracefully),
 * and reloaded with SIGHUP, confirmed from its workers.
 */
export class ManagedNginx implements NginxControl {
  readonly #process: SupervisedProcess;
  readonly #reloadTimeoutMs: number;

  constructor(options: ManagedNginxOptions) {
    const { binary, prefix, confPath, pidFile } = options;
    this.#reloadTimeoutMs = options.reloadTimeoutMs;
    this.#process = new SupervisedProcess({
      name: 'nginx',
      binary,
      args: ['-p', prefix, '-c', confPath, '-e', 'stderr', '-g', 'daemon off;'],
      // nginx writes its pid file after it has bound every listener; the workers follow.
      isReady: async (pid) => readPidFile(pidFile) === pid && (await childProcesses(pid)).size > 0,
      startTimeoutMs: options.reloadTimeoutMs,
      stopSignals: [
        ['SIGQUIT', options.stopTimeoutMs],
        ['SIGTERM', 5_000],
      ],
      reason: (tail) => nginxErrorReason(tail),
      startError: (message) => new NginxError('ERR_NGINX_START_FAILED', message),
      logger: options.logger,
      ...(options.onUnexpectedExit ? { onUnexpectedExit: options.onUnexpectedExit } : {}),
    });
  }

  running(): boolean {
    return this.#process.running();
  }

  async apply(): Promise<void> {
    await this.#process.settled();
    const pid = this.#process.pid();
    if (pid !== undefined) {
      await reloadAndConfirm(pid, this.#reloadTimeoutMs, () => this.#process.isCurrent(pid));
      return;
    }
    await this.#process.start();
  }

  stop(): Promise<void> {
    return this.#process.stop();
  }
}

function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
