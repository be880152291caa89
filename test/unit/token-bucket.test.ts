import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenBucket } from '../../src/runner/token-bucket.ts';
import { ManualClock } from '../support/manual-clock.ts';

/** Lets every settled promise's callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('TokenBucket', () => {
  test('a burst goes at once; after it, one token per 1/qps seconds', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ qps: 10, burst: 3, clock });
    const granted: number[] = [];
    for (let i = 0; i < 6; i++) void bucket.take().then(() => granted.push(i));
    await settle();
    assert.deepEqual(granted, [0, 1, 2]);
    assert.equal(bucket.waiting, 3);
    clock.advance(99);
    await settle();
    assert.deepEqual(granted, [0, 1, 2], 'a token is whole only after 100 ms at 10 qps');
    clock.advance(1);
    await settle();
    assert.deepEqual(granted, [0, 1, 2, 3]);
    clock.advance(200);
    await settle();
    assert.deepEqual(granted, [0, 1, 2, 3, 4, 5]);
    assert.equal(bucket.waiting, 0);
    assert.equal(clock.pending, 0, 'no timer is left once nobody waits');
  });

  test('an idle bucket refills up to its burst, never beyond', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ qps: 100, burst: 2, clock });
    await bucket.take();
    await bucket.take();
    clock.advance(60_000);
    let granted = 0;
    for (let i = 0; i < 3; i++) void bucket.take().then(() => granted++);
    await settle();
    assert.equal(granted, 2);
  });

  test('every high-priority waiter goes before any low one, each in order', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ qps: 1, burst: 1, clock });
    await bucket.take();
    const order: string[] = [];
    void bucket.take('low').then(() => order.push('event-1'));
    void bucket.take('high').then(() => order.push('status-1'));
    void bucket.take('low').then(() => order.push('event-2'));
    void bucket.take('high').then(() => order.push('status-2'));
    for (let i = 0; i < 4; i++) {
      clock.advance(1000);
      await settle();
    }
    assert.deepEqual(order, ['status-1', 'status-2', 'event-1', 'event-2']);
  });

  test('held, low-priority callers get no token even with tokens to spare, until resume()', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ qps: 100, burst: 10, clock });
    let statusWaiting = true;
    bucket.holdLowWhile(() => statusWaiting);
    const order: string[] = [];
    void bucket.take('low').then(() => order.push('proxy object'));
    void bucket.take('high').then(() => order.push('status'));
    clock.advance(1000);
    await settle();
    assert.deepEqual(order, ['status'], 'the status write waits for a connection, not a token: the low caller still waits');
    statusWaiting = false;
    bucket.resume();
    await settle();
    assert.deepEqual(order, ['status', 'proxy object']);
  });

  test('an urgent waiter (a rotated binding’s object) goes before every status write, and is never held', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ qps: 1, burst: 1, clock });
    await bucket.take();
    const statusWaiting = true;
    bucket.holdLowWhile(() => statusWaiting);
    const order: string[] = [];
    void bucket.take('low').then(() => order.push('new object'));
    void bucket.take('high').then(() => order.push('status-1'));
    void bucket.take('urgent').then(() => order.push('rotation-1'));
    void bucket.take('high').then(() => order.push('status-2'));
    void bucket.take('urgent').then(() => order.push('rotation-2'));
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      await settle();
    }
    assert.deepEqual(order, ['rotation-1', 'rotation-2', 'status-1', 'status-2'], 'the low caller is held while status waits');
    assert.equal(bucket.waiting, 1);
  });

  test('qps 0 is no limit, and still holds low-priority callers when told', async () => {
    const bucket = new TokenBucket({ qps: 0, burst: 1, clock: new ManualClock() });
    let held = true;
    bucket.holdLowWhile(() => held);
    let low = 0;
    void bucket.take('low').then(() => low++);
    await Promise.all(Array.from({ length: 100 }, () => bucket.take()));
    await bucket.take('urgent');
    await settle();
    assert.equal(low, 0);
    held = false;
    bucket.resume();
    await settle();
    assert.equal(low, 1);
  });

  test('qps 0 is no limit', async () => {
    const bucket = new TokenBucket({ qps: 0, burst: 1, clock: new ManualClock() });
    await Promise.all(Array.from({ length: 1000 }, () => bucket.take()));
    assert.equal(bucket.waiting, 0);
  });
});
