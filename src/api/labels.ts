// Labels and annotations on the objects the operator writes and reads. They are a contract
// between the controller, the proxy agent and anyone selecting the objects, so they live
// below every component that uses them.

export const labelManagedBy = 'app.kubernetes.io/managed-by';
export const labelComponent = 'mtls-egress.io/component';
export const managedByValue = 'mtls-egress';
export const componentConfig = 'proxy-config';
export const componentCredentials = 'proxy-credentials';
export const componentNetworkPolicy = 'proxy-network-policy';

/** Selects every credential Secret; the agent watches exactly these. */
export const credentialsSelector = `${labelManagedBy}=${managedByValue},${labelComponent}=${componentCredentials}`;

/** On credential Secrets and NetworkPolicies: which binding they serve ("namespace/name"; too long for a label value). */
export const annotationBinding = 'mtls-egress.io/binding';
/** On a binding's NetworkPolicy: the listener port it opens, so a restarted controller knows which ports bindings deleted meanwhile held. */
export const annotationListenerPort = 'mtls-egress.io/listener-port';
/** On the proxy objects: sha256 of their content, so the controller writes only on change. */
export const annotationContentHash = 'mtls-egress.io/content-hash';
/** On binding objects: the SHA-256 fingerprint of the client certificate they hold, so a restarted controller knows what a replica serves without reading key material. */
export const annotationFingerprint = 'mtls-egress.io/fingerprint-sha256';
/** On binding objects: the sha256 of each CA bundle they reference (comma-separated), so a new leadership term knows which bundle objects are in use without reading data. */
export const annotationBundles = 'mtls-egress.io/ca-bundles';
/** On binding objects: the certificate Secret they were rendered from, uid@resourceVersion (src/contract/rotation-stamps.ts). Not in the content hash. */
export const annotationSourceSecret = 'mtls-egress.io/source-secret';
/** On binding objects: when the controller's stages saw that Secret version, epoch ms ("seen=…,read=…,decoded=…,written=…"). Not in the content hash. */
export const annotationStageTimes = 'mtls-egress.io/stage-times';
/** On a proxy Pod: the config hash its data plane serves now, set by the agent after a successful apply. */
export const annotationAppliedHash = 'mtls-egress.io/applied-config-hash';
/** On a proxy Pod: why the newest config was not applied (empty when it was). */
export const annotationApplyError = 'mtls-egress.io/apply-error';

/** The labels of one kind of object the operator manages. */
export function managedLabels(component: string): Record<string, string> {
  return { [labelManagedBy]: managedByValue, [labelComponent]: component };
}

/** A label selector for one kind of object the operator manages. */
export function managedSelector(component: string): string {
  return `${labelManagedBy}=${managedByValue},${labelComponent}=${component}`;
}
