import { createHash } from 'node:crypto';
import { bundlePath, type RenderedFile } from '../contract/proxy-objects.ts';
import { isIpLiteral, routeValueProblem, type EgressRoute } from '../model/egress-routes.ts';

// What every data plane's renderer (src/dataplane/<plane>/render.ts) produces, and the
// small text rules they share. A file is the contract's: what the renderers make is what
// the proxy objects carry.

export type { RenderedFile } from '../contract/proxy-objects.ts';

/** Debian's CA bundle: the partners' trust when a binding names no serverCA, for a plane that reads it from a file. */
export const defaultSystemTrustBundle = '/etc/ssl/certs/ca-certificates.crt';

export interface RenderedConfig {
  /** Which data plane runs the files (a DataPlaneKind); absent means nginx, the first one. */
  dataPlane?: string;
  /** Sorted by path. */
  files: RenderedFile[];
  /** sha256 over every file's path, mode and content: equal hashes mean equal configs. */
  hash: string;
}

/** Length-prefixed, so no two different file sets hash alike by shifting bytes between name and content. */
export function hashFiles(files: readonly RenderedFile[]): string {
  const hash = createHash('sha256');
  for (const file of files) {
    const content = Buffer.from(file.content, 'utf8');
    hash.update(`${file.path}\0${file.mode.toString(8)}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest('hex');
}

/**
 * A partner's CA bundle as a binding's file, named by its content: the bindings that
 * trust one bundle share one file on the proxy and one object in the API, however many
 * they are (a 900 KiB bundle copied into each of 500 bindings was 450 MB in etcd).
 */
function caBundleFile(pem: string, binding: string): RenderedFile {
  const content = withNewline(pem);
  return { path: bundlePath(createHash('sha256').update(content).digest('hex')), content, mode: 0o644, binding, bundle: true };
}

/** The bundles a route's files include: its partner's CA, when it names one. */
export function routeBundles(route: Pick<EgressRoute, 'key' | 'serverCA'>): RenderedFile[] {
  return route.serverCA ? [caBundleFile(route.serverCA.pem, route.key)] : [];
}

/**
 * A whole render's files, each bundle once: every binding that references a bundle
 * carries it, and the directory holds it once.
 */
export function withoutRepeatedBundles<F extends { path: string; bundle?: true }>(files: readonly F[]): F[] {
  const seen = new Set<string>();
  return files.filter((file) => !file.bundle || (!seen.has(file.path) && seen.add(file.path)));
}

/** A path a config can hold unquoted: no space, quote, semicolon, brace or `$`. */
export function isPlainPath(value: string): boolean {
  return /^[A-Za-z0-9._/-]+$/.test(value);
}

/** IPv6 literals take brackets in listen, server and Host. */
export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Serials and fingerprints come from certificates, which may be odd (negative serials
 * exist in the wild); a comment is no reason to refuse one, but it must stay one line.
 */
export function commentSafe(text: string): string {
  return text.replace(/[^0-9A-Za-z:.-]/g, '?');
}

export function withNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

/**
 * What every renderer asks of its routes as a list, before it writes a line: each key is
 * its namespace/name, no route comes twice (routes come sorted by key), and no value could
 * break out of the config's syntax. A renderer adds its own checks after this one.
 */
export function checkRoutes(routes: readonly EgressRoute[], fail: (message: string) => never): void {
  let previous: string | undefined;
  for (const route of routes) {
    if (route.key !== `${route.namespace}/${route.name}`) fail(`route key ${JSON.stringify(route.key)} does not match its namespace and name`);
    if (route.key === previous) fail(`route ${route.key} appears twice`);
    previous = route.key;
    const problem = routeValueProblem(route);
    if (problem) fail(`route ${route.key}: ${problem}`);
    // The proxy connects to addresses alone: a name here would be resolved by the proxy, unchecked.
    if (!Array.isArray(route.addresses) || route.addresses.length === 0) fail(`route ${route.key}: no checked address to connect to`);
    for (const address of route.addresses) if (!isIpLiteral(address)) fail(`route ${route.key}: address ${JSON.stringify(address)} is not an IP address`);
  }
}
