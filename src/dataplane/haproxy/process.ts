import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Logger } from '../../log.ts';
import { sleep } from '../../runner/backoff.ts';
import { configDirVariable, haproxyConfigFile, masterSocket, runDirVariable, runtimeSocket } from './paths.ts';
import { HaproxyError, HaproxyRuntime } from './runtime.ts';
import { parseShowProc, type ProcessTable } from './state.ts';
import { redactKeyMaterial } from '../../proxy/redact.ts';
import { SupervisedProcess } from '../../proxy/supervised-process.ts';
import type { TestResult } from '../../proxy/data-plane.ts';

// HAProxy in master-worker mode as the agent's child: started, reloaded through the
// master CLI and confirmed from the master's own process table, stopped gracefully.
// The listening sockets pass from the old worker to the new one on a reload (the stats
// socket's `expose-fd listeners`), so a reload refuses no connection.

const maxReasonLength = 300;

/**
 * The one line of HAProxy's output that says why: the first [ALERT] (else the first
 * line), without its "(pid) :" prefix, the generation directory cut from file names,
 * redacted and short enough for an annotation.
 */
export function haproxyErrorReason(output: string, options: { directory?: string } = {}): string {
  const text = options.directory ? output.split(`${options.directory}/`).join('') : output;
  const lines = redactKeyMaterial(text)
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const line = lines.find((l) => l.includes('[ALERT]')) ?? lines[0] ?? 'HAProxy gave no reason';
  const reason = line.replace(/^\[(ALERT|WARNING|NOTICE)\]\s+\(\d+\)\s*:\s*/, '');
  return reason.length > maxReasonLength ? `${reason.slice(0, maxReasonLength - 1)}…` : reason;
}

/** The environment a config (rendered with ${MTLS_EGRESS_CONFIG_DIR} paths) needs to run from `configDir`. */
export function haproxyEnvironment(configDir: string, runDir: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', [configDirVariable]: configDir, [runDirVariable]: runDir };
}

/** `haproxy -c` on one generation, with the variables pointing at that generation. */
export async function testHaproxyConfig(binary: string, generationDir: string, runDir: string, timeoutMs = 60_000): Promise<TestResult> {
  const exit = await new Promise<{ code: number | null; output: string; error?: Error; timedOut: boolean }>((resolve) => {
    const chunks: Buffer[] = [];
    const child = spawn(binary, ['-c', '-q', '-f', join(generationDir, haproxyConfigFile)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: haproxyEnvironment(generationDir, runDir),
    });
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: null, output: '', timedOut: true });
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, output: '', error, timedOut: false });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(chunks).toString('utf8'), timedOut: false });
    });
  });
  if (exit.code === 0) return { ok: true };
  if (typeof exit.code === 'number') return { ok: false, reason: haproxyErrorReason(exit.output, { directory: generationDir }) };
  const why = exit.timedOut ? `timed out after ${Math.round(timeoutMs / 1000)}s` : (exit.error?.message ?? 'unknown');
  throw new HaproxyError('ERR_HAPROXY_TEST_DID_NOT_RUN', `haproxy -c did not run: ${redactKeyMaterial(why)}`);
}

export interface ManagedHaproxyOptions {
  binary: string;
  /** The directory HAProxy reads its config from: DIR/current, through the symlink. */
  configDir: string;
  /** Where the master and stats sockets live. */
  runDir: string;
  startTimeoutMs: number;
  reloadTimeoutMs: number;
  /** How long the workers may take to finish their connections on a stop (SIGUSR1) before SIGTERM. */
  stopTimeoutMs: number;
  logger: Logger;
  /** Where the access log (HAProxy's stdout) goes: the container's log by default. */
  stdout?: 'inherit' | 'ignore';
  onUnexpectedExit?: () => void;
}

/**
 * Loading a certificate is most of a HAProxy start's work: 3.7 s for 10,000 on an idle
 * 2-core machine, 11-25 s on a busy one (bench:scale). So a start or reload may take the
 * flag's time plus this per certificate the config holds, and a replica with a small CPU
 * limit at ten thousand bindings does not time out, kill HAProxy and start it again for ever.
 */
export const loadTimeoutPerCertificateMs = 10;

/** How long a start or reload of a config holding `certificates` may take to serve. */
export function loadTimeoutMs(baseMs: number, certificates: number): number {
  return baseMs + Math.max(0, certificates) * loadTimeoutPerCertificateMs;
}

export class ManagedHaproxy {
  /** The worker's runtime API: what the agent changes HAProxy through. */
  readonly runtime: HaproxyRuntime;
  readonly #master: HaproxyRuntime;
  readonly #process: SupervisedProcess;
  readonly #reloadTimeoutMs: number;
  readonly #startTimeoutMs: number;
  /** Certificates in the config HAProxy reads next (certificatesToLoad). */
  #certificates = 0;
  readonly #restartListeners: Array<() => void> = [];

  constructor(options: ManagedHaproxyOptions) {
    this.runtime = new HaproxyRuntime(join(options.runDir, runtimeSocket));
    this.#master = new HaproxyRuntime(join(options.runDir, masterSocket));
    this.#reloadTimeoutMs = options.reloadTimeoutMs;
    this.#startTimeoutMs = options.startTimeoutMs;
    this.#process = new SupervisedProcess({
      name: 'haproxy',
      binary: options.binary,
      args: ['-W', '-db', '-S', `${join(options.runDir, masterSocket)},mode,600`, '-f', join(options.configDir, haproxyConfigFile)],
      env: haproxyEnvironment(options.configDir, options.runDir),
      stdout: options.stdout ?? 'inherit',
      isReady: async () => (await this.#serving()) !== undefined,
      startTimeoutMs: () => loadTimeoutMs(this.#startTimeoutMs, this.#certificates),
      // SIGUSR1: a soft stop, the workers finish their connections; SIGTERM: now.
      stopSignals: [
        ['SIGUSR1', options.stopTimeoutMs],
        ['SIGTERM', 5_000],
      ],
      reason: (tail) => haproxyErrorReason(tail),
      startError: (message) => new HaproxyError('ERR_HAPROXY_START_FAILED', message),
      logger: options.logger,
      ...(options.onUnexpectedExit ? { onUnexpectedExit: options.onUnexpectedExit } : {}),
      onRestarted: () => {
        for (const listener of this.#restartListeners) listener();
      },
    });
  }

  /** How many certificates the config on disk holds: a start or reload may take longer for each (loadTimeoutMs). */
  certificatesToLoad(count: number): void {
    this.#certificates = count;
  }

  /** Called after HAProxy died and was started again from the config on disk: what was changed only at run time is gone. */
  onRestarted(listener: () => void): void {
    this.#restartListeners.push(listener);
  }

  running(): boolean {
    return this.#process.running();
  }

  /** The master's pid, while it serves. */
  pid(): number | undefined {
    return this.#process.pid();
  }

  async start(): Promise<void> {
    await this.#process.settled();
    if (!this.#process.running()) await this.#process.start();
  }

  stop(): Promise<void> {
    return this.#process.stop();
  }

  /**
   * The master's process table when a current worker answers on the runtime API:
   * HAProxy serves. Undefined while it starts, reloads or is gone.
   */
  async #serving(): Promise<ProcessTable | undefined> {
    try {
      const table = parseShowProc(await this.#master.run('show proc'));
      if (!table || table.workers.length === 0) return undefined;
      const pid = Number(/^Pid: (\d+)$/m.exec(await this.runtime.run('show info'))?.[1]);
      return table.workers.includes(pid) ? table : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Loads DIR/current/haproxy.cfg into a new worker and resolves once that worker serves;
   * the old one finishes its connections and exits. A config the master cannot load
   * leaves the old worker serving, and is an error with HAProxy's reason.
   */
  async reload(): Promise<void> {
    await this.#process.settled();
    const before = await this.#serving();
    if (!before) throw new HaproxyError('ERR_HAPROXY_NOT_RUNNING', 'HAProxy does not serve; it cannot be reloaded');
    // The master re-executes itself and closes the connection without an answer.
    await this.#master.run('reload').catch(() => undefined);
    const timeoutMs = loadTimeoutMs(this.#reloadTimeoutMs, this.#certificates);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await sleep(25);
      const table = await this.#serving();
      if (!table) continue;
      if (table.failedReloads > before.failedReloads) {
        throw new HaproxyError('ERR_HAPROXY_RELOAD_FAILED', `HAProxy kept its last config: ${haproxyErrorReason(this.#process.stderrTail())}`);
      }
      if (table.reloads > before.reloads && table.workers.every((pid) => !before.workers.includes(pid))) return;
    }
    throw new HaproxyError('ERR_HAPROXY_RELOAD_FAILED', `HAProxy showed no new worker within ${Math.round(timeoutMs / 1000)}s of a reload`);
  }
}
