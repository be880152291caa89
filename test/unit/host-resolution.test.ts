import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { answerLifetimeMs, dnsResolve, HostResolver, sortAddresses, type HostAnswer } from '../../src/inputs/host-resolution.ts';
import { inputPolicy } from '../../src/inputs/input-policy.ts';
import { DestinationPolicy, parseCidrList } from '../../src/model/destinations.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
const policy = new DestinationPolicy({ clusterCidrs: parseCidrList('10.0.0.0/8'), allowed: [] });

describe('answers: order and lifetime', () => {
  test('an answer that only reorders is the same answer: sorted, IPv4 first, without repeats', () => {
    const a = sortAddresses(['2001:db8::1', '198.51.100.9', '192.0.2.1', '198.51.100.9']);
    const b = sortAddresses(['192.0.2.1', '198.51.100.9', '2001:db8::1']);
    assert.deepEqual(a, ['192.0.2.1', '198.51.100.9', '2001:db8::1']);
    assert.deepEqual(a, b);
  });

  const lifetimes: Array<{ name: string; answer: HostAnswer; expectMs: number }> = [
    { name: 'no TTL (getaddrinfo): the default', answer: { addresses: ['192.0.2.1'] }, expectMs: 60_000 },
    { name: 'TTL 0: the floor, not a query a second', answer: { addresses: ['192.0.2.1'], ttlSeconds: 0 }, expectMs: inputPolicy.hostTtlFloorMs },
    { name: 'TTL 1 (rebinding): the floor', answer: { addresses: ['192.0.2.1'], ttlSeconds: 1 }, expectMs: inputPolicy.hostTtlFloorMs },
    { name: 'TTL 30: as DNS says', answer: { addresses: ['192.0.2.1'], ttlSeconds: 30 }, expectMs: 30_000 },
    { name: 'TTL a day: the ceiling', answer: { addresses: ['192.0.2.1'], ttlSeconds: 86_400 }, expectMs: inputPolicy.hostTtlCeilingMs },
  ];
  for (const c of lifetimes) test(c.name, () => assert.equal(answerLifetimeMs(c.answer, 60_000), c.expectMs));
});

describe('HostResolver: re-resolving on the record TTL', () => {
  test('TTL 1 is looked up again after the floor, not before; a changed answer wakes the caller', async () => {
    const clock = new ManualClock(0);
    const answers: HostAnswer[] = [
      { addresses: ['203.0.113.7'], ttlSeconds: 1 },
      { addresses: ['10.1.2.3'], ttlSeconds: 1 },
    ];
    let calls = 0;
    const resolver = new HostResolver({ resolve: async () => (calls++, answers.shift()!), clock });
    await resolver.addresses('rebind.example');
    assert.equal(resolver.refreshInMs('rebind.example'), inputPolicy.hostTtlFloorMs);
    clock.advance(inputPolicy.hostTtlFloorMs - 1);
    let woken = 0;
    const first = resolver.problemsNow(['rebind.example'], policy, () => void woken++);
    assert.deepEqual(first.addresses.get('rebind.example'), ['203.0.113.7']);
    assert.equal(calls, 1, 'still within the floor');
    clock.advance(1);
    const stale = resolver.problemsNow(['rebind.example'], policy, () => void woken++);
    assert.deepEqual(stale.addresses.get('rebind.example'), ['203.0.113.7'], 'the checked answer stands while the new one is asked');
    await resolver.settled('rebind.example');
    await settle();
    assert.equal(calls, 2);
    assert.equal(woken, 1, 'the new answer differs');
    const now = resolver.problemsNow(['rebind.example'], policy, () => assert.fail('answered'));
    assert.equal(now.problems.get('rebind.example')?.reason, reasons.DestinationNotAllowed);
    assert.equal(now.addresses.get('rebind.example'), undefined, 'a refused answer gives the proxy no address');
  });

  const refused: Array<{ name: string; addresses: string[] }> = [
    { name: 'one refused address among allowed ones refuses the host', addresses: ['203.0.113.7', '10.9.9.9'] },
    { name: 'an IPv4-mapped IPv6 loopback is loopback', addresses: ['::ffff:127.0.0.1'] },
    { name: 'an IPv4-mapped address in hex is still the pod range', addresses: ['::ffff:a00:1'] },
  ];
  for (const c of refused) {
    test(c.name, async () => {
      const resolver = new HostResolver({ resolve: async () => c.addresses, clock: new ManualClock(0) });
      await resolver.addresses('h.example');
      const verdict = resolver.problemsNow(['h.example'], policy, () => {});
      assert.equal(verdict.problems.get('h.example')?.reason, reasons.DestinationNotAllowed);
      assert.equal(verdict.addresses.has('h.example'), false);
    });
  }
});

describe('HostResolver: a bounded cache', () => {
  test('past maxHosts the host asked for least recently is dropped; a recently asked one stays', async () => {
    const clock = new ManualClock(0);
    const asked: string[] = [];
    const resolver = new HostResolver({ resolve: async (h) => (asked.push(h), ['192.0.2.1']), clock, maxHosts: 3 });
    for (const host of ['a.example', 'b.example', 'c.example']) await resolver.addresses(host);
    await resolver.addresses('a.example');
    await resolver.addresses('d.example');
    assert.equal(resolver.size, 3);
    asked.length = 0;
    await resolver.addresses('a.example');
    assert.deepEqual(asked, [], 'a was asked for recently: kept');
    await resolver.addresses('b.example');
    assert.deepEqual(asked, ['b.example'], 'b was the oldest: dropped, and asked again');
    assert.equal(resolver.size, 3);
  });

  test('10,000 distinct hosts hold no more than the cap', async () => {
    const resolver = new HostResolver({ resolve: async () => ['192.0.2.1'], clock: new ManualClock(0), maxHosts: 500 });
    for (let i = 0; i < 10_000; i++) await resolver.addresses(`h${i}.example`);
    assert.equal(resolver.size, 500);
  });

  test('a forgotten host is dropped, even when its lookup answers after', async () => {
    let answer!: (a: string[]) => void;
    const resolver = new HostResolver({ resolve: () => new Promise((r) => (answer = r)), clock: new ManualClock(0) });
    const pending = resolver.addresses('gone.example');
    resolver.forget('gone.example');
    answer(['192.0.2.1']);
    await pending;
    assert.equal(resolver.size, 0);
  });
});

describe('dnsResolve against a DNS server the test controls', () => {
  let dns: TestDnsServer;
  before(async () => (dns = await startDnsServer()));
  after(() => dns.close());

  test('A and AAAA are asked, the answer is their union with the smallest TTL', async () => {
    dns.set('both.test', { addresses: ['192.0.2.5', '2001:db8::5'], ttlSeconds: 42 });
    const answer = (await dnsResolve([dns.address])('both.test')) as HostAnswer;
    assert.deepEqual(sortAddresses(answer.addresses), ['192.0.2.5', '2001:db8::5']);
    assert.equal(answer.ttlSeconds, 42);
  });

  test('a TTL of 1 is read as 1', async () => {
    dns.set('short.test', { addresses: ['192.0.2.6'], ttlSeconds: 1 });
    const answer = (await dnsResolve([dns.address])('short.test')) as HostAnswer;
    assert.equal(answer.ttlSeconds, 1);
  });

  test('where DNS has no answer, getaddrinfo is asked (/etc/hosts): localhost, without a TTL', async () => {
    const answer = await dnsResolve([dns.address])('localhost');
    assert.ok(Array.isArray(answer), 'a getaddrinfo answer carries no TTL');
    assert.ok(answer.includes('127.0.0.1'));
  });
});
