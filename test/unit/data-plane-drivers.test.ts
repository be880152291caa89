import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  annotationBinding,
  annotationContentHash,
  bindingObject,
  contentOf,
  parseManifest,
  bundleObjects,
  readProxySecrets,
  readSharedFiles,
  sharedConfigMap,
} from '../../src/contract/proxy-objects.ts';
import type { ProxySettings } from '../../src/dataplane/driver.ts';
import { dataPlaneKinds, dataPlanes, isDataPlaneKind, objectsOfRender } from '../../src/dataplane/registry.ts';
import { loadGoldenCase } from '../golden/golden-cases.ts';

// What every driver promises, checked for each kind the registry names: the controller's
// half (renderer) and a whole render give the same objects, and the agent's half
// (assembler) turns those objects back into the files a whole render makes.

// Two cases: one partner, two identities; and two bindings that trust one CA bundle.
const cases = ['shared-partner-two-identities', 'server-ca-and-port'] as const;
const settings: ProxySettings = { listenAddress: '0.0.0.0', listenerPorts: { first: 10000, last: 10099 }, statusPort: 8080, accessLog: '/dev/stdout' };
const namespace = 'mtls-egress';

describe('the data-plane registry', () => {
  test('each driver is registered under its own kind', () => {
    for (const kind of dataPlaneKinds) assert.equal(dataPlanes[kind].kind, kind);
    assert.ok(isDataPlaneKind('haproxy'));
    assert.ok(!isDataPlaneKind('envoy'));
    assert.ok(!isDataPlaneKind('toString'), 'not a key of every object');
  });
});

for (const kind of dataPlaneKinds)
  for (const name of cases) {
    const driver = dataPlanes[kind];
    const { routes } = loadGoldenCase(new URL('../golden/nginx/', import.meta.url), name);
    describe(`the ${kind} driver (${name})`, () => {
      const rendered = driver.render(routes, settings);
      const objects = objectsOfRender(rendered, routes, namespace);

      test('the controller, one binding at a time, writes what a whole render splits into', () => {
        const renderer = driver.renderer(settings);
        assert.equal(renderer.dataPlane, kind);
        const secrets = [...routes].sort((a, b) => (a.key < b.key ? -1 : 1)).map((route) => bindingObject(renderer.binding(route), namespace));
        assert.deepEqual(secrets, objects.secrets);
        const bundles = new Map(routes.flatMap((route) => bundleObjects(renderer.binding(route), namespace)).map((b) => [b.metadata.name, b]));
        assert.deepEqual([...bundles.values()], objects.bundles, 'each bundle once');
        const hashes = new Map(secrets.map((s) => [s.metadata.annotations[annotationBinding]!, s.metadata.annotations[annotationContentHash]!]));
        assert.deepEqual(sharedConfigMap(kind, renderer.shared(), hashes, namespace).configMap, objects.configMap);
      });

      test("the agent assembles the objects into the whole render's files, under the index's hash", () => {
        const manifest = parseManifest(objects.configMap)!;
        const shared = readSharedFiles(manifest, objects.configMap);
        assert.ok(shared.ok);
        const { held, problems } = readProxySecrets([...objects.bundles, ...objects.secrets]);
        assert.deepEqual(problems, []);
        const assembly = driver.assembler()(shared.files, held);
        assert.ok(assembly.ok, assembly.ok ? '' : assembly.problem);
        assert.equal(assembly.config.hash, manifest.hash);
        assert.equal(assembly.config.dataPlane, kind);
        assert.deepEqual(
          assembly.config.files.map((f) => [f.path, f.mode, contentOf(f)]),
          rendered.files.map((f) => [f.path, f.mode, f.content]),
        );
        assert.ok(
          assembly.config.files.some((f) => f.path === driver.configFile),
          `${driver.configFile} is among the files`,
        );
      });

      // The translator never hands these over; a renderer refuses them all the same, since a
      // route's values end up inside the config's syntax.
      const [first, second] = [...routes].sort((a, b) => (a.key < b.key ? -1 : 1));
      for (const [what, bad, refusal] of [
        ['a route twice', [first!, first!], /appears twice/],
        ['a key that is not its namespace/name', [{ ...first!, key: 'team-a/other' }], /does not match its namespace and name/],
        ['a host that would break out of the config', [{ ...second!, host: 'partner.example;\n' }], /route .*:/],
      ] as const) {
        test(`a whole render refuses ${what}`, () => {
          assert.throws(() => driver.render(bad, settings), refusal);
        });
      }

      test('no shared file takes a name the agent makes itself', () => {
        for (const file of objects.manifest.files) assert.ok(!driver.reservedSharedPaths.has(file.path), file.path);
      });
    });
  }

describe('directory checks', () => {
  test('HAProxy names its files by plain absolute paths; nginx by paths relative to its config', () => {
    assert.equal(dataPlanes.haproxy.directoryProblem('/etc/mtls-egress'), undefined);
    assert.match(dataPlanes.haproxy.directoryProblem('/d d') ?? '', /HAProxy needs a path/);
    assert.match(dataPlanes.haproxy.directoryProblem('/etc/"x"') ?? '', /HAProxy needs a path/);
    assert.equal(dataPlanes.nginx.directoryProblem('/d d'), undefined);
  });
});
