import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import type { HeldBinding } from '../../src/proxy/data-plane.ts';
import { assembleHaproxyConfig } from '../../src/dataplane/haproxy/assemble.ts';
import { dataPlanes as drivers, isDataPlaneKind, objectsOfRender } from '../../src/dataplane/registry.ts';
import {
  contentOf,
  annotationBinding,
  annotationBundles,
  annotationFingerprint,
  bindingManifestKey,
  bundleDataKey,
  bundleObjectName,
  bundlePath,
  credentialSecretName,
  manifestFormat,
  manifestKey,
  parseManifest,
  BundleObjectMemo,
  bundleObjects,
  readBindingObject,
  readBundleObject,
  readProxySecrets,
  readSharedFiles,
  type ProxyFile,
  type BindingObject,
  type ProxyObjects,
} from '../../src/contract/proxy-objects.ts';
import { renderHaproxy } from '../../src/dataplane/haproxy/render.ts';
import { renderNginx } from '../../src/dataplane/nginx/render.ts';
import { routeBundles } from '../../src/render/files.ts';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

const keyText = '-----BEGIN PRIVATE KEY-----\nS3CR3T-KEY-BYTES\n-----END PRIVATE KEY-----\n';
const namespace = 'mtls-egress-system';
const listenerPorts = { first: 10000, last: 19999 };

const partnerCA = '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n';

function route(name: string, port: number, options: { withCA?: boolean | string; serial?: string } = {}): EgressRoute {
  return {
    key: `team-a/${name}`,
    namespace: 'team-a',
    name,
    listenerPort: port,
    host: 'api.partner.example',
    addresses: ['203.0.113.10'],
    port: 443,
    serverName: 'api.partner.example',
    clientCertificate: {
      chainPem: `-----BEGIN CERTIFICATE-----\n${name}${options.serial ?? ''}\n-----END CERTIFICATE-----\n`,
      privateKey: new Sensitive(keyText),
      serialNumber: options.serial ?? `5e${port}`,
      fingerprintSha256: `${(options.serial ?? name).padStart(2, '0').slice(0, 2).toUpperCase()}:AB`,
    },
    ...(options.withCA ? { serverCA: { pem: typeof options.withCA === 'string' ? options.withCA : partnerCA } } : {}),
  };
}

const dataPlanes = {
  nginx: (routes: readonly EgressRoute[]) => renderNginx(routes, { listenAddress: '0.0.0.0', listenerPorts }),
  haproxy: (routes: readonly EgressRoute[]) => renderHaproxy(routes, { listenAddress: '0.0.0.0', listenerPorts }),
};

/** The agent's side, as it runs on what a watch delivers. */
function agentView(objects: ProxyObjects, secrets: readonly BindingObject[] = objects.secrets) {
  const manifest = parseManifest(objects.configMap)!;
  const shared = readSharedFiles(manifest, objects.configMap);
  assert.ok(shared.ok);
  const { held, problems } = readProxySecrets([...objects.bundles, ...secrets]);
  assert.deepEqual(problems, []);
  assert.ok(isDataPlaneKind(manifest.dataPlane));
  return { manifest, assembly: drivers[manifest.dataPlane].assembler()(shared.files, held) };
}

for (const [dataPlane, render] of Object.entries(dataPlanes)) {
  describe(`proxy objects (${dataPlane}): one object per binding and a small index`, () => {
    const routes = [route('b', 10001, { withCA: true }), route('a', 10000)];
    const rendered = render(routes);
    const objects = objectsOfRender(rendered, routes, namespace);

    test('no key material in the ConfigMap; one Secret per binding, named and annotated for it', () => {
      assert.ok(!JSON.stringify(objects.configMap).includes('S3CR3T'));
      assert.ok(!JSON.stringify(objects.configMap).includes(Buffer.from(keyText).toString('base64').slice(0, 20)));
      assert.deepEqual(objects.secrets.map((s) => s.metadata.annotations[annotationBinding]).sort(), ['team-a/a', 'team-a/b']);
      for (const s of objects.secrets) {
        const key = s.metadata.annotations[annotationBinding]!;
        assert.equal(s.metadata.name, credentialSecretName(key));
        assert.equal(s.metadata.annotations[annotationFingerprint], routes.find((r) => r.key === key)!.clientCertificate.fingerprintSha256);
        assert.ok(bindingManifestKey in s.data);
      }
    });

    test('round trip: the agent assembles exactly the full render, and its hash is the index', () => {
      const { manifest, assembly } = agentView(objects);
      assert.ok(assembly.ok);
      assert.deepEqual(assembly.leftOut, []);
      assert.equal(assembly.config.hash, manifest.hash);
      assert.equal(manifest.bindings, 2);
      // A bundle is the objects' once, whichever binding the render listed it under.
      assert.deepEqual(
        assembly.config.files.map(({ sha256: _digest, ...f }) => f),
        rendered.files.map(({ binding, ...f }) => (f.bundle || binding === undefined ? f : { ...f, binding })),
      );
    });

    test('a binding changed: only its Secret and the index change; the shared files do not', () => {
      const changed = [routes[0]!, route('a', 10000, { serial: '77' })];
      const next = objectsOfRender(render(changed), changed, namespace);
      const byName = (o: ProxyObjects) => new Map(o.secrets.map((s) => [s.metadata.name, JSON.stringify(s)]));
      const before = byName(objects);
      const after = byName(next);
      assert.deepEqual(
        [...after].filter(([name, text]) => before.get(name) !== text).map(([name]) => name),
        [credentialSecretName('team-a/a')],
      );
      assert.notEqual(parseManifest(next.configMap)!.hash, parseManifest(objects.configMap)!.hash);
      assert.deepEqual(parseManifest(next.configMap)!.files, parseManifest(objects.configMap)!.files);
    });

    test("the ConfigMap does not grow with the number of bindings (the index's count aside)", () => {
      const many = Array.from({ length: 1000 }, (_, i) => route(`b${i}`, 10000 + i));
      const large = JSON.stringify(objectsOfRender(render(many), many, namespace).configMap).length;
      const small = JSON.stringify(objects.configMap).length;
      assert.ok(Math.abs(large - small) < 16, `${large} bytes at 1,000 bindings, ${small} at 2`);
    });

    test('the agent holds fewer objects than the index counts: it serves those, and its hash says it is not complete', () => {
      const { manifest, assembly } = agentView(objects, objects.secrets.slice(0, 1));
      assert.ok(assembly.ok);
      assert.equal(assembly.config.bindings, 1);
      assert.notEqual(assembly.config.hash, manifest.hash);
    });

    test('deterministic: the same routes in any order give the same objects', () => {
      const reversed = [...routes].reverse();
      assert.deepEqual(objectsOfRender(render(reversed), reversed, namespace), objects);
    });
  });
}

describe('readBindingObject: one hostile object costs one binding', () => {
  const routes = [route('a', 10000)];
  const [good] = objectsOfRender(dataPlanes.nginx(routes), routes, namespace).secrets;
  const manifest = JSON.parse(Buffer.from(good!.data[bindingManifestKey]!, 'base64').toString()) as Record<string, unknown>;
  const files = manifest.files as Array<Record<string, unknown>>;
  const withManifest = (change: Record<string, unknown>): BindingObject => ({
    ...good!,
    data: { ...good!.data, [bindingManifestKey]: Buffer.from(JSON.stringify({ ...manifest, ...change })).toString('base64') },
  });
  const table: Array<[string, BindingObject, RegExp | undefined]> = [
    ['the object as written', good!, undefined],
    ['no binding.json', { ...good!, data: { ...good!.data, [bindingManifestKey]: undefined as unknown as string } }, /no binding\.json/],
    ['binding.json that is not JSON', { ...good!, data: { ...good!.data, [bindingManifestKey]: Buffer.from('{').toString('base64') } }, /not JSON/],
    ['a path out of the generation', withManifest({ files: [{ ...files[0], path: '../current/nginx.conf' }] }), /unsafe path/],
    ['a path over a shared file', withManifest({ files: [{ ...files[0], path: 'nginx.conf' }] }), /unsafe path/],
    ['a path deeper than its directory', withManifest({ files: [{ ...files[0], path: 'certs/x/a.crt' }] }), /unsafe path/],
    ['a data key the object lacks', withManifest({ files: [{ ...files[0], key: 'nope' }] }), /data key "nope" is missing/],
    ['binding.json as a file', withManifest({ files: [{ ...files[0], key: bindingManifestKey }] }), /data key/],
    ['a mode other than 0600 or 0644', withManifest({ files: [{ ...files[0], mode: 0o4755 }] }), /mode/],
    ['an object named for another binding', withManifest({ key: 'team-a/other' }), /named for another binding/],
    ['a key that is not namespace/name', withManifest({ key: '../x' }), /namespace\/name/],
    ['a listener port that is no port', withManifest({ listenerPort: 70000 }), /port number/],
  ];
  for (const [name, object, problem] of table) {
    test(name, () => {
      const read = readBindingObject(object);
      if (problem) assert.ok(!read.ok && problem.test(read.problem), read.ok ? 'accepted' : read.problem);
      else assert.ok(read.ok);
    });
  }
});

describe('assembleHaproxyConfig: bindings that cannot be served with the rest are left out, the rest served', () => {
  const routes = [route('a', 10000), route('b', 10001)];
  const objects = objectsOfRender(dataPlanes.haproxy(routes), routes, namespace);
  const manifest = parseManifest(objects.configMap)!;
  const shared = readSharedFiles(manifest, objects.configMap);
  assert.ok(shared.ok);
  const held = objects.secrets.map((s) => {
    const read = readBindingObject(s);
    assert.ok(read.ok);
    return { contentHash: read.contentHash, part: read.part };
  });
  const a = held.find((h) => h.part.key === 'team-a/a')!;
  const b = held.find((h) => h.part.key === 'team-a/b')!;
  const certificatePath = (h: HeldBinding): string => h.part.files.find((f) => f.path.startsWith('certs/'))!.path;
  const table: Array<[string, HeldBinding[], string[], RegExp | undefined]> = [
    ['both', [a, b], ['team-a/a', 'team-a/b'], undefined],
    ['two bindings on one port (a moment while ports move)', [a, { ...b, part: { ...b.part, listenerPort: 10000 } }], ['team-a/a'], /another binding's/],
    ['a second object for a binding', [a, b, { ...a, contentHash: 'ff' }], ['team-a/a', 'team-a/b'], /second object/],
    ['a port outside the range', [a, { ...b, part: { ...b.part, listenerPort: 30000 } }], ['team-a/a'], /outside 10000-19999/],
    [
      'a file another binding holds (a hand edit)',
      [
        a,
        {
          ...b,
          part: {
            ...b.part,
            files: (b.part.files as ProxyFile[]).map((f) => (f.path.startsWith('certs/') ? { ...f, path: certificatePath(a) } : f)),
          },
        },
      ],
      ['team-a/a'],
      /another binding's, or listed twice/,
    ],
    [
      'a server that would inject a runtime command',
      [a, { ...b, part: { ...b.part, server: { ...(b.part.server as object), host: 'x;shutdown' } } }],
      ['team-a/a'],
      /host/,
    ],
  ];
  test('the files assembled (rendered when first read) are the files a whole render makes', () => {
    const assembly = assembleHaproxyConfig(shared.files, [b, a]);
    assert.ok(assembly.ok);
    const rendered = dataPlanes.haproxy(routes);
    assert.deepEqual(
      assembly.config.files.map((f) => [f.path, f.mode, contentOf(f)]),
      rendered.files.map((f) => [f.path, f.mode, f.content]),
    );
    assert.equal(assembly.config.file(a.part.files[0]!.path), a.part.files[0]);
  });
  for (const [name, bindings, served, leftOut] of table) {
    test(name, () => {
      const assembly = assembleHaproxyConfig(shared.files, bindings);
      assert.ok(assembly.ok, assembly.ok ? '' : assembly.problem);
      assert.deepEqual(
        assembly.config.servers!.map((s) => s.key),
        served,
      );
      if (leftOut) assert.match(assembly.leftOut.join('\n'), leftOut);
      else assert.deepEqual(assembly.leftOut, []);
    });
  }
});

const digestOf = (text: string): string => createHash('sha256').update(text).digest('hex');
const decoded = (value: string): string => Buffer.from(value, 'base64').toString('utf8');

for (const [dataPlane, render] of Object.entries(dataPlanes)) {
  describe(`CA bundles (${dataPlane}): one object per distinct bundle, referenced by its digest`, () => {
    const otherCA = '-----BEGIN CERTIFICATE-----\nOTHER\n-----END CERTIFICATE-----\n';
    const sharing = Array.from({ length: 50 }, (_, i) => route(`b${i}`, 10000 + i, { withCA: true }));
    const routes = [...sharing, route('ca', 10100, { withCA: otherCA }), route('db', 10101)];
    const objects = objectsOfRender(render(routes), routes, namespace);
    const bundleName = bundleObjectName(digestOf(partnerCA));

    test('50 bindings that trust one bundle and one that trusts another: two bundle objects, each named by its content', () => {
      assert.deepEqual(objects.bundles.map((b) => b.metadata.name).sort(), [bundleName, bundleObjectName(digestOf(otherCA))].sort());
      for (const bundle of objects.bundles) {
        assert.equal(bundle.metadata.name, bundleObjectName(digestOf(decoded(bundle.data[bundleDataKey]!))));
        assert.deepEqual(Object.keys(bundle.data), [bundleDataKey]);
        assert.ok(readBundleObject(bundle).ok);
      }
    });

    test("a binding object references its bundle by digest and holds none of the bundle's bytes", () => {
      for (const secret of objects.secrets) {
        const key = secret.metadata.annotations[annotationBinding]!;
        const ca = routes.find((r) => r.key === key)!.serverCA?.pem;
        assert.equal(secret.metadata.annotations[annotationBundles], ca ? digestOf(ca) : undefined, key);
        for (const value of Object.values(secret.data)) if (ca) assert.ok(!decoded(value).includes(ca), `${key} holds its CA's bytes`);
        const read = readBindingObject(secret);
        assert.ok(read.ok);
        assert.deepEqual(read.bundles, ca ? [{ path: bundlePath(digestOf(ca)), sha256: digestOf(ca) }] : []);
      }
    });

    test('the objects hold the bundle once: their bytes do not grow with the bindings that share it', () => {
      const bytes = (o: ProxyObjects): number => [...o.secrets, ...o.bundles].reduce((sum, s) => sum + JSON.stringify(s.data).length, 0);
      const big = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(64 * 1024)}\n-----END CERTIFICATE-----\n`;
      const few = Array.from({ length: 2 }, (_, i) => route(`f${i}`, 10000 + i, { withCA: big }));
      const many = Array.from({ length: 50 }, (_, i) => route(`f${i}`, 10000 + i, { withCA: big }));
      const perBinding = (bytes(objectsOfRender(render(many), many, namespace)) - bytes(objectsOfRender(render(few), few, namespace))) / 48;
      assert.ok(perBinding < 4096, `${Math.round(perBinding)} bytes per binding beyond the first two`);
    });

    test('the agent assembles one file per bundle, one object in memory shared by every binding that uses it', () => {
      const { held, problems } = readProxySecrets([...objects.bundles, ...objects.secrets]);
      assert.deepEqual(problems, []);
      const files = held.flatMap((h) => h.part.files.filter((f) => f.path === bundlePath(digestOf(partnerCA))));
      assert.equal(files.length, 50);
      assert.ok(
        files.every((f) => f === files[0]),
        'the same object',
      );
      const { assembly } = agentView(objects);
      assert.ok(assembly.ok);
      assert.deepEqual(assembly.leftOut, []);
      assert.deepEqual(
        assembly.config.files.filter((f) => f.path.startsWith('ca/')).map((f) => f.path),
        [bundlePath(digestOf(partnerCA)), bundlePath(digestOf(otherCA))].sort(),
      );
    });

    test('a binding whose bundle the agent does not hold waits, and the others are served', () => {
      const withoutOther = objects.bundles.filter((b) => b.metadata.name !== bundleObjectName(digestOf(otherCA)));
      const { held, problems } = readProxySecrets([...withoutOther, ...objects.secrets]);
      assert.equal(held.length, routes.length - 1);
      assert.deepEqual(problems, [`team-a/ca: waiting for bundle ${bundleObjectName(digestOf(otherCA))}`]);
    });
  });
}

describe('readBundleObject: a bundle is what its name says, and bounded', () => {
  const [good] = objectsOfRender(dataPlanes.haproxy([route('a', 10000, { withCA: true })]), [route('a', 10000, { withCA: true })], namespace).bundles;
  const other = Buffer.from('-----BEGIN CERTIFICATE-----\nEVIL\n-----END CERTIFICATE-----\n').toString('base64');
  const huge = Buffer.from('A'.repeat((1 << 20) + 1)).toString('base64');
  const table: Array<[string, BindingObject, RegExp | undefined]> = [
    ['the object as written', good!, undefined],
    ['other bytes under the name (a hand edit)', { ...good!, data: { [bundleDataKey]: other } }, /does not hash to its name/],
    ['no bundle key', { ...good!, data: {} }, /no bundle\.pem/],
    ['a name that is no digest', { ...good!, metadata: { ...good!.metadata, name: 'mtls-egress-ca-nope' } }, /not named/],
    ['more than a bundle may be', { ...good!, data: { [bundleDataKey]: huge } }, /over 1048576 bytes/],
  ];
  for (const [name, object, problem] of table) {
    test(name, () => {
      const read = readBundleObject(object);
      if (problem) assert.ok(!read.ok && problem.test(read.problem), read.ok ? 'accepted' : read.problem);
      else assert.ok(read.ok);
    });
  }

  test('a binding object whose bundle path is not its digest is refused', () => {
    const routes = [route('a', 10000, { withCA: true })];
    const [secret] = objectsOfRender(dataPlanes.nginx(routes), routes, namespace).secrets;
    const manifest = JSON.parse(decoded(secret!.data[bindingManifestKey]!)) as { files: Array<Record<string, unknown>> };
    const files = manifest.files.map((f) => (f.bundle ? { ...f, path: 'ca/elsewhere.pem' } : f));
    const read = readBindingObject({
      ...secret!,
      data: { ...secret!.data, [bindingManifestKey]: Buffer.from(JSON.stringify({ ...manifest, files })).toString('base64') },
    });
    assert.ok(!read.ok && /a bundle is ca\/<sha256>\.pem/.test(read.problem), read.ok ? 'accepted' : read.problem);
  });
});

describe('the manifest format', () => {
  test(`an agent reads format ${manifestFormat} only: an index of another format is refused, never misread`, () => {
    const routes = [route('a', 10000, { withCA: true })];
    const { configMap, manifest } = objectsOfRender(dataPlanes.haproxy(routes), routes, namespace);
    assert.equal(manifestFormat, 3);
    assert.ok(parseManifest(configMap));
    for (const format of [2, 4]) {
      const packed = gzipSync(JSON.stringify({ ...manifest, format })).toString('base64');
      assert.equal(parseManifest({ binaryData: { ...configMap.binaryData, [manifestKey]: packed } }), undefined, `format ${format}`);
    }
  });
});

describe('BundleObjectMemo: a shared bundle is made into an object once', () => {
  const bundleOf = (pem: string) => routeBundles({ key: 'team-a/x', serverCA: { pem } as EgressRoute['serverCA'] })[0]!;

  test('bindings that share a bundle get the very object the first one made; another bundle gets its own', () => {
    const memo = new BundleObjectMemo();
    const [first] = bundleObjects({ files: [bundleOf(partnerCA)] }, namespace, memo);
    const [again] = bundleObjects({ files: [bundleOf(partnerCA)] }, namespace, memo);
    const [other] = bundleObjects({ files: [bundleOf(partnerCA.replace('CA', 'CB'))] }, namespace, memo);
    assert.equal(again, first);
    assert.notEqual(other!.metadata.name, first!.metadata.name);
    assert.deepEqual(first, bundleObjects({ files: [bundleOf(partnerCA)] }, namespace)[0]);
  });

  test('past its byte bound it forgets, and makes the object again', () => {
    const memo = new BundleObjectMemo();
    const big = (n: number) => `-----BEGIN CERTIFICATE-----\n${String(n).repeat(7 * 1024 * 1024)}\n-----END CERTIFICATE-----\n`;
    const [first] = bundleObjects({ files: [bundleOf(big(1))] }, namespace, memo);
    bundleObjects({ files: [bundleOf(big(2))] }, namespace, memo);
    const [again] = bundleObjects({ files: [bundleOf(big(1))] }, namespace, memo);
    assert.notEqual(again, first);
    assert.deepEqual(again, first);
  });
});
