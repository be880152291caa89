import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { forEachLimited } from '../../src/runner/limited.ts';

describe('forEachLimited', () => {
  test('every item once, in order of start, never more than the limit at once', async () => {
    const started: number[] = [];
    let running = 0;
    let most = 0;
    await forEachLimited([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      started.push(n);
      most = Math.max(most, ++running);
      await new Promise<void>((resolve) => setImmediate(resolve));
      running--;
    });
    assert.deepEqual(started, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(most, 3);
  });

  test('no items: nothing runs', async () => {
    await forEachLimited([], 4, () => assert.fail('called'));
  });

  test('a failure rejects', async () => {
    await assert.rejects(
      forEachLimited([1, 2], 2, async (n) => {
        if (n === 2) throw new Error('two');
      }),
      /two/,
    );
  });
});
