import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import type { RenderedConfig } from '../../src/render/files.ts';
import { bindingConfDir, renderNginx, type NginxRenderOptions } from '../../src/dataplane/nginx/render.ts';
import { assertGolden, goldenCases, loadGoldenCase } from './golden-cases.ts';

// Golden files: test/golden/nginx/<case>.in.yaml and <case>.out.conf (see golden-cases.ts).

const dir = new URL('./nginx/', import.meta.url);
const loadCase = (name: string) => loadGoldenCase<NginxRenderOptions>(dir, name);
const cases = goldenCases(dir);

/** What nginx reads as configuration: nginx.conf and every binding's file it includes. */
function configText(rendered: RenderedConfig): string {
  return rendered.files
    .filter((f) => f.path === 'nginx.conf' || (f.path.startsWith(`${bindingConfDir}/`) && f.path.endsWith('.conf')))
    .map((f) => f.content)
    .join('\n');
}

describe('renderNginx golden files', () => {
  test('there are cases', () => assert.ok(cases.length >= 5, `found ${cases.length} cases in ${dir.pathname}`));

  for (const name of cases) {
    test(name, () => {
      const { routes, options } = loadCase(name);
      const rendered = renderNginx(routes, options);
      assertGolden(dir, name, rendered, 'nginx.conf');

      // Deterministic: input order and repetition change nothing, down to the hash.
      assert.deepEqual(renderNginx([...routes].reverse(), options), rendered);
      assert.equal(renderNginx(routes, options).hash, rendered.hash);

      const conf = configText(rendered);
      for (const route of routes) {
        const key = rendered.files.find((f) => f.path === `certs/${route.namespace}_${route.name}.key`);
        assert.equal(key?.mode, 0o600, `${route.key}'s key file is 0600`);
        assert.ok(!conf.includes(route.clientCertificate.privateKey.reveal().trim()), "no key material in nginx.conf or a binding's conf file");
      }
      for (const file of rendered.files) if (!file.path.endsWith('.key')) assert.equal(file.mode, 0o644, file.path);
      // One upstream block per binding, each used by exactly one proxy_pass.
      const upstreams = [...conf.matchAll(/^\s*upstream (\S+) \{/gm)].map((m) => m[1]);
      assert.equal(new Set(upstreams).size, routes.length);
      for (const u of upstreams) assert.equal(conf.split(`proxy_pass https://${u};`).length - 1, 1, `${u} is used once`);
    });
  }
});

describe('renderNginx refuses values that would change the config', () => {
  const { routes, options } = loadCase('single-binding');
  const base = routes[0]!;
  // The value checks are the model's routeValueProblem, tested value by value in
  // test/unit/translate.test.ts; here, that the renderer applies them to every field.
  const hostile: Array<[string, Partial<EgressRoute>]> = [
    ['host with a newline', { host: 'a.example\nproxy_ssl_verify off' }],
    ['serverName with a space', { serverName: 'a.example off' }],
    ['non-numeric port', { port: '443;' as unknown as number }],
    ['out-of-range listener port', { listenerPort: 70000 }],
    ['name with a slash', { name: 'a/b', key: 'team-a/a/b' }],
    ['key not matching namespace/name', { key: 'team-b/payments' }],
  ];
  for (const [what, change] of hostile) {
    test(what, () => assert.throws(() => renderNginx([{ ...base, ...change }], options), /renderNginx:/));
  }
  test('a serial number cannot end the comment it is in', () => {
    const route = { ...base, clientCertificate: { ...base.clientCertificate, serialNumber: '1a\nproxy_ssl_verify off;' } };
    const conf = configText(renderNginx([route], options));
    assert.match(conf, /# client certificate serial 1a\?proxy\?ssl\?verify\?off\?, SHA-256 /);
    assert.doesNotMatch(conf, /^\s*proxy_ssl_verify off/m);
  });
  test('two routes on one listener port', () => {
    assert.throws(() => renderNginx([base, { ...base, key: 'team-a/other', name: 'other' }], options), /listener port 10000/);
  });
  test('a listen address that is not an IP', () => {
    assert.throws(() => renderNginx(routes, { ...options, listenAddress: '0.0.0.0:80; ' }), /listenAddress/);
  });
  test('no access log', () => {
    const conf = configText(renderNginx(routes, { ...options, accessLog: 'off' }));
    assert.match(conf, /^ {4}access_log off;$/m);
  });
  test('a log path with a space', () => {
    assert.throws(() => renderNginx(routes, { ...options, accessLog: 'access.log main' }), /accessLog/);
  });
});
