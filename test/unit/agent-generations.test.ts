import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSafeRelativePath } from '../../src/contract/proxy-objects.ts';
import { haproxyServerProblem } from '../../src/dataplane/haproxy/server.ts';
import { entriesToRemove, fileIdentity, filesProblem, generationName, planGeneration } from '../../src/proxy/generations.ts';

const hash = (c: string): string => c.repeat(64);
const gen = (c: string): string => `gen-${hash(c)}`;

interface TestFile {
  path: string;
  mode: 0o600 | 0o644;
  sha256: string;
}

function file(path: string, overrides: Partial<TestFile> = {}): TestFile {
  return { path, mode: 0o644, sha256: 'aa', ...overrides };
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

describe('filesProblem: an assembled file set from objects anyone in the proxy namespace could write', () => {
  const table: Array<{ name: string; files: TestFile[]; problem: RegExp | undefined }> = [
    { name: 'a rendered set', files: [file('nginx.conf'), file('certs/a.crt'), file('certs/a.key', { mode: 0o600 })], problem: undefined },
    { name: 'no nginx.conf', files: [file('certs/a.crt')], problem: /no nginx\.conf/ },
    { name: 'a path out of the generation', files: [file('nginx.conf'), file('../current/nginx.conf')], problem: /unsafe path/ },
    { name: 'an absolute path', files: [file('nginx.conf'), file('/etc/nginx/nginx.conf')], problem: /unsafe path/ },
    { name: 'a mode other than 0600 or 0644', files: [file('nginx.conf', { mode: 0o777 as 0o644 })], problem: /mode 511/ },
    { name: 'a path twice', files: [file('nginx.conf'), file('nginx.conf')], problem: /listed twice/ },
    { name: 'a file where a directory must be', files: [file('nginx.conf'), file('certs'), file('certs/a.crt')], problem: /both a file and a directory/ },
  ];
  for (const { name, files, problem } of table) {
    test(name, () => {
      const found = filesProblem(files, 'nginx.conf');
      if (problem) assert.match(found ?? '', problem);
      else assert.equal(found, undefined);
    });
  }
  test('HAProxy needs haproxy.cfg', () => assert.match(filesProblem([file('nginx.conf')], 'haproxy.cfg') ?? '', /no haproxy\.cfg/));
});

describe('planGeneration', () => {
  // Files with their bytes in hand, as the controller's tests and tools give them.
  const files = [
    file('nginx.conf', { sha256: 'n2' }),
    file('certs/a.crt', { sha256: 'c1' }),
    file('certs/a.key', { mode: 0o600, sha256: 'k1' }),
    file('certs/b.crt', { sha256: 'b1' }),
  ].map((f) => ({ ...f, content: `bytes of ${f.path}` }));

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

  test('a file whose bytes only the store holds (the agent’s binding files) is linked from its object, whatever the current generation holds', () => {
    const stored = [file('certs/a.key', { mode: 0o600, sha256: 'k1' }), file('certs/b.crt', { sha256: 'b1' })];
    const current = new Map([['certs/a.key', fileIdentity({ mode: 0o600, sha256: 'k1' })]]);
    for (const reuse of [undefined, current]) {
      assert.deepEqual(
        planGeneration([files[0]!, ...stored], reuse).map((p) => p.action),
        ['write', 'store', 'store'],
      );
    }
  });
});

describe('haproxyServerProblem: every server value becomes a runtime API argument', () => {
  const certificateFile = 'certs/team-a_a.0123456789abcdef.pem';
  const caFile = 'ca/team-a_a.0123456789abcdef.pem';
  const paths = new Set([certificateFile, caFile]);
  const good = {
    key: 'team-a/a',
    listenerPort: 10000,
    backend: 'p10000',
    server: 's0123456789ab',
    host: 'partner.example',
    address: '203.0.113.10',
    port: 443,
    serverName: 'partner.example',
    hostHeader: 'partner.example',
    certificateFile,
    caFile,
    fingerprintSha256: 'AA',
    serialNumber: '1',
  };
  const table: Array<[string, unknown, RegExp | undefined]> = [
    ['a rendered server', good, undefined],
    ['the system trust store', { ...good, caFile: '@system-ca' }, undefined],
    ['an IPv6 partner', { ...good, host: 'fd00::40', address: 'fd00::40', hostHeader: '[fd00::40]' }, undefined],
    ['a name where the address goes: HAProxy would resolve it, unchecked', { ...good, address: 'partner.example' }, /address/],
    ['no address', { ...good, address: undefined }, /address/],
    ['an address that would add an argument', { ...good, address: '203.0.113.10 verify none' }, /address/],
    ['an IPv6 address with a zone', { ...good, address: 'fe80::1%eth0' }, /address/],
    ['no server at all', undefined, /no server/],
    ["another binding's server", { ...good, key: 'team-a/b' }, /another binding/],
    ['a host that would add an argument', { ...good, host: 'a.example verify none' }, /host/],
    ['a host that would add a command', { ...good, host: 'a.example;shutdown sessions' }, /host/],
    ['a serverName with a newline', { ...good, serverName: 'a.example\ndel server x' }, /serverName/],
    ['a Host header with a space', { ...good, hostHeader: 'a.example x' }, /Host header/],
    ['a backend that is not its port', { ...good, backend: 'unbound' }, /backend/],
    ['a server name HAProxy would take as two', { ...good, server: 's0123 x' }, /server name/],
    ["a certificate file outside the binding's files", { ...good, certificateFile: 'certs/other.pem' }, /certificate file/],
    ['a CA path outside the config', { ...good, caFile: '/etc/ssl/private/key.pem' }, /CA file/],
  ];
  for (const [name, server, problem] of table) {
    test(name, () => {
      const found = haproxyServerProblem(server, 'team-a/a', paths);
      if (problem) assert.match(found ?? '', problem);
      else assert.equal(found, undefined);
    });
  }
});
