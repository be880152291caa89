import { createHash } from 'node:crypto';
import type { LabelSelector } from '../api/v1alpha1/types.ts';
import { annotationBinding, annotationContentHash, annotationListenerPort } from '../api/labels.ts';
import type { DestinationPolicy } from './destinations.ts';
import type { EgressRoute } from './egress-routes.ts';
import { consentingSelector } from './namespace-consent.ts';

export interface NetworkPolicyObject {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: ['Ingress'];
    ingress: Array<{ from: Array<{ namespaceSelector: LabelSelector }>; ports: Array<{ protocol: 'TCP'; port: number }> }>;
  };
}

export function networkPolicyName(bindingKey: string): string {
  return `mtls-egress-np-${createHash('sha256').update(bindingKey).digest('hex').slice(0, 20)}`;
}

/**
 * One NetworkPolicy per served binding, in the proxy namespace: only pods in the
 * binding's own namespace (and those its allowedNamespaces selector adds, if they consent)
 * may reach its listener port. A binding is an identity; without this, any pod in the cluster could
 * call a partner as any team. NetworkPolicies add up, so these open exactly one port each
 * on top of the default-deny the deployment installs for the proxy pods.
 */
export function networkPolicies(
  routes: readonly EgressRoute[],
  allowedNamespaces: (bindingKey: string) => LabelSelector | undefined,
  namespace: string,
  proxyPodLabels: Record<string, string>,
  labels: Record<string, string>,
): NetworkPolicyObject[] {
  return routes.map((route) => {
    const allowed = allowedNamespaces(route.key);
    const spec: NetworkPolicyObject['spec'] = {
      podSelector: { matchLabels: { ...proxyPodLabels } },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': route.namespace } } },
            // Only namespaces that consent: allowedNamespaces alone is one side's wish (see namespace-consent.ts).
            ...(allowed ? [{ namespaceSelector: consentingSelector(allowed, route.namespace) }] : []),
          ],
          ports: [{ protocol: 'TCP', port: route.listenerPort }],
        },
      ],
    };
    const contentHash = createHash('sha256').update(JSON.stringify(spec)).digest('hex');
    return {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: networkPolicyName(route.key),
        namespace,
        labels,
        annotations: { [annotationBinding]: route.key, [annotationContentHash]: contentHash, [annotationListenerPort]: String(route.listenerPort) },
      },
      spec,
    };
  });
}

export interface EgressPolicyObject {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: ['Egress'];
    egress: Array<{ to: Array<Record<string, unknown>>; ports?: Array<{ protocol: 'UDP' | 'TCP'; port: number }> }>;
  };
}

export const proxyEgressPolicyName = 'mtls-egress-proxy-egress';

/**
 * The destination policy, enforced where the proxy connects: its pods may reach the
 * cluster's DNS pods, and any address but the refused ranges, plus what a platform team
 * opened. NetworkPolicies only add, so this one object carries the whole rule; the
 * translation refuses the same bindings by name, and this holds even if a name resolves
 * somewhere else later. The Kubernetes API server (the agent's watch) is reached at its
 * endpoint address and port, opened by a rule of its own where it is a node's address.
 */
export function proxyEgressPolicy(
  policy: DestinationPolicy,
  namespace: string,
  proxyPodLabels: Record<string, string>,
  labels: Record<string, string>,
): EgressPolicyObject {
  const except = (family: 4 | 6): string[] => policy.networkPolicyDenied.filter(({ cidr }) => cidr.family === family).map(({ cidr }) => cidr.text);
  const egress: EgressPolicyObject['spec']['egress'] = [
    // The cluster's DNS pods (the label every distribution gives them), on whatever port
    // they listen: a policy sees the port after the Service's translation, and a hardened
    // CoreDNS listens on 1053 or 8053 rather than 53.
    { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }] },
    { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: except(4) } }, { ipBlock: { cidr: '::/0', except: except(6) } }] },
  ];
  if (policy.allowed.length > 0) egress.push({ to: policy.allowed.map((cidr) => ({ ipBlock: { cidr: cidr.text } })) });
  // The agent's watch: the API server often listens on a node's address, which is excepted above.
  if (policy.apiServer.length > 0) {
    egress.push({
      to: [...new Set(policy.apiServer.map((e) => e.address))]
        .sort()
        .map((address) => ({ ipBlock: { cidr: `${address}/${address.includes(':') ? 128 : 32}` } })),
      ports: [...new Set(policy.apiServer.map((e) => e.port))].sort((a, b) => a - b).map((port) => ({ protocol: 'TCP' as const, port })),
    });
  }
  const spec: EgressPolicyObject['spec'] = { podSelector: { matchLabels: { ...proxyPodLabels } }, policyTypes: ['Egress'], egress };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: proxyEgressPolicyName,
      namespace,
      labels,
      annotations: { [annotationContentHash]: createHash('sha256').update(JSON.stringify(spec)).digest('hex') },
    },
    spec,
  };
}
