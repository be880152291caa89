import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  /** What is being waited for, worded to finish "timed out waiting for …". */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
}

/** Thrown from an attempt to give up at once: for states that waiting cannot fix, such as a process that exited. */
export class StopPolling extends Error {
  override name = 'StopPolling';
}

/**
 * Calls `attempt` until it returns something other than undefined, or fails after the
 * deadline with the last error it threw. Tests wait on state with this instead of fixed
 * sleeps, so a slow machine makes them slower, not flaky.
 */
export async function pollUntil<T>(attempt: () => Promise<T | undefined> | T | undefined, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  const intervalMs = options.intervalMs ?? 100;
  let lastError: unknown;
  for (;;) {
    try {
      const result = await attempt();
      if (result !== undefined) return result;
      lastError = undefined;
    } catch (error) {
      if (error instanceof StopPolling) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${options.timeoutMs}ms waiting for ${options.what}${cause}`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}
