import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import { annotationBinding, credentialSecretName, materialize, parseManifest, proxyObjects } from '../../src/proxy/proxy-objects.ts';
import { renderNginx } from '../../src/render/nginx.ts';

const keyText = '-----BEGIN PRIVATE KEY-----\nS3CR3T-KEY-BYTES\n-----END PRIVATE KEY-----\n';

function route(name: string, port: number, withCA = false): EgressRoute {
  return {
    key: `team-a/${name}`,
    namespace: 'team-a',
    name,
    listenerPort: port,
    host: 'api.partner.example',
    port: 443,
    serverName: 'api.partner.example',
    clientCertificate: {
      chainPem: `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n`,
      privateKey: new Sensitive(keyText),
      serialNumber: `5e${port}`,
      fingerprintSha256: `FP:${name}`,
    },
    ...(withCA ? { serverCA: { pem: '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n' } } : {}),
  };
}

describe('proxyObjects / materialize', () => {
  const routes = [route('b', 10001, true), route('a', 10000)];
  const rendered = renderNginx(routes, { listenAddress: '0.0.0.0' });
  const objects = proxyObjects(rendered, routes, 'mtls-egress-system');

  test('no key material in the ConfigMap; one credential Secret per binding', () => {
    assert.ok(!JSON.stringify(objects.configMap).includes('S3CR3T'));
    assert.ok(!JSON.stringify(objects.configMap).includes(Buffer.from(keyText).toString('base64').slice(0, 20)));
    assert.deepEqual(objects.secrets.map((s) => s.metadata.annotations[annotationBinding]).sort(), ['team-a/a', 'team-a/b']);
    for (const s of objects.secrets) assert.deepEqual(Object.keys(s.data).sort(), ['tls.crt', 'tls.key']);
    assert.equal(objects.secrets.find((s) => s.metadata.name === credentialSecretName('team-a/a'))?.metadata.annotations[annotationBinding], 'team-a/a');
  });

  test('the manifest names each binding with its certificate and port', () => {
    const manifest = parseManifest(objects.configMap);
    assert.deepEqual(manifest?.bindings, {
      'team-a/a': { fingerprintSha256: 'FP:a', serialNumber: '5e10000', listenerPort: 10000 },
      'team-a/b': { fingerprintSha256: 'FP:b', serialNumber: '5e10001', listenerPort: 10001 },
    });
    assert.equal(manifest?.hash, rendered.hash);
  });

  test('round trip: the agent gets exactly the rendered files', () => {
    const secrets = new Map(objects.secrets.map((s) => [s.metadata.name, s.data]));
    const result = materialize(parseManifest(objects.configMap)!, objects.configMap, (n) => secrets.get(n));
    assert.ok(result.ok);
    assert.deepEqual(result.files, rendered.files);
  });

  test('a Secret not yet seen, or an older version of it, makes the agent wait', () => {
    const manifest = parseManifest(objects.configMap)!;
    const missing = materialize(manifest, objects.configMap, () => undefined);
    assert.ok(!missing.ok && missing.waitingFor.startsWith('Secret mtls-egress-cred-'));
    const stale = new Map(objects.secrets.map((s) => [s.metadata.name, { ...s.data, 'tls.crt': Buffer.from('old').toString('base64') }]));
    assert.equal(materialize(manifest, objects.configMap, (n) => stale.get(n)).ok, false);
  });

  test('deterministic: the same routes give the same objects', () => {
    assert.deepEqual(proxyObjects(renderNginx([...routes].reverse(), { listenAddress: '0.0.0.0' }), [...routes].reverse(), 'mtls-egress-system'), objects);
  });
});
