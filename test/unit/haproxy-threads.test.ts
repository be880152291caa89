import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { contentOf, parseManifest, readProxySecrets, readSharedFiles } from '../../src/contract/proxy-objects.ts';
import type { ProxySettings } from '../../src/dataplane/driver.ts';
import { haproxyThreads, maxHaproxyThreads } from '../../src/dataplane/haproxy/threads.ts';
import { dataPlanes, objectsOfRender } from '../../src/dataplane/registry.ts';
import { loadGoldenCase } from '../golden/golden-cases.ts';

describe("HAProxy's threads", () => {
  test('auto follows the CPUs; a number is taken as it is; always 1 to 64', () => {
    const cases: Array<[number | 'auto', number, number]> = [
      ['auto', 1, 1],
      ['auto', 2, 2],
      ['auto', 16, 16],
      ['auto', 0, 1],
      ['auto', 512, maxHaproxyThreads],
      [4, 2, 4],
      [1, 64, 1],
      [100, 2, maxHaproxyThreads],
    ];
    for (const [setting, cpus, threads] of cases) assert.equal(haproxyThreads(setting, cpus), threads, `${setting} with ${cpus} CPUs`);
  });

  test("the agent's assembly renders its own nbthread over the controller's shared options, under the same hash", () => {
    const settings: ProxySettings = { listenAddress: '0.0.0.0', listenerPorts: { first: 10000, last: 10099 } };
    const { routes } = loadGoldenCase(new URL('../golden/nginx/', import.meta.url), 'shared-partner-two-identities');
    const driver = dataPlanes.haproxy;
    const objects = objectsOfRender(driver.render(routes, settings), routes, 'mtls-egress');
    const manifest = parseManifest(objects.configMap)!;
    const shared = readSharedFiles(manifest, objects.configMap);
    assert.ok(shared.ok);
    const { held } = readProxySecrets([...objects.bundles, ...objects.secrets]);
    const assemble = (threads?: { cpus: number; haproxyThreads: number | 'auto' }) => {
      const assembly = driver.assembler(threads)(shared.files, held);
      assert.ok(assembly.ok);
      const cfg = contentOf(assembly.config.files.find((f) => f.path === driver.configFile)!)!;
      return { cfg, hash: assembly.config.hash };
    };
    const two = assemble({ cpus: 2, haproxyThreads: 'auto' });
    assert.match(two.cfg, /^ {4}nbthread 2$/m);
    assert.match(assemble({ cpus: 2, haproxyThreads: 8 }).cfg, /^ {4}nbthread 8$/m);
    // Replicas with different limits serve the same objects: they report the same hash.
    assert.equal(assemble({ cpus: 6, haproxyThreads: 'auto' }).hash, two.hash);
    assert.equal(two.hash, manifest.hash);
    assert.doesNotMatch(assemble().cfg, /nbthread/, 'no settings: as `render` writes it');
  });
});
