// The whole product, end to end: a real kube-apiserver and etcd, the controller, the
// proxy agent running Debian's nginx or HAProxy, and a real mTLS partner that reports
// which client certificate it authenticated. The test plays only the kubelet (it marks
// the proxy Pod Ready) and the application (plain-HTTP calls to the endpoint). One
// scenario, run once per data plane by egress-nginx.test.ts and egress-haproxy.test.ts.
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { annotationApplyError } from '../../src/contract/proxy-objects.ts';
import { readdirSync } from 'node:fs';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import type { DataPlaneKind } from '../../src/dataplane/registry.ts';
import { podAnnotations, type AgentProcess } from '../support/agent-process.ts';
import { agentMetric, startEgressStack, type EgressStack } from '../support/egress-stack.ts';
import { hasReason, type TestKube, type Binding } from '../support/kube.ts';
import { startMtlsPartner, type MtlsPartner, type PartnerSeen } from '../support/mtls-partner.ts';
import { callProxy } from '../support/nginx-process.ts';
import { PartnerPki } from '../support/partner-pki.ts';
import { connectionRefused } from '../harness/ports.ts';

const password = 'e2e-password-never-printed-51be';
const strangerPki = new PartnerPki('Some Other CA');

/**
 * Awaited at the top of a test file: the control plane comes first, as useControlPlane
 * wants. Asked for inside a hook, a private one (a run without the global setup, such as
 * `npm run test:e2e`) was stopped by its own `after` before the first test.
 */
export async function egressScenario(dataPlane: DataPlaneKind): Promise<void> {
  const cluster = await useControlPlane();
  let stack: EgressStack;
  let kube: TestKube;
  let ns: string;
  let proxyNs: string;
  let podName: string;
  let partnerPki: PartnerPki;
  let partner: MtlsPartner;
  let impostor: MtlsPartner;
  let agent: AgentProcess;
  let configDir: string;

  const ready = hasReason(reasons.BindingReady);
  const programmed = (b: Binding) => b.status?.conditions?.find((c) => c.type === 'Programmed');

  async function readyBinding(name: string, serial?: string): Promise<Binding> {
    return kube.waitForBinding(
      ns,
      name,
      `Ready${serial ? ` with serial ${serial}` : ''}`,
      (b) => ready(b) && (!serial || b.status?.certificate?.serialNumber === serial),
      30_000,
    );
  }

  let reusedSocketRetries = 0;

  /**
   * A GET as an application's HTTP client makes it. On nginx, a keepalive client retries
   * an idempotent request once when the server closed an idle reused connection just as
   * the request went out, as Go's, .NET's and Java's clients do and as Node's
   * documentation prescribes (req.reusedSocket): nginx closes idle keepalive connections
   * when a reload retires its old workers. HAProxy changes bindings without a reload, so
   * there no request is retried, ever.
   */
  async function call(port: number, agentForKeepalive?: Agent): Promise<PartnerSeen & { status: number }> {
    let res;
    try {
      res = await callProxy(port, agentForKeepalive ? { agent: agentForKeepalive } : {});
    } catch (err) {
      if (
        dataPlane !== 'nginx' ||
        !agentForKeepalive ||
        (err as NodeJS.ErrnoException).code !== 'ECONNRESET' ||
        !(err as { reusedSocket?: boolean }).reusedSocket
      )
        throw err;
      reusedSocketRetries++;
      res = await callProxy(port, { agent: agentForKeepalive });
    }
    return { ...(res.status === 200 ? (JSON.parse(res.body) as PartnerSeen) : ({} as PartnerSeen)), status: res.status };
  }

  before(async () => {
    // A reload nginx cannot carry out (test 5) is judged after this long without new workers.
    stack = await startEgressStack({
      kubeconfig: cluster.kubeconfig,
      kubeConfigPath: cluster.kubeConfigPath,
      password,
      dataPlane,
      agentArgs: ['--reload-timeout', '5s'],
    });
    ({ kube, namespace: ns, proxyNamespace: proxyNs, proxyPod: podName, partnerPki, partner, agent, configDir } = stack);
    const fake = strangerPki.issueServer({ cn: 'localhost', dnsNames: ['localhost'] });
    impostor = await startMtlsPartner({ cert: fake.certPem, key: fake.keyPem, clientCA: partnerPki.ca.certPem });
  });

  after(async () => {
    await stack?.agent.kill();
    await stack?.controller.kill();
    await stack?.partner.close();
    await impostor?.close();
  });

  describe(`egress end to end: controller, agent, ${dataPlane}, partner`, () => {
    test('1. a plain-HTTP call to the endpoint reaches the partner with the binding’s identity', async () => {
      const client = partnerPki.issueClient({ cn: 'alpha.client' });
      await stack.putBinding('alpha', client);
      const b = await readyBinding('alpha');
      assert.equal(programmed(b)?.status, 'True');
      assert.match(b.status?.endpoint ?? '', new RegExp(`^http://mtls-egress-proxy\\.${proxyNs}\\.svc:${b.status?.listenerPort}$`));
      const seen = await call(b.status!.listenerPort!);
      assert.equal(seen.status, 200);
      assert.equal(seen.cn, 'alpha.client');
      assert.equal(seen.serialNumber, client.serial);
      assert.equal(seen.sni, 'localhost');
      assert.equal(seen.host, `localhost:${partner.port}`);
    });

    test('2. two bindings to the same partner with different certificates never mix, over keepalive', async () => {
      await stack.putBinding('bravo', partnerPki.issueClient({ cn: 'bravo.client' }));
      const alpha = await readyBinding('alpha');
      const bravo = await readyBinding('bravo');
      const keepalive = new Agent({ keepAlive: true, maxSockets: 4 });
      try {
        const calls = Array.from({ length: 200 }, (_, i): [string, Binding] => (i % 2 === 0 ? ['alpha.client', alpha] : ['bravo.client', bravo]));
        const results = await Promise.all(calls.map(async ([cn, b]) => ({ cn, seen: await call(b.status!.listenerPort!, keepalive) })));
        for (const { cn, seen } of results) assert.equal(seen.cn, cn);
      } finally {
        keepalive.destroy();
      }
    });

    test('3. a PFX rotated under steady load: no request fails, the partner sees the new serial, Programmed follows', async () => {
      const b = await readyBinding('alpha');
      const port = b.status!.listenerPort!;
      const next = partnerPki.issueClient({ cn: 'alpha.client' });
      const keepalive = new Agent({ keepAlive: true, maxSockets: 2 });
      const failures: number[] = [];
      let sawNewAt: number | undefined;
      let stop = false;
      const load = (async () => {
        while (!stop) {
          const seen = await call(port, keepalive).catch(() => ({ status: 0 }) as PartnerSeen & { status: number });
          if (seen.status !== 200) failures.push(seen.status);
          else if (seen.serialNumber === next.serial) sawNewAt ??= Date.now();
        }
      })();
      const rotatedAt = Date.now();
      await stack.rotate('alpha', next);
      try {
        await pollUntil(() => sawNewAt, { what: 'the partner to see the new serial', timeoutMs: 30_000, intervalMs: 20 });
        const afterRotation = await readyBinding('alpha', next.serial);
        assert.equal(programmed(afterRotation)?.status, 'True');
      } finally {
        stop = true;
        await load;
        keepalive.destroy();
      }
      assert.deepEqual(failures, [], 'every request during the rotation succeeded');
      // The agent reports the rotation it served, split by stage (the figures belong to bench:churn).
      const reported = stack.agent
        .logged('rotations served')
        .flatMap((l) => l.rotations as Array<{ binding: string; ms: Record<string, number> }>)
        .filter((r) => r.binding === `${stack.namespace}/alpha`);
      assert.ok(reported.length >= 1, 'a rotations served line names the binding');
      assert.deepEqual(Object.keys(reported.at(-1)!.ms), ['read', 'decode', 'write', 'watch', 'apply', 'total']);
      assert.ok((await agentMetric(stack, 'mtls_egress_agent_rotation_stage_seconds_count{stage="total"}')) >= 1);
      // Reported, not asserted: timing belongs to npm run bench:proxy.
      console.log(`# rotation: Secret write → partner sees the new serial in ${sawNewAt! - rotatedAt} ms; reused-socket retries: ${reusedSocketRetries}`);
    });

    test('4. a broken binding is added: the others keep serving', async () => {
      await kube.putPfxSecret(ns, 'broken-pfx', partnerPki.issueClient({ cn: 'broken.client' }), password, { storedPassword: 'not-the-password' });
      await kube.createBinding(ns, 'broken', {
        host: 'localhost',
        port: partner.port,
        certificate: { secretRef: { name: 'broken-pfx' }, passwordSecretRef: { name: 'broken-pfx' } },
      });
      await kube.putPfxSecret(ns, 'lost-pfx', partnerPki.issueClient({ cn: 'lost.client' }), password);
      await kube.createBinding(ns, 'lost', {
        host: 'no-such-host.invalid',
        certificate: { secretRef: { name: 'lost-pfx' }, passwordSecretRef: { name: 'lost-pfx' } },
      });
      await kube.waitForBinding(ns, 'broken', 'PasswordIncorrect', hasReason(reasons.PasswordIncorrect));
      const lost = await kube.waitForBinding(ns, 'lost', 'HostUnresolvable', hasReason(reasons.HostUnresolvable));
      assert.equal(programmed(lost)?.reason, reasons.HostUnresolvable);
      // A later change still reaches the proxy: the unresolvable host did not freeze the config.
      await stack.putBinding('charlie', partnerPki.issueClient({ cn: 'charlie.client' }));
      const charlie = await readyBinding('charlie');
      assert.equal((await call(charlie.status!.listenerPort!)).cn, 'charlie.client');
      assert.equal((await call((await readyBinding('bravo')).status!.listenerPort!)).cn, 'bravo.client');
    });

    if (dataPlane === 'nginx') {
      test('5. a config nginx refuses leaves the last good config serving', async () => {
        // Something else on the proxy host holds the port this binding asks for: nginx -t
        // passes, the reload cannot bind, and the agent keeps the last good config.
        const squatter = createServer();
        const b0 = await readyBinding('alpha');
        const base = b0.status!.listenerPort! - (b0.status!.listenerPort! % 100);
        const squattedPort = base + 90;
        await new Promise<void>((resolve) => squatter.listen(squattedPort, '127.0.0.1', resolve));
        try {
          await stack.putBinding('delta', partnerPki.issueClient({ cn: 'delta.client' }), { listenerPort: squattedPort });
          const delta = await kube.waitForBinding(ns, 'delta', 'ProxyConfigRejected', hasReason(reasons.ProxyConfigRejected));
          assert.match(programmed(delta)?.message ?? '', new RegExp(podName));
          assert.match((await podAnnotations(kube.client, proxyNs, podName))[annotationApplyError] ?? '', /./);
          assert.equal((await call(b0.status!.listenerPort!)).cn, 'alpha.client', 'the last good config still serves');
        } finally {
          await new Promise((resolve) => squatter.close(resolve));
        }
        // The port is free again: the agent's retry applies the config and the binding recovers.
        const delta = await readyBinding('delta');
        assert.equal((await call(delta.status!.listenerPort!)).cn, 'delta.client');
      });
    } else {
      test('5. the agent killed with its HAProxy and started again: it serves every binding, and the next change needs no reload', async () => {
        const alpha = await readyBinding('alpha');
        await stack.restartAgent();
        agent = stack.agent;
        await pollUntil(async () => ((await call(alpha.status!.listenerPort!).catch(() => undefined))?.cn === 'alpha.client' ? true : undefined), {
          what: 'the restarted agent to serve alpha',
          timeoutMs: 30_000,
        });
        await stack.putBinding('delta', partnerPki.issueClient({ cn: 'delta.client' }));
        const delta = await readyBinding('delta');
        assert.equal((await call(delta.status!.listenerPort!)).cn, 'delta.client');
        assert.equal(await agentMetric(stack, 'mtls_egress_agent_reloads_total{data_plane="haproxy"}'), 0);
        assert.ok((await agentMetric(stack, 'mtls_egress_agent_runtime_changes_total{op="add-server"}')) >= 1);
        // HAProxy's count of access log lines it dropped is scraped from its runtime API.
        const metrics = await (await fetch(`http://127.0.0.1:${stack.agent.healthPort}/metrics`)).text();
        assert.match(metrics, /^mtls_egress_agent_haproxy_dropped_logs \d+$/m);
      });
    }

    test('6. a deleted binding: its port stops serving (nginx closes it, HAProxy answers 503) and its key file is removed', async () => {
      const b = await readyBinding('charlie');
      const port = b.status!.listenerPort!;
      await kube.deleteBinding(ns, 'charlie');
      if (dataPlane === 'nginx') {
        await pollUntil(async () => ((await connectionRefused(port)) ? true : undefined), { what: `port ${port} to close`, timeoutMs: 30_000 });
      } else {
        await pollUntil(async () => ((await call(port)).status === 503 ? true : undefined), { what: `port ${port} to answer 503`, timeoutMs: 30_000 });
      }
      // HAProxy takes the change through its runtime API before the agent writes the
      // generation without the key, so the 503 can come first: wait for the files too.
      const keyFiles = await pollUntil(
        () => {
          const files = readdirSync(join(configDir, 'current', 'certs'));
          return files.some((f) => f.startsWith(`${ns}_charlie.`)) ? undefined : files;
        },
        { what: `the deleted binding's key file to leave ${configDir}/current/certs`, timeoutMs: 30_000 },
      );
      assert.equal(
        keyFiles.some((f) => f.startsWith(`${ns}_alpha.`)),
        true,
        keyFiles.join(', '),
      );
    });

    test('7. a partner with a certificate from the wrong CA: 502, a clear log line, nothing accepted', async () => {
      await stack.putBinding('echo', partnerPki.issueClient({ cn: 'echo.client' }), {}, impostor);
      const b = await readyBinding('echo');
      const seen = await call(b.status!.listenerPort!);
      assert.equal(seen.status, 502);
      assert.equal(impostor.seen.length, 0, 'the impostor received no request');
      if (dataPlane === 'nginx') {
        await pollUntil(() => (readFileSync(join(configDir, 'error.log'), 'utf8').includes('upstream SSL certificate verify error') ? true : undefined), {
          what: 'nginx to log the verify error',
          timeoutMs: 10_000,
        });
      } else {
        // HAProxy's access log line names the binding, the 502 and the server it failed on.
        await pollUntil(() => (agent.logs.some((l) => l.includes(`"binding":"${ns}/echo"`) && l.includes('"status":502')) ? true : undefined), {
          what: `HAProxy to log the 502 under the binding: ${agent.logs
            .filter((l) => l.includes('echo'))
            .slice(-3)
            .join(' | ')}`,
          timeoutMs: 10_000,
        });
      }
    });

    test("8. a status write of 8081 (a '*' rule lets a tenant write status): written back, and the proxy keeps serving every binding", async () => {
      const alpha = await readyBinding('alpha');
      const port = alpha.status!.listenerPort!;
      await kube.client.mergePatch(`/apis/mtls-egress.io/v1alpha1/namespaces/${ns}/clientcertificatebindings/alpha/status`, { status: { listenerPort: 8081 } });
      await kube.waitForBinding(ns, 'alpha', 'its true port written back', (b) => b.status?.listenerPort === port);
      // The next change still reaches the proxy: one binding's status cannot freeze the config.
      await stack.putBinding('foxtrot', partnerPki.issueClient({ cn: 'foxtrot.client' }));
      const foxtrot = await readyBinding('foxtrot');
      assert.equal((await call(foxtrot.status!.listenerPort!)).cn, 'foxtrot.client');
      assert.equal((await call(port)).cn, 'alpha.client');
    });

    test('no password or key material in any log, status, Event or proxy ConfigMap', async () => {
      const everything = [
        ...stack.controller.logs,
        ...stack.agentLogs(),
        ...(dataPlane === 'nginx' ? [readFileSync(join(configDir, 'error.log'), 'utf8'), readFileSync(join(configDir, 'access.log'), 'utf8')] : []),
        JSON.stringify(await kube.client.list(`/api/v1/namespaces/${ns}/events`)),
        JSON.stringify(await kube.client.list(`/apis/mtls-egress.io/v1alpha1/namespaces/${ns}/clientcertificatebindings`)),
        JSON.stringify(await kube.client.list(`/api/v1/namespaces/${proxyNs}/configmaps`)),
        JSON.stringify(await kube.client.get(`/api/v1/namespaces/${proxyNs}/pods/${podName}`)),
      ].join('\n');
      for (const secret of [password, 'PRIVATE KEY', Buffer.from(password).toString('base64')])
        assert.ok(!everything.includes(secret), `found ${secret.slice(0, 10)}…`);
    });
  });
}
