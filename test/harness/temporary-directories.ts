// Directories a test writes to: fresh ones, removed when the test process exits or is interrupted.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeDirectoryOnExit } from './processes.ts';

/** A fresh directory named `mtls-egress-<label>-…`, removed when the test process exits. */
export function temporaryDirectory(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mtls-egress-${label}-`));
  removeDirectoryOnExit(dir);
  return dir;
}
