import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import { backendName, renderHaproxy, serverArguments, type HaproxyRenderOptions } from '../../src/dataplane/haproxy/render.ts';
import { haproxyBinary } from '../harness/data-planes.ts';
import { assertGolden, goldenCases, loadGoldenCase } from './golden-cases.ts';

// Golden files: test/golden/haproxy/<case>.in.yaml and <case>.out.conf (see golden-cases.ts).
// That HAProxy itself accepts and serves what this renders is proven with real HAProxy in
// test/e2e/haproxy-data-plane.test.ts.

const dir = new URL('./haproxy/', import.meta.url);
const loadCase = (name: string) => loadGoldenCase<HaproxyRenderOptions>(dir, name);
const cases = goldenCases(dir);

describe('renderHaproxy golden files', () => {
  test('there are cases', () => assert.ok(cases.length >= 5, `found ${cases.length} cases in ${dir.pathname}`));

  for (const name of cases) {
    test(name, () => {
      const { routes, options } = loadCase(name);
      const rendered = renderHaproxy(routes, options);
      assertGolden(dir, name, rendered, 'haproxy.cfg');

      // Deterministic: input order changes nothing, down to the hash.
      assert.deepEqual(renderHaproxy([...routes].reverse(), options), rendered);
      // The skeleton is what a reload changes: bindings never do.
      assert.equal(rendered.skeletonHash, renderHaproxy([], options).skeletonHash);

      const cfg = rendered.files.find((f) => f.path === 'haproxy.cfg')!.content;
      for (const route of routes) {
        const server = rendered.servers.find((s) => s.key === route.key)!;
        const pem = rendered.files.find((f) => f.path === server.certificateFile);
        assert.equal(pem?.mode, 0o600, `${route.key}'s certificate and key file is 0600`);
        assert.ok(pem.content.includes(route.clientCertificate.privateKey.reveal().trim()), 'the key is in the certificate file');
        assert.ok(!cfg.includes(route.clientCertificate.privateKey.reveal().trim()), 'no key material in haproxy.cfg');
        assert.equal(pem.binding, route.key);
      }
      for (const file of rendered.files) if (!file.path.startsWith('certs/')) assert.equal(file.mode, 0o644, file.path);
      // A backend for every port of the range, bound or not; one server in each bound one.
      for (let port = options.listenerPorts.first; port <= options.listenerPorts.last; port++) {
        const block = cfg.split(`\nbackend ${backendName(port)}\n`)[1]?.split('\nbackend ')[0];
        assert.ok(block !== undefined, `backend ${backendName(port)} exists`);
        const servers = [...block.matchAll(/^ {4}server /gm)].length;
        assert.equal(servers, routes.some((r) => r.listenerPort === port) ? 1 : 0, `servers in ${backendName(port)}`);
      }
      const ports = rendered.files.find((f) => f.path === 'ports.map')!.content;
      assert.deepEqual(ports.split('\n').filter(Boolean), routes.map((r) => `${r.listenerPort} ${backendName(r.listenerPort)}`).sort());
    });
  }
});

describe('renderHaproxy: what HAProxy itself says', () => {
  // The golden files' certificates are fake, so only the skeleton can be loaded here;
  // test/e2e/haproxy-data-plane.test.ts loads and serves real bindings.
  for (const name of ['no-bindings', 'proxy-pod-options']) {
    test(`haproxy -c accepts the skeleton of ${name}`, () => {
      const { options } = loadCase(name);
      const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-haproxy-c-'));
      try {
        for (const file of renderHaproxy([], options).files) writeFileSync(join(dir, file.path), file.content);
        const env = { ...process.env, MTLS_EGRESS_CONFIG_DIR: dir, MTLS_EGRESS_RUN_DIR: dir };
        execFileSync(haproxyBinary(), ['-c', '-q', '-f', join(dir, 'haproxy.cfg')], { env, stdio: 'pipe' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('renderHaproxy server arguments', () => {
  const { routes, options } = loadCase('server-ca-and-port');
  const [server] = renderHaproxy(routes, options).servers;
  test('the runtime API gets plain paths; the config quotes them for ${} expansion', () => {
    assert.deepEqual(serverArguments(server!, '/etc/mtls-egress/current', { quote: false }).slice(0, 3), [
      'ssl',
      'crt',
      `/etc/mtls-egress/current/${server!.certificateFile}`,
    ]);
    assert.equal(serverArguments(server!, '${DIR}', { quote: true })[2], `"\${DIR}/${server!.certificateFile}"`);
  });
  const changed: Array<[string, (c: EgressRoute['clientCertificate']) => EgressRoute['clientCertificate']]> = [
    ['a new certificate', (c) => ({ ...c, fingerprintSha256: 'FF:FF', chainPem: `${c.chainPem}rotated\n` })],
    [
      'the same leaf with a reissued intermediate',
      (c) => ({ ...c, chainPem: `${c.chainPem}-----BEGIN CERTIFICATE-----\nNEW-INTERMEDIATE\n-----END CERTIFICATE-----\n` }),
    ],
  ];
  for (const [what, change] of changed) {
    test(`a server name names everything the line holds: ${what} is a new file and a new server`, () => {
      const rotated = routes.map((r) => (r.key === server!.key ? { ...r, clientCertificate: change(r.clientCertificate) } : r));
      const after = renderHaproxy(rotated, options).servers.find((s) => s.key === server!.key)!;
      assert.notEqual(after.server, server!.server);
      assert.notEqual(after.certificateFile, server!.certificateFile);
    });
  }
});

describe('renderHaproxy refuses values that would change the config', () => {
  const { routes, options } = loadCase('single-binding');
  const base = routes[0]!;
  const hostile: Array<[string, Partial<EgressRoute>]> = [
    ['host with a newline', { host: 'a.example\n    server evil 10.0.0.1:443' }],
    ['serverName with a space', { serverName: 'a.example verify none' }],
    ['non-numeric port', { port: '443;' as unknown as number }],
    ['listener port outside the range', { listenerPort: 10005 }],
    ['name with a slash', { name: 'a/b', key: 'team-a/a/b' }],
    ['key not matching namespace/name', { key: 'team-b/payments' }],
    ['a fingerprint that is not hex', { clientCertificate: { ...base.clientCertificate, fingerprintSha256: '../../x' } }],
  ];
  for (const [what, change] of hostile) {
    test(what, () => assert.throws(() => renderHaproxy([{ ...base, ...change }], options), /renderHaproxy:/));
  }
  test('two routes on one listener port', () => {
    assert.throws(() => renderHaproxy([base, { ...base, key: 'team-a/other', name: 'other' }], options), /listener port 10000/);
  });
  test('a status port inside the listener range', () => {
    assert.throws(() => renderHaproxy(routes, { ...options, statusPort: 10001 }), /statusPort/);
  });
  test('a listen address that is not an IP', () => {
    assert.throws(() => renderHaproxy(routes, { ...options, listenAddress: '0.0.0.0:80 ' }), /listenAddress/);
  });
  test('a thread count that is not 1 to 64, or text that would add a line', () => {
    for (const threads of [0, 65, 1.5, -1, '2\n    nbthread 64' as unknown as number]) {
      assert.throws(() => renderHaproxy(routes, { ...options, threads }), /renderHaproxy: threads/, String(threads));
    }
  });
  test('threads: nbthread is the option, and a different count is a different skeleton (a reload)', () => {
    const cfg = (threads?: number) => renderHaproxy(routes, { ...options, threads }).files.find((f) => f.path === 'haproxy.cfg')!.content;
    assert.match(cfg(64), /^ {4}nbthread 64$/m);
    // Without it HAProxy picks one per CPU itself: `render` leaves it to the machine that runs it.
    assert.doesNotMatch(cfg(), /nbthread/);
    assert.notEqual(renderHaproxy(routes, { ...options, threads: 2 }).skeletonHash, renderHaproxy(routes, { ...options, threads: 4 }).skeletonHash);
  });
  test('no access log: no log target at all', () => {
    const cfg = renderHaproxy(routes, { ...options, logTarget: 'off' }).files.find((f) => f.path === 'haproxy.cfg')!.content;
    assert.doesNotMatch(cfg, /^\s*log (stdout|stderr)/m);
  });
});
