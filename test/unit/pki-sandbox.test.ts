import type * as PkiIndex from '../../src/pki/index.ts';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect, promisify } from 'node:util';
import { DecodeBudgetExceeded } from '../../src/api/v1alpha1/reasons.ts';
import { DecodePool, DecoderUnavailable, PkiError, Sensitive, type DecodedIdentity } from '../../src/pki/index.ts';
import { FIXTURE_PASSWORD, opensslPfx } from '../fixtures/pfx.ts';
import { algorithm, explicit0, integer, nullValue, octets, oid, sequence } from '../fixtures/hostile/der-writer.ts';

// The decode sandbox's own behaviour: where the worker comes from, what its limits do to a
// file that breaks them, the queue's order, closing, and the secrets' wrapping. No test
// here depends on how fast anything is: each limit is set far from what the work needs.

type PkiModule = typeof PkiIndex;
const execFileAsync = promisify(execFile);
const repository = fileURLToPath(new URL('../..', import.meta.url));

const isBudgetExceeded = (error: unknown) => error instanceof PkiError && error.reason === DecodeBudgetExceeded;

/** A PFX whose SHA-256 MAC runs the PKCS#12 KDF (a JavaScript loop) for `iterations`: seconds of work at 20,000,000. */
function slowMacPfx(iterations: number): Buffer {
  const safe = sequence(sequence(oid('1.2.840.113549.1.7.1'), explicit0(octets(sequence()))));
  const mac = sequence(sequence(algorithm('2.16.840.1.101.3.4.2.1', nullValue()), octets(randomBytes(32))), octets(randomBytes(8)), integer(iterations));
  return sequence(integer(3), sequence(oid('1.2.840.113549.1.7.1'), explicit0(octets(safe))), mac);
}

/** A PFX of `count` certificate bags holding 8 bytes each: objects on the heap, and nothing else. */
function manyBagsPfx(count: number): Buffer {
  const bag = sequence(oid('1.2.840.113549.1.12.10.1.3'), explicit0(sequence(oid('1.2.840.113549.1.9.22.1'), explicit0(octets(randomBytes(8))))));
  const bags = Buffer.concat(Array.from({ length: count }, () => bag));
  // SEQUENCE with a four-byte length, written by hand: spreading 200,000 arguments would overflow the stack.
  const header = Buffer.from([0x30, 0x84, 0, 0, 0, 0]);
  header.writeUInt32BE(bags.length, 2);
  const safe = sequence(sequence(oid('1.2.840.113549.1.7.1'), explicit0(octets(Buffer.concat([header, bags])))));
  return sequence(integer(3), sequence(oid('1.2.840.113549.1.7.1'), explicit0(octets(safe))));
}

const defaultPfx = () => opensslPfx({ name: 'pfx-openssl3-aes256-sha256' });

describe('the decode sandbox', () => {
  const pools: DecodePool[] = [];
  const pool = (options: ConstructorParameters<typeof DecodePool>[0] = {}) => {
    const created = new DecodePool(options);
    pools.push(created);
    return created;
  };
  after(() => Promise.all(pools.map((created) => created.close())));

  test('decodes in a worker loaded from src/ (TypeScript), and wraps the key again on arrival', async () => {
    const fixture = await defaultPfx();
    const sandbox = pool();
    const identity = await sandbox.decode({ kind: 'pfx', pfx: new Sensitive(new Uint8Array(fixture.bytes)), password: new Sensitive(FIXTURE_PASSWORD) });
    assert.equal(identity.facts.subject, fixture.leaf.expected.subject);
    assert.ok(identity.privateKey instanceof Sensitive);
    assert.match(identity.privateKey.reveal(), /^-----BEGIN PRIVATE KEY-----/);
    assert.ok(!inspect(identity, { depth: Infinity }).includes('PRIVATE KEY'));
    assert.deepEqual({ started: sandbox.stats().workersStarted, completed: sandbox.stats().tasksCompleted }, { started: 1, completed: 1 });
  });

  test('decodes in a worker loaded from the compiled dist/ layout (.js)', async () => {
    // Compile the identity core as `npm run build` does, into a directory of its own.
    const out = mkdtempSync(join(tmpdir(), 'mtls-egress-dist-'));
    try {
      const config = join(out, 'tsconfig.json');
      writeFileSync(
        config,
        JSON.stringify({
          extends: join(repository, 'tsconfig.build.json'),
          compilerOptions: {
            rootDir: join(repository, 'src'),
            outDir: join(out, 'dist'),
            sourceMap: false,
            typeRoots: [join(repository, 'node_modules/@types')],
          },
          include: [join(repository, 'src/pki/**/*.ts')],
        }),
      );
      await execFileAsync(join(repository, 'node_modules/.bin/tsc'), ['-p', config], { cwd: repository });
      writeFileSync(join(out, 'dist/package.json'), '{"type":"module"}');
      const compiled = (await import(pathToFileURL(join(out, 'dist/pki/index.js')).href)) as PkiModule;
      const fixture = await defaultPfx();
      const sandbox = new compiled.DecodePool();
      try {
        const identity: DecodedIdentity = await sandbox.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD });
        assert.equal(identity.facts.subject, fixture.leaf.expected.subject);
        assert.equal(sandbox.stats().tasksCompleted, 1);
      } finally {
        await sandbox.close();
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test('a file over its time limit is stopped, its worker replaced, and the next file decodes', async () => {
    // 20,000,000 iterations of the PKCS#12 KDF take seconds; the limit is a fifth of a second.
    const sandbox = pool({ size: 1, taskTimeoutMs: 200, limits: { maxKdfWork: 1e9 } });
    await assert.rejects(
      sandbox.decode({ kind: 'pfx', pfx: slowMacPfx(20_000_000), password: 'x' }),
      (error: unknown) => isBudgetExceeded(error) && /longer than/.test((error as Error).message),
    );
    assert.equal(sandbox.stats().workersStopped, 1);
    const fixture = await defaultPfx();
    const identity = await sandbox.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD });
    assert.equal(identity.facts.subject, fixture.leaf.expected.subject);
    assert.equal(sandbox.stats().workersStarted, 2);
  });

  test('a worker that does not start in time is the pool’s failure, not the file’s: DecoderUnavailable', async () => {
    // Starting a thread and loading the decoder takes tens of milliseconds; one is too few.
    const sandbox = pool({ size: 1, startTimeoutMs: 1, taskTimeoutMs: 60_000 });
    const fixture = await defaultPfx();
    await assert.rejects(
      sandbox.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD }),
      (error: unknown) => error instanceof DecoderUnavailable && error.code === 'ERR_DECODER_UNAVAILABLE' && /did not start in time/.test(error.message),
    );
  });

  test('a file over its heap limit is stopped, and the worker replaced', async () => {
    // 200,000 bags (the budget raised to let them through) need far more than 16 MiB of objects.
    const sandbox = pool({ size: 1, heapMb: 16, limits: { maxBags: 1e9, maxCertificates: 1e9, maxInputBytes: 1e9 } });
    await assert.rejects(
      sandbox.decode({ kind: 'pfx', pfx: manyBagsPfx(200_000) }),
      (error: unknown) => isBudgetExceeded(error) && /heap/.test((error as Error).message),
    );
    assert.equal(sandbox.stats().workersStopped, 1);
    const fixture = await defaultPfx();
    assert.equal((await sandbox.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD })).facts.subject, fixture.leaf.expected.subject);
  });

  test('a file over the size limit is refused before it reaches a worker', async () => {
    const sandbox = pool();
    await assert.rejects(sandbox.decode({ kind: 'pfx', pfx: new Uint8Array(1024 * 1024) }), isBudgetExceeded);
    assert.equal(sandbox.stats().workersStarted, 0);
  });

  test("fairness keys take turns: another key's file does not wait for all of the first key's", async () => {
    const fixture = await defaultPfx();
    const sandbox = pool({ size: 1 });
    const order: string[] = [];
    const decode = (name: string, fairnessKey: string) =>
      sandbox.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD }, { fairnessKey }).then(() => order.push(name));
    await Promise.all([decode('a1', 'team-a'), decode('a2', 'team-a'), decode('a3', 'team-a'), decode('a4', 'team-a'), decode('b1', 'team-b')]);
    // a1 starts at once; then the two keys alternate: a2, b1, and the rest of a.
    assert.deepEqual(order, ['a1', 'a2', 'b1', 'a3', 'a4']);
  });

  test('closing rejects what waits and what runs, and refuses new work', async () => {
    const sandbox = pool({ size: 1, limits: { maxKdfWork: 1e9 } });
    const settled = (decode: Promise<unknown>) =>
      decode.then(
        () => 'decoded',
        (error: unknown) => error,
      );
    const running = settled(sandbox.decode({ kind: 'pfx', pfx: slowMacPfx(20_000_000), password: 'x' }));
    const waiting = settled(sandbox.decode({ kind: 'pfx', pfx: slowMacPfx(1), password: 'x' }));
    await sandbox.close();
    const closed = (error: unknown) => error instanceof DecoderUnavailable && error.code === 'ERR_DECODER_CLOSED';
    assert.ok(closed(await running));
    assert.ok(closed(await waiting));
    await assert.rejects(sandbox.decode({ kind: 'pfx', pfx: slowMacPfx(1) }), closed);
    assert.equal(sandbox.stats().running + sandbox.stats().queued, 0);
  });
});

describe('the decode sandbox grows only for slow files', () => {
  test('a burst of ordinary files is decoded by one worker: the pool costs one isolate', async () => {
    const pool = new DecodePool({ size: 2, growAfterMs: 5_000 });
    const fixture = await defaultPfx();
    await Promise.all(Array.from({ length: 20 }, () => pool.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD })));
    assert.equal(pool.stats().workersStarted, 1);
    await pool.close();
  });

  test('a file that runs long makes room for a second worker, and the others finish beside it', async () => {
    // growAfterMs 0: any file in progress counts as slow, so the structure, not the clock, is tested.
    const pool = new DecodePool({ size: 2, growAfterMs: 0 });
    const fixture = await defaultPfx();
    const first = pool.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD });
    const second = pool.decode({ kind: 'pfx', pfx: fixture.bytes, password: FIXTURE_PASSWORD });
    await Promise.all([first, second]);
    assert.equal(pool.stats().workersStarted, 2);
    await pool.close();
  });
});
