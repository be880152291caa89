import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { parseControllerConfig } from '../../src/config.ts';
import { ControllerManager } from '../../src/controller/manager.ts';
import { KubeClient } from '../../src/k8s/client.ts';
import { createLogger } from '../../src/log.ts';
import { pollUntil } from '../harness/poll.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { hasReason, readyOf, TestKube } from '../support/kube.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { PartnerPki } from '../support/partner-pki.ts';

// Expiry by time alone, against the real API server, with the controller's clock in the
// test's hand: the certificate has days of validity, and the test moves the controller's
// time across the warning threshold and across notAfter. The controller runs in-process
// (the same ControllerManager the command runs), so its work queue's timers run on the
// injected clock too.

const day = 86_400_000;
const hour = 3_600_000;
const cluster = await useControlPlane();
const kube = new TestKube(cluster.kubeconfig);
const pki = new PartnerPki();
const clock = new ManualClock();
const stop = new AbortController();
let ns: string;
let manager: ControllerManager;
let running: Promise<void>;

before(async () => {
  ns = await kube.namespace('expiry');
  const config = parseControllerConfig(
    ['--namespaces', ns, '--namespace', ns, '--leader-elect', 'false', '--data-plane', 'none', '--health-addr', '127.0.0.1:0', '--id', 'expiry'],
    {},
  );
  manager = new ControllerManager(config, { client: new KubeClient(cluster.kubeconfig), logger: createLogger({ level: 'silent' }), clock });
  running = manager.run(stop.signal);
});

after(async () => {
  stop.abort();
  await running;
});

/** Wakes the binding (a touched Secret) and waits until the controller has looked at it. */
async function reconcileAgain(why: string): Promise<void> {
  const before = manager.bindingStatus.reconciled;
  await kube.client.mergePatch(`/api/v1/namespaces/${ns}/secrets/short-pfx`, { metadata: { annotations: { touched: why } } });
  await pollUntil(() => (manager.bindingStatus.reconciled > before ? true : undefined), {
    what: `the controller to reconcile again (${why})`,
    timeoutMs: 20_000,
  });
}

describe('expiry with an injected clock', () => {
  test('Ready, then expiring soon, then expired, by time alone: one Event each, never repeated', async () => {
    const notAfter = new Date(clock.now() + 10 * day);
    const issued = pki.issueClient({ cn: 'short.client', notBefore: new Date(clock.now() - day), notAfter });
    await kube.putPfxSecret(ns, 'short-pfx', issued, 'pw');
    await kube.createBinding(ns, 'short', {
      host: 'api.partner.example',
      expiryWarning: '72h',
      certificate: { secretRef: { name: 'short-pfx' }, passwordSecretRef: { name: 'short-pfx' } },
    });
    await kube.waitForBinding(ns, 'short', 'Ready', hasReason(reasons.BindingReady));

    // Into the warning window (notAfter − 72h), in one step: the queue's requeue timer fires.
    clock.advance(7 * day + hour);
    const expiring = await kube.waitForBinding(ns, 'short', 'expiring soon', hasReason(reasons.CertificateExpiringSoon));
    assert.equal(readyOf(expiring).status, 'True', 'an expiring certificate still serves');

    // Exactly notAfter (whole seconds, as X.509 stores it) is still valid: RFC 5280 says
    // inclusive. One second later the requeue timer fires and it is expired.
    const certificateNotAfter = Date.parse(expiring.status!.certificate!.notAfter);
    clock.advance(certificateNotAfter - clock.now());
    await reconcileAgain('at-not-after');
    assert.equal(readyOf(await kube.getBinding(ns, 'short')).reason, reasons.CertificateExpiringSoon);
    clock.advance(2_000);
    await kube.waitForBinding(ns, 'short', 'expired', hasReason(reasons.CertificateExpired));

    // No threshold is announced twice: much later, make the controller look again.
    clock.advance(30 * day);
    await reconcileAgain('much-later');
    assert.deepEqual(
      (await kube.waitForEvents(ns, 'short', 3)).map((e) => [e.type, e.reason]),
      [
        ['Normal', reasons.BindingReady],
        ['Warning', reasons.CertificateExpiringSoon],
        ['Warning', reasons.CertificateExpired],
      ],
    );
    assert.equal(clock.pending, 0, 'an expired certificate leaves nothing to look at again on time');
  });
});
