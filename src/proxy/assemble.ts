import { createHash } from 'node:crypto';
import { haproxyFiles, haproxyMaps, haproxyServers, optionsFile, type HaproxyRenderOptions, type HaproxyServer } from '../render/haproxy.ts';
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
  /**
   * Every file of the generation. For HAProxy, haproxy.cfg and the maps list every
   * binding: they are rendered when first read, which the agent does after a runtime
   * change is applied, so a change to one binding at ten thousand waits for none of it.
   */
  readonly files: ProxyFile[];
  /** A shared or binding file by path, without rendering the whole set; holds nothing else of the config. */
  file: (path: string) => ProxyFile | undefined;
  /** HAProxy: the servers the agent keeps HAProxy running through its runtime API. */
  servers?: HaproxyServer[];
  /** HAProxy: each map's entries (listener port → value), as the map files list them. */
  maps?: Map<string, Map<string, string>>;
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

/** The files the agent renders itself, and the directories binding files live in: no shared file may take their names. */
const reservedSharedPaths = new Set(['haproxy.cfg', 'ports.map', 'hosts.map', 'bindings.map', 'bindings', 'certs', 'ca']);

/**
 * Why a binding's server cannot be turned into runtime commands, kept by part: the cache
 * hands the agent the same part objects on every pass, and only a changed binding is new.
 */
const serverProblems = new WeakMap<object, string | null>();

function serverProblem(part: HeldBinding['part']): string | undefined {
  let problem = serverProblems.get(part);
  if (problem === undefined) {
    problem = haproxyServerProblem(part.server, part.key, new Set(part.files.map((f) => f.path))) ?? null;
    serverProblems.set(part, problem);
  }
  return problem ?? undefined;
}

/** A path of `files` that `byPath` or an earlier one of `files` already names. */
function takenPath(files: readonly ProxyFile[], byPath: ReadonlyMap<string, ProxyFile>): string | undefined {
  const own = new Set<string>();
  for (const { path } of files) {
    if (byPath.has(path) || own.has(path)) return path;
    own.add(path);
  }
  return undefined;
}

/**
 * Bindings that cannot be served together with the rest (a second object for a key, a
 * listener port or a file path another binding holds, a server that is not what a
 * renderer makes) are left out and named, and the others are served: one bad object
 * costs one binding. The controller never writes such a set; a hand edit, or a moment
 * between two bindings trading ports, can.
 */
export function assembleConfig(dataPlane: 'nginx' | 'haproxy', shared: readonly ProxyFile[], held: readonly HeldBinding[]): Assembly {
  let options: HaproxyRenderOptions | undefined;
  const byPath = new Map<string, ProxyFile>();
  for (const file of shared) {
    if (byPath.has(file.path)) return { ok: false, problem: `${file.path} is listed twice` };
    if (dataPlane === 'haproxy' && reservedSharedPaths.has(file.path))
      return { ok: false, problem: `the shared files name ${file.path}, which is the agent's` };
    byPath.set(file.path, file);
  }
  if (dataPlane === 'haproxy') {
    const optionsText = byPath.get(optionsFile)?.content;
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
    const { key, listenerPort, files } = binding.part;
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
    const taken = takenPath(files, byPath);
    if (taken) {
      leftOut.push(`${key}: file ${taken} is another binding's, or listed twice`);
      continue;
    }
    if (dataPlane === 'haproxy') {
      const problem = serverProblem(binding.part);
      if (problem) {
        leftOut.push(`${key}: ${problem}`);
        continue;
      }
    }
    keys.add(key);
    ports.add(listenerPort);
    for (const file of files) byPath.set(file.path, file);
    used.push(binding);
  }
  const hash = configDigest(
    dataPlane,
    sharedHash(shared),
    used.map((b) => [b.part.key, b.contentHash] as const),
  );
  const file = (path: string): ProxyFile | undefined => byPath.get(path);
  if (!options) {
    const files = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const problem = filesProblem(files, dataPlane);
    if (problem) return { ok: false, problem };
    return { ok: true, config: { hash, dataPlane, files, file, bindings: used.length }, leftOut };
  }
  const haproxyOptions = options;
  const parts = used.map((b) => ({ server: b.part.server!, files: b.part.files }));
  let servers: HaproxyServer[];
  let skeletonHash: string;
  try {
    ({ servers, skeletonHash } = haproxyServers(haproxyOptions, parts));
  } catch (err) {
    return { ok: false, problem: `the shared HAProxy options do not render: ${(err as Error).message}` };
  }
  let files: ProxyFile[] | undefined;
  const config: AssembledConfig = {
    hash,
    dataPlane,
    get files(): ProxyFile[] {
      if (!files) {
        // The servers and options rendered above, so this does not throw; the paths were
        // checked binding by binding, and are checked whole again before any reaches a disk.
        const all = haproxyFiles(shared, haproxyOptions, parts, servers).map((f) => byPath.get(f.path) ?? { ...f, sha256: sha256(f.content) });
        const problem = filesProblem(all, dataPlane);
        if (problem) throw new Error(`assembleConfig: ${problem}`);
        files = all;
      }
      return files;
    },
    file,
    servers,
    maps: haproxyMaps(servers),
    skeletonHash,
    bindings: used.length,
  };
  return { ok: true, config, leftOut };
}
