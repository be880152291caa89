import { serverArguments, storeName, systemTrustStore, type HaproxyServer } from '../render/haproxy.ts';
import { forcedMaintenance, isEnabled, type LiveServer, type ServerConnections, type StoreList } from './haproxy-state.ts';

// What the agent must tell a running HAProxy so that it serves a manifest, decided from
// what HAProxy says it serves now. Pure and level-triggered: the same desired and live
// state always give the same steps, whatever happened before (an agent restart, a
// HAProxy restart from the config on disk, a pass cut short), and a state that already
// matches gives none.

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
  | { op: 'add-server'; backend: string; server: string; host: string; port: number; args: string[] }
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
const mapOrder = ['hosts.map', 'bindings.map', 'ports.map'];

/** Backends the agent manages: one per listener port. Others (unbound, a status frontend) are never touched. */
export function isManagedBackend(name: string): boolean {
  return /^p\d{1,5}$/.test(name);
}

export function planHaproxy(desired: DesiredHaproxy, live: LiveHaproxy): Plan {
  const steps: Step[] = [];
  const draining: string[] = [];
  const dir = desired.storeDir;
  const ours = (name: string, folder: string): boolean => name.startsWith(`${dir}/${folder}/`);

  // A transaction left open by an agent that stopped mid-change blocks every other one.
  for (const name of live.certificates.transactions) steps.push({ op: 'abort-cert', name });
  for (const name of live.caFiles.transactions) steps.push({ op: 'abort-ca', name });

  const wantedCerts = new Map(desired.servers.map((s) => [storeName(dir, s.certificateFile), s.certificateFile]));
  const wantedCas = new Map(desired.servers.filter((s) => s.caFile !== systemTrustStore).map((s) => [storeName(dir, s.caFile), s.caFile]));
  for (const [name, file] of wantedCas) if (!live.caFiles.loaded.has(name)) steps.push({ op: 'load-ca', name, file });
  for (const [name, file] of wantedCerts) if (!live.certificates.loaded.has(name)) steps.push({ op: 'load-cert', name, file });

  const liveByKey = new Map(live.servers.map((s) => [`${s.backend}/${s.name}`, s]));
  const wantedServers = new Set<string>();
  for (const server of desired.servers) {
    const key = `${server.backend}/${server.server}`;
    wantedServers.add(key);
    const current = liveByKey.get(key);
    if (!current) {
      steps.push({
        op: 'add-server',
        backend: server.backend,
        server: server.server,
        host: server.host,
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
    const key = `${server.backend}/${server.name}`;
    if (!isManagedBackend(server.backend) || wantedServers.has(key)) continue;
    if (isEnabled(server)) steps.push({ op: 'disable-server', backend: server.backend, server: server.name });
    const conns = live.connections.get(key);
    if (conns && conns.used + conns.idle > 0) draining.push(key);
    else steps.push({ op: 'del-server', backend: server.backend, server: server.name });
  }

  // Certificates and CA files no binding wants, once no server that may use them is left:
  // HAProxy 2.6 refuses to delete a certificate a server uses, but deletes a CA file a
  // server still uses, and that server's next handshake or the next commit of that name
  // crashes the worker. So nothing is deleted while a server drains; the pass that
  // deletes the last one deletes them after it.
  if (draining.length === 0) {
    for (const name of live.certificates.loaded) if (ours(name, 'certs') && !wantedCerts.has(name)) steps.push({ op: 'del-cert', name });
    for (const name of live.caFiles.loaded) if (ours(name, 'ca') && !wantedCas.has(name)) steps.push({ op: 'del-ca', name });
  }
  return { steps, draining };
}

/** A mismatch between what HAProxy serves and the manifest, found by reading HAProxy back. */
export function convergenceProblems(desired: DesiredHaproxy, live: LiveHaproxy, loaded: ReadonlyMap<string, boolean>): string[] {
  const problems: string[] = [];
  const liveByKey = new Map(live.servers.map((s) => [`${s.backend}/${s.name}`, s]));
  const wanted = new Set(desired.servers.map((s) => `${s.backend}/${s.server}`));
  for (const server of desired.servers) {
    const current = liveByKey.get(`${server.backend}/${server.server}`);
    if (!current) problems.push(`${server.key}: server ${server.backend}/${server.server} is missing`);
    else if (!isEnabled(current)) problems.push(`${server.key}: server ${server.backend}/${server.server} is out of service`);
    const certificate = storeName(desired.storeDir, server.certificateFile);
    if (loaded.get(certificate) !== true) problems.push(`${server.key}: HAProxy does not hold certificate ${server.certificateFile} as rendered`);
  }
  for (const server of live.servers) {
    const key = `${server.backend}/${server.name}`;
    if (isManagedBackend(server.backend) && isEnabled(server) && !wanted.has(key)) problems.push(`server ${key} still takes requests`);
  }
  for (const [file, want] of desired.maps) {
    const have = live.maps.get(`${desired.storeDir}/${file}`);
    if (!have) {
      problems.push(`map ${file} is not loaded`);
      continue;
    }
    if (have.size !== want.size || [...want].some(([k, v]) => have.get(k) !== v)) problems.push(`map ${file} differs from the manifest`);
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
export function afterSteps(live: LiveHaproxy, done: readonly Step[]): LiveHaproxy {
  const servers = new Map(live.servers.map((s) => [`${s.backend}/${s.name}`, s]));
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

/** "backend/server" → backend. */
function backendOf(serverKey: string): string {
  return serverKey.slice(0, serverKey.indexOf('/'));
}
