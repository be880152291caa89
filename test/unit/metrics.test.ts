import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { ControllerMetrics } from '../../src/metrics/metrics.ts';

// The per-binding reason series behind the dashboard's "bindings by reason": one series
// per binding, whose reason label follows the Ready condition's, read back from the
// exposition text Prometheus scrapes.
const a = { namespace: 'team-a', name: 'partner-api', host: 'api.partner.example' };
const b = { namespace: 'team-b', name: 'bank', host: 'api.bank.example' };

async function reasonSeries(metrics: ControllerMetrics): Promise<string[]> {
  const text = await metrics.registry.metrics();
  return text
    .split('\n')
    .filter((line) => line.startsWith('mtls_egress_binding_ready_reason{'))
    .sort();
}

describe('mtls_egress_binding_ready_reason', () => {
  test('one series per binding, with the reason of its Ready condition and the value 1', async () => {
    const metrics = new ControllerMetrics({ processMetrics: false });
    metrics.setReadyReason(a, reasons.BindingReady);
    metrics.setReadyReason(b, reasons.PasswordIncorrect);
    assert.deepEqual(await reasonSeries(metrics), [
      'mtls_egress_binding_ready_reason{namespace="team-a",name="partner-api",host="api.partner.example",reason="Ready"} 1',
      'mtls_egress_binding_ready_reason{namespace="team-b",name="bank",host="api.bank.example",reason="PasswordIncorrect"} 1',
    ]);
  });

  test('a new reason replaces the binding’s series: count by (reason) never counts a binding twice', async () => {
    const metrics = new ControllerMetrics({ processMetrics: false });
    for (const reason of [reasons.ProgrammingPending, reasons.BindingReady, reasons.CertificateExpiringSoon, reasons.CertificateExpiringSoon]) {
      metrics.setReadyReason(a, reason);
    }
    assert.deepEqual(await reasonSeries(metrics), [
      'mtls_egress_binding_ready_reason{namespace="team-a",name="partner-api",host="api.partner.example",reason="CertificateExpiringSoon"} 1',
    ]);
  });

  test('no Ready condition yet, or a deleted binding: no series', async () => {
    const metrics = new ControllerMetrics({ processMetrics: false });
    metrics.setReadyReason(a, reasons.BindingReady);
    metrics.setReadyReason(a, undefined);
    metrics.setReadyReason(b, reasons.SecretNotFound);
    metrics.bindingReady.set(b, 0);
    metrics.forgetBinding(b);
    assert.deepEqual(await reasonSeries(metrics), []);
    assert.doesNotMatch(await metrics.registry.metrics(), /^mtls_egress_binding_ready\{/m);
  });
});
