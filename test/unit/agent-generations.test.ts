import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { entriesToRemove, fileIdentity, generationName, isSafeRelativePath, manifestProblem, planGeneration } from '../../src/proxy/generations.ts';
import type { ManifestFile, ProxyManifest } from '../../src/proxy/proxy-objects.ts';

const hash = (c: string): string => c.repeat(64);
const gen = (c: string): string => `gen-${hash(c)}`;

function file(path: string, overrides: Partial<ManifestFile> = {}): ManifestFile {
  return { path, mode: 0o644, sha256: 'aa', from: { configMapKey: `${path}.gz` }, ...overrides };
}

function manifest(files: ManifestFile[], overrides: Partial<ProxyManifest> = {}): ProxyManifest {
  return { hash: hash('a'), files, bindings: {}, ...overrides };
}

describe('generationName', () => {
  test('a sha256 hex digest names a generation; anything else throws', () => {
    assert.equal(generationName(hash('0')), gen('0'));
    for (const bad of ['', 'abc', hash('A'), `../${hash('a').slice(3)}`, `${hash('a')}/x`]) assert.throws(() => generationName(bad), /not a sha256/);
  });
});

describe('entriesToRemove', () => {
  const table: Array<{ name: string; entries: string[]; keep: Array<string | undefined>; removed: string[] }> = [
    { name: 'keeps current and previous, removes older', entries: [gen('a'), gen('b'), gen('c'), 'current'], keep: [gen('c'), gen('b')], removed: [gen('a')] },
    { name: 'first apply: no previous', entries: [gen('a'), gen('b'), 'current'], keep: [gen('b'), undefined], removed: [gen('a')] },
    { name: "a crash's current.tmp goes", entries: [gen('a'), 'current', 'current.tmp'], keep: [gen('a')], removed: ['current.tmp'] },
    {
      name: "nginx's files in a shared prefix stay",
      entries: ['nginx.pid', 'error.log', 'access.log', 'client_body_temp', 'proxy_temp', 'gen-notahash', gen('a'), gen('b')],
      keep: [gen('b')],
      removed: [gen('a')],
    },
  ];
  for (const { name, entries, keep, removed } of table) test(name, () => assert.deepEqual(entriesToRemove(entries, keep), removed));
});

describe('isSafeRelativePath', () => {
  for (const path of ['nginx.conf', 'certs/team-a_partner.crt', 'ca/team-a_x.y.crt']) test(`accepts ${path}`, () => assert.ok(isSafeRelativePath(path)));
  for (const path of ['', '/etc/passwd', '../current/nginx.conf', 'certs/../../x', 'certs/./a', 'certs//a', 'certs/', 'a b', 'a\0b', 'ümlaut']) {
    test(`refuses ${JSON.stringify(path)}`, () => assert.ok(!isSafeRelativePath(path)));
  }
});

describe('manifestProblem', () => {
  const table: Array<{ name: string; manifest: ProxyManifest; problem: RegExp | undefined }> = [
    {
      name: 'a rendered manifest',
      manifest: manifest([file('nginx.conf'), file('certs/a.crt'), file('certs/a.key', { mode: 0o600, from: { secret: 's', key: 'tls.key' } })]),
      problem: undefined,
    },
    { name: 'a hash that is no digest', manifest: manifest([file('nginx.conf')], { hash: '../../etc' }), problem: /not a sha256/ },
    { name: 'no nginx.conf', manifest: manifest([file('certs/a.crt')]), problem: /no nginx\.conf/ },
    { name: 'a path out of the generation', manifest: manifest([file('nginx.conf'), file('../current/nginx.conf')]), problem: /unsafe path/ },
    { name: 'an absolute path', manifest: manifest([file('nginx.conf'), file('/etc/nginx/nginx.conf')]), problem: /unsafe path/ },
    { name: 'a mode other than 0600 or 0644', manifest: manifest([file('nginx.conf', { mode: 0o777 as 0o644 })]), problem: /mode 511/ },
    { name: 'a path twice', manifest: manifest([file('nginx.conf'), file('nginx.conf')]), problem: /listed twice/ },
    {
      name: 'a file where a directory must be',
      manifest: manifest([file('nginx.conf'), file('certs'), file('certs/a.crt')]),
      problem: /both a file and a directory/,
    },
    { name: 'no source', manifest: manifest([file('nginx.conf', { from: undefined as unknown as ManifestFile['from'] })]), problem: /no source/ },
    { name: 'files not a list', manifest: manifest(undefined as unknown as ManifestFile[]), problem: /no files/ },
  ];
  for (const { name, manifest: m, problem } of table) {
    test(name, () => {
      const found = manifestProblem(m);
      if (problem) assert.match(found ?? '', problem);
      else assert.equal(found, undefined);
    });
  }
});

describe('planGeneration', () => {
  const files = [
    file('nginx.conf', { sha256: 'n2' }),
    file('certs/a.crt', { sha256: 'c1' }),
    file('certs/a.key', { mode: 0o600, sha256: 'k1' }),
    file('certs/b.crt', { sha256: 'b1' }),
  ];

  test('the first generation writes everything', () => {
    assert.deepEqual(
      planGeneration(files, undefined).map((p) => p.action),
      ['write', 'write', 'write', 'write'],
    );
  });

  test('a rotation links what did not change and writes what did', () => {
    const current = new Map([
      ['nginx.conf', fileIdentity({ mode: 0o644, sha256: 'n1' })],
      ['certs/a.crt', fileIdentity({ mode: 0o644, sha256: 'c1' })],
      ['certs/a.key', fileIdentity({ mode: 0o600, sha256: 'k1' })],
    ]);
    assert.deepEqual(planGeneration(files, current), [
      { path: 'nginx.conf', action: 'write' },
      { path: 'certs/a.crt', action: 'link' },
      { path: 'certs/a.key', action: 'link' },
      { path: 'certs/b.crt', action: 'write' },
    ]);
  });

  test('the same bytes with another mode are written, not linked', () => {
    const current = new Map([['certs/a.key', fileIdentity({ mode: 0o644, sha256: 'k1' })]]);
    assert.equal(planGeneration(files, current).find((p) => p.path === 'certs/a.key')?.action, 'write');
  });
});

describe('manifestProblem for HAProxy: every server value becomes a runtime API argument', () => {
  const certificateFile = 'certs/team-a_a.0123456789abcdef.pem';
  const caFile = 'ca/team-a_a.0123456789abcdef.pem';
  const good = {
    key: 'team-a/a',
    listenerPort: 10000,
    backend: 'p10000',
    server: 's0123456789ab',
    host: 'partner.example',
    port: 443,
    serverName: 'partner.example',
    hostHeader: 'partner.example',
    certificateFile,
    caFile,
    fingerprintSha256: 'AA',
    serialNumber: '1',
  };
  const haproxyManifest = (servers: unknown[], extra: Partial<ProxyManifest> = {}): ProxyManifest => ({
    ...manifest([file('haproxy.cfg'), file(certificateFile, { mode: 0o600, from: { secret: 's', key: 'tls.pem' } }), file(caFile)]),
    dataPlane: 'haproxy',
    skeletonHash: hash('c'),
    servers: servers as ProxyManifest['servers'],
    ...extra,
  });
  const table: Array<[string, ProxyManifest, RegExp | undefined]> = [
    ['a rendered manifest', haproxyManifest([good]), undefined],
    ['the system trust store', haproxyManifest([{ ...good, caFile: '@system-ca' }]), undefined],
    ['an IPv6 partner', haproxyManifest([{ ...good, host: 'fd00::40' }]), undefined],
    ['a host that would add an argument', haproxyManifest([{ ...good, host: 'a.example verify none' }]), /host/],
    ['a host that would add a command', haproxyManifest([{ ...good, host: 'a.example;shutdown sessions' }]), /host/],
    ['a serverName with a newline', haproxyManifest([{ ...good, serverName: 'a.example\ndel server x' }]), /serverName/],
    ['a backend that is not its port', haproxyManifest([{ ...good, backend: 'unbound' }]), /backend/],
    ['a server name HAProxy would take as two', haproxyManifest([{ ...good, server: 's0123 x' }]), /server name/],
    ['a certificate file outside the manifest', haproxyManifest([{ ...good, certificateFile: 'certs/other.pem' }]), /certificate file/],
    ['a CA path outside the config', haproxyManifest([{ ...good, caFile: '/etc/ssl/private/key.pem' }]), /CA file/],
    ['two servers for one port', haproxyManifest([good, { ...good, key: 'team-a/b', server: 's0123456789ac' }]), /two servers/],
    ['no skeleton hash', haproxyManifest([good], { skeletonHash: 'x' }), /skeleton/],
    ['a manifest for the other data plane', { ...haproxyManifest([good]), dataPlane: 'nginx' }, /rendered for nginx/],
  ];
  for (const [name, m, problem] of table) {
    test(name, () => {
      const found = manifestProblem(m, 'haproxy');
      if (problem) assert.match(found ?? '', problem);
      else assert.equal(found, undefined);
    });
  }
});
