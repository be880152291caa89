import { createHash } from 'node:crypto';
import type { HeldFile, ProxyFile } from '../../contract/proxy-objects.ts';
import type { AssembledConfig, Assembly, HeldBinding } from '../../proxy/data-plane.ts';
import { filesProblem } from '../../proxy/generations.ts';
import { selectBindings, sharedFilesByPath } from '../assembly.ts';
import { haproxyConfigFile, optionsFile, reservedSharedPaths } from './paths.ts';
import { haproxyFiles, haproxyMaps, haproxyServers, HaproxyRenderCache, type HaproxyRenderOptions, type HaproxyServer } from './render.ts';
import { haproxyServerProblem } from './server.ts';

// The agent's half of rendering HAProxy: the shared files (the options, the 502 page)
// and every binding object it holds → haproxy.cfg and the maps, which list every
// binding, and the servers and map entries the process driver keeps HAProxy serving
// through its runtime API. Pure in what it returns; what it keeps between passes lives
// in a HaproxyAssemblyCache its caller owns (one per agent: see driver.ts).

/** What the HAProxy process driver needs beyond the files. */
export interface HaproxyConfig extends AssembledConfig {
  /**
   * haproxy.cfg and the maps list every binding: they are rendered when first read,
   * which the agent does after a runtime change is applied, so a change to one binding
   * at ten thousand waits for none of it.
   */
  readonly files: HeldFile[];
  /** The servers the agent keeps HAProxy running through its runtime API, sorted by key. */
  servers: HaproxyServer[];
  /** Each map's entries (listener port → value), as the map files list them. */
  maps: Map<string, Map<string, string>>;
  /** The hash of what only a reload changes. */
  skeletonHash: string;
}

/**
 * What assembly keeps from one pass to the next: the render cache (the skeleton's hash,
 * each server's text), and why each binding's server cannot be turned into runtime
 * commands, kept by part. The agent's informer hands it the same part objects on every
 * pass, and only a changed binding is new, so at ten thousand bindings a pass checks and
 * renders one server, not all (git log -S serverProblems).
 */
export class HaproxyAssemblyCache {
  readonly renders = new HaproxyRenderCache();
  readonly #serverProblems = new WeakMap<object, string | null>();

  serverProblem(part: HeldBinding['part']): string | undefined {
    let problem = this.#serverProblems.get(part);
    if (problem === undefined) {
      problem = haproxyServerProblem(part.server, part.key, new Set(part.files.map((f) => f.path))) ?? null;
      this.#serverProblems.set(part, problem);
    }
    return problem ?? undefined;
  }
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * The config HAProxy runs from what the agent holds. Bindings that cannot be served with
 * the rest (selectBindings), or whose server is not what a renderer makes, are left out
 * and named; the options travel as a shared file and are checked as renderHaproxy checks
 * them. `agentOptions` are the agent's own (the threads its CPU limit allows), over the
 * controller's.
 */
export function assembleHaproxyConfig(
  shared: readonly ProxyFile[],
  held: readonly HeldBinding[],
  cache = new HaproxyAssemblyCache(),
  agentOptions: Pick<HaproxyRenderOptions, 'threads'> = {},
): Assembly<HaproxyConfig> {
  const indexed = sharedFilesByPath(shared, reservedSharedPaths);
  if (!indexed.ok) return indexed;
  const optionsText = indexed.byPath.get(optionsFile)?.content;
  if (optionsText === undefined) return { ok: false, problem: `the shared files have no ${optionsFile}` };
  let options: HaproxyRenderOptions;
  try {
    options = { ...(JSON.parse(optionsText) as HaproxyRenderOptions), ...agentOptions };
  } catch {
    return { ok: false, problem: `${optionsFile} is not JSON` };
  }
  const { hash, used, leftOut, byPath } = selectBindings('haproxy', shared, indexed.byPath, held, {
    listenerPorts: options?.listenerPorts,
    bindingProblem: (part) => cache.serverProblem(part),
  });
  // Checked by serverProblem above.
  const parts = used.map((b) => ({ server: b.part.server as HaproxyServer, files: b.part.files }));
  let servers: HaproxyServer[];
  let skeletonHash: string;
  try {
    ({ servers, skeletonHash } = haproxyServers(options, parts, cache.renders));
  } catch (err) {
    return { ok: false, problem: `the shared HAProxy options do not render: ${(err as Error).message}` };
  }
  let files: HeldFile[] | undefined;
  const config: HaproxyConfig = {
    hash,
    dataPlane: 'haproxy',
    get files(): HeldFile[] {
      if (!files) {
        // The servers and options rendered above, so this does not throw; the paths were
        // checked binding by binding, and are checked whole again before any reaches a disk.
        const all = haproxyFiles<HeldFile>(shared, options, parts, servers, cache.renders).map(
          (f): HeldFile => byPath.get(f.path) ?? { ...f, sha256: sha256((f as ProxyFile).content) },
        );
        const problem = filesProblem(all, haproxyConfigFile);
        if (problem) throw new Error(`assembleHaproxyConfig: ${problem}`);
        files = all;
      }
      return files;
    },
    file: (path) => byPath.get(path),
    servers,
    maps: haproxyMaps(servers, cache.renders),
    skeletonHash,
    bindings: used.length,
  };
  return { ok: true, config, leftOut };
}
