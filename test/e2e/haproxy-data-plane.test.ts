// The HAProxy data plane on its own, against Debian's HAProxy and a real mTLS partner:
// the agent's config directory, HAProxy as its child, and the runtime API changes that
// replace reloads. No Kubernetes here (test/e2e/egress-haproxy.test.ts runs the whole
// product); the manifests are rendered exactly as the controller renders them.
import { Agent } from 'node:http';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../src/log.ts';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import type { PortRange } from '../../src/model/listener-ports.ts';
import { ConfigDir } from '../../src/proxy/config-dir.ts';
import type { ApplyResult } from '../../src/proxy/data-plane.ts';
import { generationName } from '../../src/proxy/generations.ts';
import { HaproxyDataPlane } from '../../src/dataplane/haproxy/data-plane.ts';
import { ManagedHaproxy, testHaproxyConfig } from '../../src/dataplane/haproxy/process.ts';
import { parseServersState } from '../../src/dataplane/haproxy/state.ts';
import { assembleHaproxyConfig } from '../../src/dataplane/haproxy/assemble.ts';
import { objectsOfRender } from '../../src/dataplane/registry.ts';
import { BundleResolver, parseManifest, readProxySecrets, readSharedFiles, type ProxyFile, type StoredFile } from '../../src/contract/proxy-objects.ts';
import { readCredentialSecret, type CredentialSecretLike } from '../../src/proxy/agent.ts';
import type { HeldBinding } from '../../src/proxy/data-plane.ts';
import { HaproxyError } from '../../src/dataplane/haproxy/runtime.ts';
import { renderHaproxy } from '../../src/dataplane/haproxy/render.ts';
import { pollUntil } from '../harness/poll.ts';
import { partnerRoute } from '../support/agent-process.ts';
import { haproxyBinary } from '../support/haproxy-process.ts';
import { startMtlsPartner, type MtlsPartner, type PartnerSeen } from '../support/mtls-partner.ts';
import { callProxy } from '../support/nginx-process.ts';
import { PartnerPki, type Issued } from '../support/partner-pki.ts';
import { steadyLoad } from '../support/steady-load.ts';
import { processGroupEmpty } from '../harness/processes.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';

const pki = new PartnerPki('Data Plane Partner CA');
const server = pki.issueServer({ cn: 'localhost', dnsNames: ['localhost'] });
const strangerPki = new PartnerPki('Some Other CA');
const base = 21000 + Math.floor(Math.random() * 50) * 20;
const range: PortRange = { first: base, last: base + 9 };

/**
 * The agent's half of an apply, as ProxyAgent runs it: the objects read as its informer
 * reads them (the bytes to the content store, digests in the cache), the objects stored,
 * a generation written, haproxy -c, `current` pointed, apply. The bytes are dropped from
 * memory before the apply (the agent drops them after it), so every payload HAProxy is
 * given comes from the store's files.
 */
class Rig {
  readonly dir = new ConfigDir(temporaryDirectory('haproxy-plane'));
  /** The agent's cache as the last apply read it. */
  cache: CredentialSecretLike[] = [];
  readonly runDir = join(this.dir.root, 'run');
  reloads = 0;
  restarts = 0;
  /** haproxy -c runs. */
  tests = 0;
  readonly changes: string[] = [];
  readonly haproxy: ManagedHaproxy;
  readonly plane: HaproxyDataPlane;

  constructor() {
    const logger = createLogger({ level: 'warn' });
    this.haproxy = new ManagedHaproxy({
      binary: haproxyBinary(),
      configDir: this.dir.generationPath(),
      runDir: this.runDir,
      startTimeoutMs: 20_000,
      reloadTimeoutMs: 20_000,
      stopTimeoutMs: 5_000,
      logger,
      stdout: 'ignore',
    });
    this.haproxy.onRestarted(() => this.restarts++);
    this.plane = new HaproxyDataPlane({
      haproxy: this.haproxy,
      configRoot: this.dir.root,
      contents: this.dir.store,
      test: (generationDir) => {
        this.tests++;
        return testHaproxyConfig(haproxyBinary(), generationDir, this.runDir);
      },
      logger,
      onReload: () => this.reloads++,
      onChange: (op) => this.changes.push(op),
    });
  }

  async apply(
    routes: readonly EgressRoute[],
    listenerPorts: PortRange = range,
    options: { written?: (file: ProxyFile) => ProxyFile } = {},
  ): Promise<ApplyResult> {
    await this.dir.prepare();
    const { mkdir } = await import('node:fs/promises');
    await mkdir(this.runDir, { recursive: true, mode: 0o700 });
    // As the agent has it: the controller's objects, read back and assembled.
    const objects = objectsOfRender(renderHaproxy(routes, { listenAddress: '127.0.0.1', listenerPorts, logTarget: 'stdout' }), routes, 'mtls-egress');
    const shared = readSharedFiles(parseManifest(objects.configMap)!, objects.configMap);
    assert.ok(shared.ok);
    // A file rewritten on its way to disk (`written`) keeps its bytes in hand: the store is for bytes as the objects hold them.
    const held = options.written ? this.#withContent([...objects.bundles, ...objects.secrets]) : this.#read([...objects.bundles, ...objects.secrets]);
    // Two threads, as the agent runs HAProxy in a pod limited to 2 CPUs: the runtime changes
    // below happen while both carry traffic.
    const assembly = assembleHaproxyConfig(shared.files, held, undefined, { threads: 2 });
    assert.ok(assembly.ok, assembly.ok ? '' : assembly.problem);
    assert.deepEqual(assembly.leftOut, []);
    const { config } = assembly;
    const generation = generationName(config.hash);
    await this.dir.store.store();
    this.dir.store.release();
    const written = options.written;
    await this.dir.write(generation, written ? config.files.map((f) => ('content' in f ? written(f) : f)) : config.files);
    const verdict = await this.plane.test(this.dir.generationPath(generation), config);
    assert.deepEqual(verdict, { ok: true });
    await this.dir.point(generation);
    return this.plane.apply({ config, generation });
  }

  #withContent(objects: Parameters<typeof readProxySecrets>[0]): HeldBinding[] {
    const { held, problems } = readProxySecrets(objects);
    assert.deepEqual(problems, []);
    return held;
  }

  /** As ProxyAgent's informer and #heldBindings read them. */
  #read(objects: ReadonlyArray<Parameters<typeof readCredentialSecret>[0]>): HeldBinding[] {
    this.cache = objects.map((object) => readCredentialSecret(object, this.dir.store));
    const bundles = new Map<string, StoredFile>();
    for (const { read } of this.cache) if (read.kind === 'bundle' && read.ok) bundles.set(read.file.sha256, read.file);
    const resolver = new BundleResolver<StoredFile>();
    const held: HeldBinding[] = [];
    for (const { read } of this.cache) {
      assert.ok(read.ok, read.ok ? '' : read.problem);
      if (read.kind !== 'binding') continue;
      const resolved = resolver.resolve(read, bundles);
      assert.ok(resolved.ok);
      held.push({ contentHash: read.contentHash, part: resolved.part });
    }
    return held;
  }

  async workerPid(): Promise<number> {
    return Number(/^Pid: (\d+)$/m.exec(await this.haproxy.runtime.run('show info'))?.[1]);
  }

  async servers(backend?: string): Promise<string[]> {
    return parseServersState(await this.haproxy.runtime.run('show servers state'))
      .filter((s) => s.backend.startsWith('p') && (!backend || s.backend === backend))
      .map((s) => `${s.backend}/${s.name}`);
  }
}

let partner: MtlsPartner;
let impostor: MtlsPartner;
let rig: Rig;
const clients = new Map<string, Issued>();

function route(name: string, listenerPort: number, client: Issued, target: MtlsPartner = partner): EgressRoute {
  clients.set(name, client);
  return partnerRoute({ namespace: 'team-a', name, listenerPort, partnerPort: target.port, client, partnerCA: pki.ca.certPem });
}

async function seen(port: number, method = 'GET'): Promise<PartnerSeen & { status: number; body: string }> {
  const res = await callProxy(port, { method, ...(method === 'POST' ? { body: '{"amount":1}' } : {}) });
  return { ...(res.status === 200 ? (JSON.parse(res.body) as PartnerSeen) : ({} as PartnerSeen)), status: res.status, body: res.body };
}

before(async () => {
  partner = await startMtlsPartner({ cert: server.certPem, key: server.keyPem, clientCA: pki.ca.certPem });
  const fake = strangerPki.issueServer({ cn: 'localhost', dnsNames: ['localhost'] });
  impostor = await startMtlsPartner({ cert: fake.certPem, key: fake.keyPem, clientCA: pki.ca.certPem });
  rig = new Rig();
});

after(async () => {
  await rig?.plane.stop();
  await partner?.close();
  await impostor?.close();
});

describe('HAProxy data plane: bindings change at run time, never by a reload', () => {
  let routes: EgressRoute[];
  let worker: number;

  test('a cold start serves every binding from the config on disk', async () => {
    routes = [route('alpha', range.first, pki.issueClient({ cn: 'alpha.client' }))];
    await rig.apply(routes);
    worker = await rig.workerPid();
    assert.match(await rig.haproxy.runtime.run('show info'), /^Nbthread: 2$/m);
    const alpha = await seen(range.first);
    assert.equal(alpha.cn, 'alpha.client');
    assert.equal(alpha.serialNumber, clients.get('alpha')!.serial);
    assert.equal(alpha.host, `localhost:${partner.port}`);
    assert.equal(alpha.sni, 'localhost');
    assert.deepEqual(rig.changes, [], 'nothing to change at run time: HAProxy read it all from disk');
  });

  test('a new binding is added through the runtime API: same worker, no reload', async () => {
    routes = [...routes, route('bravo', range.first + 1, pki.issueClient({ cn: 'bravo.client' }))];
    await rig.apply(routes);
    assert.equal((await seen(range.first + 1)).cn, 'bravo.client');
    assert.equal((await seen(range.first)).cn, 'alpha.client');
    assert.equal(await rig.workerPid(), worker, 'the same worker serves');
    assert.equal(rig.reloads, 0);
    // No load-ca: bravo trusts the bundle alpha's server already holds, and shares its entry.
    assert.deepEqual([...rig.changes].sort(), ['add-server', 'enable-server', 'load-cert', 'map-add', 'map-add', 'map-add'].sort());
  });

  test('a server added at run time keeps its connection to the partner: 20 keep-alive requests, one TLS connection', async () => {
    // No pool-max-conn on the server: HAProxy 3.0 pools an `add server` server's idle
    // connections by default. (2.6.12 did not: 20 partner connections for these 20 requests.)
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const before = partner.connections.total;
    try {
      for (let i = 0; i < 20; i++) assert.equal((await callProxy(range.first + 1, { agent, ...(i % 2 ? { method: 'POST', body: '{}' } : {}) })).status, 200);
    } finally {
      agent.destroy();
    }
    assert.ok(partner.connections.total - before <= 1, `${partner.connections.total - before} partner connections for 20 requests`);
  });

  test('a rotation under keep-alive GETs and POSTs: no request fails, the partner sees the new serial, the old server and certificate go', async () => {
    const load = steadyLoad({ ports: () => [range.first, range.first + 1], clients: 16 });
    await pollUntil(() => (load.requests > 200 ? true : undefined), { what: 'load to run', timeoutMs: 10_000 });
    const before = await rig.servers(`p${range.first + 1}`);
    const next = pki.issueClient({ cn: 'bravo.client' });
    routes = routes.map((r) => (r.name === 'bravo' ? route('bravo', range.first + 1, next) : r));
    await rig.apply(routes);
    await pollUntil(() => (load.lastSerial.get(range.first + 1)?.serial === next.serial ? true : undefined), {
      what: 'the partner to see the new serial',
      timeoutMs: 10_000,
    });
    const requestsAfter = load.requests;
    await pollUntil(() => (load.requests > requestsAfter + 200 ? true : undefined), { what: 'more load after the rotation', timeoutMs: 10_000 });
    await load.stop();
    assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.requests} requests failed`);
    // The old server drains and goes on a later pass (the agent's recheck); nothing else changed.
    await pollUntil(async () => ((await rig.plane.recheck(), (await rig.servers(`p${range.first + 1}`)).length === 1) ? true : undefined), {
      what: 'the old server to be deleted',
      timeoutMs: 15_000,
      intervalMs: 200,
    });
    assert.notDeepEqual(await rig.servers(`p${range.first + 1}`), before);
    assert.equal(await rig.workerPid(), worker);
    assert.equal(rig.reloads, 0);
    const certs = (await rig.haproxy.runtime.run('show ssl cert')).split('\n').filter((l) => l.includes('team-a_bravo'));
    assert.equal(certs.length, 1, `one certificate of bravo's is loaded: ${certs.join(', ')}`);
  });

  test('no certificate or key bytes in the cache once applied; a rotation then loads the new certificate from its object in the store', async () => {
    const strings = (value: unknown, seen = new Set<unknown>()): string[] => {
      if (typeof value === 'string') return [value];
      if (value === null || typeof value !== 'object' || seen.has(value)) return [];
      seen.add(value);
      return Object.values(value).flatMap((v) => strings(v, seen));
    };
    assert.ok(rig.cache.length > 0);
    assert.deepEqual(
      strings(rig.cache).filter((s) => s.includes('-----BEGIN')),
      [],
    );
    assert.equal(rig.dir.store.pending, 0, 'the bytes left memory once stored');
    const next = pki.issueClient({ cn: 'alpha.client' });
    routes = routes.map((r) => (r.name === 'alpha' ? route('alpha', range.first, next) : r));
    const changes = rig.changes.length;
    await rig.apply(routes);
    assert.equal(rig.dir.store.pending, 0);
    assert.ok(rig.changes.slice(changes).includes('load-cert'), 'the certificate went in through the runtime API');
    await pollUntil(async () => ((await seen(range.first)).serialNumber === next.serial ? true : undefined), {
      what: 'the partner to see the new serial',
      timeoutMs: 10_000,
    });
    assert.equal(rig.reloads, 0);
  });

  test('a partner that closes a kept connection as a request arrives: a GET is sent again on a new connection, a POST is not', async () => {
    // What a partner's keep-alive timeout does when it ends just as the proxy reuses the
    // connection: the request reaches nothing. Here the partner closes every connection
    // on its second request, which makes that race happen on every reuse.
    const requestsSeen: string[] = [];
    const closer = createServer({ cert: server.certPem, key: server.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const socket = req.socket as TLSSocket & { served?: number };
      socket.served = (socket.served ?? 0) + 1;
      requestsSeen.push(`${req.method} ${socket.served}`);
      if (socket.served > 1) return void socket.destroy();
      res.end('{}');
    });
    await new Promise<void>((resolve) => closer.listen(0, '127.0.0.1', resolve));
    const port = range.first + 6;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await rig.apply([
        ...routes,
        route('closer', port, pki.issueClient({ cn: 'closer.client' }), { port: (closer.address() as AddressInfo).port } as MtlsPartner),
      ]);
      assert.equal((await callProxy(port, { agent })).status, 200, 'the first request opens the connection');
      assert.equal((await callProxy(port, { agent })).status, 200, 'the GET met a closed connection and was sent again');
      const post = await callProxy(port, { agent, method: 'POST', body: '{"amount":1}' }).then(
        (r) => String(r.status),
        (err: NodeJS.ErrnoException) => err.code ?? err.message,
      );
      assert.notEqual(post, '200', 'a POST that met a closed connection is not sent again');
      assert.deepEqual(
        requestsSeen.filter((r) => r.startsWith('POST')),
        ['POST 2'],
        'the partner received the POST once',
      );
    } finally {
      agent.destroy();
      closer.closeAllConnections();
      closer.close();
      await rig.apply(routes);
    }
  });

  // HAProxy 2.6.12 with two threads crashed (SIGSEGV) on runtime changes under traffic,
  // a few times in every 30 s of bench:churn, which kept it at one thread; this is that
  // churn, small enough for a test, on 3.0 with two threads (the rig's). bench:churn, with
  // the agent's threads, is the longer proof.
  test('40 changes in a row under load (rotations, a binding added and removed): HAProxy never crashes, no request fails', async (t) => {
    const churnPorts = [range.first + 3, range.first + 4, range.first + 5];
    const load = steadyLoad({ ports: () => [range.first, ...churnPorts], clients: 32 });
    const restarts = rig.restarts;
    // Two certificates per binding, made once (one key: a rotation is a new certificate), alternated.
    const key = pki.issueClient({ cn: 'churn-key' }).keyPem;
    const versions = churnPorts.map((_, j) => [0, 1].map((v) => pki.issueClient({ cn: `churn-${j}.${v}.client`, keyPem: key })));
    const extra = (i: number): EgressRoute[] => churnPorts.map((port, j) => route(`churn-${j}`, port, versions[j]![i % 2]!));
    try {
      await rig.apply([...routes, ...extra(0)]);
      await pollUntil(() => (load.requests > 300 ? true : undefined), { what: 'load to run', timeoutMs: 10_000 });
      const started = performance.now();
      for (let i = 1; i <= 40; i++) {
        // Every tenth change removes the churned bindings and the next adds them back.
        await rig.apply(i % 10 === 0 ? routes : [...routes, ...extra(i)]);
        await rig.plane.recheck();
      }
      t.diagnostic(`40 changes in ${Math.round(performance.now() - started)} ms, ${load.requests} requests so far`);
      await rig.apply(routes);
      const requestsAfter = load.requests;
      await pollUntil(() => (load.requests > requestsAfter + 200 || rig.restarts > restarts ? true : undefined), {
        what: 'more load after the changes',
        timeoutMs: 10_000,
      });
    } finally {
      await load.stop();
    }
    assert.equal(rig.restarts, restarts, `HAProxy exited and was restarted ${rig.restarts - restarts} times`);
    assert.equal(await rig.workerPid(), worker, 'the same worker serves');
    assert.equal(rig.reloads, 0);
    const churned = load.failures.filter((f) => churnPorts.includes(f.port) && f.what === 'HTTP 503');
    // A churned port answers 503 while its binding is removed, as it should; nothing else fails.
    assert.deepEqual(
      load.failures.filter((f) => !churned.includes(f)),
      [],
      `${load.failures.length - churned.length} of ${load.requests} requests failed`,
    );
    await pollUntil(async () => ((await rig.plane.recheck(), (await rig.servers()).length === 2) ? true : undefined), {
      what: 'the churned servers to be deleted',
      timeoutMs: 15_000,
      intervalMs: 200,
    });
  });

  test('rotations whose old servers are deleted, each followed by a pass: the worker lives on', async () => {
    const restarts = rig.restarts;
    const pid = await rig.workerPid();
    const original = clients.get('alpha')!;
    for (let i = 0; i < 3; i++) {
      const client = i === 2 ? original : pki.issueClient({ cn: `alpha-idle-${i}.client` });
      routes = routes.map((r) => (r.name === 'alpha' ? route('alpha', range.first, client) : r));
      await rig.apply(routes);
      assert.equal((await seen(range.first)).serialNumber, client.serial);
      // The old server goes once its idle connections to the partner are purged (5 s).
      await pollUntil(async () => ((await rig.plane.recheck(), await rig.servers(`p${range.first}`)).length === 1 ? true : undefined), {
        what: 'the old server to be deleted',
        timeoutMs: 20_000,
        intervalMs: 500,
      });
      await rig.plane.recheck();
    }
    assert.equal(rig.restarts, restarts, 'HAProxy never exited');
    assert.equal(await rig.workerPid(), pid, 'the same worker serves');
    assert.equal(await rig.servers(`p${range.first}`).then((s) => s.length), 1, 'the old servers are gone');
  });

  test('a removed binding: its port answers 503 from HAProxy, its server and certificate are gone', async () => {
    routes = routes.filter((r) => r.name !== 'bravo');
    await rig.apply(routes);
    await rig.plane.recheck();
    const gone = await seen(range.first + 1);
    assert.equal(gone.status, 503);
    assert.match(gone.body, /no ClientCertificateBinding serves this port/);
    assert.deepEqual(await rig.servers(`p${range.first + 1}`), []);
    assert.equal((await rig.haproxy.runtime.run('show ssl cert')).includes('team-a_bravo'), false);
    assert.equal(rig.reloads, 0);
  });

  test('one bundle, one CA entry: a binding that trusts it comes and goes, and the others keep verifying the partner with it', async () => {
    // alpha trusts the partner's CA, as bravo did until the test before removed it.
    const caEntries = async (): Promise<string[]> => (await rig.haproxy.runtime.run('show ssl ca-file')).split('\n').filter((l) => l.includes('/ca/'));
    assert.equal((await caEntries()).length, 1, 'bravo gone, its bundle stays for alpha');
    assert.equal((await seen(range.first)).cn, 'alpha.client');
    const restarts = rig.restarts;
    for (let i = 0; i < 2; i++) {
      rig.changes.length = 0;
      await rig.apply([...routes, route('delta', range.first + 7, pki.issueClient({ cn: `delta-${i}.client` }))]);
      assert.equal((await seen(range.first + 7)).cn, `delta-${i}.client`);
      assert.ok(!rig.changes.includes('load-ca'), `the bundle is loaded once: ${rig.changes.join(', ')}`);
      await rig.apply(routes);
      await pollUntil(async () => ((await rig.plane.recheck(), await rig.servers(`p${range.first + 7}`)).length === 0 ? true : undefined), {
        what: "delta's server to be deleted",
        timeoutMs: 20_000,
        intervalMs: 500,
      });
      await rig.plane.recheck();
      assert.deepEqual(await caEntries().then((e) => e.length), 1, 'the shared entry outlives the server deleted');
      assert.equal((await seen(range.first)).cn, 'alpha.client', 'alpha still verifies the partner with the shared bundle');
    }
    assert.equal(rig.restarts, restarts, 'HAProxy never exited');
    assert.equal(rig.reloads, 0);
  });

  test('a partner with a certificate from the wrong CA: 502, and the impostor receives no request', async () => {
    routes = [...routes, route('charlie', range.first + 2, pki.issueClient({ cn: 'charlie.client' }), impostor)];
    await rig.apply(routes);
    assert.equal((await seen(range.first + 2)).status, 502);
    assert.equal(impostor.seen.length, 0);
  });

  test('level-triggered: a server taken out of service and a map entry removed by hand come back on the next pass', async () => {
    const [alphaServer] = await rig.servers(`p${range.first}`);
    await rig.haproxy.runtime.run(`disable server ${alphaServer}`);
    await rig.haproxy.runtime.run(`del map ${join(rig.dir.root, 'current')}/hosts.map ${range.first}`);
    assert.equal((await seen(range.first)).status, 502, 'the hand-made drift is real: no server takes the request');
    await rig.plane.recheck();
    const alpha = await seen(range.first);
    assert.equal(alpha.cn, 'alpha.client');
    assert.equal(alpha.host, `localhost:${partner.port}`);
  });

  test('HAProxy killed: restarted from the config on disk, it serves every binding, and a pass finds nothing to change', async () => {
    process.kill(rig.haproxy.pid()!, 'SIGKILL');
    await pollUntil(() => (rig.restarts > 0 && rig.haproxy.running() ? true : undefined), { what: 'HAProxy to be restarted', timeoutMs: 15_000 });
    assert.equal((await seen(range.first)).cn, 'alpha.client');
    assert.equal((await seen(range.first + 2)).status, 502);
    const changes = rig.changes.length;
    await rig.plane.recheck();
    assert.deepEqual(rig.changes.slice(changes), [], 'the config on disk held everything');
    worker = await rig.workerPid();
  });

  test('the listener range changes: one seamless reload, keep-alive clients see no failure', async () => {
    const load = steadyLoad({ ports: () => [range.first], clients: 16 });
    await pollUntil(() => (load.requests > 200 ? true : undefined), { what: 'load to run', timeoutMs: 10_000 });
    const wider = { first: range.first, last: range.last + 5 };
    routes = [...routes.filter((r) => r.name !== 'charlie'), route('delta', wider.last, pki.issueClient({ cn: 'delta.client' }))];
    await rig.apply(routes, wider);
    const requestsAfter = load.requests;
    await pollUntil(() => (load.requests > requestsAfter + 200 ? true : undefined), { what: 'more load after the reload', timeoutMs: 10_000 });
    await load.stop();
    assert.equal(rig.reloads, 1);
    assert.notEqual(await rig.workerPid(), worker, 'a new worker serves');
    assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.requests} requests failed`);
    assert.equal((await seen(wider.last)).cn, 'delta.client');
  });

  test('stopped with the agent: nothing of HAProxy remains', async () => {
    const master = rig.haproxy.pid()!;
    await rig.plane.stop();
    assert.equal(rig.plane.running(), false);
    await pollUntil(() => (processGroupEmpty(master) ? true : undefined), { what: 'HAProxy to exit', timeoutMs: 10_000 });
  });
});

describe('HAProxy data plane: a first start is the test', () => {
  let first: Rig;
  const ports: PortRange = { first: range.last + 10, last: range.last + 14 };
  const one = (): EgressRoute[] => [route('echo', ports.first, pki.issueClient({ cn: 'echo.client' }))];

  before(() => {
    first = new Rig();
  });

  after(async () => {
    await first?.plane.stop();
  });

  test('a config HAProxy refuses to start on: a verdict with the reason haproxy -c gives, rolled back, nothing running', async () => {
    const broken = (file: ProxyFile): ProxyFile => (file.path.startsWith('certs/') ? { ...file, content: 'not a certificate\n' } : file);
    const err = await first.apply(one(), ports, { written: broken }).then(
      () => assert.fail('HAProxy started on a certificate that is not one'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HaproxyError && err.code === 'ERR_HAPROXY_CONFIG_INVALID', String(err));
    assert.match(first.plane.rejection(err) ?? '', /certs\/team-a_echo/);
    assert.equal(first.plane.rollsBack(err), true);
    assert.equal(first.plane.running(), false);
    assert.equal(first.tests, 1, 'haproxy -c ran once, to say why the start failed');
  });

  test('a config it starts on: served with no haproxy -c; once it has run, a reload is tested first again', async () => {
    await first.apply(one(), ports);
    assert.equal((await seen(ports.first)).cn, 'echo.client');
    assert.equal(first.tests, 1, 'the start was the test');
    await first.apply(one(), { first: ports.first, last: ports.last + 1 });
    assert.equal(first.reloads, 1);
    assert.equal(first.tests, 2, 'a reload is tested before the running HAProxy reads it');
  });
});

describe('HAProxy data plane at a few hundred bindings', () => {
  // Below this, `show ssl cert` answers before `show ssl ca-file` asks for HAProxy's
  // certificate lock; at 300 the two overlapped and HAProxy refused the second listing.
  const count = 400;
  const wide: PortRange = { first: 12000 + Math.floor(Math.random() * 6) * 500, last: 0 };
  wide.last = wide.first + count - 1;
  let many: Rig;
  const client = pki.issueClient({ cn: 'many.client' });
  const manyRoutes = (rotated?: { index: number; client: Issued }): EgressRoute[] =>
    Array.from({ length: count }, (_, i) =>
      partnerRoute({
        namespace: 'team-m',
        name: `m${i}`,
        listenerPort: wide.first + i,
        partnerPort: partner.port,
        client: i === rotated?.index ? rotated.client : client,
        partnerCA: pki.ca.certPem,
      }),
    );

  before(() => {
    many = new Rig();
  });

  after(async () => {
    await many?.plane.stop();
  });

  test('a pass over a converged HAProxy changes nothing: no certificate or CA file is loaded again', async () => {
    await many.apply(manyRoutes(), wide);
    assert.deepEqual(many.changes, [], 'HAProxy read every binding from disk');
    for (let pass = 1; pass <= 5; pass++) {
      await many.plane.recheck();
      assert.deepEqual(many.changes, [], `pass ${pass} changed what HAProxy already served`);
    }
    assert.equal((await seen(wide.last)).cn, 'many.client');
  });

  test('a rotation reads back only the backend it touches; the full read-back that follows finds nothing to change', async () => {
    const rotated = pki.issueClient({ cn: 'many-rotated.client' });
    const port = wide.first + 7;
    // Every command the data plane sends, seen on the way to the real HAProxy.
    const sent: string[] = [];
    const runtime = many.haproxy.runtime;
    const run = runtime.run.bind(runtime);
    const chain = runtime.chain.bind(runtime);
    runtime.run = (command, payload) => (sent.push(command), run(command, payload));
    runtime.chain = (commands, payload) => (sent.push(...commands), chain(commands, payload));
    try {
      await many.apply(manyRoutes({ index: 7, client: rotated }), wide);
      assert.equal((await seen(port)).serialNumber, rotated.serial);
      const listings = sent.filter((c) => /^show (servers state|servers conn|ssl cert|ssl ca-file|map)$|^show map /.test(c));
      assert.deepEqual(listings, [], 'no listing of every server, certificate, CA file or map entry');
      assert.ok(sent.includes(`show servers state p${port}`), `the rotated backend is read back: ${sent.join(' | ')}`);
      // The old server was taken out on a picture not read now, so it is left draining; the
      // drain pass reads its backend fresh and deletes it.
      assert.ok(!sent.some((c) => c.startsWith('del server ')), `nothing deleted on a picture not read now: ${sent.join(' | ')}`);
      sent.length = 0;
      await many.plane.recheck();
      assert.ok(sent.includes(`show servers state p${port}`) && !sent.includes('show servers state'), `the drain pass reads the backend: ${sent.join(' | ')}`);
      const changes = many.changes.length;
      sent.length = 0;
      await many.plane.recheck();
      assert.ok(sent.includes('show servers state') && sent.includes('show ssl ca-file'), 'the recheck reads HAProxy back whole');
      assert.deepEqual(many.changes.slice(changes), [], 'and finds what the delta left it as the manifest says');
    } finally {
      runtime.run = run;
      runtime.chain = chain;
    }
  });

  test('a rotation sends paired commands on one connection: the store created and filled, the server added and enabled', async () => {
    const rotated = pki.issueClient({ cn: 'many-chained.client' });
    const port = wide.first + 7;
    const runtime = many.haproxy.runtime;
    const single: string[] = [];
    const chained: string[][] = [];
    const run = runtime.run.bind(runtime);
    const chain = runtime.chain.bind(runtime);
    runtime.run = (command, payload) => (single.push(command), run(command, payload));
    runtime.chain = (commands, payload) => (chained.push([...commands]), chain(commands, payload));
    try {
      await many.apply(manyRoutes({ index: 7, client: rotated }), wide);
      assert.equal((await seen(port)).serialNumber, rotated.serial);
      const pairs = chained.map((commands) => commands.map((command) => command.split(' ').slice(0, 3).join(' ')));
      const server = chained.find((commands) => commands[0]!.startsWith(`add server p${port}/`))?.[0]!.split(' ')[2];
      assert.ok(server, `the rotated backend gets its new server in a pair: ${JSON.stringify(chained)}`);
      assert.deepEqual(pairs.slice(0, 2), [
        ['new ssl cert', 'set ssl cert'],
        [`add server ${server}`, `enable server ${server}`],
      ]);
      assert.ok(
        single.some((c) => c.startsWith('commit ssl cert ')),
        `the certificate is committed on its own: ${single.join(' | ')}`,
      );
      assert.ok(!single.some((c) => /^(new|set) ssl cert |^add server |^enable server /.test(c)), `nothing of a pair is sent alone: ${single.join(' | ')}`);
    } finally {
      runtime.run = run;
      runtime.chain = chain;
    }
  });
});
