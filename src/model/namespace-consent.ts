import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Outcome } from '../api/v1alpha1/reasons.ts';
import type { LabelSelector } from '../api/v1alpha1/types.ts';

// spec.allowedNamespaces lets a binding's namespace open its identity to other namespaces.
// Opening it must take both sides, as Gateway API's ReferenceGrant does: a namespace is
// admitted only if it says it wants to call the binding's namespace. Otherwise team A
// could select team B, wait for B's port to come free and have B's callers, headers and
// tokens included, talk to A's partner with A's identity.

/** The label a namespace carries to consent to calling bindings of `bindingNamespace`: `caller-of.mtls-egress.io/<ns>: "true"`. */
export const consentLabelPrefix = 'caller-of.mtls-egress.io/';
export const consentValue = 'true';

/** On a Namespace, set by the platform: how many listener ports its bindings may hold, overriding --namespace-port-share. */
export const annotationMaxListenerPorts = 'mtls-egress.io/max-listener-ports';

/** A namespace name is a DNS label (at most 63 characters), which is what a label key's name part allows. */
export function consentLabel(bindingNamespace: string): string {
  return `${consentLabelPrefix}${bindingNamespace}`;
}

/** What the controller keeps of a Namespace. */
export interface NamespaceMeta {
  name: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
}

/**
 * The selector the binding's NetworkPolicy admits callers with: the binding's own, ANDed
 * with the consent label, so the CNI admits only namespaces that consent, whatever the
 * controller could read. A key the user set to something else is overwritten.
 */
export function consentingSelector(selector: LabelSelector, bindingNamespace: string): LabelSelector {
  return { ...selector, matchLabels: { ...selector.matchLabels, [consentLabel(bindingNamespace)]: consentValue } };
}

/** Whether a label set satisfies a selector, as the API server's labels.Selector does. An empty selector matches everything. */
export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]!);
    const holds =
      e.operator === 'In' ? inValues : e.operator === 'NotIn' ? !inValues : e.operator === 'Exists' ? has : e.operator === 'DoesNotExist' ? !has : false;
    if (!holds) return false;
  }
  return true;
}

/** Namespaces named in a message at most; the rest are counted. */
const namedAtMost = 10;

/**
 * The AllowedNamespaces verdict of a binding: undefined when it admits no other namespace;
 * otherwise which selected namespaces do not consent. `namespaces` undefined: the
 * controller cannot read them, and says so (the NetworkPolicy fails closed all the same).
 */
export function consentCheck(
  bindingNamespace: string,
  selector: LabelSelector | undefined,
  namespaces: readonly NamespaceMeta[] | undefined,
): Outcome | undefined {
  if (!selector) return undefined;
  const label = consentLabel(bindingNamespace);
  if (!namespaces) {
    return {
      ok: false,
      reason: reasons.NamespaceConsentUnverified,
      message: `the controller cannot read Namespaces, so it cannot say which selected namespaces consent; the proxy admits only those labelled ${label}="${consentValue}"`,
    };
  }
  const missing = namespaces
    .filter((ns) => ns.name !== bindingNamespace && selectorMatches(selector, ns.labels) && ns.labels[label] !== consentValue)
    .map((ns) => ns.name)
    .sort();
  if (missing.length === 0) {
    return { ok: true };
  }
  const named = missing.slice(0, namedAtMost).join(', ') + (missing.length > namedAtMost ? ` and ${missing.length - namedAtMost} more` : '');
  return {
    ok: false,
    reason: reasons.NamespaceConsentMissing,
    message: `spec.allowedNamespaces selects namespaces that do not consent, so their pods cannot call this binding: ${named}; each must carry the label ${label}="${consentValue}"`,
  };
}
