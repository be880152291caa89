// The HAProxy and nginx every host test, bench and demo runs: Debian trixie's packages,
// the image's own versions, built for this host by build-data-planes.sh (which
// test/bootstrap.sh runs). Never the host's /usr/sbin ones: on a bookworm host those are
// HAProxy 2.6 and nginx 1.22, which the product no longer targets.
//
// HAPROXY_BINARY and NGINX_BINARY name other binaries (a build of one's own, say).
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';

const script = join(resolve(import.meta.dirname, '../..'), 'test/harness/build-data-planes.sh');

let built: Map<string, string> | undefined;

function builtBinary(name: 'haproxy' | 'nginx'): string {
  if (!built) {
    let stdout: string;
    try {
      stdout = execFileSync('bash', [script, '--check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      // The script's own words name what is missing and the command that builds it.
      const stderr = (error as { stderr?: string }).stderr?.trim();
      throw new Error(stderr || `could not locate the data planes: ${String(error)}`, { cause: error });
    }
    built = new Map(
      stdout
        .trim()
        .split('\n')
        .map((line) => line.split(' ', 2) as [string, string]),
    );
  }
  const path = built.get(name);
  if (path === undefined) throw new Error(`build-data-planes.sh --check did not name ${name}`);
  return path;
}

/** HAProxy 3.0 as the image runs it; throws, saying how to build it, when it is missing. */
export function haproxyBinary(): string {
  return process.env.HAPROXY_BINARY ?? builtBinary('haproxy');
}

/** nginx 1.26 as the image runs it; throws, saying how to build it, when it is missing. */
export function nginxBinary(): string {
  return process.env.NGINX_BINARY ?? builtBinary('nginx');
}

/**
 * The agent flags that make it run these binaries rather than its defaults (the image's
 * /usr/sbin paths): every agent a test or bench starts on this host takes them.
 */
export function dataPlaneBinaryFlags(): string[] {
  return ['--haproxy-binary', haproxyBinary(), '--nginx-binary', nginxBinary()];
}

/** PATH with these binaries first, for a command that names them plainly (`render` prints `haproxy -W …`). */
export function pathWithDataPlanes(path = process.env.PATH ?? ''): string {
  const dirs = [...new Set([dirname(haproxyBinary()), dirname(nginxBinary())])];
  return [...dirs, path].join(':');
}
