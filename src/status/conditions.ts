import { metaV1Time } from '../api/time.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import type { Condition, ConditionStatus } from '../api/v1alpha1/types.ts';

/** A condition as a check decides it: its type and status, and the reason and message of the Problem shape. */
export interface DesiredCondition extends Problem {
  readonly type: string;
  readonly status: ConditionStatus;
}

/**
 * Merges a desired condition into a list, keeping lastTransitionTime unless the status
 * flips (cert-manager's SetCertificateCondition). A reason or message change alone is not
 * a transition: alerting on "how long has this been False" must not reset on rewording.
 */
export function setCondition(
  existing: readonly Condition[] | undefined,
  desired: DesiredCondition,
  observedGeneration: number | undefined,
  now: Date,
): Condition[] {
  const list = [...(existing ?? [])];
  const index = list.findIndex((c) => c.type === desired.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: desired.type,
    status: desired.status,
    ...(observedGeneration === undefined ? {} : { observedGeneration }),
    lastTransitionTime: previous && previous.status === desired.status ? previous.lastTransitionTime : metaV1Time(now),
    reason: desired.reason,
    message: desired.message,
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Conditions in a stable order, so that status comparison and output do not depend on insertion order. */
export function sortConditions(conditions: Condition[], order: readonly string[]): Condition[] {
  const rank = (t: string): number => {
    const i = order.indexOf(t);
    return i < 0 ? order.length : i;
  };
  return [...conditions].sort((a, b) => rank(a.type) - rank(b.type) || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}
