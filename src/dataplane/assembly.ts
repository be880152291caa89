import { configDigest, sharedHash, type HeldFile, type ProxyFile } from '../contract/proxy-objects.ts';
import type { PortRange } from '../model/listener-ports.ts';
import type { AssembledConfig, Assembly, HeldBinding } from '../proxy/data-plane.ts';
import { filesProblem } from '../proxy/generations.ts';

// The agent's half of rendering, the part every data plane shares: the shared files and
// every binding object it holds → the bindings that can be served together, and the
// digest that identifies them. Pure, so a cold start at ten thousand bindings and a
// change to one give the same files a full render would. A plane's driver adds its own
// checks (what it reserves, what a binding's server must be) and builds its config from
// the selection (haproxy/assemble.ts); nginx serves the objects' files as they are.

/** What a plane asks of the selection beyond what every plane checks. */
export interface SelectionRules {
  /** Listener ports a binding may have; any when absent. */
  listenerPorts?: PortRange;
  /** Why this binding cannot be served, beyond a clash with another (HAProxy: its server is not what a renderer makes). */
  bindingProblem?: (part: HeldBinding['part']) => string | undefined;
}

/** The bindings that can be served together, and what identifies the set. */
export interface BindingSelection {
  /** configDigest over the shared files and the bindings used: equal to the index's hash when the agent holds exactly what the controller wrote. */
  hash: string;
  /** Sorted by key. */
  used: HeldBinding[];
  leftOut: string[];
  /** Every shared file and every used binding's file, by path. */
  byPath: ReadonlyMap<string, HeldFile>;
}

/**
 * A path of `files` that `byPath` or an earlier one of `files` already names. A bundle is
 * the exception: it is named by its content, so the bindings that trust one bundle all
 * name its one file.
 */
function takenPath(files: readonly HeldFile[], byPath: ReadonlyMap<string, HeldFile>): string | undefined {
  const own = new Set<string>();
  for (const file of files) {
    const held = byPath.get(file.path);
    const sameBundle = held !== undefined && held.bundle === true && file.bundle === true && held.sha256 === file.sha256;
    if ((held && !sameBundle) || own.has(file.path)) return file.path;
    own.add(file.path);
  }
  return undefined;
}

/** The shared files by path: none listed twice, none with a name the plane reserves (the files the agent makes itself). */
export function sharedFilesByPath(
  shared: readonly ProxyFile[],
  reservedSharedPaths: ReadonlySet<string>,
): { ok: true; byPath: Map<string, ProxyFile> } | { ok: false; problem: string } {
  const byPath = new Map<string, ProxyFile>();
  for (const file of shared) {
    if (byPath.has(file.path)) return { ok: false, problem: `${file.path} is listed twice` };
    if (reservedSharedPaths.has(file.path)) return { ok: false, problem: `the shared files name ${file.path}, which is the agent's` };
    byPath.set(file.path, file);
  }
  return { ok: true, byPath };
}

/**
 * Bindings that cannot be served together with the rest (a second object for a key, a
 * listener port or a file path another binding holds, a binding the plane's rules refuse)
 * are left out and named, and the others are served: one bad object costs one binding.
 * The controller never writes such a set; a hand edit, or a moment between two bindings
 * trading ports, can.
 */
export function selectBindings(
  dataPlane: string,
  shared: readonly ProxyFile[],
  sharedByPath: ReadonlyMap<string, ProxyFile>,
  held: readonly HeldBinding[],
  rules: SelectionRules,
): BindingSelection {
  const byPath = new Map<string, HeldFile>(sharedByPath);
  const range = rules.listenerPorts;
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
    const problem = rules.bindingProblem?.(binding.part);
    if (problem) {
      leftOut.push(`${key}: ${problem}`);
      continue;
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
  return { hash, used, leftOut, byPath };
}

/** A plane whose config is the objects' files as they are (nginx: nginx.conf includes each binding's file). */
export function assembleObjectFiles(
  dataPlane: string,
  configFile: string,
  shared: readonly ProxyFile[],
  held: readonly HeldBinding[],
  reservedSharedPaths: ReadonlySet<string>,
): Assembly {
  const indexed = sharedFilesByPath(shared, reservedSharedPaths);
  if (!indexed.ok) return indexed;
  const { hash, used, leftOut, byPath } = selectBindings(dataPlane, shared, indexed.byPath, held, {});
  const files = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const problem = filesProblem(files, configFile);
  if (problem) return { ok: false, problem };
  const config: AssembledConfig = { hash, dataPlane, files, file: (path) => byPath.get(path), bindings: used.length };
  return { ok: true, config, leftOut };
}
