import { access, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { HeldFile, ProxyFile, StoredFile } from '../contract/proxy-objects.ts';
import { forEachLimited } from '../runner/limited.ts';

// The agent's content-addressed store: each certificate, key and CA bundle it serves, once,
// whatever the number of generations that use it.
//
//   DIR/objects/<sha256>-<mode>    written once (temp file, fsync, rename), never changed
//   DIR/gen-<hash>/certs/…         a hard link to its object
//
// An object is named only by the digest the agent computed over the bytes itself (the
// informer transform), never by anything an API object says, so a hand-edited Secret
// cannot put bytes under another file's name. The agent's cache holds StoredFiles (path,
// mode, digest); the bytes of a file not yet stored wait in `pending` until the next
// apply stores them and has served them, and then only the object on disk has them.

export const objectsDirectory = 'objects';

const objectPattern = /^([0-9a-f]{64})-(600|644)$/;
const tempSuffix = '.tmp';
/** Objects written at once. */
const objectConcurrency = 16;

/** The object that holds a file's bytes at its mode: the same bytes at another mode are another object, so a link never changes a mode. */
export function objectName(file: { sha256: string; mode: number }): string {
  const name = `${file.sha256}-${file.mode.toString(8)}`;
  if (!objectPattern.test(name))
    throw new Error(`objectName: ${JSON.stringify(file.sha256)} at ${file.mode.toString(8)} is not a sha256 digest at 0600 or 0644`);
  return name;
}

export function isObjectName(name: string): boolean {
  return objectPattern.test(name);
}

/**
 * An object written this recently is never removed: bytes are stored as the watch
 * delivers them, in the background, and the apply that links one may come a moment later
 * than a look at the directory that began before the cache named it.
 */
export const recentObjectMs = 60_000;

/**
 * Which entries of the objects directory to remove: an object no generation links (its
 * only link is its own name), that no file in the agent's cache names (a binding left out
 * now may be served again), that no apply in progress has just stored, and that was not
 * written in the last recentObjectMs. A leftover temp file of a crashed write goes too,
 * unless a write is in progress.
 */
export function objectsToRemove(
  entries: ReadonlyArray<{ name: string; links: number; writtenAt: number }>,
  referenced: ReadonlySet<string>,
  inUse: ReadonlySet<string>,
  writing: boolean,
  now: number,
): string[] {
  return entries
    .filter(({ name, links, writtenAt }) =>
      name.endsWith(tempSuffix) ? !writing : isObjectName(name) && links <= 1 && !referenced.has(name) && !inUse.has(name) && now - writtenAt >= recentObjectMs,
    )
    .map(({ name }) => name)
    .sort();
}

/** What reads a file's bytes: the bytes it carries, or its object's. */
export interface ContentReader {
  read(file: HeldFile): Promise<string>;
}

export class ContentStore implements ContentReader {
  readonly root: string;
  /** Bytes the cache named that no apply has stored and served yet, by object name. */
  readonly #pending = new Map<string, string>();
  /** Objects the apply in progress stored: their bytes are dropped when it is done, and a prune leaves them alone until then. */
  readonly #stored = new Set<string>();
  #writing = 0;
  /** store() calls, one after the other: the background's and an apply's never write one object twice at once. */
  #queue: Promise<unknown> = Promise.resolve();
  #storeSoon = false;

  constructor(root: string) {
    this.root = root;
  }

  /** Where a file's object is (whether or not it has been stored yet). */
  objectPath(file: { sha256: string; mode: number }): string {
    return join(this.root, objectName(file));
  }

  /**
   * A file as the cache keeps it: its digest and no bytes, which wait in memory until the
   * next apply stores them. The digest is one the agent computed over these bytes
   * (readBindingObject, readBundleObject), never one an API object states.
   */
  hold(file: ProxyFile): StoredFile {
    const { content, ...stored } = file;
    this.#pending.set(objectName(file), content);
    this.#storeInBackground();
    return stored;
  }

  /**
   * Stores what is pending soon, off any apply: a new replica's watch delivers ten thousand
   * bindings before its first apply, and their bytes would otherwise all wait in the heap
   * for it (about 29 MB at ten thousand, at the agent's peak). A write that fails here is
   * left pending for the apply's own store(), which reports it.
   */
  #storeInBackground(): void {
    if (this.#storeSoon) return;
    this.#storeSoon = true;
    setImmediate(() => {
      this.#storeSoon = false;
      this.store().catch(() => undefined);
    });
  }

  /** How many files' bytes are in memory. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Stores every pending file: once, as a temp file written and synced, then renamed to its
   * name. An object already on disk is not written again (its name is its content). Once
   * on disk its bytes leave the heap; the names stay in use (not pruned) until release().
   * Calls run one after the other, the background's and an apply's alike.
   */
  store(): Promise<{ stored: number }> {
    const run = this.#queue.then(
      () => this.#storeNow(),
      () => this.#storeNow(),
    );
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #storeNow(): Promise<{ stored: number }> {
    this.#writing++;
    try {
      await mkdir(this.root, { recursive: true, mode: 0o700 });
      let stored = 0;
      const todo = [...this.#pending].filter(([name]) => !this.#stored.has(name));
      const one = async ([name, content]: [string, string]): Promise<void> => {
        const target = join(this.root, name);
        if (!(await exists(target))) {
          await writeObject(target, content, Number.parseInt(name.slice(65), 8));
          stored++;
        }
        // On disk: the bytes leave the heap now, and a read finds them in the object.
        this.#stored.add(name);
        this.#pending.delete(name);
      };
      // Several at a time, as ConfigDir writes a generation: a new replica stores every
      // binding's files at once, and each fsync waits on the disk, not on this thread.
      await forEachLimited(todo, objectConcurrency, one);
      // The names are what a generation's links reach the bytes by after a crash too.
      if (stored > 0) await syncDirectory(this.root);
      return { stored };
    } finally {
      this.#writing--;
    }
  }

  /** The apply that stored them is done: what it stored is linked or named by the cache, and a prune may judge it again. */
  release(): void {
    for (const name of this.#stored) this.#pending.delete(name);
    this.#stored.clear();
  }

  async read(file: HeldFile): Promise<string> {
    if ('content' in file) return file.content;
    const name = objectName(file);
    return this.#pending.get(name) ?? (await readFile(join(this.root, name), 'utf8'));
  }

  /** Removes the objects objectsToRemove names; `referenced` is every object the agent's cache names. */
  async prune(referenced: ReadonlySet<string>, now = Date.now()): Promise<string[]> {
    const names = await readdir(this.root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    const entries: Array<{ name: string; links: number; writtenAt: number }> = [];
    for (const name of names) {
      const info = await stat(join(this.root, name)).catch(() => undefined);
      if (info?.isFile()) entries.push({ name, links: info.nlink, writtenAt: info.mtimeMs });
    }
    const inUse = new Set([...this.#stored, ...this.#pending.keys()]);
    const removed = objectsToRemove(entries, referenced, inUse, this.#writing > 0, now);
    for (const name of removed) await unlink(join(this.root, name)).catch(() => undefined);
    return removed;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Makes a directory's entries (new files, a renamed symlink) durable. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A new file (never one that exists) with its bytes and mode, on disk before it returns. */
export async function writeNewFile(path: string, content: string, mode: number): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.writeFile(content, 'utf8');
    // open()'s mode passes through the umask; the one asked for is the one wanted.
    await handle.chmod(mode);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

async function writeObject(target: string, content: string, mode: number): Promise<void> {
  const temp = `${target}.${process.pid}${tempSuffix}`;
  await rm(temp, { force: true });
  await writeNewFile(temp, content, mode);
  await rename(temp, target);
}
