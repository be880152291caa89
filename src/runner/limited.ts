// Work on many items, a few at a time: file writes, links and reads that wait on the disk
// (libuv's pool), not on this thread, so running several at once shortens a pass, and a
// bound keeps ten thousand of them from queueing at once.

/** Calls `each` on every item, at most `limit` at a time, in the items' order; rejects with the first failure. */
export async function forEachLimited<T>(items: readonly T[], limit: number, each: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await each(items[next++]!);
    }),
  );
}
