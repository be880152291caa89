import { bindingsMap, caDir, certificateDir, hostsMap, portsMap } from './paths.ts';
import { backendName, serverArguments, storeName, systemTrustStore, type HaproxyServer } from './render.ts';
import { forcedMaintenance, isEnabled, type LiveServer, type ServerConnections, type StoreList } from './state.ts';

// What the agent must tell a running HAProxy so that it serves a manifest, decided from
// what HAProxy says it serves now. Pure and level-triggered: the same desired and live
// state always give the same steps, whatever happened before (an agent restart, a
// HAProxy restart from the config on disk, a pass cut short), and a state that already
// matches gives none. What it keeps between passes (names, indexes) lives in a PlanMemo
// its caller owns: the same answers with or without one, only faster.

/** What the manifest asks of HAProxy, with names spelled as HAProxy knows them. */
export interface DesiredHaproxy {
  /** The directory HAProxy's config is read from (DIR/current): certificate, CA and map names start with it. */
  storeDir: string;
  servers: readonly HaproxyServer[];
  /** Map file (relative, e.g. "ports.map") → its entries. */
  maps: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

export interface LiveHaproxy {
  servers: readonly LiveServer[];
  /** By "backend/server". */
  connections: ReadonlyMap<string, ServerConnections>;
  certificates: StoreList;
  caFiles: StoreList;
  /** Map name (absolute, as HAProxy lists it) → its entries. */
  maps: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

export type Step =
  | { op: 'abort-cert' | 'abort-ca'; name: string }
  /** `file` is relative to the generation: the agent reads the bytes from the manifest's files. */
  | { op: 'load-cert' | 'load-ca'; name: string; file: string }
  /** `address` is the controller's checked address: the agent resolves nothing. */
  | { op: 'add-server'; backend: string; server: string; address: string; port: number; args: string[] }
  | { op: 'enable-server' | 'disable-server' | 'del-server'; backend: string; server: string }
  | { op: 'map-add' | 'map-set'; map: string; key: string; value: string }
  | { op: 'map-del'; map: string; key: string }
  | { op: 'del-cert' | 'del-ca'; name: string };

export interface Plan {
  steps: Step[];
  /** Servers taken out of service that still hold connections: deleted on a later pass, once idle. */
  draining: string[];
}

/** The order maps are written in: the port → backend map last, so a port routes only once its Host and name are set. */
const mapOrder = [hostsMap, bindingsMap, portsMap];

/** Backends the agent manages: one per listener port. Others (unbound, a status frontend) are never touched. */
export function isManagedBackend(name: string): boolean {
  return /^p\d{1,5}$/.test(name);
}

/** A server's names as HAProxy knows them. */
export interface StoreNames {
  /** "backend/server". */
  key: string;
  certificate: string;
  /** A CA file's name, or systemTrustStore. */
  ca: string;
}

/** What a plan looks up in the desired state, made once per desired state (a pass plans more than once against it). */
interface DesiredIndex {
  certificates: Map<string, string>;
  caFiles: Map<string, string>;
  servers: Set<string>;
}

/**
 * What planning keeps from one pass to the next, by object: the agent plans against ten
 * thousand servers on every pass, mostly the same objects (its caches keep them), and
 * making each name and index again (new strings, hashed again by every Map they go into)
 * was most of a plan. The agent owns one; a call without one starts empty.
 */
export class PlanMemo {
  readonly #names = new WeakMap<HaproxyServer, StoreNames & { dir: string }>();
  readonly #desiredIndexes = new WeakMap<DesiredHaproxy, DesiredIndex>();
  readonly #liveKeys = new WeakMap<LiveServer, string>();
  readonly #liveIndexes = new WeakMap<readonly LiveServer[], Map<string, LiveServer>>();

  /** A server's names as HAProxy knows them, with the store in `dir`. */
  storeNames(server: HaproxyServer, dir: string): StoreNames {
    let names = this.#names.get(server);
    if (names?.dir !== dir) {
      names = { dir, key: `${server.backend}/${server.server}`, certificate: storeName(dir, server.certificateFile), ca: storeName(dir, server.caFile) };
      this.#names.set(server, names);
    }
    return names;
  }

  desiredIndex(desired: DesiredHaproxy): DesiredIndex {
    let index = this.#desiredIndexes.get(desired);
    if (!index) {
      index = { certificates: new Map(), caFiles: new Map(), servers: new Set() };
      for (const server of desired.servers) {
        const names = this.storeNames(server, desired.storeDir);
        index.certificates.set(names.certificate, server.certificateFile);
        if (server.caFile !== systemTrustStore) index.caFiles.set(names.ca, server.caFile);
        index.servers.add(names.key);
      }
      this.#desiredIndexes.set(desired, index);
    }
    return index;
  }

  /** "backend/server" of a server HAProxy listed, kept by the listed object (a delta pass keeps most of them). */
  liveKey(server: LiveServer): string {
    let key = this.#liveKeys.get(server);
    if (key === undefined) this.#liveKeys.set(server, (key = `${server.backend}/${server.name}`));
    return key;
  }

  liveByKey(servers: readonly LiveServer[]): Map<string, LiveServer> {
    let index = this.#liveIndexes.get(servers);
    if (!index) {
      index = new Map(servers.map((s) => [this.liveKey(s), s]));
      this.#liveIndexes.set(servers, index);
    }
    return index;
  }
}

export function planHaproxy(desired: DesiredHaproxy, live: LiveHaproxy, memo = new PlanMemo()): Plan {
  const steps: Step[] = [];
  const draining: string[] = [];
  const dir = desired.storeDir;

  // A transaction left open by an agent that stopped mid-change blocks every other one.
  for (const name of live.certificates.transactions) steps.push({ op: 'abort-cert', name });
  for (const name of live.caFiles.transactions) steps.push({ op: 'abort-ca', name });

  const index = memo.desiredIndex(desired);
  for (const [name, file] of index.caFiles) if (!live.caFiles.loaded.has(name)) steps.push({ op: 'load-ca', name, file });
  for (const [name, file] of index.certificates) if (!live.certificates.loaded.has(name)) steps.push({ op: 'load-cert', name, file });

  const liveServers = memo.liveByKey(live.servers);
  for (const server of desired.servers) {
    const current = liveServers.get(memo.storeNames(server, dir).key);
    if (!current) {
      steps.push({
        op: 'add-server',
        backend: server.backend,
        server: server.server,
        address: server.address,
        port: server.port,
        args: serverArguments(server, dir, { quote: false }),
      });
    }
    if (!current || !isEnabled(current)) steps.push({ op: 'enable-server', backend: server.backend, server: server.server });
  }

  // Maps: additions and changes in mapOrder, then removals in reverse (the port first, so
  // no request reaches a backend whose Host entry is already gone).
  const mapName = (file: string): string => `${dir}/${file}`;
  for (const file of mapOrder) {
    const want = desired.maps.get(file) ?? new Map<string, string>();
    const have = live.maps.get(mapName(file)) ?? new Map<string, string>();
    for (const [key, value] of want) {
      const current = have.get(key);
      if (current === undefined) steps.push({ op: 'map-add', map: mapName(file), key, value });
      else if (current !== value) steps.push({ op: 'map-set', map: mapName(file), key, value });
    }
  }
  for (const file of [...mapOrder].reverse()) {
    const want = desired.maps.get(file) ?? new Map<string, string>();
    for (const key of (live.maps.get(mapName(file)) ?? new Map<string, string>()).keys()) {
      if (!want.has(key)) steps.push({ op: 'map-del', map: mapName(file), key });
    }
  }

  // Servers no binding wants: out of service first (after their replacement is in), and
  // deleted once they hold no connection; a request in flight finishes where it started.
  for (const server of live.servers) {
    const key = memo.liveKey(server);
    if (index.servers.has(key) || !isManagedBackend(server.backend)) continue;
    if (isEnabled(server)) steps.push({ op: 'disable-server', backend: server.backend, server: server.name });
    const conns = live.connections.get(key);
    if (conns && conns.used + conns.idle > 0) draining.push(key);
    else steps.push({ op: 'del-server', backend: server.backend, server: server.name });
  }

  // Certificates and CA files no binding wants, once no server that may use them is left:
  // HAProxy refuses to delete either while a server uses it ("in use, can't be deleted!",
  // 3.0.11), and the agent does not ask again for a refused name until the next reload
  // (data-plane.ts). So nothing is deleted while a server drains; the pass that deletes
  // the last one deletes them after it.
  if (draining.length === 0) {
    const unused = unusedStores(desired, live, memo);
    for (const name of unused.certificates) steps.push({ op: 'del-cert', name });
    for (const name of unused.caFiles) steps.push({ op: 'del-ca', name });
  }
  return { steps, draining };
}

/** A mismatch between what HAProxy serves and the manifest, found by reading HAProxy back. */
export function convergenceProblems(desired: DesiredHaproxy, live: LiveHaproxy, loaded: ReadonlyMap<string, boolean>, memo = new PlanMemo()): string[] {
  const problems: string[] = [];
  const liveServers = memo.liveByKey(live.servers);
  const wanted = memo.desiredIndex(desired).servers;
  for (const server of desired.servers) {
    const names = memo.storeNames(server, desired.storeDir);
    const current = liveServers.get(names.key);
    if (!current) problems.push(`${server.key}: server ${names.key} is missing`);
    else if (!isEnabled(current)) problems.push(`${server.key}: server ${names.key} is out of service`);
    if (loaded.get(names.certificate) !== true) problems.push(`${server.key}: HAProxy does not hold certificate ${server.certificateFile} as rendered`);
  }
  for (const server of live.servers) {
    const key = memo.liveKey(server);
    if (!wanted.has(key) && isManagedBackend(server.backend) && isEnabled(server)) problems.push(`server ${key} still takes requests`);
  }
  for (const [file, want] of desired.maps) {
    const have = live.maps.get(`${desired.storeDir}/${file}`);
    if (!have) {
      problems.push(`map ${file} is not loaded`);
      continue;
    }
    let same = have.size === want.size;
    for (const [key, value] of want) if (same && have.get(key) !== value) same = false;
    if (!same) problems.push(`map ${file} differs from the manifest`);
  }
  return problems;
}

/** The backends whose servers a plan changes, or waits on (draining). */
export function touchedBackends(plan: Plan): Set<string> {
  const backends = new Set<string>();
  for (const step of plan.steps) if ('backend' in step) backends.add(step.backend);
  for (const key of plan.draining) backends.add(backendOf(key));
  return backends;
}

/**
 * What HAProxy holds after it accepted these steps, from what it held before: the agent's
 * picture of HAProxy between two full read-backs, so that a change to one binding at ten
 * thousand reads back only what it touched. A server's own line is read back from
 * HAProxy for its backend (replaceBackends) rather than trusted from here.
 */
export function afterSteps(live: LiveHaproxy, done: readonly Step[], memo = new PlanMemo()): LiveHaproxy {
  const servers = new Map(memo.liveByKey(live.servers));
  const certificates = { loaded: new Set(live.certificates.loaded), transactions: [...live.certificates.transactions] };
  const caFiles = { loaded: new Set(live.caFiles.loaded), transactions: [...live.caFiles.transactions] };
  const maps = new Map(live.maps);
  const map = (name: string): Map<string, string> => {
    const copy = new Map(maps.get(name));
    maps.set(name, copy);
    return copy;
  };
  for (const step of done) {
    switch (step.op) {
      case 'abort-cert':
        certificates.transactions = certificates.transactions.filter((n) => n !== step.name);
        break;
      case 'abort-ca':
        caFiles.transactions = caFiles.transactions.filter((n) => n !== step.name);
        break;
      case 'load-cert':
        certificates.loaded.add(step.name);
        break;
      case 'load-ca':
        caFiles.loaded.add(step.name);
        break;
      case 'del-cert':
        certificates.loaded.delete(step.name);
        break;
      case 'del-ca':
        caFiles.loaded.delete(step.name);
        break;
      case 'add-server':
        // HAProxy adds a server in maintenance; `enable server` follows.
        servers.set(`${step.backend}/${step.server}`, {
          backend: step.backend,
          name: step.server,
          address: '-',
          port: step.port,
          adminState: forcedMaintenance,
          fqdn: '-',
        });
        break;
      case 'enable-server':
      case 'disable-server': {
        const key = `${step.backend}/${step.server}`;
        const server = servers.get(key);
        if (server) {
          const adminState = step.op === 'enable-server' ? server.adminState & ~forcedMaintenance : server.adminState | forcedMaintenance;
          servers.set(key, { ...server, adminState });
        }
        break;
      }
      case 'del-server':
        servers.delete(`${step.backend}/${step.server}`);
        break;
      case 'map-add':
      case 'map-set':
        map(step.map).set(step.key, step.value);
        break;
      case 'map-del':
        map(step.map).delete(step.key);
        break;
    }
  }
  return { ...live, servers: [...servers.values()], certificates, caFiles, maps };
}

/** `live` with the servers and connections of these backends as HAProxy printed them for each. */
export function replaceBackends(
  live: LiveHaproxy,
  backends: ReadonlySet<string>,
  read: { servers: readonly LiveServer[]; connections: ReadonlyMap<string, ServerConnections> },
): LiveHaproxy {
  const connections = new Map([...live.connections].filter(([key]) => !backends.has(backendOf(key))));
  for (const [key, conns] of read.connections) connections.set(key, conns);
  return { ...live, servers: [...live.servers.filter((s) => !backends.has(s.backend)), ...read.servers], connections };
}

/**
 * `live` with every server of these backends holding a connection: what to plan on when
 * they were not read now. A plan then takes a server out of service and leaves it
 * draining rather than deleting it, and the drain pass reads it before it deletes.
 */
export function countedBusy(live: LiveHaproxy, backends: ReadonlySet<string>): LiveHaproxy {
  if (backends.size === 0) return live;
  const connections = new Map(live.connections);
  for (const server of live.servers) {
    if (!backends.has(server.backend)) continue;
    const key = `${server.backend}/${server.name}`;
    const conns = connections.get(key);
    connections.set(key, { used: Math.max(1, conns?.used ?? 0), idle: conns?.idle ?? 0 });
  }
  return { ...live, connections };
}

/** "backend/server" → backend. */
export function backendOf(serverKey: string): string {
  return serverKey.slice(0, serverKey.indexOf('/'));
}

/**
 * The backends a change from `before` (what HAProxy was last found to serve) to `after`
 * can touch: those whose servers or map entries differ, and those still draining. A
 * server's name is a digest of everything its line holds, so two servers of one name in
 * one backend are the same server. Undefined when nothing of `before` can be trusted for
 * `after` (the store moved).
 */
export function changedBackends(before: DesiredHaproxy, after: DesiredHaproxy, draining: ReadonlySet<string>, memo = new PlanMemo()): Set<string> | undefined {
  if (before.storeDir !== after.storeDir) return undefined;
  const dir = after.storeDir;
  const backends = new Set(draining);
  const had = memo.desiredIndex(before).servers;
  const has = memo.desiredIndex(after).servers;
  for (const server of after.servers) if (!had.has(memo.storeNames(server, dir).key)) backends.add(server.backend);
  for (const server of before.servers) if (!has.has(memo.storeNames(server, dir).key)) backends.add(server.backend);
  for (const file of new Set([...before.maps.keys(), ...after.maps.keys()])) {
    const was = before.maps.get(file) ?? new Map<string, string>();
    const is = after.maps.get(file) ?? new Map<string, string>();
    for (const [port, value] of is) if (was.get(port) !== value) backends.add(backendName(Number(port)));
    for (const port of was.keys()) if (!is.has(port)) backends.add(backendName(Number(port)));
  }
  return backends;
}

/**
 * `desired` and `live` narrowed to these backends: their servers, their ports' map
 * entries, and the certificates and CA files their servers use now (`desired`) or used
 * when HAProxy was last found serving `before` and no server uses now, and `leftover`
 * (see leftoverStores).
 * Planned and checked on this view, a change costs what it touches; what HAProxy holds
 * outside it is left to the periodic full pass.
 */
export function narrowTo(
  backends: ReadonlySet<string>,
  before: DesiredHaproxy,
  desired: DesiredHaproxy,
  live: LiveHaproxy,
  leftover: ReadonlySet<string>,
  memo = new PlanMemo(),
): { desired: DesiredHaproxy; live: LiveHaproxy } {
  const servers = desired.servers.filter((s) => backends.has(s.backend));
  const stores = new Set(leftover);
  for (const server of servers) {
    const names = memo.storeNames(server, desired.storeDir);
    stores.add(names.certificate).add(names.ca);
  }
  // What a server of these backends used before is in view only if no server wants it
  // now: a CA bundle is shared by servers of other backends, which this view does not
  // see, and would otherwise look unused to it and be deleted under them.
  const wanted = memo.desiredIndex(desired);
  for (const server of before.servers.filter((s) => backends.has(s.backend))) {
    const names = memo.storeNames(server, desired.storeDir);
    if (!wanted.certificates.has(names.certificate)) stores.add(names.certificate);
    if (!wanted.caFiles.has(names.ca)) stores.add(names.ca);
  }
  const ports = [...backends].filter(isManagedBackend).map((b) => b.slice(1));
  const entries = (map: ReadonlyMap<string, string> | undefined): Map<string, string> => {
    const narrowed = new Map<string, string>();
    for (const port of ports) {
      const value = map?.get(port);
      if (value !== undefined) narrowed.set(port, value);
    }
    return narrowed;
  };
  const store = (list: StoreList): StoreList => ({ loaded: new Set([...stores].filter((name) => list.loaded.has(name))), transactions: list.transactions });
  return {
    desired: { ...desired, servers, maps: new Map([...desired.maps].map(([file, map]) => [file, entries(map)])) },
    live: {
      servers: live.servers.filter((s) => backends.has(s.backend)),
      connections: live.connections,
      certificates: store(live.certificates),
      caFiles: store(live.caFiles),
      maps: new Map([...live.maps].map(([name, map]) => [name, entries(map)])),
    },
  };
}

/**
 * The agent's certificates and CA files HAProxy holds that `desired` does not use: kept
 * while a server that used them drains (or HAProxy refuses to let them go), so that the
 * pass that deletes the server, which may look at that backend alone, deletes them too.
 */
export function leftoverStores(desired: DesiredHaproxy, live: LiveHaproxy, memo = new PlanMemo()): Set<string> {
  const unused = unusedStores(desired, live, memo);
  return new Set([...unused.certificates, ...unused.caFiles]);
}

/** What HAProxy holds under the agent's certs/ and ca/ that no desired server uses. */
function unusedStores(desired: DesiredHaproxy, live: LiveHaproxy, memo: PlanMemo): { certificates: string[]; caFiles: string[] } {
  const index = memo.desiredIndex(desired);
  const unused = (list: StoreList, wanted: ReadonlyMap<string, string>, folder: string): string[] => {
    const prefix = `${desired.storeDir}/${folder}/`;
    return [...list.loaded].filter((name) => !wanted.has(name) && name.startsWith(prefix));
  };
  return { certificates: unused(live.certificates, index.certificates, certificateDir), caFiles: unused(live.caFiles, index.caFiles, caDir) };
}
