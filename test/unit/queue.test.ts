import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkQueue } from '../../src/runner/queue.ts';

describe('WorkQueue', () => {
  test('a key waits in the queue at most once', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    assert.equal(q.length, 2);
    assert.equal(await q.get(), 'a');
    assert.equal(await q.get(), 'b');
  });

  test('an add during processing is replayed after done, not handed to a second worker', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    q.add('a');
    assert.equal(q.length, 0, 'held back while a worker has it');
    q.done(key!);
    assert.equal(q.length, 1);
    assert.equal(await q.get(), 'a');
  });

  test('a waiting worker receives the next add', async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.add('x');
    assert.equal(await pending, 'x');
  });

  test('backoff doubles per failure, is capped, and forget resets it', () => {
    const q = new WorkQueue({ baseMs: 10, maxMs: 50 });
    assert.deepEqual([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')], [10, 20, 40, 50]);
    assert.equal(q.failures('a'), 4);
    q.forget('a');
    assert.equal(q.addRateLimited('a'), 10);
    q.shutDown();
  });

  test('addAfter: the earlier of two delays wins', async () => {
    const q = new WorkQueue();
    q.addAfter('a', 60_000);
    q.addAfter('a', 1);
    assert.equal(await q.get(), 'a');
    q.shutDown();
  });

  test('shutDown releases waiting workers', async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.shutDown();
    assert.equal(await pending, undefined);
    q.add('late');
    assert.equal(q.length, 0);
  });
});

describe('WorkQueue and an aborted worker', () => {
  test('an aborted caller gets nothing, even from a full queue, and the keys wait for the next run', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    const stop = new AbortController();
    stop.abort();
    assert.equal(await q.get(stop.signal), undefined);
    assert.equal(q.length, 2);
    assert.equal(await q.get(), 'a');
  });
});
