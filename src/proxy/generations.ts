import { isSafeRelativePath } from '../contract/proxy-objects.ts';

// Pure decisions about the agent's config directory. The layout:
//
//   DIR/gen-<hash>/nginx.conf, certs/…, ca/…   one directory per config, never changed once written
//   DIR/current -> gen-<hash>                   the one the server runs (-c DIR/current/nginx.conf,
//                                               -f DIR/current/haproxy.cfg)
//   DIR/objects/<sha256>-<mode>                 each binding file's bytes, once (content-store.ts):
//                                               a generation's certs/, ca/ and bindings/ files
//                                               are hard links to these
//
// A new config is written into a generation directory the server does not read,
// validated there, and made current by renaming a fresh symlink over `current`, which is
// atomic: the server sees the old files or the new ones, never a mix.

export const currentLink = 'current';
export const currentLinkTemp = 'current.tmp';

const generationPattern = /^gen-[0-9a-f]{64}$/;

export function isConfigHash(hash: unknown): hash is string {
  return typeof hash === 'string' && /^[0-9a-f]{64}$/.test(hash);
}

/** The directory one config hash lives in. */
export function generationName(hash: string): string {
  if (!isConfigHash(hash)) throw new Error(`generationName: ${JSON.stringify(hash)} is not a sha256 hex digest`);
  return `gen-${hash}`;
}

export function isGenerationName(name: string): boolean {
  return generationPattern.test(name);
}

/**
 * Which entries of the config directory to delete: every generation but those in `keep`
 * (the current one, and the one before it so that a bad reload can be rolled back), and
 * a `current.tmp` a crash left between creating it and renaming it. Everything else in the
 * directory (nginx's pid, logs and temp directories when the prefix is the same
 * directory) is not the agent's and stays.
 */
export function entriesToRemove(entries: readonly string[], keep: ReadonlyArray<string | undefined>): string[] {
  return entries.filter((name) => name === currentLinkTemp || (isGenerationName(name) && !keep.includes(name))).sort();
}

/**
 * Why an assembled file set cannot be applied, or undefined when it can: every path
 * safe and listed once, none both a file and a directory, and the data plane's config
 * file (`configFile`) present. The files come from objects anyone with write access to
 * the proxy namespace could edit, so a path such as "../current" must never reach the
 * file system.
 */
export function filesProblem(files: ReadonlyArray<{ path: unknown; mode: unknown }>, configFile: string): string | undefined {
  const paths = new Set<string>();
  for (const { path, mode } of files) {
    if (typeof path !== 'string' || !isSafeRelativePath(path)) return `an unsafe path ${JSON.stringify(path)}`;
    if (mode !== 0o600 && mode !== 0o644) return `${path}: mode ${String(mode)} is neither 0600 nor 0644`;
    if (paths.has(path)) return `${path} is listed twice`;
    paths.add(path);
  }
  if (!paths.has(configFile)) return `there is no ${configFile}`;
  for (const path of paths) {
    // A file where another file needs a directory ("certs" and "certs/a.crt").
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('/');
      if (paths.has(parent)) return `${parent} is both a file and a directory`;
    }
  }
  return undefined;
}

/** What identifies a file's bytes and mode, so that an unchanged file can be shared between generations. */
export function fileIdentity(file: { mode: number; sha256: string }): string {
  return `${file.mode.toString(8)}:${file.sha256}`;
}

export interface FilePlan {
  path: string;
  /**
   * "store": hard-link the file from its object in the content store (a binding's
   * certificate, key or CA bundle, whose bytes the agent holds only there); "link":
   * hard-link it from the current generation, which holds the same bytes; "write": write it.
   */
  action: 'store' | 'link' | 'write';
}

/**
 * How to build a new generation from the current one. A rotation changes one binding's
 * two files, and a proxy may serve thousands: linking what did not change keeps the cost
 * of an apply proportional to the change. Files are never modified after they are
 * written, so sharing an inode between generations is safe. A file without its bytes
 * (a StoredFile) can only come from the store.
 */
export function planGeneration(
  files: ReadonlyArray<{ path: string; mode: number; sha256: string; content?: string }>,
  current: ReadonlyMap<string, string> | undefined,
): FilePlan[] {
  return files.map((file) => ({
    path: file.path,
    action: file.content === undefined ? 'store' : current?.get(file.path) === fileIdentity(file) ? 'link' : 'write',
  }));
}
