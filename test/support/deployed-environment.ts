// The environment deploy/ gives a container, for a bench that runs the same process on
// the host: NODE_OPTIONS, and glibc's malloc settings, which shape RSS as much as the
// code does.
import { readFileSync } from 'node:fs';

/** Every `- name: X` / `value: Y` pair with a literal value in a rendered manifest (valueFrom entries are the pod's own). */
export function deployedEnvironment(manifestPath: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [, name, value] of readFileSync(manifestPath, 'utf8').matchAll(/- name: ([A-Z_][A-Z0-9_]*)\n\s+value: (.+)/g)) {
    env[name!] = value!.trim().replace(/^"(.*)"$/, '$1');
  }
  return env;
}

/** The malloc settings of that environment (MALLOC_*): what a child process inherits from the bench. */
export function mallocSettings(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith('MALLOC_')));
}
