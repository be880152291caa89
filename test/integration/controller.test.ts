import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { pollUntil } from '../harness/poll.ts';
import { httpGet, safeJson, startController, type ControllerProcess } from '../support/controller-process.ts';
import { hasReason, readyOf, TestKube } from '../support/kube.ts';
import { PartnerPki, toPfx } from '../support/partner-pki.ts';

// A password no test output may ever contain.
const password = 'Pa55-w0rd-never-printed-7d1c';
const wrongPassword = 'wrong-password-never-printed-3f9a';

const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki();
let ns: string;
let controller: ControllerProcess;

function pfxSpec(secretName: string, extra: Partial<ClientCertificateBindingSpec> = {}): ClientCertificateBindingSpec {
  return {
    host: 'api.partner.example',
    certificate: { secretRef: { name: secretName, key: 'keystore.p12' }, passwordSecretRef: { name: secretName, key: 'password' } },
    ...extra,
  };
}

async function putPfx(name: string, options: { cn: string; notAfter?: Date; password?: string }): Promise<string> {
  const issued = pki.issueClient({ cn: options.cn, ...(options.notAfter ? { notAfter: options.notAfter } : {}) });
  await kube.putPfxSecret(ns, name, issued, password, options.password ? { storedPassword: options.password } : {});
  return issued.serial;
}

before(async () => {
  ns = await kube.namespace('ctrl');
  controller = await startController({ kubeConfigPath: cluster.kubeConfigPath, namespaces: [ns], id: 'ctrl-main', args: ['--listener-ports', '10000-10099'] });
});

after(() => controller?.kill());

describe('controller against a real API server', () => {
  test('Secret before binding: Ready with the certificate facts, port and endpoint', async () => {
    const serial = await putPfx('first-pfx', { cn: 'first.client' });
    await kube.createBinding(ns, 'first', pfxSpec('first-pfx'));
    const b = await kube.waitForBinding(ns, 'first', 'Ready', hasReason(reasons.BindingReady));
    assert.equal(b.status?.certificate?.serialNumber, serial);
    assert.match(b.status?.certificate?.subject ?? '', /CN=first\.client/);
    assert.equal(b.status?.certificate?.keyAlgorithm, 'RSA 2048');
    assert.ok(b.status?.listenerPort && b.status.listenerPort >= 10000 && b.status.listenerPort <= 10099);
    assert.equal(b.status?.endpoint, `http://mtls-egress-proxy.${ns}.svc:${b.status?.listenerPort}`);
    assert.deepEqual(await kube.waitForEvents(ns, 'first', 1), [{ type: 'Normal', reason: reasons.BindingReady, message: 'the binding is ready' }]);
  });

  test('kubectl get ccb shows Host, Ready, Expires and Reason', async () => {
    await kube.waitForBinding(ns, 'first', 'Ready', hasReason(reasons.BindingReady));
    const out = execFileSync('kubectl', ['--kubeconfig', cluster.kubeConfigPath, 'get', 'ccb', '-n', ns, 'first'], { encoding: 'utf8' });
    const [header, row] = out.trim().split('\n');
    assert.match(header!, /^NAME\s+HOST\s+READY\s+EXPIRES\s+REASON\s+AGE$/);
    assert.match(row!, /^first\s+api\.partner\.example\s+True\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+Ready\s+\S+$/);
  });

  test('binding before Secret: SecretNotFound, then Ready once the Secret arrives', async () => {
    await kube.createBinding(ns, 'early', pfxSpec('early-pfx'));
    await kube.waitForBinding(ns, 'early', 'SecretNotFound', hasReason(reasons.SecretNotFound));
    await putPfx('early-pfx', { cn: 'early.client' });
    await kube.waitForBinding(ns, 'early', 'Ready', hasReason(reasons.BindingReady));
    assert.deepEqual(
      (await kube.waitForEvents(ns, 'early', 2)).map((e) => [e.type, e.reason]),
      [
        ['Warning', reasons.SecretNotFound],
        ['Normal', reasons.BindingReady],
      ],
    );
  });

  test('a rotated PFX updates serial and notAfter', async () => {
    const first = await putPfx('rotate-pfx', { cn: 'rotate.client', notAfter: new Date(Date.now() + 100 * 86_400_000) });
    await kube.createBinding(ns, 'rotate', pfxSpec('rotate-pfx'));
    const before = await kube.waitForBinding(ns, 'rotate', 'first serial', (b) => b.status?.certificate?.serialNumber === first);
    const notAfter = new Date(Date.now() + 200 * 86_400_000);
    const second = await putPfx('rotate-pfx', { cn: 'rotate.client', notAfter });
    const after = await kube.waitForBinding(ns, 'rotate', 'rotated serial', (b) => b.status?.certificate?.serialNumber === second);
    assert.notEqual(after.status?.certificate?.notAfter, before.status?.certificate?.notAfter);
    assert.equal(after.status?.certificate?.notAfter, notAfter.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    assert.equal(after.status?.listenerPort, before.status?.listenerPort, 'rotation keeps the port');
  });

  test('wrong password, then the right one: PasswordIncorrect, then recovery', async () => {
    const issued = pki.issueClient({ cn: 'pw.client' });
    const pfx = toPfx(issued, { password });
    await kube.putSecret(ns, 'pw-pfx', { 'keystore.p12': pfx, password: wrongPassword });
    await kube.createBinding(ns, 'pw', pfxSpec('pw-pfx'));
    const broken = await kube.waitForBinding(ns, 'pw', 'PasswordIncorrect', hasReason(reasons.PasswordIncorrect));
    assert.equal(broken.status?.certificate, undefined);
    await kube.putSecret(ns, 'pw-pfx', { 'keystore.p12': pfx, password: `${password}\n` });
    await kube.waitForBinding(ns, 'pw', 'Ready', hasReason(reasons.BindingReady));
    assert.deepEqual(
      (await kube.waitForEvents(ns, 'pw', 2)).map((e) => [e.type, e.reason]),
      [
        ['Warning', reasons.PasswordIncorrect],
        ['Normal', reasons.BindingReady],
      ],
    );
  });

  test('a Secret that existed before any binding referenced it: read once, then its rotation and deletion are seen', async () => {
    // Written while nothing references it: the watch (metadata only) passes it by and keeps nothing.
    await putPfx('prior-pfx', { cn: 'prior.client' });
    await kube.putSecret(ns, 'prior-pfx', { unrelated: 'edit' });
    const first = await putPfx('prior-pfx', { cn: 'prior.client' });
    await kube.createBinding(ns, 'prior', pfxSpec('prior-pfx'));
    await kube.waitForBinding(ns, 'prior', 'first serial', (b) => b.status?.certificate?.serialNumber === first);
    const second = await putPfx('prior-pfx', { cn: 'prior.client' });
    await kube.waitForBinding(ns, 'prior', 'rotated serial', (b) => b.status?.certificate?.serialNumber === second);
    await kube.deleteSecret(ns, 'prior-pfx');
    await kube.waitForBinding(ns, 'prior', 'SecretNotFound', hasReason(reasons.SecretNotFound));
  });

  test('the Secret watch carries no data: Secrets no binding reads cost no GET, a rotation costs one', async () => {
    const reads = async (): Promise<number> => {
      const body = (await httpGet(controller.healthPort, '/metrics')).body;
      return [...body.matchAll(/^mtls_egress_secret_reads_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const first = await putPfx('counted-pfx', { cn: 'counted.client' });
    await kube.createBinding(ns, 'counted', pfxSpec('counted-pfx'));
    await kube.waitForBinding(ns, 'counted', 'first serial', (b) => b.status?.certificate?.serialNumber === first);
    const before = await reads();
    for (let i = 0; i < 10; i++) {
      await kube.putSecret(ns, `unrelated-${i}`, { 'tls.key': `not ours ${i}` });
      await kube.putSecret(ns, `unrelated-${i}`, { 'tls.key': `still not ours ${i}` });
    }
    const second = await putPfx('counted-pfx', { cn: 'counted.client' });
    await kube.waitForBinding(ns, 'counted', 'rotated serial', (b) => b.status?.certificate?.serialNumber === second);
    assert.equal((await reads()) - before, 1, 'Secret reads for one rotation and 20 writes of Secrets no binding reads');
  });

  test('Secret deleted: SecretNotFound', async () => {
    await putPfx('gone-pfx', { cn: 'gone.client' });
    await kube.createBinding(ns, 'gone', pfxSpec('gone-pfx'));
    await kube.waitForBinding(ns, 'gone', 'Ready', hasReason(reasons.BindingReady));
    await kube.deleteSecret(ns, 'gone-pfx');
    const b = await kube.waitForBinding(ns, 'gone', 'SecretNotFound', hasReason(reasons.SecretNotFound));
    assert.equal(readyOf(b).status, 'False');
  });

  // Expiry by time alone: test/integration/expiry.test.ts, with an injected clock.

  test('two bindings ask for the same fixed port: the older keeps it', async () => {
    await putPfx('port-pfx', { cn: 'port.client' });
    await kube.createBinding(ns, 'port-old', pfxSpec('port-pfx', { listenerPort: 10050 }));
    await kube.waitForBinding(ns, 'port-old', 'Ready', hasReason(reasons.BindingReady));
    await kube.createBinding(ns, 'port-young', pfxSpec('port-pfx', { listenerPort: 10050 }));
    const young = await kube.waitForBinding(ns, 'port-young', 'conflict', hasReason(reasons.ListenerPortConflict));
    assert.match(young.status?.conditions?.[0]?.message ?? '', /port-old/);
    assert.equal((await kube.getBinding(ns, 'port-old')).status?.listenerPort, 10050);
    // The holder leaves: the conflict resolves without touching the younger binding.
    await kube.deleteBinding(ns, 'port-old');
    const settled = await kube.waitForBinding(ns, 'port-young', 'Ready', hasReason(reasons.BindingReady));
    assert.equal(settled.status?.listenerPort, 10050);
  });

  test('a port outside the range is InvalidSpec; the API server rejects what CEL can judge', async () => {
    await putPfx('spec-pfx', { cn: 'spec.client' });
    await kube.createBinding(ns, 'outside', pfxSpec('spec-pfx', { listenerPort: 20000 }));
    await kube.waitForBinding(ns, 'outside', 'InvalidSpec', hasReason(reasons.InvalidSpec));
    const rejected = [
      pfxSpec('spec-pfx', { host: 'https://api.partner.example/x' }),
      { host: 'h.example', certificate: { secretRef: { name: 'a' }, tlsSecretRef: { name: 'b' } } },
      { host: 'h.example', certificate: { tlsSecretRef: { name: 'b' }, passwordSecretRef: { name: 'c' } } },
      pfxSpec('spec-pfx', { port: 70000 }),
      pfxSpec('spec-pfx', { expiryWarning: '30 days' }),
    ];
    for (const [i, spec] of rejected.entries()) {
      await assert.rejects(
        kube.createBinding(ns, `rejected-${i}`, spec as ClientCertificateBindingSpec),
        (err: Error) => /422|Invalid/.test(err.message),
        JSON.stringify(spec),
      );
    }
  });

  test('50 bindings, one broken: the other 49 are Ready', async () => {
    const many = await kube.namespace('many');
    const manyController = await startController({ kubeConfigPath: cluster.kubeConfigPath, namespaces: [many], id: 'ctrl-many' });
    const keyIssued = pki.issueClient({ cn: 'shared-key' });
    for (let i = 0; i < 50; i++) {
      const issued = pki.issueClient({ cn: `c${i}.client`, keyPem: keyIssued.keyPem });
      const bytes = i === 17 ? Buffer.from('this is not a PFX at all') : toPfx(issued, { password });
      await kube.putSecret(many, `pfx-${i}`, { 'keystore.p12': bytes, password });
      await kube.createBinding(many, `b-${i}`, pfxSpec(`pfx-${i}`));
    }
    await pollUntil(
      async () => {
        const list = await kube.client.list<{ metadata: { name: string }; status?: { conditions?: Array<{ type: string; reason: string }> } }>(
          `/apis/mtls-egress.io/v1alpha1/namespaces/${many}/clientcertificatebindings`,
        );
        const reasonsByName = new Map(list.items.map((b) => [b.metadata.name, b.status?.conditions?.find((c) => c.type === 'Ready')?.reason]));
        const ready = [...reasonsByName.values()].filter((r) => r === reasons.BindingReady).length;
        return ready === 49 && reasonsByName.get('b-17') === reasons.PfxMalformed ? true : undefined;
      },
      { what: '49 Ready and b-17 PfxMalformed', timeoutMs: 60_000, intervalMs: 250 },
    );
    const ports = (
      await kube.client.list<{ status?: { listenerPort?: number } }>(`/apis/mtls-egress.io/v1alpha1/namespaces/${many}/clientcertificatebindings`)
    ).items
      .map((b) => b.status?.listenerPort)
      .filter((p) => p !== undefined);
    assert.equal(new Set(ports).size, ports.length, 'every listener port is distinct');
    await manyController.stop();
  });

  test('/metrics, /healthz and /readyz are served', async () => {
    assert.equal((await httpGet(controller.healthPort, '/healthz')).status, 200);
    assert.equal((await httpGet(controller.healthPort, '/readyz')).status, 200);
    const readyGauge = new RegExp(`mtls_egress_binding_ready\\{namespace="${ns}",name="first",host="api.partner.example"\\} 1`);
    // The gauges are set just after the status write that the earlier tests waited for.
    const metrics = await pollUntil(
      async () => {
        const body = (await httpGet(controller.healthPort, '/metrics')).body;
        return readyGauge.test(body) ? body : undefined;
      },
      { what: 'the binding gauges', timeoutMs: 10_000 },
    );
    assert.match(metrics, new RegExp(`mtls_egress_certificate_not_after_seconds\\{namespace="${ns}",name="first",host="api.partner.example"\\} \\d{10}`));
    assert.match(metrics, /mtls_egress_reconcile_total\{controller="binding-status",result="(success|requeue)"\} \d+/);
    assert.match(metrics, /mtls_egress_reconcile_duration_seconds_bucket/);
    assert.match(metrics, /mtls_egress_leader 1/);
  });

  test('no password or key material in logs, Events or status', async () => {
    const everything = [
      controller.logs.join('\n'),
      JSON.stringify(await kube.client.list(`/api/v1/namespaces/${ns}/events`)),
      JSON.stringify(await kube.client.list(`/apis/mtls-egress.io/v1alpha1/namespaces/${ns}/clientcertificatebindings`)),
    ].join('\n');
    for (const secret of [password, wrongPassword, 'PRIVATE KEY', Buffer.from(password).toString('base64')]) {
      assert.ok(!everything.includes(secret), `found ${secret.slice(0, 12)}… in controller output`);
    }
    assert.ok(
      controller.logs.some((l) => safeJson(l)?.msg === 'caches synced'),
      'the logs were captured',
    );
  });

  test('SIGTERM stops cleanly and releases the lease', async () => {
    const code = await controller.stop();
    assert.equal(code, 0);
    const lease = await kube.client.get<{ spec: { holderIdentity?: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/lease-ctrl-main`);
    assert.equal(lease.spec.holderIdentity ?? '', '');
  });
});
