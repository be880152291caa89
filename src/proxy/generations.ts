// Pure decisions about the agent's config directory. The layout:
//
//   DIR/gen-<hash>/nginx.conf, certs/…, ca/…   one directory per config, never changed once written
//   DIR/current -> gen-<hash>                   the one nginx runs (-c DIR/current/nginx.conf)
//
// A new config is written into a generation directory nginx does not read, validated
// there, and made current by renaming a fresh symlink over `current`, which is atomic:
// nginx sees the old files or the new ones, never a mix.

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
 * A path the manifest may name: relative, below the generation directory, made of plain
 * segments. The manifest comes from the API, so a path such as "../current" or
 * "/etc/passwd" must never reach the file system.
 */
export function isSafeRelativePath(path: string): boolean {
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(path)) return false;
  return path.split('/').every((segment) => segment !== '.' && segment !== '..');
}

/**
 * Why an assembled file set cannot be applied, or undefined when it can: every path
 * safe and listed once, none both a file and a directory, and the data plane's config
 * file present. The files come from objects anyone with write access to the proxy
 * namespace could edit, so a path such as "../current" must never reach the file system.
 */
export function filesProblem(files: ReadonlyArray<{ path: unknown; mode: unknown }>, dataPlane: 'nginx' | 'haproxy'): string | undefined {
  const paths = new Set<string>();
  for (const { path, mode } of files) {
    if (typeof path !== 'string' || !isSafeRelativePath(path)) return `an unsafe path ${JSON.stringify(path)}`;
    if (mode !== 0o600 && mode !== 0o644) return `${path}: mode ${String(mode)} is neither 0600 nor 0644`;
    if (paths.has(path)) return `${path} is listed twice`;
    paths.add(path);
  }
  const configFile = dataPlane === 'haproxy' ? 'haproxy.cfg' : 'nginx.conf';
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

const dnsName = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const ipLiteral = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:.]*)$/i;

/**
 * The agent turns a server into runtime API commands, where a space, a ";" or a newline
 * would start another argument or command: every value must be exactly what the renderer
 * makes, whoever wrote the object. `paths` are the binding's own files.
 */
export function haproxyServerProblem(entry: unknown, key: string, paths: ReadonlySet<string>): string | undefined {
  const s = (entry ?? {}) as Record<string, unknown>;
  const port = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
  if (typeof entry !== 'object' || entry === null) return 'no server';
  if (s.key !== key) return 'the server belongs to another binding';
  if (!port(s.listenerPort) || s.backend !== `p${String(s.listenerPort)}`) return 'the backend is not p<listenerPort>';
  if (typeof s.server !== 'string' || !/^s[0-9a-f]{12}$/.test(s.server)) return 'the server name is not s<12 hex digits>';
  if (typeof s.host !== 'string' || !(dnsName.test(s.host) || ipLiteral.test(s.host))) return 'the host is not a DNS name or an IP address';
  if (!port(s.port)) return 'the port is not a port number';
  if (typeof s.serverName !== 'string' || !dnsName.test(s.serverName)) return 'the serverName is not a DNS name';
  if (typeof s.hostHeader !== 'string' || !/^[a-z0-9.:[\]-]+$/i.test(s.hostHeader)) return 'the Host header is not host[:port]';
  if (typeof s.certificateFile !== 'string' || !/^certs\/[A-Za-z0-9._-]+\.pem$/.test(s.certificateFile) || !paths.has(s.certificateFile))
    return "the certificate file is not one of the binding's certs/ files";
  if (s.caFile !== '@system-ca' && (typeof s.caFile !== 'string' || !/^ca\/[A-Za-z0-9._-]+\.pem$/.test(s.caFile) || !paths.has(s.caFile)))
    return "the CA file is neither @system-ca nor one of the binding's ca/ files";
  if (typeof s.fingerprintSha256 !== 'string' || typeof s.serialNumber !== 'string') return 'no certificate fingerprint or serial';
  return undefined;
}

/** What identifies a file's bytes and mode, so that an unchanged file can be shared between generations. */
export function fileIdentity(file: { mode: number; sha256: string }): string {
  return `${file.mode.toString(8)}:${file.sha256}`;
}

export interface FilePlan {
  path: string;
  /** "link": hard-link the file from the current generation, which holds the same bytes; "write": write it. */
  action: 'link' | 'write';
}

/**
 * How to build a new generation from the current one. A rotation changes one binding's
 * two files, and a proxy may serve thousands: linking what did not change keeps the cost
 * of an apply proportional to the change. Files are never modified after they are
 * written, so sharing an inode between generations is safe.
 */
export function planGeneration(
  files: ReadonlyArray<{ path: string; mode: number; sha256: string }>,
  current: ReadonlyMap<string, string> | undefined,
): FilePlan[] {
  return files.map((file) => ({ path: file.path, action: current?.get(file.path) === fileIdentity(file) ? 'link' : 'write' }));
}
