import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseFlagsOrUsage, parseRenderArgs, renderUsage } from '../config.ts';
import type { CommandIo } from './command.ts';
import { collectManifests, InputError, readManifestDocuments, type Manifests } from '../manifests/read-manifests.ts';
import { printable } from '../printable.ts';
import { translateManifests } from '../manifests/translate-manifests.ts';
import { byKey, type EgressRoute, type LeftOut } from '../model/egress-routes.ts';
import { bindingDirectories } from '../contract/proxy-objects.ts';
import { dataPlanes } from '../dataplane/registry.ts';
import { hostForUrl, type RenderedConfig } from '../render/files.ts';
import { dnsResolve } from '../inputs/host-resolution.ts';

/** The first line of every config a renderer writes: how --out recognises an earlier render. */
const renderedMarker = '# Rendered by mtls-egress';
/** What each data plane runs from: a file the marker opens is an earlier render, whichever the plane. */
const mainFiles = Object.values(dataPlanes).map((driver) => driver.configFile);

/**
 * `mtls-egress render`: manifests on disk → the files the proxy would run, written to
 * --out, and one line per binding saying where to call it or why it was left out. What
 * it prints and writes outside the key files never holds key material or passwords: the
 * lines carry reasons and the identity core's messages, which are written not to.
 */
export async function runRender(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlagsOrUsage('render', renderUsage, io, () => parseRenderArgs(argv, io.now));
  if (!parsed.ok) return parsed.exitCode;
  const args = parsed.config;

  let manifests: Manifests;
  try {
    manifests = collectManifests(await readManifestDocuments(args.files), (text) => io.stderr.write(text));
    await checkOutDir(args.out);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    io.stderr.write(`mtls-egress render: ${err.message}\n`);
    return 2;
  }

  const { routes, leftOut } = await translateManifests(manifests.bindings, manifests.secrets, {
    now: args.now,
    listenerPorts: args.listenerPorts,
    endpointFor: (port) => `http://${hostForUrl(args.listenAddress)}:${port}`,
    resolveHosts: dnsResolve(),
  });
  const driver = dataPlanes[args.dataPlane];
  const rendered = driver.render(routes, { listenAddress: args.listenAddress, listenerPorts: args.listenerPorts, systemTrustBundle: args.systemTrustBundle });
  await writeRendered(args.out, rendered, driver.configFile);

  for (const line of bindingLines(routes, [...manifests.unreadable, ...leftOut], args.listenAddress)) io.stdout.write(`${line}\n`);
  const out = resolve(args.out);
  const run = driver.runCommand(out);
  io.stderr.write(
    `rendered ${routes.length} of ${routes.length + leftOut.length + manifests.unreadable.length} bindings into ${out} (sha256 ${rendered.hash})\nrun it: ${run}\n`,
  );
  return leftOut.length + manifests.unreadable.length === 0 ? 0 : 1;
}

function bindingLines(routes: readonly EgressRoute[], leftOut: readonly LeftOut[], listenAddress: string): string[] {
  // Wildcard listeners are called on loopback from the same machine.
  const callHost = listenAddress === '0.0.0.0' ? '127.0.0.1' : listenAddress === '::' ? '::1' : listenAddress;
  const rows = [
    ...routes.map((r) => ({ key: r.key, text: `http://${hostForUrl(callHost)}:${r.listenerPort}  → ${hostForUrl(r.host)}:${r.port}` })),
    ...leftOut.map((l) => ({ key: l.key, text: `left out: ${l.reason}: ${l.message}` })),
  ].sort(byKey);
  const width = Math.max(0, ...rows.map((r) => printable(r.key).length));
  return rows.map((r) => `${printable(r.key).padEnd(width)}  ${printable(r.text)}`);
}

/** The directories below --out that render writes into: where binding files live; the main config names nothing else. */
const outSubdirectories = bindingDirectories;

/**
 * --out must be new, empty, or an earlier render: never someone's directory that happens
 * to be there. And nothing render writes may lead outside it: --out itself, certs/, ca/
 * and every file in them must be what they look like, not a symbolic link planted in an
 * earlier output directory, which render would otherwise write, chmod or delete through.
 */
async function checkOutDir(out: string): Promise<void> {
  const outInfo = await lstatOrUndefined(out, '--out');
  if (outInfo === undefined) return;
  if (outInfo.isSymbolicLink()) throw new InputError(`--out ${printable(out)} is a symbolic link; render writes only into a directory it can see is one`);
  if (!outInfo.isDirectory()) throw new InputError(`--out ${printable(out)} exists and is not a directory`);
  const entries = await readdir(out).catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`--out ${printable(out)}: cannot be read (${err.code ?? 'error'})`);
  });
  if (entries.length === 0) return;
  let earlier = false;
  for (const main of mainFiles) {
    const conf = join(out, main);
    const confInfo = await lstatOrUndefined(conf, '--out');
    if (confInfo?.isFile() && (await startsWith(conf, renderedMarker))) earlier = true;
  }
  if (!earlier) throw new InputError(`--out ${printable(out)} is not empty and holds no earlier render; choose a new directory`);
  for (const name of outSubdirectories) {
    const dir = join(out, name);
    const info = await lstatOrUndefined(dir, '--out');
    if (info === undefined) continue;
    if (!info.isDirectory())
      throw new InputError(
        `--out ${printable(out)}: ${name}/ is ${info.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; render will not write through it`,
      );
    for (const entry of await readdir(dir)) {
      if ((await lstat(join(dir, entry))).isSymbolicLink()) {
        throw new InputError(`--out ${printable(out)}: ${name}/${printable(entry)} is a symbolic link; render will not write through it`);
      }
    }
  }
}

async function lstatOrUndefined(path: string, what: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(`${what} ${printable(path)}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

async function startsWith(file: string, marker: string): Promise<boolean> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buffer = Buffer.alloc(marker.length);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.toString('utf8', 0, bytesRead) === marker;
  } finally {
    await handle.close();
  }
}

/** Creates a file that did not exist, never following a link: the flags refuse both. */
const createExclusive = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Writes every file through a temporary name and a rename, so a running nginx that is
 * reloaded meanwhile reads either the old file or the new one. Key files are created
 * 0600, never widened even briefly, and the main config goes last, so it never names a file
 * not yet written. Certificates and keys of bindings no longer rendered are removed;
 * logs, pid and temp directories of a running nginx are left alone. checkOutDir has
 * made sure no path here is a link; the exclusive, no-follow creates and the rename
 * (which replaces a name, never follows it) keep it so.
 */
async function writeRendered(out: string, rendered: RenderedConfig, mainFile: string): Promise<void> {
  await mkdir(out, { recursive: true });
  const wanted = new Set(rendered.files.map((f) => f.path));
  for (const name of outSubdirectories) {
    const dir = join(out, name);
    await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    // chmod through a handle opened without following links: the directory itself.
    const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      await handle.chmod(0o700);
    } finally {
      await handle.close();
    }
    for (const entry of await readdir(dir)) if (!wanted.has(`${name}/${entry}`)) await rm(join(dir, entry), { force: true });
  }
  const ordered = [...rendered.files.filter((f) => f.path !== mainFile), ...rendered.files.filter((f) => f.path === mainFile)];
  for (const file of ordered) {
    const target = join(out, file.path);
    if (!isInside(out, target)) throw new Error(`render: ${file.path} is not inside the output directory`);
    const temporary = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    const handle = await open(temporary, createExclusive, file.mode);
    try {
      await handle.chmod(file.mode); // exact, whatever the umask
      await handle.writeFile(file.content, 'utf8');
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
  }
}

function isInside(dir: string, path: string): boolean {
  const relation = relative(resolve(dir), resolve(path));
  return relation !== '' && !relation.startsWith('..') && !isAbsolute(relation);
}
