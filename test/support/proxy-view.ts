import type { KubeClient } from '../../src/k8s/client.ts';
import { configDigest, credentialsSelector, parseManifest, proxyConfigMapName, readProxySecrets, sharedHash } from '../../src/contract/proxy-objects.ts';

export interface ProxyView {
  cm: { binaryData?: Record<string, string> };
  /** The index's config hash. */
  hash: string;
  /** What the binding objects serve, by binding key; empty unless they are exactly what the index counts. */
  bindings: Record<string, { serialNumber: string; fingerprintSha256: string; listenerPort: number }>;
  complete: boolean;
}

/**
 * The proxy objects of a namespace read the way the agent reads them: the index, and every
 * binding object checked and hashed. Undefined while there is no index.
 */
export async function readProxyView(client: KubeClient, namespace: string): Promise<ProxyView | undefined> {
  const cm = await client.get<ProxyView['cm']>(`/api/v1/namespaces/${namespace}/configmaps/${proxyConfigMapName}`).catch(() => undefined);
  const index = cm && parseManifest(cm);
  if (!cm || !index) return undefined;
  const objects = await client.list<{ metadata: { name: string }; data?: Record<string, string> }>(`/api/v1/namespaces/${namespace}/secrets`, {
    labelSelector: credentialsSelector,
  });
  const bindings: ProxyView['bindings'] = {};
  const hashes: Array<[string, string]> = [];
  // As the agent reads them: a binding whose bundle is missing is not served.
  for (const { part, contentHash } of readProxySecrets(objects.items).held) {
    const { key, serialNumber, fingerprintSha256, listenerPort } = part;
    bindings[key] = { serialNumber, fingerprintSha256, listenerPort };
    hashes.push([key, contentHash]);
  }
  const complete = configDigest(index.dataPlane, sharedHash(index.files), hashes) === index.hash;
  return { cm, hash: index.hash, bindings: complete ? bindings : {}, complete };
}
