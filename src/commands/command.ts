// The one shape of an `mtls-egress` command. Its own module, so that cli.ts can load the
// commands and the commands can name their io without importing cli.ts back. Its parts
// come from config.ts, which imports nothing of the command layer.

import type { Environment, Output } from '../config.ts';

/**
 * Everything a command touches outside itself, so tests can run it in-process. The
 * long-running commands (controller, agent) use env, stdout and stderr until their flags
 * are read; once running they log through pino to the process's stdout, watch the API
 * server and stop on SIGTERM or SIGINT, as a process in a pod does.
 */
export interface CommandIo {
  readonly env: Environment;
  readonly stdout: Output;
  readonly stderr: Output;
  readonly readFile: (path: string) => Promise<Uint8Array>;
  /** The clock when a command is given no --now. */
  readonly now: () => Date;
}

/** Runs with the arguments after the command name; resolves with the exit code. */
export type Command = (argv: readonly string[], io: CommandIo) => Promise<number>;
