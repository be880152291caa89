import { isDeepStrictEqual } from 'node:util';
import {
  ConditionAllowedNamespaces,
  ConditionCertificateValid,
  ConditionDestinationPolicyComplete,
  ConditionProgrammed,
  ConditionReady,
  type CertificateStatus,
  type ClientCertificateBindingStatus,
} from '../api/v1alpha1/types.ts';
import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Outcome, Problem } from '../api/v1alpha1/reasons.ts';
import type { IdentityFacts } from '../pki/certificate-facts.ts';
import { certificateValidity, nextValidityChange } from '../pki/validity.ts';
import { metaV1Time } from '../api/time.ts';
import { findCondition, setCondition, sortConditions, type DesiredCondition } from './conditions.ts';

/** The certificate facts status reports. */
export type EvaluatedFacts = IdentityFacts;

export type CertificateOutcome = Outcome<{ facts: EvaluatedFacts }>;
export type PortOutcome = Outcome<{ port: number }>;
export type CheckOutcome = Outcome;

export interface EvaluationInput {
  generation: number | undefined;
  previous: ClientCertificateBindingStatus | undefined;
  spec: CheckOutcome;
  certificate: CertificateOutcome;
  serverCA: CheckOutcome;
  port: PortOutcome;
  /** Absent until a data plane reports back; then Ready also requires it. */
  programmed?: CheckOutcome;
  /** A gap in the destination policy (the pod range unknown): a condition of its own, which never gates Ready. */
  destinationPolicyGap?: Problem;
  /**
   * Whether the namespaces spec.allowedNamespaces selects consent; absent without
   * spec.allowedNamespaces. Its own condition: Ready is about the binding's own namespace.
   */
  consent?: CheckOutcome;
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

const conditionOrder = [ConditionReady, ConditionCertificateValid, ConditionProgrammed, ConditionAllowedNamespaces, ConditionDestinationPolicyComplete];
/** setTimeout overflows past 2^31-1 ms; a periodic re-check is harmless, so cap the wait. */
export const maxRequeueMs = 12 * 60 * 60 * 1000;
/** Land just after a threshold, never just before it. */
const thresholdSlackMs = 1000;

/** The certificate's own verdict: decode problems first, then its validity window at `now` (judged by the identity core). */
export function certificateCondition(input: Pick<EvaluationInput, 'certificate' | 'expiryWarningMs' | 'now'>): DesiredCondition {
  const { certificate, now } = input;
  if (!certificate.ok) return { type: ConditionCertificateValid, status: 'False', reason: certificate.reason, message: certificate.message };
  const { facts } = certificate;
  const { reason, usable } = certificateValidity(facts, now, input.expiryWarningMs);
  const which = `certificate ${facts.subject} (serial ${facts.serialNumber})`;
  const message = {
    [reasons.CertificateNotYetValid]: `${which} is not valid before ${metaV1Time(facts.notBefore)}`,
    [reasons.CertificateExpired]: `${which} expired at ${metaV1Time(facts.notAfter)}`,
    [reasons.CertificateExpiringSoon]: `${which} expires at ${metaV1Time(facts.notAfter)}; replace it before then`,
    [reasons.CertificateReady]: `${which} is valid until ${metaV1Time(facts.notAfter)}`,
  }[reason];
  return { type: ConditionCertificateValid, status: usable ? 'True' : 'False', reason, message };
}

/**
 * Ready from an ordered chain of checks (cert-manager's BuildReadyConditionFromChain): the
 * first failing check names the reason. An expiring certificate still serves, so it keeps
 * Ready=True but carries its reason, which is what the printer column shows.
 */
export function readyCondition(input: EvaluationInput, certificate: DesiredCondition): DesiredCondition {
  const chain: CheckOutcome[] = [
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

  if (input.consent) desired.push(consentCondition(input.consent));
  const gap = input.destinationPolicyGap;
  if (gap) desired.push({ type: ConditionDestinationPolicyComplete, status: 'False', reason: gap.reason, message: gap.message });

  // Each shown only while it has something to say: a complete policy is the normal state,
  // and consent is a question only with spec.allowedNamespaces.
  let conditions =
    input.previous?.conditions?.filter(
      (c) =>
        conditionOrder.includes(c.type) && (gap || c.type !== ConditionDestinationPolicyComplete) && (input.consent || c.type !== ConditionAllowedNamespaces),
    ) ?? [];
  for (const d of desired) conditions = setCondition(conditions, d, input.generation, input.now);
  conditions = sortConditions(conditions, conditionOrder);

  const status: ClientCertificateBindingStatus = {
    ...(input.generation === undefined ? {} : { observedGeneration: input.generation }),
    conditions,
    ...(input.certificate.ok ? { certificate: certificateStatus(input.certificate.facts) } : {}),
    ...(input.port.ok ? { listenerPort: input.port.port, endpoint: input.endpointFor(input.port.port) } : {}),
  };

  const requeueAfterMs = nextThresholdMs(input);
  return { status, events: statusTransitionEvents(input.previous, status), ...(requeueAfterMs === undefined ? {} : { requeueAfterMs }) };
}

function consentCondition(consent: CheckOutcome): DesiredCondition {
  if (consent.ok) {
    return {
      type: ConditionAllowedNamespaces,
      status: 'True',
      reason: reasons.NamespacesConsent,
      message: 'every namespace spec.allowedNamespaces selects consents',
    };
  }
  // Unverified is not a refusal: the controller could not look, and the NetworkPolicy still holds.
  const status = consent.reason === reasons.NamespaceConsentUnverified ? 'Unknown' : 'False';
  return { type: ConditionAllowedNamespaces, status, reason: consent.reason, message: consent.message };
}

/**
 * At most one Event per step from one status to another: for the first condition, in
 * Ready, CertificateValid, Programmed order, whose status or reason differs from the
 * last written status. Ready usually moves with the others, and one transition should
 * read as one line in `kubectl describe`. Comparing with stored status, not memory, means
 * a resync or a controller restart sends nothing new; and a write that replaced one never
 * sent announces the step from the status before both. A status's conditions are in
 * that order, and those it kept from before compare equal.
 */
export function statusTransitionEvents(before: ClientCertificateBindingStatus | undefined, after: ClientCertificateBindingStatus): BindingEvent[] {
  for (const c of after.conditions ?? []) {
    const was = findCondition(before?.conditions, c.type);
    if (was && was.status === c.status && was.reason === c.reason) continue;
    const problem = c.status !== 'True' || c.reason === reasons.CertificateExpiringSoon;
    return [{ type: problem ? 'Warning' : 'Normal', reason: c.reason, message: c.message }];
  }
  return [];
}

/** The next moment time alone changes the verdict (notBefore, notAfter − expiryWarning, just after notAfter), with slack. */
function nextThresholdMs(input: EvaluationInput): number | undefined {
  if (!input.certificate.ok) return undefined;
  const next = nextValidityChange(input.certificate.facts, input.now, input.expiryWarningMs);
  if (next === undefined) return undefined;
  return Math.min(next.getTime() - input.now.getTime() + thresholdSlackMs, maxRequeueMs);
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
