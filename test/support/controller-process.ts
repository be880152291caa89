import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pollUntil, StopPolling } from '../harness/poll.ts';
import { spawnComponent, stopProcessGroup } from '../harness/processes.ts';

const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

export interface ControllerProcess {
  child: ChildProcess;
  id: string;
  /** Every log line so far: tests read them, and assert that no secret is among them. */
  logs: string[];
  healthPort: number;
  exited: Promise<number | null>;
  /** SIGTERM, then wait for a clean exit. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

/**
 * Runs `mtls-egress controller` as a real process, as a pod would, so tests cover flag
 * parsing, signals and the exit path, and a leader can be killed outright.
 */
export async function startController(options: {
  kubeConfigPath: string;
  namespaces: string[];
  id: string;
  leaseName?: string;
  args?: string[];
  nodeOptions?: string[];
  /** The CLI to run: src/cli.ts by default; benches run the compiled dist/cli.js, as the image does. */
  cli?: string;
}): Promise<ControllerProcess> {
  return startControllerProcess({
    id: options.id,
    nodeOptions: options.nodeOptions,
    cli: options.cli,
    args: [
      '--kubeconfig',
      options.kubeConfigPath,
      '--namespaces',
      options.namespaces.join(','),
      '--namespace',
      options.namespaces[0]!,
      '--health-addr',
      '127.0.0.1:0',
      '--id',
      options.id,
      '--lease-name',
      options.leaseName ?? `lease-${options.id}`,
      '--lease-duration',
      '4s',
      '--renew-deadline',
      '3s',
      '--retry-period',
      '500ms',
      // Status-only unless a test brings a data plane; a later --data-plane wins.
      '--data-plane',
      'none',
      // The tests' partners listen on this machine's loopback, which the proxy may not reach
      // by default; a platform team opens a partner's network the same way. A later flag wins.
      '--allowed-destinations',
      '127.0.0.0/8,::1/128',
      ...(options.args ?? []),
    ],
  });
}

/**
 * `mtls-egress controller` with exactly `args`, through the harness's spawner (its own
 * process group, killed if this process exits first), once it logs its health port.
 */
export async function startControllerProcess(options: {
  id: string;
  args: string[];
  nodeOptions?: string[];
  cli?: string;
  /** LOG_LEVEL when the environment sets none; default debug. */
  logLevel?: string;
}): Promise<ControllerProcess> {
  const logs: string[] = [];
  const component = spawnComponent({
    name: `controller ${options.id}`,
    binary: process.execPath,
    args: [...(options.nodeOptions ?? []), options.cli ?? cli, 'controller', ...options.args],
    onOutputLine: (line) => logs.push(line),
    killOnExit: true,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? options.logLevel ?? 'debug' },
  });
  const healthPort = await pollUntil(
    () => {
      if (component.hasExited()) throw new StopPolling(`controller ${options.id} exited early:\n${logs.join('\n')}`);
      for (const line of logs) {
        const parsed = safeJson(line);
        if (parsed?.msg === 'controller starting' && typeof parsed.port === 'number') return parsed.port;
      }
      return undefined;
    },
    { what: `controller ${options.id} to start`, timeoutMs: 30_000, intervalMs: 50 },
  );
  return {
    child: component.child,
    id: options.id,
    logs,
    healthPort,
    exited: component.exitCode,
    async stop() {
      if (!component.hasExited()) component.child.kill('SIGTERM');
      return component.exitCode;
    },
    async kill() {
      await stopProcessGroup(component.pid, 0, component.exited);
    },
  };
}

export function safeJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}
