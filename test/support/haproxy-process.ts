import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configDirVariable, runDirVariable } from '../../src/dataplane/haproxy/paths.ts';
import { HaproxyRuntime } from '../../src/dataplane/haproxy/runtime.ts';
import { pollUntil, StopPolling } from '../harness/poll.ts';
import { spawnComponent, stopServer } from '../harness/processes.ts';
import { haproxyBinary } from '../harness/data-planes.ts';

export { haproxyBinary };

export interface HaproxyProcess {
  pid: number;
  dir: string;
  /** HAProxy's own output and the access log (stdout), as written so far. */
  output(): string;
  /** The access log so far, one JSON object per request. */
  accessLog(): Array<Record<string, unknown>>;
  runtime: HaproxyRuntime;
  stop(): Promise<void>;
}

function environment(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, [configDirVariable]: dir, [runDirVariable]: dir };
}

/** `haproxy -c`; throws with HAProxy's own words when the config does not load. */
export function checkHaproxyConfig(dir: string): void {
  try {
    execFileSync(haproxyBinary(), ['-c', '-q', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'], env: environment(dir) });
  } catch (err) {
    throw new Error(`haproxy -c failed for ${dir}:\n${(err as { stderr?: Buffer }).stderr?.toString() ?? ''}`, { cause: err });
  }
}

/**
 * Runs a rendered directory exactly as `render --data-plane haproxy` tells a person to
 * (the variables pointing at it, master-worker, in the foreground), in its own process
 * group so that nothing of it outlives the test.
 */
export async function startHaproxy(dir: string): Promise<HaproxyProcess> {
  checkHaproxyConfig(dir);
  const logFile = join(dir, 'haproxy.out.log');
  const child = spawnComponent({
    name: 'haproxy',
    binary: haproxyBinary(),
    args: ['-W', '-db', '-f', join(dir, 'haproxy.cfg')],
    env: environment(dir),
    logFile,
    killOnExit: true,
  });
  const runtime = new HaproxyRuntime(join(dir, 'haproxy.sock'));
  const output = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  await pollUntil(
    async () => {
      if (child.hasExited()) throw new StopPolling(`haproxy exited at start:\n${output()}`);
      return /^Pid: \d+$/m.test(await runtime.run('show info').catch(() => '')) ? true : undefined;
    },
    { what: `haproxy in ${dir} to answer on its runtime API`, timeoutMs: 30_000, intervalMs: 20 },
  );
  return {
    pid: child.pid,
    dir,
    output,
    accessLog: () =>
      output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    runtime,
    // SIGUSR1: a soft stop, connections finish.
    stop: () => stopServer(child, 'SIGUSR1', 'haproxy'),
  };
}
