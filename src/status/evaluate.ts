import { isDeepStrictEqual } from 'node:util';
import {
  ConditionCertificateValid,
  ConditionProgrammed,
  ConditionReady,
  type CertificateStatus,
  type ClientCertificateBindingStatus,
} from '../api/v1alpha1/types.ts';
import * as reasons from '../api/v1alpha1/reasons.ts';
import { findCondition, metaV1Time, setCondition, sortConditions, type DesiredCondition } from './conditions.ts';

/** The certificate facts evaluation needs; the identity core's CertificateFacts satisfies it. */
export interface EvaluatedFacts {
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  fingerprintSha256: string;
  dnsNames: string[];
  keyAlgorithm: string;
  keySize: number;
  curve?: string;
  chainLength: number;
}

export type Problem = { ok: false; reason: string; message: string };
export type CertificateOutcome = { ok: true; facts: EvaluatedFacts } | Problem;
export type PortOutcome = { ok: true; port: number } | Problem;
export type CheckOutcome = { ok: true } | Problem;

export interface EvaluationInput {
  generation: number | undefined;
  previous: ClientCertificateBindingStatus | undefined;
  spec: CheckOutcome;
  certificate: CertificateOutcome;
  serverCA: CheckOutcome;
  port: PortOutcome;
  /** Absent until a data plane reports back; then Ready also requires it. */
  programmed?: CheckOutcome;
  expiryWarningMs: number;
  endpointFor: (port: number) => string;
  now: Date;
}

export interface BindingEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface Evaluation {
  status: ClientCertificateBindingStatus;
  /** One per condition reason that changed, so a resync that changes nothing sends nothing. */
  events: BindingEvent[];
  /** When time alone will change the verdict (the next expiry threshold). */
  requeueAfterMs?: number;
}

const conditionOrder = [ConditionReady, ConditionCertificateValid, ConditionProgrammed];
/** setTimeout overflows past 2^31-1 ms; a periodic re-check is harmless, so cap the wait. */
export const maxRequeueMs = 12 * 60 * 60 * 1000;
/** Land just after a threshold, never just before it. */
const thresholdSlackMs = 1000;

/** The certificate's own verdict: decode problems first, then its validity window at `now`. */
export function certificateCondition(input: Pick<EvaluationInput, 'certificate' | 'expiryWarningMs' | 'now'>): DesiredCondition {
  const { certificate, now } = input;
  if (!certificate.ok) return { type: ConditionCertificateValid, status: 'False', reason: certificate.reason, message: certificate.message };
  const { facts } = certificate;
  if (now < facts.notBefore) {
    return {
      type: ConditionCertificateValid,
      status: 'False',
      reason: reasons.CertificateNotYetValid,
      message: `certificate ${facts.subject} (serial ${facts.serialNumber}) is not valid before ${metaV1Time(facts.notBefore)}`,
    };
  }
  if (now >= facts.notAfter) {
    return {
      type: ConditionCertificateValid,
      status: 'False',
      reason: reasons.CertificateExpired,
      message: `certificate ${facts.subject} (serial ${facts.serialNumber}) expired at ${metaV1Time(facts.notAfter)}`,
    };
  }
  if (now.getTime() >= facts.notAfter.getTime() - input.expiryWarningMs) {
    return {
      type: ConditionCertificateValid,
      status: 'True',
      reason: reasons.CertificateExpiringSoon,
      message: `certificate ${facts.subject} (serial ${facts.serialNumber}) expires at ${metaV1Time(facts.notAfter)}; replace it before then`,
    };
  }
  return {
    type: ConditionCertificateValid,
    status: 'True',
    reason: reasons.CertificateReady,
    message: `certificate ${facts.subject} (serial ${facts.serialNumber}) is valid until ${metaV1Time(facts.notAfter)}`,
  };
}

/**
 * Ready from an ordered chain of checks (cert-manager's BuildReadyConditionFromChain): the
 * first failing check names the reason. An expiring certificate still serves, so it keeps
 * Ready=True but carries its reason, which is what the printer column shows.
 */
export function readyCondition(input: EvaluationInput, certificate: DesiredCondition): DesiredCondition {
  const chain: Array<CheckOutcome | Problem> = [
    input.spec,
    certificate.status === 'True' ? { ok: true } : { ok: false, reason: certificate.reason, message: certificate.message },
    input.serverCA,
    input.port,
    input.programmed ?? { ok: true },
  ];
  for (const check of chain) {
    if (!check.ok) return { type: ConditionReady, status: 'False', reason: check.reason, message: check.message };
  }
  if (certificate.reason === reasons.CertificateExpiringSoon) {
    return { type: ConditionReady, status: 'True', reason: reasons.CertificateExpiringSoon, message: certificate.message };
  }
  return { type: ConditionReady, status: 'True', reason: reasons.BindingReady, message: 'the binding is ready' };
}

export function evaluateBinding(input: EvaluationInput): Evaluation {
  const certificate = certificateCondition(input);
  const ready = readyCondition(input, certificate);
  const desired: DesiredCondition[] = [ready, certificate];
  if (input.programmed) {
    desired.push(
      input.programmed.ok
        ? { type: ConditionProgrammed, status: 'True', reason: reasons.Programmed, message: 'every ready proxy replica serves this certificate' }
        : { type: ConditionProgrammed, status: 'False', reason: input.programmed.reason, message: input.programmed.message },
    );
  }

  let conditions = input.previous?.conditions?.filter((c) => conditionOrder.includes(c.type)) ?? [];
  for (const d of desired) conditions = setCondition(conditions, d, input.generation, input.now);
  conditions = sortConditions(conditions, conditionOrder);

  const status: ClientCertificateBindingStatus = {
    ...(input.generation === undefined ? {} : { observedGeneration: input.generation }),
    conditions,
    ...(input.certificate.ok ? { certificate: certificateStatus(input.certificate.facts) } : {}),
    ...(input.port.ok ? { listenerPort: input.port.port, endpoint: input.endpointFor(input.port.port) } : {}),
  };

  const requeueAfterMs = nextThresholdMs(input);
  return { status, events: transitionEvents(input.previous, desired), ...(requeueAfterMs === undefined ? {} : { requeueAfterMs }) };
}

/**
 * At most one Event per evaluation: for the first condition, in Ready, CertificateValid,
 * Programmed order, whose status or reason differs from the last written status. Ready
 * usually moves with the others, and one transition should read as one line in
 * `kubectl describe`. Comparing with stored status, not memory, means a resync or a
 * controller restart sends nothing new.
 */
function transitionEvents(previous: ClientCertificateBindingStatus | undefined, desired: DesiredCondition[]): BindingEvent[] {
  for (const d of desired) {
    const before = findCondition(previous?.conditions, d.type);
    if (before && before.status === d.status && before.reason === d.reason) continue;
    const problem = d.status !== 'True' || d.reason === reasons.CertificateExpiringSoon;
    return [{ type: problem ? 'Warning' : 'Normal', reason: d.reason, message: d.message }];
  }
  return [];
}

/** The next moment time alone changes the verdict: notBefore, notAfter − expiryWarning, notAfter. */
function nextThresholdMs(input: EvaluationInput): number | undefined {
  if (!input.certificate.ok) return undefined;
  const { facts } = input.certificate;
  const now = input.now.getTime();
  const thresholds = [facts.notBefore.getTime(), facts.notAfter.getTime() - input.expiryWarningMs, facts.notAfter.getTime()];
  const next = thresholds.filter((t) => t > now).sort((a, b) => a - b)[0];
  if (next === undefined) return undefined;
  return Math.min(next - now + thresholdSlackMs, maxRequeueMs);
}

export function certificateStatus(facts: EvaluatedFacts): CertificateStatus {
  return {
    subject: facts.subject,
    issuer: facts.issuer,
    serialNumber: facts.serialNumber,
    notBefore: metaV1Time(facts.notBefore),
    notAfter: metaV1Time(facts.notAfter),
    fingerprintSha256: facts.fingerprintSha256,
    dnsNames: [...facts.dnsNames],
    keyAlgorithm: facts.curve ? `${facts.keyAlgorithm} ${facts.curve}` : `${facts.keyAlgorithm} ${facts.keySize}`,
    chainLength: facts.chainLength,
  };
}

/** Status as the API server stores it: seconds precision, no undefined fields. */
export function statusEqual(a: ClientCertificateBindingStatus | undefined, b: ClientCertificateBindingStatus): boolean {
  return isDeepStrictEqual(JSON.parse(JSON.stringify(a ?? {})), JSON.parse(JSON.stringify(b)));
}
