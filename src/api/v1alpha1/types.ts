import { objectKey, type ObjectMeta } from '../meta.ts';

export { objectKey, splitKey } from '../meta.ts';

export const group = 'mtls-egress.io';
export const version = 'v1alpha1';
export const apiVersion = `${group}/${version}`;
export const kind = 'ClientCertificateBinding';
export const plural = 'clientcertificatebindings';

/** Condition types on a ClientCertificateBinding. */
export const ConditionReady = 'Ready';
export const ConditionCertificateValid = 'CertificateValid';
export const ConditionProgrammed = 'Programmed';
/** Present only while False: the destination policy cannot refuse everything it should (reasons.PodRangeUnknown). */
export const ConditionDestinationPolicyComplete = 'DestinationPolicyComplete';
/** Whether every namespace spec.allowedNamespaces selects consents; present only with spec.allowedNamespaces. */
export const ConditionAllowedNamespaces = 'AllowedNamespaces';

export const defaultPfxKey = 'keystore.p12';
export const defaultPasswordKey = 'password';
export const defaultCAKey = 'ca.crt';
export const defaultPort = 443;
export const defaultExpiryWarning = '720h';

export interface SecretKeyRef {
  name: string;
  key?: string;
}

export interface SecretNameRef {
  name: string;
}

export interface CertificateSource {
  /** A PFX/PKCS#12 file, raw or base64. */
  secretRef?: SecretKeyRef;
  passwordSecretRef?: SecretKeyRef;
  /** A kubernetes.io/tls Secret (tls.crt + tls.key). */
  tlsSecretRef?: SecretNameRef;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

export interface ClientCertificateBindingSpec {
  host: string;
  port?: number;
  serverName?: string;
  certificate: CertificateSource;
  serverCA?: { secretRef: SecretKeyRef };
  expiryWarning?: string;
  listenerPort?: number;
  allowedNamespaces?: LabelSelector;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface CertificateStatus {
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  fingerprintSha256: string;
  dnsNames: string[];
  keyAlgorithm: string;
  chainLength: number;
}

export interface ClientCertificateBindingStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  certificate?: CertificateStatus;
  listenerPort?: number;
  endpoint?: string;
}

export interface ClientCertificateBinding {
  apiVersion: typeof apiVersion;
  kind: typeof kind;
  metadata: ObjectMeta & { namespace: string };
  spec: ClientCertificateBindingSpec;
  status?: ClientCertificateBindingStatus;
}

export function bindingKey(binding: Pick<ClientCertificateBinding, 'metadata'>): string {
  return objectKey(binding.metadata.namespace, binding.metadata.name);
}
