import { link, mkdir, readdir, readlink, rename, rm, rmdir, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { HeldFile } from '../contract/proxy-objects.ts';
import { ContentStore, objectsDirectory, syncDirectory, writeNewFile } from './content-store.ts';
import { currentLink, currentLinkTemp, entriesToRemove, isGenerationName, planGeneration } from './generations.ts';
import { forEachLimited } from '../runner/limited.ts';

/** Where retired generations wait to be removed; never a generation name. */
const trashPrefix = '.retired-';
/** Files linked or written at once. */
const fileConcurrency = 16;

/** A file of a generation, with its digest: its bytes in hand, or in the content store. */
export type GenerationFile = HeldFile;

/** Files of the current generation that a new one may hard-link: path → fileIdentity. */
export interface ReusableGeneration {
  generation: string;
  identities: ReadonlyMap<string, string>;
}

/**
 * The agent's config directory on disk (see generations.ts for the layout). Every write
 * goes to a generation the server does not read yet, and is on disk (fsync) before `point`
 * makes it current, so a crash or a power cut leaves `current` at a complete generation.
 */
export class ConfigDir {
  readonly root: string;
  /** DIR/objects: each binding file's bytes, once, linked into every generation that uses them. */
  readonly store: ContentStore;

  constructor(root: string) {
    this.root = root;
    this.store = new ContentStore(join(root, objectsDirectory));
  }

  async prepare(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await mkdir(this.store.root, { recursive: true, mode: 0o700 });
  }

  /** A generation's directory, or the current one (through the symlink). */
  generationPath(generation: string = currentLink): string {
    return join(this.root, generation);
  }

  /** A file of a generation, or of whichever is current (through the symlink): nginx reads DIR/current/nginx.conf. */
  configPath(file: string, generation: string = currentLink): string {
    return join(this.root, generation, file);
  }

  /** The generation `current` points at, if any. */
  async current(): Promise<string | undefined> {
    try {
      const target = await readlink(join(this.root, currentLink));
      return isGenerationName(target) ? target : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
      throw err;
    }
  }

  /**
   * Writes a generation from scratch (a leftover of a crashed attempt is removed first):
   * directories 0700, each file with its mode. A file without its bytes (a StoredFile) is
   * a hard link to its object, which store.store() wrote; files the current generation
   * already holds byte for byte are hard-linked from it instead of written again.
   */
  async write(generation: string, files: readonly GenerationFile[], reuse?: ReusableGeneration): Promise<{ written: number; linked: number }> {
    const dir = join(this.root, generation);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    const directories = new Set([dir]);
    const byPath = new Map(files.map((file) => [file.path, file]));
    const plan = planGeneration(files, reuse?.identities);
    for (const { path } of plan) {
      const parent = dirname(join(dir, path));
      if (directories.has(parent)) continue;
      await mkdir(parent, { recursive: true, mode: 0o700 });
      directories.add(parent);
    }
    let written = 0;
    let linked = 0;
    const one = async ({ path, action }: (typeof plan)[number]): Promise<void> => {
      const file = byPath.get(path)!;
      const target = join(dir, path);
      if (action === 'link' && reuse && (await linkQuietly(join(this.root, reuse.generation, path), target))) {
        linked++;
        return;
      }
      if (action === 'store' && (await linkQuietly(this.store.objectPath(file), target))) {
        linked++;
        return;
      }
      // A file system without hard links: a copy (read from the object when the file is stored).
      await writeNewFile(target, await this.store.read(file), file.mode);
      written++;
    };
    // Several at a time: at ten thousand bindings a generation is tens of thousands of
    // files, and each link or fsync waits on the disk, not on this thread.
    await forEachLimited(plan, fileConcurrency, one);
    for (const directory of directories) await syncDirectory(directory);
    return { written, linked };
  }

  /**
   * Makes `generation` current: a new symlink renamed over `current`, which replaces it
   * in one step. Undefined removes `current` (a rollback to "nothing applied yet").
   */
  async point(generation: string | undefined): Promise<void> {
    const link = join(this.root, currentLink);
    if (generation === undefined) {
      await unlink(link).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    } else {
      const temp = join(this.root, currentLinkTemp);
      await rm(temp, { force: true });
      await symlink(generation, temp);
      await rename(temp, link);
    }
    await syncDirectory(this.root);
  }

  async remove(generation: string): Promise<void> {
    if (!isGenerationName(generation)) throw new Error(`ConfigDir.remove: ${generation} is not a generation`);
    await rm(join(this.root, generation), { recursive: true, force: true });
  }

  /** Removes every generation but `keep`; returns what it removed. */
  async prune(keep: ReadonlyArray<string | undefined>): Promise<string[]> {
    const removed = await this.retire(keep);
    await this.emptyTrash();
    return removed;
  }

  /**
   * Moves every generation but `keep` out of the way, one rename each, so that removing
   * their files (ten thousand at ten thousand bindings) can wait: emptyTrash does it, and
   * no generation the agent writes meanwhile can be among them.
   */
  async retire(keep: ReadonlyArray<string | undefined>): Promise<string[]> {
    const retired = entriesToRemove(await readdir(this.root), keep);
    for (const name of retired) {
      if (isGenerationName(name)) await rename(join(this.root, name), join(this.root, `${trashPrefix}${name}.${process.hrtime.bigint()}`));
      else await rm(join(this.root, name), { recursive: true, force: true });
    }
    return retired;
  }

  /** Removes what retire moved away. */
  async emptyTrash(): Promise<void> {
    for (const name of await readdir(this.root)) {
      if (name.startsWith(trashPrefix)) await removeTree(join(this.root, name));
    }
  }
}

/**
 * One entry at a time. A retired generation is tens of thousands of files at ten thousand
 * bindings, and a recursive rm keeps every thread of libuv's pool busy until it is done:
 * the next change's readlink, file writes and DNS lookups, which wait on that pool, waited
 * half a second behind it (bench:scale, rotations at 10,000).
 */
async function removeTree(path: string): Promise<void> {
  const entries = await readdir(path, { withFileTypes: true }).catch(ignoreMissing);
  for (const entry of entries ?? []) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) await removeTree(child);
    else await unlink(child).catch(ignoreMissing);
  }
  await rmdir(path).catch(ignoreMissing);
}

function ignoreMissing(err: NodeJS.ErrnoException): undefined {
  if (err.code !== 'ENOENT') throw err;
  return undefined;
}

async function linkQuietly(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch {
    // The source is gone or the file system has no hard links: write the file instead.
    return false;
  }
}
