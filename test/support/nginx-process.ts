import { execFileSync } from 'node:child_process';
import { request, type Agent } from 'node:http';
import type { Socket } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runRender } from '../../src/commands/render.ts';
import { captureIo } from './captured-io.ts';
import { pollUntil, StopPolling } from '../harness/poll.ts';
import { spawnComponent, stopServer } from '../harness/processes.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';
import { nginxBinary } from '../harness/data-planes.ts';

export { nginxBinary };

export interface NginxProcess {
  pid: number;
  prefix: string;
  /** The error log so far (error.log in the prefix). */
  errorLog(): string;
  /** The access log so far, one JSON object per request. */
  accessLog(): Array<Record<string, unknown>>;
  /** Graceful stop (SIGQUIT), SIGKILL to the process group if that takes over 10 s; then nothing of it runs. */
  stop(): Promise<void>;
}

function nginxArgs(prefix: string): string[] {
  // -e: the error log before nginx.conf is read (Debian's default is stderr, other builds a root-owned path).
  return ['-p', prefix, '-c', 'nginx.conf', '-e', join(prefix, 'error.log')];
}

/** `nginx -t`; throws with nginx's own words when the config does not load. */
export function checkNginxConfig(prefix: string): void {
  try {
    execFileSync(nginxBinary(), ['-t', '-q', ...nginxArgs(prefix)], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`nginx -t failed for ${prefix}:\n${stderr}${readLog(join(prefix, 'error.log'))}`, { cause: err });
  }
}

function readLog(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/**
 * Runs the rendered directory exactly as the render command tells a person to:
 * `nginx -p DIR -c nginx.conf -g 'daemon off;'`, in its own process group so that a
 * failed test or an interrupted run leaves no master or worker behind.
 */
export async function startNginx(prefix: string): Promise<NginxProcess> {
  checkNginxConfig(prefix);
  const child = spawnComponent({
    name: 'nginx',
    binary: nginxBinary(),
    args: [...nginxArgs(prefix), '-g', 'daemon off;'],
    logFile: join(prefix, 'nginx.stderr.log'),
    killOnExit: true,
  });
  const pidFile = join(prefix, 'nginx.pid');
  // nginx writes its pid file after it has bound every listener, so from then on
  // connections queue until a worker accepts them.
  await pollUntil(
    () => {
      if (child.hasExited()) throw new StopPolling(`nginx exited at start:\n${readLog(join(prefix, 'nginx.stderr.log'))}${readLog(join(prefix, 'error.log'))}`);
      return existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(child.pid) ? true : undefined;
    },
    { what: `nginx in ${prefix} to write its pid file`, timeoutMs: 30_000, intervalMs: 20 },
  );
  return {
    pid: child.pid,
    prefix,
    errorLog: () => readLog(join(prefix, 'error.log')),
    accessLog: () =>
      readLog(join(prefix, 'access.log'))
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    stop: () => stopServer(child, 'SIGQUIT', 'nginx'),
  };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The --out directory. */
  out: string;
}

/**
 * Writes `manifests` as one multi-document YAML file (JSON documents are YAML, and a
 * trailing `---` as editors leave it) and runs `mtls-egress render` on it.
 */
export async function renderManifests(manifests: readonly object[], args: readonly string[] = [], out?: string): Promise<CliRun> {
  const input = temporaryDirectory('render-in');
  writeFileSync(join(input, 'bindings.yaml'), `${manifests.map((m) => JSON.stringify(m, null, 2)).join('\n---\n')}\n---\n`);
  const target = out ?? join(temporaryDirectory('render-out'), 'proxy');
  const run = captureIo();
  const code = await runRender(['-f', input, '--out', target, ...args], run.io);
  return { code, stdout: run.stdout, stderr: run.stderr, out: target };
}

export interface ProxyResponse {
  status: number;
  body: string;
  /** The socket the client used: tests count distinct ones to show client-side keepalive. */
  socket: Socket;
}

/** A plain-HTTP call to a binding's listener, as an application makes it. */
export function callProxy(
  port: number,
  options: { agent?: Agent; path?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<ProxyResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: options.path ?? '/', method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket: req.socket! }));
        res.on('error', reject);
      },
    );
    // Whether the request went out on a kept-alive socket decides if a client may retry it.
    req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
    req.end(options.body);
  });
}
