#!/usr/bin/env node
// The `mtls-egress` command. Each subcommand lives in src/commands/<name>.ts and is loaded
// only when run, so `inspect` starts without loading the Kubernetes client. To add one,
// add a row to `commands`.

import { readFile } from 'node:fs/promises';

/** Everything a command touches outside itself, so tests can run it in-process. */
export interface CommandIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly readFile: (path: string) => Promise<Uint8Array>;
  readonly now: () => Date;
}

/** Runs with the arguments after the command name; resolves with the exit code. */
export type Command = (argv: readonly string[], io: CommandIo) => Promise<number>;

interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

const commands: Readonly<Record<string, CommandEntry>> = {
  controller: {
    summary: 'run the operator: watch bindings and their Secrets, keep status and proxy configuration current',
    load: async () => {
      const { runController } = await import('./commands/controller.ts');
      return (argv, io) => runController([...argv], { ...io.env });
    },
  },
  agent: {
    summary: 'run beside nginx in a proxy pod: write each proxy config atomically, validate it, reload nginx, report the hash',
    load: async () => {
      const { runAgent } = await import('./commands/agent.ts');
      return (argv, io) => runAgent([...argv], { ...io.env });
    },
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
    summary: "render the egress proxy's nginx config from binding and Secret manifests, offline",
    load: async () => {
      const { runRender } = await import('./commands/render.ts');
      return (argv, io) => runRender([...argv], { stdout: (s) => io.stdout.write(s), stderr: (s) => io.stderr.write(s), now: io.now });
    },
  },
};

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
