import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { bindingObject, bundleObjects, bundlePath, type BindingPart, type ProxyFile } from '../../src/contract/proxy-objects.ts';
import { readCredentialSecret, referencedObjects } from '../../src/proxy/agent.ts';
import { ConfigDir } from '../../src/proxy/config-dir.ts';
import { isObjectName, objectName, objectsToRemove, recentObjectMs } from '../../src/proxy/content-store.ts';
import { generationName } from '../../src/proxy/generations.ts';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const digest = (c: string): string => c.repeat(64);

/** A PEM-shaped file: what must never stay in the agent's heap once stored. */
function pem(label: string, body: string): string {
  return `-----BEGIN ${label}-----\n${Buffer.from(body).toString('base64')}\n-----END ${label}-----\n`;
}

function proxyFile(path: string, content: string, mode: 0o600 | 0o644 = 0o600): ProxyFile {
  return { path, mode, content, sha256: sha256(content) };
}

describe('objectName: an object is named by the digest and mode of its bytes, nothing else', () => {
  const table: Array<{ name: string; file: { sha256: string; mode: number }; object?: string }> = [
    { name: 'a key at 0600', file: { sha256: digest('a'), mode: 0o600 }, object: `${digest('a')}-600` },
    { name: 'a bundle at 0644', file: { sha256: digest('b'), mode: 0o644 }, object: `${digest('b')}-644` },
    { name: 'a path, not a digest', file: { sha256: '../current', mode: 0o600 } },
    { name: 'an upper-case digest', file: { sha256: digest('A'), mode: 0o600 } },
    { name: 'a mode other than 0600 or 0644', file: { sha256: digest('a'), mode: 0o755 } },
  ];
  for (const { name, file, object } of table) {
    test(name, () => {
      if (object) {
        assert.equal(objectName(file), object);
        assert.ok(isObjectName(object));
      } else assert.throws(() => objectName(file), /not a sha256 digest/);
    });
  }
});

describe('objectsToRemove: only what no generation links, the cache does not name, and no apply just stored', () => {
  const a = `${digest('a')}-600`;
  const b = `${digest('b')}-644`;
  const c = `${digest('c')}-600`;
  const now = Date.parse('2026-12-08T00:00:00Z');
  const table: Array<{
    name: string;
    entries: Array<{ name: string; links: number; writtenAt?: number }>;
    referenced?: string[];
    inUse?: string[];
    writing?: boolean;
    removed: string[];
  }> = [
    { name: 'an object a generation links stays', entries: [{ name: a, links: 2 }], removed: [] },
    { name: 'an object nothing links or names goes', entries: [{ name: a, links: 1 }], removed: [a] },
    { name: 'an object the cache names stays (a binding left out for now)', entries: [{ name: a, links: 1 }], referenced: [a], removed: [] },
    { name: 'an object an apply in progress stored stays', entries: [{ name: a, links: 1 }], inUse: [a], removed: [] },
    {
      name: 'several, sorted',
      entries: [
        { name: c, links: 1 },
        { name: a, links: 1 },
        { name: b, links: 3 },
      ],
      removed: [a, c],
    },
    { name: 'anything not an object stays', entries: [{ name: 'lost+found', links: 1 }], removed: [] },
    { name: 'a temp file a crash left goes', entries: [{ name: `${a}.12.tmp`, links: 1 }], removed: [`${a}.12.tmp`] },
    { name: 'a temp file stays while a write runs', entries: [{ name: `${a}.12.tmp`, links: 1 }], writing: true, removed: [] },
    {
      name: 'an object written in the last minute stays: stored in the background, its apply may be about to link it',
      entries: [
        { name: a, links: 1, writtenAt: now - recentObjectMs + 1 },
        { name: c, links: 1, writtenAt: now - recentObjectMs },
      ],
      removed: [c],
    },
  ];
  for (const { name, entries, referenced = [], inUse = [], writing = false, removed } of table) {
    const dated = entries.map((e) => ({ writtenAt: now - 10 * recentObjectMs, ...e }));
    test(name, () => assert.deepEqual(objectsToRemove(dated, new Set(referenced), new Set(inUse), writing, now), removed));
  }
});

describe('the agent cache holds no certificate or key bytes', () => {
  const ca = pem('CERTIFICATE', 'partner CA');
  const part: BindingPart = {
    key: 'team-a/a',
    listenerPort: 10000,
    fingerprintSha256: digest('f'),
    serialNumber: '01',
    files: [
      { path: 'certs/team-a_a.pem', mode: 0o600, content: `${pem('CERTIFICATE', 'leaf')}${pem('PRIVATE KEY', 'key')}`, binding: 'team-a/a' },
      { path: bundlePath(sha256(ca)), mode: 0o644, content: ca, bundle: true },
    ],
  };
  const objects = [...bundleObjects(part, 'mtls-egress-system'), bindingObject(part, 'mtls-egress-system')];

  /** Every string reachable from `value`. */
  function strings(value: unknown, seen = new Set<unknown>()): string[] {
    if (typeof value === 'string') return [value];
    if (value === null || typeof value !== 'object' || seen.has(value)) return [];
    seen.add(value);
    return Object.values(value).flatMap((v) => strings(v, seen));
  }

  test('readCredentialSecret: paths, modes and digests in the cache; the bytes wait in the store', () => {
    const parent = mkdtempSync(join(tmpdir(), 'mtls-egress-store-'));
    after(() => rmSync(parent, { recursive: true, force: true }));
    const dir = new ConfigDir(parent);
    const cache = objects.map((object) => readCredentialSecret(object, dir.store, 1));
    assert.ok(cache.every(({ read }) => read.ok));
    assert.deepEqual(
      strings(cache).filter((s) => s.includes('-----BEGIN')),
      [],
    );
    assert.equal(dir.store.pending, 2);
    assert.deepEqual(
      [...referencedObjects(cache)].sort(),
      [objectName({ sha256: sha256(ca), mode: 0o644 }), objectName({ sha256: sha256(part.files[0]!.content), mode: 0o600 })].sort(),
    );
  });
});

describe('ContentStore and ConfigDir on a real file system', () => {
  const parent = mkdtempSync(join(tmpdir(), 'mtls-egress-store-'));
  after(() => rmSync(parent, { recursive: true, force: true }));
  const dir = new ConfigDir(join(parent, 'config'));
  const key = proxyFile('certs/a.pem', pem('PRIVATE KEY', 'one'));
  const rotated = proxyFile('certs/a2.pem', pem('PRIVATE KEY', 'two'));
  const config = proxyFile('haproxy.cfg', 'global\n', 0o644);

  test('an object is written once, at its mode, and a generation links it: one inode, whatever the generations', async () => {
    await dir.prepare();
    assert.equal(statSync(dir.store.root).mode & 0o777, 0o700);
    const stored = dir.store.hold(key);
    assert.equal('content' in stored, false);
    assert.deepEqual(await dir.store.store(), { stored: 1 });
    assert.deepEqual(await dir.store.store(), { stored: 0 }, 'stored already: not written again');
    dir.store.release();
    assert.equal(dir.store.pending, 0);
    const object = dir.store.objectPath(stored);
    assert.equal(statSync(object).mode & 0o777, 0o600);
    assert.deepEqual(await dir.write(generationName(digest('1')), [config, stored]), { written: 1, linked: 1 });
    assert.deepEqual(await dir.write(generationName(digest('2')), [config, stored]), { written: 1, linked: 1 });
    const inode = statSync(object).ino;
    assert.equal(statSync(join(dir.generationPath(generationName(digest('1'))), key.path)).ino, inode);
    assert.equal(statSync(join(dir.generationPath(generationName(digest('2'))), key.path)).ino, inode);
    assert.equal(statSync(object).nlink, 3);
    assert.equal(await dir.store.read(stored), key.content, 'read back from the object, the bytes being out of memory');
  });

  test('a rotation: the new bytes are read from memory until released, then from their object', async () => {
    const stored = dir.store.hold(rotated);
    assert.equal(await dir.store.read(stored), rotated.content);
    await dir.store.store();
    dir.store.release();
    rmSync(dir.store.objectPath(stored));
    await assert.rejects(dir.store.read(stored), /ENOENT/, 'nothing in memory once released');
  });

  test('prune: objects only retired generations linked go once those are removed; what the cache names stays', async () => {
    const stored = dir.store.hold(rotated);
    await dir.store.store();
    dir.store.release();
    await dir.prune([generationName(digest('2'))]);
    const first = objectName(key);
    // A minute on: objects written just now are not judged yet.
    const later = Date.now() + recentObjectMs;
    assert.deepEqual(await dir.store.prune(new Set([objectName(rotated)]), later), [], 'the key is linked by the generation kept');
    await dir.prune([]);
    assert.deepEqual(await dir.store.prune(new Set([objectName(rotated)])), [], 'unlinked, but written within the minute');
    assert.deepEqual(await dir.store.prune(new Set([objectName(rotated)]), later), [first]);
    assert.ok(existsSync(dir.store.objectPath(stored)));
    assert.deepEqual(readdirSync(dir.store.root), [objectName(rotated)]);
    assert.equal(readFileSync(dir.store.objectPath(stored), 'utf8'), rotated.content);
  });

  test('bytes held are stored in the background as they arrive, and leave the heap with no apply', async () => {
    const next = proxyFile('certs/b.pem', pem('PRIVATE KEY', 'three'));
    const stored = dir.store.hold(next);
    assert.equal(dir.store.pending, 1);
    for (let i = 0; i < 200 && dir.store.pending > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(dir.store.pending, 0, 'stored without a store() call');
    assert.equal(readFileSync(dir.store.objectPath(stored), 'utf8'), next.content);
    assert.equal(await dir.store.read(stored), next.content, 'read from its object');
  });
});
