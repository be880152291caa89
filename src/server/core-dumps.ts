import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

// The controller and the agent hold every binding's decoded private key, and a core dump
// would write them to the node's disk. The image's entrypoint runs node under
// `prlimit --core=0`; a process started some other way (a binary on a workstation, an
// image of one's own) checks at start, lowers the limit itself where it can, and says so
// where it cannot. Children started after this (HAProxy, nginx) inherit the limit.

/** RLIMIT_CORE, soft and hard, in bytes; Infinity for "unlimited". */
export interface CoreLimit {
  soft: number;
  hard: number;
}

/** RLIMIT_CORE from the text of /proc/<pid>/limits; undefined when the line is not there. */
export function parseCoreLimit(limits: string): CoreLimit | undefined {
  const line = /^Max core file size\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!line) return undefined;
  const value = (text: string): number => (text === 'unlimited' ? Infinity : Number(text));
  const soft = value(line[1]!);
  const hard = value(line[2]!);
  return Number.isNaN(soft) || Number.isNaN(hard) ? undefined : { soft, hard };
}

export interface CoreDumpIo {
  /** The text of /proc/self/limits. */
  readLimits(): Promise<string>;
  /** Sets this process's RLIMIT_CORE to 0, soft and hard (Node has no setrlimit). */
  turnOff(): Promise<void>;
}

const run = promisify(execFile);

const procIo: CoreDumpIo = {
  readLimits: () => readFile('/proc/self/limits', 'utf8'),
  turnOff: async () => {
    await run('prlimit', ['--pid', String(process.pid), '--core=0'], { timeout: 5_000 });
  },
};

/** What the start found: core dumps were off, were turned off now, are still on, or cannot be told. */
export type CoreDumps = 'off' | 'turned-off' | 'on' | 'unknown';

/** Makes sure this process writes no core dump: checks RLIMIT_CORE, lowers it to 0 where it is not, and logs what it found. */
export async function turnOffCoreDumps(logger: Logger, io: CoreDumpIo = procIo): Promise<CoreDumps> {
  const read = async (): Promise<CoreLimit | undefined> => parseCoreLimit(await io.readLimits().catch(() => ''));
  const before = await read();
  if (before === undefined) {
    logger.debug('cannot read RLIMIT_CORE (no /proc/self/limits); core dumps are as the platform sets them');
    return 'unknown';
  }
  // The hard limit too: a child may raise its soft limit up to it (HAProxy's set-dumpable does).
  if (isOff(before)) return 'off';
  const failure = await io.turnOff().then(
    () => undefined,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );
  const after = await read();
  if (after !== undefined && isOff(after)) {
    logger.info({ rlimitCore: printable(before) }, 'core dumps turned off (RLIMIT_CORE 0): this process holds private keys');
    return 'turned-off';
  }
  logger.warn(
    { rlimitCore: printable(after ?? before), ...(failure ? { error: failure } : {}) },
    'core dumps are on: a crash would write every private key this process holds to disk; run it under `prlimit --core=0` (the image does)',
  );
  return 'on';
}

function isOff(limit: CoreLimit): boolean {
  return limit.soft === 0 && limit.hard === 0;
}

/** As /proc prints it: JSON has no Infinity. */
function printable(limit: CoreLimit): { soft: number | 'unlimited'; hard: number | 'unlimited' } {
  const one = (n: number): number | 'unlimited' => (n === Infinity ? 'unlimited' : n);
  return { soft: one(limit.soft), hard: one(limit.hard) };
}
