import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { IdentityCache } from '../../src/inputs/identity-cache.ts';
import type { CertificateInput } from '../../src/model/certificate-input.ts';
import type { IdentityOutcome } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import { facts } from '../fixtures/bindings.ts';

const input = (version: string): CertificateInput => ({ ok: true, kind: 'pfx', pfx: new Sensitive(new Uint8Array([0x30])), password: undefined, version });
const good: IdentityOutcome = { ok: true, identity: { facts: facts(), chainPem: 'C', privateKey: new Sensitive('K') } };

function scripted(outcomes: Array<IdentityOutcome | Error>) {
  let calls = 0;
  const decode = async (): Promise<IdentityOutcome> => {
    const next = outcomes[Math.min(calls++, outcomes.length - 1)]!;
    if (next instanceof Error) throw next;
    return next;
  };
  return { decode, calls: () => calls };
}

describe('IdentityCache', () => {
  test('want() never waits: it starts the decode, returns nothing yet, and wakes the caller once', async () => {
    const d = scripted([good]);
    const cache = new IdentityCache(d.decode);
    let woken = 0;
    const wake = (): void => void woken++;
    assert.equal(cache.want(input('v1'), wake), undefined);
    assert.equal(cache.want(input('v1'), wake), undefined, 'a second caller while it runs starts nothing');
    await cache.decode(input('v1'));
    await new Promise((r) => setImmediate(r));
    assert.equal(d.calls(), 1);
    assert.ok(woken >= 1);
    assert.equal(cache.want(input('v1'), wake)?.ok, true);
    cache.close();
  });

  test('100 bindings sharing one Secret version ask at once: one decode, and every one of them is woken', async () => {
    let calls = 0;
    let finish!: (outcome: IdentityOutcome) => void;
    const cache = new IdentityCache(() => {
      calls++;
      return new Promise<IdentityOutcome>((resolve) => (finish = resolve));
    });
    const woken = new Set<number>();
    for (let i = 0; i < 100; i++) {
      const wake = (): void => void woken.add(i);
      assert.equal(cache.want(input('shared@1'), wake), undefined);
    }
    const direct = Promise.all([cache.decode(input('shared@1')), cache.decode(input('shared@1'))]);
    assert.equal(calls, 1, 'the first request decodes; the 101 after it join that decode');
    finish(good);
    assert.ok((await direct).every((o) => o.ok));
    await new Promise((r) => setImmediate(r));
    assert.equal(woken.size, 100, 'a caller that joined a running decode is woken by it too');
    assert.equal(cache.want(input('shared@1'), () => assert.fail('a settled outcome wakes no one'))?.ok, true);
    assert.equal(calls, 1);
    cache.close();
  });

  test('a transient failure younger than its retry delay is not decoded again', async () => {
    const d = scripted([{ ok: false, reason: reasons.DecodeBudgetExceeded, message: 'took too long', transient: true }, good]);
    const cache = new IdentityCache(d.decode, { retryTransientMs: 60_000 });
    await cache.decode(input('v1'));
    assert.equal(cache.want(input('v1'), () => undefined)?.ok, false);
    assert.equal(d.calls(), 1);
    cache.close();
  });

  test('a verdict on the file is decoded once per version', async () => {
    const d = scripted([{ ok: false, reason: reasons.PasswordIncorrect, message: 'wrong' }]);
    const cache = new IdentityCache(d.decode);
    await cache.decode(input('v1'));
    await cache.decode(input('v1'));
    assert.equal(d.calls(), 1);
    assert.equal(cache.peek(input('v1'))?.ok, false);
    cache.close();
  });

  test('a decode the clock stopped is decoded again once its retry delay has passed, and peek shows the last outcome until then', async () => {
    const d = scripted([{ ok: false, reason: reasons.DecodeBudgetExceeded, message: 'took too long', transient: true }, good]);
    const cache = new IdentityCache(d.decode, { retryTransientMs: 0 });
    assert.equal((await cache.decode(input('v1'))).ok, false);
    assert.equal(cache.peek(input('v1'))?.ok, false, 'a translation after the await still finds an outcome');
    assert.equal((await cache.decode(input('v1'))).ok, true);
    assert.equal(d.calls(), 2);
    cache.close();
  });

  test('a decode that did not happen at all (the sandbox closed) is not remembered', async () => {
    const d = scripted([new Error('sandbox closed'), good]);
    const cache = new IdentityCache(d.decode);
    await assert.rejects(cache.decode(input('v1')), /sandbox closed/);
    assert.equal(cache.size, 0);
    assert.equal((await cache.decode(input('v1'))).ok, true);
    cache.close();
  });
});
