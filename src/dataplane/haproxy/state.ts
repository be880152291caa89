// HAProxy's runtime API answers, parsed. Pure: each function takes the text a command
// printed (read off Debian's 3.0.11, which prints every one of them as 2.6.12 did) and
// returns plain data, so the agent's decisions can be tested without HAProxy.

/** One line of `show servers state`. */
export interface LiveServer {
  backend: string;
  name: string;
  /** "-" when the server has no address (a name that did not resolve). */
  address: string;
  port: number;
  /** SRV_ADMF_* bits: 0x01 forced maintenance (ours), 0x04 disabled in the config, 0x08 forced drain, 0x20 resolution failure. */
  adminState: number;
  /** The name the server resolves at run time; "-" for an address, and for every server added through the runtime API. */
  fqdn: string;
}

/** SRV_ADMF_FMAINT: what `disable server` sets and `enable server` clears; a server `add server` makes starts with it. */
export const forcedMaintenance = 0x01;
/** Maintenance set through the API or the config, or a forced drain: what `enable server` undoes. */
const operatorMaintenance = forcedMaintenance | 0x04 | 0x08;

export function isEnabled(server: Pick<LiveServer, 'adminState'>): boolean {
  return (server.adminState & operatorMaintenance) === 0;
}

/**
 * `show servers state` prints a version line, then a header naming its columns, then one
 * line per server. Columns are found by name, so a version that adds some still parses.
 */
export function parseServersState(text: string): LiveServer[] {
  const lines = text.split('\n');
  const header = lines.find((line) => line.startsWith('# be_id'));
  if (!header) return [];
  const columns = header.slice(2).split(' ');
  const at = (name: string): number => {
    const i = columns.indexOf(name);
    if (i < 0) throw new Error(`show servers state: no ${name} column`);
    return i;
  };
  const [backend, name, address, admin, fqdn, port] = ['be_name', 'srv_name', 'srv_addr', 'srv_admin_state', 'srv_fqdn', 'srv_port'].map(at) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const servers: LiveServer[] = [];
  for (const line of lines) {
    if (line === '' || line.startsWith('#') || /^\d+$/.test(line)) continue;
    const f = line.split(' ');
    if (f.length < columns.length) continue;
    servers.push({ backend: f[backend]!, name: f[name]!, address: f[address]!, port: Number(f[port]), adminState: Number(f[admin]), fqdn: f[fqdn]! });
  }
  return servers;
}

/** `show servers conn`: connections each server holds, in use and idle. */
export interface ServerConnections {
  used: number;
  idle: number;
}

export function parseServersConn(text: string): Map<string, ServerConnections> {
  const lines = text.split('\n');
  const header = lines.find((line) => line.startsWith('# bkname/svname'));
  const result = new Map<string, ServerConnections>();
  if (!header) return result;
  const columns = header.slice(2).split(' ');
  const used = columns.indexOf('used_cur');
  const idle = columns.indexOf('idle_cur');
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(' ');
    if (used < 0 || idle < 0 || f.length <= Math.max(used, idle)) continue;
    result.set(f[0]!, { used: Number(f[used]), idle: Number(f[idle]) });
  }
  return result;
}

/** `show ssl cert` and `show ssl ca-file`: the names loaded, and those with a transaction open ("*name"). */
export interface StoreList {
  loaded: Set<string>;
  transactions: string[];
}

/**
 * HAProxy answers a listing with a refusal while another session holds its certificate
 * lock ("Can't display the CA file entries: Operations on certificates are currently
 * locked!"): undefined then, never an empty store, which would have every file loaded
 * again.
 */
export function parseStoreList(text: string): StoreList | undefined {
  if (/^Can't |currently locked/m.test(text)) return undefined;
  const loaded = new Set<string>();
  const transactions: string[] = [];
  for (const raw of text.split('\n')) {
    if (raw === '' || raw.startsWith('#')) continue;
    // `show ssl ca-file` appends " - N certificate(s)"; names never hold a space.
    const name = raw.split(' ')[0]!;
    if (name.startsWith('*')) transactions.push(name.slice(1));
    else loaded.add(name);
  }
  return { loaded, transactions };
}

/** `show ssl cert NAME`: what HAProxy holds under that name. */
export interface LoadedCertificate {
  serial: string;
  /** Upper-case hex without separators, as HAProxy prints it. */
  sha1: string;
}

export function parseCertificateDetail(text: string): LoadedCertificate | undefined {
  const field = (name: string): string | undefined => text.match(new RegExp(`^${name}: (.*)$`, 'm'))?.[1]?.trim();
  const sha1 = field('SHA1 FingerPrint');
  const serial = field('Serial');
  return sha1 && serial !== undefined ? { serial, sha1: sha1.toUpperCase() } : undefined;
}

/**
 * The answers of several `show ssl cert NAME`, one after the other (HaproxyRuntime.runAll),
 * by the name each begins with ("Filename: NAME"); a name HAProxy does not hold answers
 * without one, and is absent.
 */
export function parseCertificateDetails(text: string): Map<string, LoadedCertificate> {
  const details = new Map<string, LoadedCertificate>();
  for (const answer of text.split(/^(?=Filename: )/m)) {
    const name = /^Filename: (.*)$/m.exec(answer)?.[1]?.trim();
    const detail = name === undefined ? undefined : parseCertificateDetail(answer);
    if (name !== undefined && detail) details.set(name, detail);
  }
  return details;
}

/** `show map FILE`: "0x55d5… key value" per entry. */
export function parseMapEntries(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^0x[0-9a-f]+ (\S+) (\S+)$/.exec(line);
    if (m) entries.set(m[1]!, m[2]!);
  }
  return entries;
}

/** A map file's lines ("key value"), as the renderer writes them. */
export function parseMapFile(content: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of content.split('\n')) {
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m) entries.set(m[1]!, m[2]!);
  }
  return entries;
}

/** The master CLI's `show proc`: the master's reload counters and the current workers. */
export interface ProcessTable {
  reloads: number;
  failedReloads: number;
  /** Workers of the current generation, not those still draining after a reload. */
  workers: number[];
}

export function parseShowProc(text: string): ProcessTable | undefined {
  const master = /^\d+\s+master\s+(\d+) \[failed: (\d+)\]/m.exec(text);
  if (!master) return undefined;
  const workers: number[] = [];
  let section = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) {
      section = line;
      continue;
    }
    const m = /^(\d+)\s+worker\s/.exec(line);
    // Workers still finishing the connections of an earlier generation are under "# old workers".
    if (m && section.startsWith('# workers')) workers.push(Number(m[1]));
  }
  return { reloads: Number(master[1]), failedReloads: Number(master[2]), workers };
}

/** `show info`'s DroppedLogs: log lines the current worker could not write at once and dropped. */
export function parseDroppedLogs(showInfo: string): number | undefined {
  const m = /^DroppedLogs: (\d+)$/m.exec(showInfo);
  return m ? Number(m[1]) : undefined;
}
