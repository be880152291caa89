import { createHash } from 'node:crypto';

// What every data plane's renderer produces, and the small text rules they share.

export interface RenderedFile {
  /** Relative to the directory the data plane's config is in. */
  path: string;
  content: string;
  /** 0o600 marks key material: it belongs in a Secret, never in a ConfigMap or a log. */
  mode: 0o600 | 0o644;
  /** The binding ("namespace/name") the file belongs to, for files that belong to one. */
  binding?: string;
}

export interface RenderedConfig {
  /** Which data plane runs the files; absent means nginx, the first one. */
  dataPlane?: 'nginx' | 'haproxy';
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
