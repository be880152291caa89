import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import { childProcesses } from '../../src/dataplane/nginx/control.ts';
import { annotationApplyError, annotationAppliedHash, credentialSecretName } from '../../src/contract/proxy-objects.ts';
import { hashFiles, keyFile, renderNginx, type RenderedNginx } from '../../src/dataplane/nginx/render.ts';
import { pollUntil } from '../harness/poll.ts';
import { isProcessAlive, processGroupEmpty, spawnComponent, stopProcessGroup } from '../harness/processes.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { createAgentPod, partnerRoute, podAnnotations, ProxyConfigWriter, startAgent, type AgentProcess } from '../support/agent-process.ts';
import { httpGet } from '../support/controller-process.ts';
import { TestKube } from '../support/kube.ts';
import { startMtlsPartner, type MtlsPartner, type PartnerSeen } from '../support/mtls-partner.ts';
import { callProxy, nginxBinary } from '../support/nginx-process.ts';
import { PartnerPki, type Issued } from '../support/partner-pki.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';
import { connectionRefused, freePort } from '../harness/ports.ts';

// The test plays the proxy-config controller: it renders routes to a real mTLS partner,
// writes the ConfigMap and credential Secrets through the real API server, and watches
// what a real agent process and nginx make of them, from the partner's side (which
// certificate it saw) and from the agent's Pod annotations.

const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki('Agent Partner CA');
const serverCert = pki.issueServer({ cn: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const podName = 'mtls-egress-proxy-0';
const timeoutMs = 30_000;
const msgRejected = 'config rejected; the last good config keeps serving';
const msgWaiting = 'waiting for proxy objects; the last good config keeps serving';

let partner: MtlsPartner;
/** Every client key the proxies were given: none may appear in a log line or an annotation. */
const keys: string[] = [];

before(async () => {
  partner = await startMtlsPartner({ cert: serverCert.certPem, key: serverCert.keyPem, clientCA: pki.ca.certPem });
});

after(() => partner?.close());

/** One proxy pod's world: a namespace, its Pod object, a config dir, and the bindings' ports and identities. */
class ProxyFixture {
  ns = '';
  writer!: ProxyConfigWriter;
  readonly configDir = join(temporaryDirectory('agent'), 'config');
  readonly prefix = temporaryDirectory('agent-prefix');
  readonly ports: Record<string, number> = {};
  readonly identities: Record<string, Issued> = {};

  async setUp(prefix: string, bindings: string[]): Promise<void> {
    this.ns = await kube.namespace(prefix);
    this.writer = new ProxyConfigWriter(kube.client, this.ns);
    await createAgentPod(kube.client, this.ns, podName);
    for (const name of bindings) this.ports[name] = await freePort();
  }

  issue(name: string): Issued {
    const issued = pki.issueClient({ cn: `client-${name}` });
    keys.push(issued.keyPem);
    this.identities[name] = issued;
    return issued;
  }

  routes(...names: string[]): EgressRoute[] {
    return names.map((name) =>
      partnerRoute({
        namespace: this.ns,
        name,
        listenerPort: this.ports[name]!,
        partnerPort: partner.port,
        client: this.identities[name]!,
        partnerCA: pki.ca.certPem,
      }),
    );
  }

  /** Renders and publishes; returns the config hash. */
  async publish(routes: EgressRoute[], options: { withhold?: string[] } = {}): Promise<string> {
    const objects = this.writer.objects(render(routes), routes);
    await this.writer.publish(objects, options);
    return objects.manifest.hash;
  }

  annotations(): Promise<Record<string, string>> {
    return podAnnotations(kube.client, this.ns, podName);
  }

  waitForAnnotations(what: string, check: (a: Record<string, string>) => boolean): Promise<Record<string, string>> {
    return pollUntil(
      async () => {
        const a = await this.annotations();
        return check(a) ? a : undefined;
      },
      { what, timeoutMs },
    );
  }

  waitForAppliedHash(hash: string): Promise<Record<string, string>> {
    return this.waitForAnnotations(`applied-config-hash ${hash.slice(0, 12)}`, (a) => a[annotationAppliedHash] === hash);
  }

  generations(): string[] {
    return readdirSync(this.configDir)
      .filter((name) => name.startsWith('gen-'))
      .sort();
  }

  currentGeneration(): string {
    return readlinkSync(join(this.configDir, 'current'));
  }
}

function render(routes: EgressRoute[]): RenderedNginx {
  return renderNginx(routes, { listenAddress: '127.0.0.1', workerProcesses: 2 });
}

async function partnerSaw(port: number): Promise<PartnerSeen> {
  const response = await callProxy(port);
  assert.equal(response.status, 200, response.body);
  return JSON.parse(response.body) as PartnerSeen;
}

/** The agent on this file's fixture; the objects are rendered for nginx (render above), and the agent's default is HAProxy. */
function startNginxAgent(proxy: ProxyFixture, options: { args?: string[]; manageNginx?: boolean } = {}): Promise<AgentProcess> {
  return startAgent({
    kubeConfigPath: cluster.kubeConfigPath,
    namespace: proxy.ns,
    podName,
    configDir: proxy.configDir,
    nginxPrefix: proxy.prefix,
    ...(options.manageNginx === undefined ? {} : { manageNginx: options.manageNginx }),
    args: ['--data-plane', 'nginx', ...(options.args ?? [])],
  });
}

function waitForSerial(port: number, serial: string): Promise<PartnerSeen> {
  return pollUntil(
    async () => {
      const seen = await partnerSaw(port);
      return seen.serialNumber === serial ? seen : undefined;
    },
    { what: `the partner to see serial ${serial} on port ${port}`, timeoutMs, intervalMs: 20 },
  );
}

describe('mtls-egress agent --manage-nginx with a real API server, nginx and mTLS partner', () => {
  const proxy = new ProxyFixture();
  let agent: AgentProcess;
  let goodHash: string;

  before(async () => {
    await proxy.setUp('agent', ['a', 'b', 'c', 'd']);
    // A short reload timeout, so that the test of a reload nginx refuses runs in seconds.
    agent = await startNginxAgent(proxy, { args: ['--reload-timeout', '3s'] });
  });

  after(async () => {
    if (process.env.AGENT_TEST_LOGS) console.log(agent?.logs.join('\n'));
    await agent?.kill();
  });

  test('no ConfigMap yet: not ready and no nginx; the first config serves each binding with its certificate', async () => {
    await pollUntil(() => (agent.logged('caches synced').length ? true : undefined), { what: 'the caches to sync', timeoutMs });
    assert.equal((await httpGet(agent.healthPort, '/readyz')).status, 503);
    assert.equal((await httpGet(agent.healthPort, '/healthz')).status, 200);
    assert.deepEqual(agent.logged('nginx started'), [], 'nginx starts only once a config is applied');

    proxy.issue('a');
    proxy.issue('b');
    goodHash = await proxy.publish(proxy.routes('a', 'b'));
    const annotated = await proxy.waitForAppliedHash(goodHash);
    assert.equal(annotated[annotationApplyError], undefined);

    const seenA = await partnerSaw(proxy.ports.a!);
    assert.equal(seenA.cn, 'client-a');
    assert.equal(seenA.serialNumber, proxy.identities.a!.serial);
    assert.equal(seenA.sni, 'localhost');
    assert.equal((await partnerSaw(proxy.ports.b!)).serialNumber, proxy.identities.b!.serial);
    assert.equal((await httpGet(agent.healthPort, '/readyz')).status, 200);
    assert.equal(proxy.currentGeneration(), `gen-${goodHash}`);
    // Both trust the partner's CA: one bundle object, one file, named by its content.
    assert.deepEqual(readdirSync(join(proxy.configDir, 'current', 'ca')), [`${createHash('sha256').update(pki.ca.certPem).digest('hex')}.pem`]);
  });

  test('rotation: the partner sees the new certificate, no request fails, the Pod shows the new hash', async () => {
    const rotated = proxy.issue('a');
    // Traffic on the other binding throughout: a graceful reload drops no request.
    let stopTraffic = false;
    const failures: string[] = [];
    let served = 0;
    const traffic = (async () => {
      while (!stopTraffic) {
        const response = await callProxy(proxy.ports.b!).catch((err: Error) => ({ status: 0, body: err.message }));
        if (response.status === 200) served++;
        else failures.push(`${response.status} ${response.body}`);
      }
    })();
    const t0 = performance.now();
    const hash = await proxy.publish(proxy.routes('a', 'b'));
    await waitForSerial(proxy.ports.a!, rotated.serial);
    console.log(`rotation: API write → partner sees the new serial in ${(performance.now() - t0).toFixed(0)} ms`);
    await proxy.waitForAppliedHash(hash);
    stopTraffic = true;
    await traffic;
    assert.deepEqual(failures, [], `requests failed during the reload (${served} succeeded)`);
    assert.equal((await partnerSaw(proxy.ports.b!)).serialNumber, proxy.identities.b!.serial, 'the other binding keeps its certificate');
    const applied = agent.logged('config applied').at(-1)!;
    assert.equal(applied.hash, hash);
    assert.ok((applied.filesLinked as number) > 0, 'unchanged files are linked from the previous generation, not written again');
    goodHash = hash;
  });

  test('a config nginx rejects: the last good config keeps serving, apply-error says why; a good config recovers', async () => {
    const routes = proxy.routes('a', 'b');
    const files = render(routes).files.map((f) =>
      f.path === 'nginx.conf' ? { ...f, content: f.content.replace('http {', 'no_such_directive on;\nhttp {') } : f,
    );
    const bad = proxy.writer.objects({ dataPlane: 'nginx', files, hash: hashFiles(files) } satisfies RenderedNginx, routes);
    await proxy.writer.publish(bad);

    const annotated = await proxy.waitForAnnotations('apply-error', (a) => Boolean(a[annotationApplyError]));
    assert.match(annotated[annotationApplyError]!, /^unknown directive "no_such_directive" in [^ ]*nginx\.conf:\d+$/);
    assert.equal(annotated[annotationAppliedHash], goodHash, 'the applied hash stays at the config nginx serves');
    assert.equal((await partnerSaw(proxy.ports.a!)).serialNumber, proxy.identities.a!.serial, 'still the old identity');
    assert.equal(proxy.currentGeneration(), `gen-${goodHash}`);
    assert.ok(!existsSync(join(proxy.configDir, `gen-${bad.manifest.hash}`)), 'the rejected generation is removed');
    assert.equal(agent.logged(msgRejected).length, 1);

    // A change that leaves the config as it was (a Secret's annotation, here) wakes the
    // agent, which does not run nginx -t on the same rejected config again.
    const unchanged = (): number => agent.logged('the rejected config is unchanged; not trying it again').length;
    const seen = unchanged();
    await kube.client.mergePatch(`/api/v1/namespaces/${proxy.ns}/secrets/${credentialSecretName(`${proxy.ns}/b`)}`, {
      metadata: { annotations: { touched: 'yes' } },
    });
    await pollUntil(() => (unchanged() > seen ? true : undefined), { what: 'the agent to look at the unchanged config', timeoutMs });
    assert.equal(agent.logged(msgRejected).length, 1);

    const recovered = proxy.issue('a');
    const hash = await proxy.publish(proxy.routes('a', 'b'));
    const annotatedAfter = await proxy.waitForAppliedHash(hash);
    assert.equal(annotatedAfter[annotationApplyError], undefined, 'apply-error is cleared');
    assert.equal((await partnerSaw(proxy.ports.a!)).serialNumber, recovered.serial);
    goodHash = hash;
  });

  test('a binding removed: its port closes, its key is gone from current/, older generations are pruned', async () => {
    const hash = await proxy.publish(proxy.routes('a'));
    await proxy.writer.deleteCredentials(`${proxy.ns}/b`);
    await proxy.waitForAppliedHash(hash);
    await pollUntil(async () => ((await connectionRefused(proxy.ports.b!)) ? true : undefined), { what: `port ${proxy.ports.b} to close`, timeoutMs });
    assert.equal((await partnerSaw(proxy.ports.a!)).serialNumber, proxy.identities.a!.serial);

    const removedKey = keyFile({ namespace: proxy.ns, name: 'b' });
    assert.ok(!existsSync(join(proxy.configDir, 'current', removedKey)), `${removedKey} is not in current/`);
    assert.ok(existsSync(join(proxy.configDir, 'current', keyFile({ namespace: proxy.ns, name: 'a' }))));
    assert.equal(proxy.currentGeneration(), `gen-${hash}`);
    assert.deepEqual(proxy.generations(), [`gen-${hash}`, `gen-${goodHash}`].sort(), 'the current generation and the one before it, nothing older');
    goodHash = hash;
  });

  test("an index before a binding's object: the others keep serving, the Pod reports the config once the object arrives", async () => {
    proxy.issue('c');
    const routes = proxy.routes('a', 'c');
    const objects = proxy.writer.objects(render(routes), routes);
    const { hash } = objects.manifest;
    await proxy.writer.publish(objects, { withhold: [`${proxy.ns}/c`] });
    await pollUntil(() => (agent.logged(msgWaiting).some((l) => l.hash === hash) ? true : undefined), {
      what: "the agent to wait for the binding's object",
      timeoutMs,
    });
    assert.equal((await proxy.annotations())[annotationAppliedHash], goodHash, 'the Pod claims no config it does not hold whole');
    assert.equal(proxy.currentGeneration(), `gen-${goodHash}`);
    assert.ok(!existsSync(join(proxy.configDir, `gen-${hash}`)), 'no generation is written for objects the agent does not hold');
    assert.ok(await connectionRefused(proxy.ports.c!), 'the new listener is not open');
    assert.equal((await partnerSaw(proxy.ports.a!)).serialNumber, proxy.identities.a!.serial, 'the binding it holds keeps serving');

    await proxy.writer.applySecret(objects, credentialSecretName(`${proxy.ns}/c`));
    await proxy.waitForAppliedHash(hash);
    assert.equal((await partnerSaw(proxy.ports.c!)).serialNumber, proxy.identities.c!.serial);
    assert.equal((await partnerSaw(proxy.ports.a!)).serialNumber, proxy.identities.a!.serial);
    goodHash = hash;
  });

  test('a reload nginx refuses at run time (a port taken; nginx -t does not bind): reported, retried, applied once possible', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(proxy.ports.d, '127.0.0.1', resolve));
    let hash: string;
    try {
      proxy.issue('d');
      hash = await proxy.publish(proxy.routes('a', 'c', 'd'));
      const refused = await proxy.waitForAnnotations('apply-error about the reload', (a) => /started no new workers/.test(a[annotationApplyError] ?? ''));
      assert.equal(refused[annotationAppliedHash], goodHash, 'the applied hash stays at the config nginx serves');
      assert.equal((await partnerSaw(proxy.ports.a!)).serialNumber, proxy.identities.a!.serial, 'nginx serves the last good config');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    // No new input: the agent's retry (with backoff) applies it once the port is free.
    const annotated = await proxy.waitForAppliedHash(hash);
    assert.equal(annotated[annotationApplyError], undefined);
    assert.equal((await partnerSaw(proxy.ports.d!)).serialNumber, proxy.identities.d!.serial);
    goodHash = hash;
  });

  test('nginx killed outright: the agent reaps its orphaned workers, restarts it, and it serves again', async () => {
    const master = agent.logged('nginx started').at(-1)!.pid as number;
    const workers = [...(await childProcesses(master)).keys()];
    process.kill(master, 'SIGKILL');
    await pollUntil(() => (agent.logged('nginx started').some((l) => l.pid !== master) ? true : undefined), { what: 'nginx to be restarted', timeoutMs });
    await pollUntil(() => (workers.every((pid) => !isProcessAlive(pid)) ? true : undefined), { what: 'the old workers to be gone', timeoutMs: 10_000 });
    assert.equal((await partnerSaw(proxy.ports.a!)).serialNumber, proxy.identities.a!.serial);
    await pollUntil(async () => ((await httpGet(agent.healthPort, '/readyz')).status === 200 ? true : undefined), { what: 'ready again', timeoutMs });
    assert.equal((await proxy.annotations())[annotationAppliedHash], goodHash);
  });

  test('no key material in the logs or in the Pod annotations', async () => {
    assert.ok(agent.logs.length > 10, 'the agent logged (at debug)');
    assertNoKeyMaterial(`${agent.logs.join('\n')}\n${JSON.stringify(await proxy.annotations())}`);
  });

  test('SIGTERM: the agent stops nginx gracefully and exits 0, leaving no process', async () => {
    const master = agent.logged('nginx started').at(-1)!.pid as number;
    const workers = [...(await childProcesses(master)).keys()];
    assert.ok(workers.length > 0);
    assert.equal(await agent.stop(), 0);
    assert.equal(agent.logged('nginx stopped').length, 1);
    assert.deepEqual(agent.logged('nginx did not stop; escalating'), [], 'a graceful stop');
    for (const pid of [master, ...workers]) assert.ok(!isProcessAlive(pid), `pid ${pid} is gone`);
    for (const group of [agent.pid, master])
      await pollUntil(() => (processGroupEmpty(group) ? true : undefined), { what: `process group ${group} to be empty`, timeoutMs: 10_000 });
    assert.ok(await connectionRefused(proxy.ports.a!));
  });
});

describe('a new replica: Ready only once it serves every binding the index counts', () => {
  const proxy = new ProxyFixture();
  let agent: AgentProcess;

  before(() => proxy.setUp('agent-ready', ['e', 'f', 'g']));
  after(() => agent?.kill());

  test('serves the bindings it holds at once, is not Ready until it holds them all, and stays Ready while catching up later', async () => {
    proxy.issue('e');
    proxy.issue('f');
    const routes = proxy.routes('e', 'f');
    const objects = proxy.writer.objects(render(routes), routes);
    // As a replica starting while one binding object is missing (written late, or unreadable).
    await proxy.writer.publish(objects, { withhold: [`${proxy.ns}/f`] });
    agent = await startNginxAgent(proxy);
    await waitForSerial(proxy.ports.e!, proxy.identities.e!.serial);
    assert.equal((await httpGet(agent.healthPort, '/readyz')).status, 503, 'serving part of the index is not Ready');

    await proxy.writer.applySecret(objects, credentialSecretName(`${proxy.ns}/f`));
    await proxy.waitForAppliedHash(objects.manifest.hash);
    assert.equal((await httpGet(agent.healthPort, '/readyz')).status, 200);

    // A newer index whose object has not arrived: every replica is in this state for a
    // moment on every change, so none leaves the Service for it.
    proxy.issue('g');
    const next = proxy.routes('e', 'f', 'g');
    const nextObjects = proxy.writer.objects(render(next), next);
    await proxy.writer.publish(nextObjects, { withhold: [`${proxy.ns}/g`] });
    await pollUntil(() => (agent.logged(msgWaiting).some((l) => l.hash === nextObjects.manifest.hash) ? true : undefined), {
      what: "the agent to wait for g's object",
      timeoutMs,
    });
    assert.equal((await httpGet(agent.healthPort, '/readyz')).status, 200);
  });
});

describe('mtls-egress agent beside an nginx it does not manage', () => {
  const proxy = new ProxyFixture();
  let agent: AgentProcess;
  let nginx: ReturnType<typeof spawnComponent> | undefined;

  before(async () => {
    await proxy.setUp('agent-ext', ['e']);
    agent = await startNginxAgent(proxy, { manageNginx: false });
  });

  after(async () => {
    await agent?.kill();
    if (nginx) await stopProcessGroup(nginx.pid, 5_000, nginx.exited);
  });

  test('before nginx runs, the config is made current and the error says nginx is not running; once it runs, the agent reloads it', async () => {
    proxy.issue('e');
    const hash = await proxy.publish(proxy.routes('e'));
    await proxy.waitForAnnotations('apply-error: not running', (a) => /no nginx master runs/.test(a[annotationApplyError] ?? ''));
    assert.equal(proxy.currentGeneration(), `gen-${hash}`, 'validated and current, for nginx to start with');

    nginx = spawnComponent({
      name: 'nginx',
      binary: nginxBinary(),
      args: ['-p', proxy.prefix, '-c', join(proxy.configDir, 'current', 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'],
      logFile: join(proxy.prefix, 'nginx.stderr.log'),
      killOnExit: true,
    });
    const annotated = await proxy.waitForAppliedHash(hash);
    assert.equal(annotated[annotationApplyError], undefined);
    assert.equal((await partnerSaw(proxy.ports.e!)).serialNumber, proxy.identities.e!.serial);
  });

  test('rotation reloads the running nginx with SIGHUP', async () => {
    const rotated = proxy.issue('e');
    const hash = await proxy.publish(proxy.routes('e'));
    await waitForSerial(proxy.ports.e!, rotated.serial);
    await proxy.waitForAppliedHash(hash);
    assert.equal(agent.logged('nginx started').length, 0, 'the agent never starts nginx itself');
  });

  test('SIGTERM: the agent exits 0 and leaves the nginx it does not own running; no key material was logged', async () => {
    assert.equal(await agent.stop(), 0);
    assert.ok(isProcessAlive(nginx!.pid));
    assert.equal((await partnerSaw(proxy.ports.e!)).serialNumber, proxy.identities.e!.serial);
    assertNoKeyMaterial(`${agent.logs.join('\n')}\n${JSON.stringify(await proxy.annotations())}`);
  });
});

function assertNoKeyMaterial(text: string): void {
  assert.doesNotMatch(text, /PRIVATE KEY/);
  for (const key of keys) {
    for (const line of key.split('\n').filter((l) => l && !l.startsWith('-----'))) assert.ok(!text.includes(line), 'a line of a private key was printed');
    assert.ok(!text.includes(Buffer.from(key).toString('base64').slice(0, 40)), 'a key as Secret data was printed');
  }
}
