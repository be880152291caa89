import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { ProxyFile } from '../../src/contract/proxy-objects.ts';
import { ConfigDir } from '../../src/proxy/config-dir.ts';
import { fileIdentity, generationName } from '../../src/proxy/generations.ts';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const gen = (c: string): string => generationName(c.repeat(64));

function files(keyText: string): ProxyFile[] {
  const list: Array<Omit<ProxyFile, 'sha256'>> = [
    { path: 'nginx.conf', mode: 0o644, content: `# key ${sha256(keyText).slice(0, 8)}\n` },
    { path: 'certs/a.crt', mode: 0o644, content: 'CERT A\n' },
    { path: 'certs/a.key', mode: 0o600, content: keyText },
  ];
  return list.map((f) => ({ ...f, sha256: sha256(f.content) }));
}

describe('ConfigDir on a real file system', () => {
  // A subdirectory, so that prepare() creates it as the agent does at start.
  const parent = mkdtempSync(join(tmpdir(), 'mtls-egress-config-dir-'));
  const root = join(parent, 'config');
  after(() => rmSync(parent, { recursive: true, force: true }));
  const dir = new ConfigDir(root);

  test('a generation: directories 0700, each file with its mode; current points at it', async () => {
    await dir.prepare();
    assert.equal(await dir.current(), undefined);
    const counts = await dir.write(gen('a'), files('KEY 1\n'));
    assert.deepEqual(counts, { written: 3, linked: 0 });
    await dir.point(gen('a'));
    assert.equal(await dir.current(), gen('a'));
    assert.equal(readlinkSync(join(root, 'current')), gen('a'), 'a relative link: the directory can be mounted anywhere');
    assert.equal(statSync(join(root, gen('a'))).mode & 0o777, 0o700);
    assert.equal(statSync(join(root, gen('a'), 'certs')).mode & 0o777, 0o700);
    assert.equal(statSync(join(root, gen('a'), 'certs/a.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(root, gen('a'), 'certs/a.crt')).mode & 0o777, 0o644);
    assert.equal(readFileSync(dir.configPath('nginx.conf'), 'utf8'), files('KEY 1\n')[0]!.content, 'nginx.conf reads through current');
  });

  test('the next generation links unchanged files from the current one and writes the rest', async () => {
    const previous = files('KEY 1\n');
    const identities = new Map(previous.map((f) => [f.path, fileIdentity(f)]));
    const next = files('KEY 1\n').map((f) => (f.path === 'nginx.conf' ? { ...f, content: 'changed\n', sha256: sha256('changed\n') } : f));
    assert.deepEqual(await dir.write(gen('b'), next, { generation: gen('a'), identities }), { written: 1, linked: 2 });
    assert.equal(statSync(join(root, gen('b'), 'certs/a.key')).ino, statSync(join(root, gen('a'), 'certs/a.key')).ino);
    assert.equal(readFileSync(join(root, gen('b'), 'nginx.conf'), 'utf8'), 'changed\n');
  });

  test('a generation left half-written by a crash is rewritten from scratch', async () => {
    mkdirSync(join(root, gen('c'), 'certs'), { recursive: true });
    writeFileSync(join(root, gen('c'), 'certs/a.key'), 'TORN');
    await dir.write(gen('c'), files('KEY 3\n'));
    assert.equal(readFileSync(join(root, gen('c'), 'certs/a.key'), 'utf8'), 'KEY 3\n');
  });

  test('point replaces current in one rename, also over a current.tmp a crash left', async () => {
    symlinkSync('gen-stale', join(root, 'current.tmp'));
    await dir.point(gen('b'));
    assert.equal(await dir.current(), gen('b'));
    assert.ok(!existsSync(join(root, 'current.tmp')));
    await dir.point(undefined);
    assert.equal(await dir.current(), undefined);
    await dir.point(gen('c'));
  });

  test('prune removes every generation but those kept, and nothing else', async () => {
    writeFileSync(join(root, 'nginx.pid'), '1\n');
    const removed = await dir.prune([gen('c'), gen('b')]);
    assert.deepEqual(removed, [gen('a')]);
    assert.ok(existsSync(join(root, gen('b'))) && existsSync(join(root, gen('c'))) && existsSync(join(root, 'nginx.pid')));
    assert.equal(await dir.current(), gen('c'));
  });

  test('retire moves old generations aside at once; emptyTrash removes them later, and a generation written meanwhile stays', async () => {
    mkdirSync(join(root, gen('d')));
    writeFileSync(join(root, gen('d'), 'nginx.conf'), 'old\n');
    const retired = await dir.retire([gen('c'), gen('b')]);
    assert.deepEqual(retired, [gen('d')]);
    assert.ok(!existsSync(join(root, gen('d'))), 'the name is free at once');
    const aside = readdirSync(root).filter((n) => n.startsWith('.retired-'));
    assert.equal(aside.length, 1);
    // The next apply may write the same name again before the trash is emptied.
    mkdirSync(join(root, gen('d')));
    await dir.emptyTrash();
    assert.deepEqual(
      readdirSync(root).filter((n) => n.startsWith('.retired-')),
      [],
    );
    assert.ok(existsSync(join(root, gen('d'))) && existsSync(join(root, gen('b'))) && existsSync(join(root, gen('c'))));
  });
});
