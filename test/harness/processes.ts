import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pollUntil, StopPolling } from './poll.ts';

/**
 * A component (a control-plane binary, nginx, the controller, the agent) running in its
 * own process group. Process groups let one signal reach the component and anything it
 * forks, and a pid written to the state file is enough for another process
 * (`cluster-cli down`, the orphan reaper) to stop it.
 */
export interface ComponentProcess {
  name: string;
  pid: number;
  /** Node's handle, for signals to the component itself rather than its group. */
  child: ChildProcess;
  /** Settles when the process exits, with a description such as "exit code 1". */
  exited: Promise<string>;
  /** Settles when the process exits, with its exit code (null when a signal ended it, or it never started). */
  exitCode: Promise<number | null>;
  hasExited(): boolean;
}

/**
 * Where a component's stdout and stderr go: a file (`logFile`), or each line as it comes
 * (`onOutputLine`), through pipes that keep this process alive until the component exits.
 */
export type ComponentOutput = { logFile: string; onOutputLine?: never } | { onOutputLine: (line: string) => void; logFile?: never };

export type SpawnComponentOptions = ComponentOutput & {
  name: string;
  binary: string;
  args: string[];
  /** Kill the process group when this Node process exits or is interrupted (false for `cluster-cli up`). */
  killOnExit: boolean;
  /** Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
};

/** The one way tests start a component: in a process group of its own, its output captured. */
export function spawnComponent(options: SpawnComponentOptions): ComponentProcess {
  // A file, not a pipe, when the caller does not read the lines: a pipe would keep this
  // process's event loop alive, and would break (SIGPIPE) when a detached cluster outlives
  // the CLI that started it.
  const logFd = options.logFile === undefined ? undefined : openSync(options.logFile, 'a');
  let exitDescription: string | undefined;
  let code: number | null = null;
  try {
    const output = logFd ?? 'pipe';
    const child = spawn(options.binary, options.args, { detached: true, stdio: ['ignore', output, output], env: options.env ?? process.env });
    // Listen before anything can throw: an 'error' event without a listener crashes the process.
    const exited = new Promise<string>((resolve) => {
      const settle = (description: string): void => {
        exitDescription = description;
        if (child.pid !== undefined) processGroupsToKillOnExit.delete(child.pid);
        resolve(description);
      };
      child.once('exit', (exitCode, signal) => {
        code = exitCode;
        settle(signal === null ? `exit code ${exitCode}` : `signal ${signal}`);
      });
      child.once('error', (error) => settle(`spawn error: ${error.message}`));
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${options.name} (${options.binary})`);
    if (options.onOutputLine !== undefined) {
      for (const stream of [child.stdout!, child.stderr!]) splitLines(stream, options.onOutputLine);
    }
    // Stopping is explicit (stop(), the exit handlers), so the child must not keep a test
    // file's process alive after its last test. Its output pipes do that already while it
    // runs; with them, an unref'd child would let this process end between the pipes'
    // close and the exit event, and a caller awaiting `exited` (a bench's top-level
    // await) would never see it.
    if (options.onOutputLine === undefined) child.unref();
    if (options.killOnExit) killProcessGroupOnExit(pid);
    return { name: options.name, pid, child, exited, exitCode: exited.then(() => code), hasExited: () => exitDescription !== undefined };
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }
}

/** Calls `onLine` with each complete line of `stream`, and with the last one when it ends without a newline. */
function splitLines(stream: Readable, onLine: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line) onLine(line);
  });
  stream.once('end', () => {
    if (partial) onLine(partial);
    partial = '';
  });
}

export async function lastLogLines(logFile: string, count = 30): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

/** Polls `probe` until it passes, failing at once (with the log's tail) if the process exits. */
export async function waitUntilServing(component: ComponentProcess, logFile: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  try {
    await pollUntil(
      async () => {
        if (component.hasExited()) throw new StopPolling(`${component.name} exited (${await component.exited})`);
        return (await probe()) ? true : undefined;
      },
      { what: `${component.name} to serve`, timeoutMs, intervalMs: 50 },
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\n--- last lines of ${logFile} ---\n${await lastLogLines(logFile)}`, { cause: error });
  }
}

function signalProcessGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Alive means signalable and not a zombie; an orphaned zombie can linger in containers whose init never reaps. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // "pid (command) state …"; the command may itself contain ") ".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Whether `pid` is still a process this harness started for `stateDir`: every component's
 * command line names its state directory. Guards against killing an unrelated process
 * that reused the pid of one that died long ago.
 */
export function isComponentOf(pid: number, stateDir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(stateDir);
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs` (at once for 0); resolves once the process is gone. */
export async function stopProcessGroup(pid: number, graceMs: number, exited?: Promise<string>): Promise<void> {
  // Our own children are zombies until Node reaps them, so for those the exit event is
  // the truth; for processes we only know by pid, /proc is.
  let gone = false;
  void exited?.then(() => {
    gone = true;
  });
  const isGone = (): true | undefined => (gone || (exited === undefined && !isProcessAlive(pid)) ? true : undefined);
  const exitedAfterSigterm = graceMs > 0 && (await waitForExit(isGone, pid, 'SIGTERM', graceMs));
  if (!exitedAfterSigterm && !(await waitForExit(isGone, pid, 'SIGKILL', 10_000))) {
    throw new Error(`pid ${pid} is still running 10s after SIGKILL`);
  }
  processGroupsToKillOnExit.delete(pid);
}

async function waitForExit(isGone: () => true | undefined, pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<boolean> {
  signalProcessGroup(pid, signal);
  return pollUntil(isGone, { what: `pid ${pid} to exit after ${signal}`, timeoutMs, intervalMs: 20 }).then(
    () => true,
    () => false,
  );
}

/** Whether no process is left in the group `pgid` (a server's master and its workers, say). */
export function processGroupEmpty(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * A server's graceful stop (`signal`), SIGKILL to its process group if that takes over
 * 10 s; resolves once nothing of the group runs, workers included.
 */
export async function stopServer(child: ComponentProcess, signal: NodeJS.Signals, name: string): Promise<void> {
  if (!child.hasExited()) {
    process.kill(child.pid, signal);
    const quit = await pollUntil(() => (child.hasExited() ? true : undefined), { what: `${name} to stop`, timeoutMs: 10_000, intervalMs: 20 }).catch(
      () => false,
    );
    if (!quit) await stopProcessGroup(child.pid, 0, child.exited);
  }
  await pollUntil(() => (processGroupEmpty(child.pid) ? true : undefined), {
    what: `${name}'s workers (group ${child.pid}) to exit`,
    timeoutMs: 10_000,
    intervalMs: 20,
  });
}

const processGroupsToKillOnExit = new Set<number>();
const directoriesToRemoveOnExit = new Set<string>();
const interruptSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function cleanUpOnExit(): void {
  // Only synchronous work is possible here ('exit' handlers cannot await), and the data
  // these processes hold is about to be deleted, so there is nothing to shut down gently.
  for (const pid of processGroupsToKillOnExit) signalProcessGroup(pid, 'SIGKILL');
  processGroupsToKillOnExit.clear();
  // A process killed a moment ago may still write a file into its directory and defeat
  // this; the orphan reaper catches what is left.
  for (const directory of directoriesToRemoveOnExit) rmSync(directory, { recursive: true, force: true });
  directoriesToRemoveOnExit.clear();
}

function onInterrupt(signal: NodeJS.Signals): void {
  cleanUpOnExit();
  // Listening for a signal replaces Node's default of dying from it. When nobody else
  // listens, die from it as the default would, so Ctrl-C still stops the test run.
  process.removeListener(signal, onInterrupt);
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installExitHandlers(): void {
  if (process.listeners('exit').includes(cleanUpOnExit)) return;
  process.on('exit', cleanUpOnExit);
  for (const signal of interruptSignals) process.on(signal, onInterrupt);
}

export function killProcessGroupOnExit(pid: number): void {
  installExitHandlers();
  processGroupsToKillOnExit.add(pid);
}

/** Deletes `directory` if this process exits or is interrupted first; the returned function cancels that. */
export function removeDirectoryOnExit(directory: string): () => void {
  installExitHandlers();
  directoriesToRemoveOnExit.add(directory);
  return () => directoriesToRemoveOnExit.delete(directory);
}
