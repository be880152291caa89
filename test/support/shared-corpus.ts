// Corpora kept beside the repository, in ../shared (the real-world PFX files), which a
// user's clone does not have. A test that reads one runs when it is there. Outside CI it
// skips with the reason, so a fresh clone passes its own tests; in CI a missing corpus is
// a broken checkout, and the test fails.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory beside the repository that holds the corpora. */
export const sharedDirectory = fileURLToPath(new URL('../../../shared', import.meta.url));

export interface SharedCorpus {
  path: string;
  /** node:test's `skip` option: false when the corpus is here, else why it is not. */
  skip: string | false;
}

/** CI set to anything but empty, "false" or "0": what CI services set, and what a person rarely does. */
export function runsInCi(env: NodeJS.ProcessEnv): boolean {
  const value = env.CI?.trim().toLowerCase() ?? '';
  return value !== '' && value !== 'false' && value !== '0';
}

/**
 * The corpus at `path`, present when `marker` (a file it always has) is in it. Missing,
 * it is skipped outside CI and throws in CI, failing the test file with the reason.
 */
export function sharedCorpusAt(path: string, marker: string, env: NodeJS.ProcessEnv): SharedCorpus {
  if (existsSync(join(path, marker))) return { path, skip: false };
  const missing = `the corpus is not at ${path} (no ${marker})`;
  if (runsInCi(env)) throw new Error(`${missing}; CI is set, so a missing corpus fails: check out ../shared beside the repository`);
  return { path, skip: `${missing}; it lives beside the repository, which a clone does not have (with CI set this fails)` };
}

/** `../shared/<name>`, by the rule above. */
export function sharedCorpus(name: string, marker: string, env: NodeJS.ProcessEnv = process.env): SharedCorpus {
  return sharedCorpusAt(join(sharedDirectory, name), marker, env);
}
