import { readFile } from 'node:fs/promises';
import type { CommandIo } from '../../src/commands/command.ts';
import type { Environment } from '../../src/config.ts';

/** A command's io for a test: what it writes is kept in strings; files and the clock are real unless given. */
export interface CapturedIo {
  readonly io: CommandIo;
  readonly stdout: string;
  readonly stderr: string;
}

export function captureIo(options: { env?: Environment; now?: () => Date; readFile?: (path: string) => Promise<Uint8Array> } = {}): CapturedIo {
  let stdout = '';
  let stderr = '';
  return {
    io: {
      env: options.env ?? {},
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      readFile: options.readFile ?? ((path) => readFile(path)),
      now: options.now ?? (() => new Date()),
    },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}
