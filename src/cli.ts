#!/usr/bin/env node
// The `mtls-egress` command. Each subcommand lives in src/commands/<name>.ts and is loaded
// only when run, so `inspect` starts without loading the Kubernetes client. To add one,
// add a row to `commands`.

import { readFile } from 'node:fs/promises';
import type { Command, CommandIo } from './commands/command.ts';

interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

const commands: Readonly<Record<string, CommandEntry>> = {
  controller: {
    summary: 'run the operator: watch bindings and their Secrets, keep status and proxy configuration current',
    load: async () => (await import('./commands/controller.ts')).runController,
  },
  agent: {
    summary: 'run beside nginx or HAProxy in a proxy pod: write each proxy config atomically, validate it, have the data plane serve it, report the hash',
    load: async () => (await import('./commands/agent.ts')).runAgent,
  },
  inspect: {
    summary: 'decode a PFX or a PEM certificate and key, and print the certificate facts (never the key)',
    load: async () => (await import('./commands/inspect.ts')).runInspect,
  },
  validate: {
    summary: 'check binding and Secret manifests offline against the CRD and the certificates they name, before they are applied',
    load: async () => (await import('./commands/validate.ts')).runValidate,
  },
  render: {
    summary: "render the egress proxy's nginx or HAProxy config from binding and Secret manifests, offline",
    load: async () => (await import('./commands/render.ts')).runRender,
  },
};

/** The table's commands, in the order the usage lists them. */
export const commandNames: readonly string[] = Object.keys(commands);

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const lines = Object.entries(commands).map(([name, { summary }]) => `  ${name.padEnd(width)}  ${summary}`);
  return `Usage: mtls-egress <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun "mtls-egress <command> --help" for a command's options.\n`;
}

/** Exit codes: 0 success, 1 the command failed, 2 usage error. */
export async function runCli(argv: readonly string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return 0;
  }
  if (name === undefined) {
    io.stderr.write(usage());
    return 2;
  }
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (entry === undefined) {
    io.stderr.write(`mtls-egress: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return (await entry.load())(rest, io);
}

if (import.meta.main) {
  const io: CommandIo = { env: process.env, stdout: process.stdout, stderr: process.stderr, readFile: (path) => readFile(path), now: () => new Date() };
  process.exitCode = await runCli(process.argv.slice(2), io).catch((error: unknown) => {
    // A bug, not bad input (commands report those themselves): one line, no stack trace.
    process.stderr.write(`mtls-egress: unexpected error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  });
}
