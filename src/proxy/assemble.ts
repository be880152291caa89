import { createHash } from 'node:crypto';
import { assembleHaproxy, optionsFile, type HaproxyRenderOptions, type HaproxyServer } from '../render/haproxy.ts';
import { filesProblem, haproxyServerProblem } from './generations.ts';
import { configDigest, sharedHash, type BindingPart, type ProxyFile } from './proxy-objects.ts';

// The agent's half of rendering: the shared files and every binding object it holds →
// the whole file set the data plane runs. Pure, so a cold start at ten thousand bindings
// and a change to one give the same files a full render would.

/** The file set a data plane applies, and what identifies it. */
export interface AssembledConfig {
  /** configDigest over what was used: equal to the index's hash when the agent holds exactly what the controller wrote. */
  hash: string;
  dataPlane: 'nginx' | 'haproxy';
  files: ProxyFile[];
  /** HAProxy: the servers the agent keeps HAProxy running through its runtime API. */
  servers?: HaproxyServer[];
  /** HAProxy: the hash of what only a reload changes. */
  skeletonHash?: string;
  bindings: number;
}

export interface HeldBinding {
  contentHash: string;
  part: BindingPart & { files: ProxyFile[] };
}

export type Assembly = { ok: true; config: AssembledConfig; leftOut: string[] } | { ok: false; problem: string };

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * Bindings that cannot be served together with the rest (a second object for a key, a
 * listener port another binding holds, a server that is not what a renderer makes) are
 * left out and named, and the others are served: one bad object costs one binding. The
 * controller never writes such a set; a hand edit, or a moment between two bindings
 * trading ports, can.
 */
export function assembleConfig(dataPlane: 'nginx' | 'haproxy', shared: readonly ProxyFile[], held: readonly HeldBinding[]): Assembly {
  let options: HaproxyRenderOptions | undefined;
  if (dataPlane === 'haproxy') {
    const optionsText = shared.find((f) => f.path === optionsFile)?.content;
    if (optionsText === undefined) return { ok: false, problem: `the shared files have no ${optionsFile}` };
    try {
      options = JSON.parse(optionsText) as HaproxyRenderOptions;
    } catch {
      return { ok: false, problem: `${optionsFile} is not JSON` };
    }
  }
  const range = options?.listenerPorts;
  const leftOut: string[] = [];
  const used: HeldBinding[] = [];
  const keys = new Set<string>();
  const ports = new Set<number>();
  for (const binding of [...held].sort((a, b) => (a.part.key < b.part.key ? -1 : a.part.key > b.part.key ? 1 : a.contentHash < b.contentHash ? -1 : 1))) {
    const { key, listenerPort } = binding.part;
    if (keys.has(key)) {
      leftOut.push(`${key}: a second object for the binding`);
      continue;
    }
    if (ports.has(listenerPort)) {
      leftOut.push(`${key}: listener port ${listenerPort} is another binding's`);
      continue;
    }
    if (range && !(listenerPort >= range.first && listenerPort <= range.last)) {
      leftOut.push(`${key}: listener port ${listenerPort} is outside ${range.first}-${range.last}`);
      continue;
    }
    if (dataPlane === 'haproxy') {
      const problem = haproxyServerProblem(binding.part.server, key, new Set(binding.part.files.map((f) => f.path)));
      if (problem) {
        leftOut.push(`${key}: ${problem}`);
        continue;
      }
    }
    keys.add(key);
    ports.add(listenerPort);
    used.push(binding);
  }
  const hash = configDigest(
    dataPlane,
    sharedHash(shared),
    used.map((b) => [b.part.key, b.contentHash] as const),
  );
  let files: ProxyFile[];
  let haproxy: { servers: HaproxyServer[]; skeletonHash: string } | undefined;
  if (options) {
    try {
      const rendered = assembleHaproxy(
        shared,
        options,
        used.map((b) => ({ server: b.part.server!, files: b.part.files })),
      );
      const digests = new Map([...shared, ...used.flatMap((b) => b.part.files)].map((f) => [f.path, f.sha256]));
      files = rendered.files.map((f) => ({ ...f, sha256: digests.get(f.path) ?? sha256(f.content) }));
      haproxy = { servers: rendered.servers, skeletonHash: rendered.skeletonHash };
    } catch (err) {
      return { ok: false, problem: `the shared HAProxy options do not render: ${(err as Error).message}` };
    }
  } else {
    files = [...shared, ...used.flatMap((b) => b.part.files)].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
  const problem = filesProblem(files, dataPlane);
  if (problem) return { ok: false, problem };
  return { ok: true, config: { hash, dataPlane, files, ...haproxy, bindings: used.length }, leftOut };
}
