// npm run bench:pfx — how fast decodePfx is, against stock node-forge and native OpenSSL, on
// the same files; what the decode sandbox (the worker pool every caller goes through) adds
// per file; how long 1,000 distinct files take through it; and how long the event loop is
// ever held. Fixtures come from the openssl CLI into a temporary directory. Prints
// timings; asserts nothing (unit tests never assert on time). Exits by itself.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createSecureContext } from 'node:tls';
import forge from 'node-forge';
import { DecodePool, decodePfx, defaultPoolSize } from '../../src/pki/index.ts';
import { FIXTURE_PASSWORD, fixtureDirectory, leafCertificate, openssl, opensslPfx } from '../fixtures/pfx.ts';
import { highIterationSpec } from '../fixtures/pki/pfx-cases.ts';

const DISTINCT_FILES = 1000;
// 50 identities (key + certificate) exported 20 times each: every file has its own salts,
// IVs and ciphertext, so every decode does the full MAC, PBKDF2 and decryption work.
const IDENTITIES = 50;

async function mapConcurrently<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  });
  await Promise.all(runners);
  return results;
}

interface Measurement {
  readonly msPerOp: number;
  readonly maxBlockMs: number;
}

/** Warm-up, then `iterations` sequential runs; the event-loop histogram covers the measured runs. */
async function measure(warmUp: number, iterations: number, run: () => unknown): Promise<Measurement> {
  for (let i = 0; i < warmUp; i++) await run();
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const started = performance.now();
  for (let i = 0; i < iterations; i++) await run();
  const elapsed = performance.now() - started;
  histogram.disable();
  return { msPerOp: elapsed / iterations, maxBlockMs: histogram.max / 1e6 };
}

/** Synchronous decoders hold the event loop for each whole call; the histogram cannot see that (the loop never turns), so it is stated. */
function row(name: string, m: Measurement, options: { synchronous?: boolean; forgeMs?: number; nativeMs?: number } = {}): string {
  const { synchronous = false, forgeMs, nativeMs } = options;
  const ratios = [
    forgeMs === undefined ? '' : `${(forgeMs / m.msPerOp).toFixed(1)}x faster than forge`,
    nativeMs === undefined ? '' : `${(m.msPerOp / nativeMs).toFixed(2)}x native's time`,
  ]
    .filter(Boolean)
    .join(', ');
  const block = synchronous ? `blocks the event loop for each call (${m.msPerOp.toFixed(1)} ms)` : `max event-loop block ${m.maxBlockMs.toFixed(1)} ms`;
  return `  ${name.padEnd(34)} ${m.msPerOp.toFixed(3).padStart(8)} ms/op ${Math.round(1000 / m.msPerOp)
    .toString()
    .padStart(7)} ops/s   ${block}${ratios ? `   (${ratios})` : ''}`;
}

function forgeDecode(bytes: Buffer): void {
  forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(forge.util.createBuffer(bytes.toString('binary'))), FIXTURE_PASSWORD);
}

function nativeDecode(bytes: Buffer): void {
  createSecureContext({ pfx: bytes, passphrase: FIXTURE_PASSWORD });
}

async function distinctPfxFiles(): Promise<Buffer[]> {
  const leaves = await mapConcurrently(
    Array.from({ length: IDENTITIES }, (_, i) => i),
    availableParallelism(),
    (i) => leafCertificate({ kind: 'rsa2048', issuer: 'int1', label: `bench-${i}` }),
  );
  const exports = Array.from({ length: DISTINCT_FILES }, (_, i) => ({ leaf: leaves[i % IDENTITIES]!, path: join(fixtureDirectory(), `bench-${i}.p12`) }));
  await mapConcurrently(exports, availableParallelism(), ({ leaf, path }) =>
    openssl(['pkcs12', '-export', '-inkey', leaf.keyPath, '-in', leaf.certPath, '-passout', `pass:${FIXTURE_PASSWORD}`, '-out', path]),
  );
  return exports.map(({ path }) => readFileSync(path));
}

const cores = availableParallelism();
console.log(`Node ${process.version}, ${cores} cores, ${(await openssl(['version'])).trim()}`);
process.stdout.write('generating fixtures with openssl ... ');
let started = performance.now();
const [defaultPfx, legacyPfx, highIterationPfx] = await Promise.all([
  opensslPfx({ name: 'pfx-openssl3-aes256-sha256' }),
  opensslPfx({ name: 'pfx-legacy-rc2-3des-sha1', opensslArgs: ['-legacy'] }),
  opensslPfx(highIterationSpec),
]);
const files = await distinctPfxFiles();
console.log(`${((performance.now() - started) / 1000).toFixed(1)} s\n`);

const pool = new DecodePool();
const throughPool = (bytes: Buffer) => pool.decode({ kind: 'pfx', pfx: bytes, password: FIXTURE_PASSWORD });
started = performance.now();
await throughPool(defaultPfx.bytes);
const firstDecodeMs = performance.now() - started;

console.log('OpenSSL 3 default PFX (PBES2 AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC, 2048 iterations), RSA 2048 + 1 CA, sequential:');
const forgeResult = await measure(3, 30, () => forgeDecode(defaultPfx.bytes));
const nativeResult = await measure(50, 500, () => nativeDecode(defaultPfx.bytes));
const oursResult = await measure(50, 500, () => decodePfx(defaultPfx.bytes, FIXTURE_PASSWORD));
const poolResult = await measure(50, 500, () => throughPool(defaultPfx.bytes));
console.log(row('node-forge pkcs12FromAsn1', forgeResult, { synchronous: true }));
console.log(row('native tls.createSecureContext', nativeResult, { synchronous: true }));
console.log(row('decodePfx (in-thread)', oursResult, { synchronous: true, forgeMs: forgeResult.msPerOp, nativeMs: nativeResult.msPerOp }));
console.log(row('decodePfx through the pool', poolResult, { forgeMs: forgeResult.msPerOp, nativeMs: nativeResult.msPerOp }));
console.log(
  `  the pool adds ${(poolResult.msPerOp - oursResult.msPerOp).toFixed(3)} ms per file (posting, structured clone both ways, the worker's turn); its first decode took ${firstDecodeMs.toFixed(0)} ms, a worker's start-up included`,
);

console.log('\nLegacy PFX (openssl -legacy: RC2-40 certificates, 3DES key, SHA-1 MAC), sequential:');
const forgeLegacy = await measure(3, 30, () => forgeDecode(legacyPfx.bytes));
let nativeLegacy = 'decodes';
try {
  nativeDecode(legacyPfx.bytes);
} catch (error) {
  nativeLegacy = `refuses it (${(error as Error).message.split('\n')[0]})`;
}
console.log(row('node-forge pkcs12FromAsn1', forgeLegacy, { synchronous: true }));
console.log(`  native tls.createSecureContext     ${nativeLegacy}`);
console.log(
  row('decodePfx (in-thread)', await measure(20, 200, () => decodePfx(legacyPfx.bytes, FIXTURE_PASSWORD)), { synchronous: true, forgeMs: forgeLegacy.msPerOp }),
);
console.log(row('decodePfx through the pool', await measure(20, 200, () => throughPool(legacyPfx.bytes)), { forgeMs: forgeLegacy.msPerOp }));

console.log(
  `\n${DISTINCT_FILES} distinct OpenSSL 3 default PFX files, decoded concurrently through the pool (${pool.stats().workersStarted} workers started so far; pool size ${defaultPoolSize()}):`,
);
for (const inFlight of [DISTINCT_FILES, 64]) {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  started = performance.now();
  const identities = await mapConcurrently(files, inFlight, throughPool);
  const elapsed = performance.now() - started;
  histogram.disable();
  const subjects = new Set(identities.map((identity) => identity.facts.fingerprintSha256)).size;
  console.log(
    `  ${String(inFlight).padStart(4)} in flight: ${(elapsed / 1000).toFixed(2)} s total, ${(elapsed / files.length).toFixed(3)} ms/file, ${subjects} identities, max event-loop block ${(histogram.max / 1e6).toFixed(1)} ms`,
  );
}
{
  // For comparison: the same files on this thread, which is what the sandbox keeps the controller from doing.
  started = performance.now();
  let longest = 0;
  for (const bytes of files) {
    const one = performance.now();
    await decodePfx(bytes, FIXTURE_PASSWORD);
    longest = Math.max(longest, performance.now() - one);
  }
  const elapsed = performance.now() - started;
  console.log(
    `  in-thread, one after another: ${(elapsed / 1000).toFixed(2)} s total, ${(elapsed / files.length).toFixed(3)} ms/file, each one holding the event loop (longest ${longest.toFixed(1)} ms)`,
  );
}

console.log('\nPFX with 600,000 iterations (-iter 600000: PBKDF2 and MAC), through the pool:');
for (let round = 1; round <= 3; round++) {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  started = performance.now();
  await throughPool(highIterationPfx.bytes);
  const elapsed = performance.now() - started;
  histogram.disable();
  const nativeStarted = performance.now();
  nativeDecode(highIterationPfx.bytes);
  const nativeElapsed = performance.now() - nativeStarted;
  console.log(
    `  round ${round}: through the pool ${elapsed.toFixed(0)} ms, max event-loop block ${(histogram.max / 1e6).toFixed(1)} ms; native ${nativeElapsed.toFixed(0)} ms (blocking the event loop throughout)`,
  );
}
await pool.close();
