import { createHash } from 'node:crypto';
import { byKey, isPortNumber, type EgressRoute } from '../../model/egress-routes.ts';
import type { PortRange } from '../../model/listener-ports.ts';
import {
  checkRoutes,
  commentSafe,
  hashFiles,
  hostForUrl,
  routeBundles,
  withNewline,
  withoutRepeatedBundles,
  type RenderedConfig,
  type RenderedFile,
} from '../../render/files.ts';
import {
  badGatewayFile,
  bindingsMap,
  certificateDir,
  configDirVariable,
  haproxyConfigFile,
  hostsMap,
  optionsFile,
  portsMap,
  runDirVariable,
  runtimeSocket,
} from './paths.ts';
import { maxHaproxyThreads } from './threads.ts';

// Routes → the files HAProxy runs from, and the runtime state the agent keeps HAProxy in
// without a reload. The shape:
//
//   frontend egress   bound to the whole listener range; a map from destination port to
//                     backend, and maps for the Host header and the binding's name
//   backend p<port>   one per port of the range, bound or not, so a new binding needs no
//                     new backend (HAProxy cannot add one at run time); each holds at
//                     most the one server of the binding on that port, so no connection
//                     and no TLS session is ever shared between two identities
//   server s<id>      the partner, with the binding's client certificate, verify
//                     required, the partner's CA, SNI and the name verified
//
// The rendered haproxy.cfg is always complete: a cold start serves every binding without
// the agent. Paths are absolute, because HAProxy resolves maps and certificates after it
// has parsed the file, but they are spelled through environment variables the agent sets
// (MTLS_EGRESS_CONFIG_DIR: where this config lives; MTLS_EGRESS_RUN_DIR: sockets), so the
// same bytes run from any directory and hash alike everywhere.
//
// The controller renders the shared files and each binding's part; the agent assembles
// haproxy.cfg and the maps from them (assemble.ts). Pure: a caller that renders again and
// again passes a HaproxyRenderCache it keeps.

export interface HaproxyRenderOptions {
  /** The address the listener range binds: 127.0.0.1 on a workstation, 0.0.0.0 in the proxy pod. */
  listenAddress: string;
  listenerPorts: PortRange;
  /** A listener with /healthz; none when absent. */
  statusPort?: number;
  /**
   * Where the access log goes: "stdout" (the default: the container's log, written by
   * HAProxy itself, never through the agent) or "stderr". HAProxy's own alerts always go
   * to stderr, which the agent reads, redacts and keeps for error reasons. "off": no
   * access log, for partners whose volume is better counted than logged.
   */
  logTarget?: 'stderr' | 'stdout' | 'off';
  /**
   * nbthread: the agent's (dataplane/haproxy/threads.ts), from the CPUs its container may
   * use. Absent (`render`, the controller's shared options), HAProxy starts one thread per
   * CPU it may run on.
   */
  threads?: number;
}

/** One binding's server as the agent applies it at run time; paths relative to the config directory. */
export interface HaproxyServer {
  key: string;
  listenerPort: number;
  backend: string;
  /** s + 12 hex digits of everything the server line holds: any change is a new server, never an edit. */
  server: string;
  host: string;
  /** Where HAProxy connects: the first of the route's checked addresses (IPv4 first). Never a name. */
  address: string;
  port: number;
  serverName: string;
  hostHeader: string;
  certificateFile: string;
  /** The bundle's file under ca/ (named by its content, shared by every server that trusts it), or "@system-ca" for the system trust store. */
  caFile: string;
  fingerprintSha256: string;
  serialNumber: string;
}

export interface RenderedHaproxy extends RenderedConfig {
  dataPlane: 'haproxy';
  /** Sorted by key: what the agent makes HAProxy serve, read back and checked. */
  servers: HaproxyServer[];
  /**
   * sha256 of the configuration with no binding: what only a reload can change (the
   * listener range, addresses, timeouts). Equal skeletons mean the running HAProxy can
   * reach the new configuration through its runtime API alone.
   */
  skeletonHash: string;
}

/** The backend a port without a binding routes to: a plain 503 that says so. */
export const unboundBackend = 'unbound';

/** The backend of one listener port. */
export function backendName(port: number): string {
  return `p${port}`;
}

export const systemTrustStore = '@system-ca';

/**
 * HAProxy answers a server it could not connect to (refused, or a TLS handshake that
 * failed verification) with 503; nginx, and every client's expectation of a proxy, say
 * 502. An errorfile replaces only the responses HAProxy makes itself, never the
 * partner's own 503s; its header tells an http-after-response rule to log the 502 too
 * (HAProxy logs the status it meant, not the errorfile's) and tells a client that the
 * proxy, not the partner, answered.
 */
export const proxyErrorHeader = 'x-mtls-egress-error';
const badGateway = [
  'HTTP/1.1 502 Bad Gateway',
  'content-type: text/plain',
  'cache-control: no-cache',
  `${proxyErrorHeader}: partner-unreachable`,
  '',
  'the partner could not be reached or did not pass verification; the proxy log has the binding\n',
].join('\r\n');

/** One JSON line per request, with the binding's name: the path, not the query string (partners' APIs put tokens there). */
const accessLogFormat =
  '{"time":"%t","binding":"%[var(txn.binding)]","client":"%ci","method":"%HM","path":"%HPO","status":%ST,' +
  '"bytes_sent":%B,"upstream":"%si:%sp","request_time":%Ta}';

/**
 * Renders the HAProxy data plane. Pure and deterministic, like renderNginx; throws on a
 * route or option value that could change the config's meaning (the translation leaves
 * such bindings out first).
 */
export function renderHaproxy(routes: readonly EgressRoute[], options: HaproxyRenderOptions): RenderedHaproxy {
  const sorted = [...routes].sort(byKey);
  checkOptions(sorted, options);
  const shared = haproxySharedFiles(options);
  const parts = sorted.map(haproxyBindingPart);
  const cache = new HaproxyRenderCache();
  const { servers, skeletonHash } = haproxyServers(options, parts, cache);
  const files = haproxyFiles(shared, options, parts, servers, cache);
  return { dataPlane: 'haproxy', files, servers, skeletonHash, hash: hashFiles(files) };
}

/**
 * The files no binding owns: the 502 page and the options. haproxy.cfg itself holds a
 * server line per binding, so the agent assembles it (assembleHaproxyConfig, in
 * assemble.ts) from these and the bindings' parts: a change to one binding never
 * rewrites a shared object.
 */
export function haproxySharedFiles(options: HaproxyRenderOptions): RenderedFile[] {
  checkOptions([], options);
  return [
    { path: badGatewayFile, content: badGateway, mode: 0o644 },
    { path: optionsFile, content: `${JSON.stringify(options)}\n`, mode: 0o644 },
  ];
}

/** What one binding adds: its server, and its client certificate (with the key: 0600) and partner CA. */
export interface HaproxyBindingPart {
  server: HaproxyServer;
  files: RenderedFile[];
}

export function haproxyBindingPart(route: EgressRoute): HaproxyBindingPart {
  // Named by its content: the servers of every binding that trusts this bundle share one
  // file and one CA entry in HAProxy.
  const [serverCA] = routeBundles(route);
  const server = haproxyServer(route, serverCA?.path ?? systemTrustStore);
  // HAProxy reads a client certificate and its key from one PEM file: key material, 0600.
  const files: RenderedFile[] = [
    {
      path: server.certificateFile,
      content: `${withNewline(route.clientCertificate.chainPem)}${withNewline(route.clientCertificate.privateKey.reveal())}`,
      mode: 0o600,
      binding: route.key,
    },
  ];
  if (serverCA) files.push(serverCA);
  return { server, files };
}

/** A server's text in haproxy.cfg, and its listener port as the maps spell it. */
interface ServerText {
  block: string;
  port: string;
}

/**
 * What rendering keeps between calls, for a caller that renders again and again: the
 * agent assembles haproxy.cfg and the maps from every binding on each pass, and at ten
 * thousand bindings making everything afresh was most of a pass (git log -S
 * lastSkeleton, -S serverTexts). The caller owns it; a render without one starts empty.
 */
export class HaproxyRenderCache {
  /** The hash of haproxy.cfg without servers (a backend per listener port), for the options it was made from. */
  #skeleton: { options: string; hash: string } | undefined;
  /**
   * Text made for one server, kept while the server object lives: the servers of the
   * bindings that did not change are the same objects (the agent's informer keeps them),
   * so a change renders one server's text, not all. Servers are never modified once made.
   */
  readonly #serverTexts = new WeakMap<HaproxyServer, ServerText>();

  skeletonHash(options: HaproxyRenderOptions): string {
    const key = JSON.stringify(options);
    if (this.#skeleton?.options !== key) this.#skeleton = { options: key, hash: sha256(haproxyConfig([], options, this)) };
    return this.#skeleton.hash;
  }

  serverText(server: HaproxyServer): ServerText {
    let text = this.#serverTexts.get(server);
    if (!text) {
      text = serverText(server);
      this.#serverTexts.set(server, text);
    }
    return text;
  }
}

/**
 * The servers, checked and sorted by key, and the skeleton's hash: what a runtime change
 * needs, without a file. The agent runs it on what it reads from the API, so it checks
 * the options and the servers as renderHaproxy checks routes.
 */
export function haproxyServers(
  options: HaproxyRenderOptions,
  parts: ReadonlyArray<Pick<HaproxyBindingPart, 'server'>>,
  cache = new HaproxyRenderCache(),
): { servers: HaproxyServer[]; skeletonHash: string } {
  checkOptions([], options);
  const servers = parts.map((p) => p.server).sort(byKey);
  checkServers(servers, options);
  return { servers, skeletonHash: cache.skeletonHash(options) };
}

/**
 * Every file, sorted by path, for `servers` as haproxyServers returned them: haproxy.cfg
 * and the maps list every binding. No hash over the files: the agent identifies a config
 * by its objects' digests, and hashing every certificate again was a third of a pass at
 * ten thousand bindings. The shared and binding files come back as they were given (the
 * agent's hold no bytes: see StoredFile); only haproxy.cfg and the maps are made here.
 */
export function haproxyFiles<F extends { path: string; bundle?: true }>(
  shared: readonly F[],
  options: HaproxyRenderOptions,
  parts: ReadonlyArray<{ files: readonly F[] }>,
  servers: readonly HaproxyServer[],
  cache = new HaproxyRenderCache(),
): Array<F | RenderedFile> {
  const files: Array<F | RenderedFile> = [
    ...shared,
    ...withoutRepeatedBundles(parts.flatMap((p) => p.files)),
    { path: haproxyConfigFile, content: haproxyConfig(servers, options, cache), mode: 0o644 },
  ];
  files.push(...mapFiles(servers, cache));
  return files.sort((a, b) => byKey({ key: a.path }, { key: b.path }));
}

function haproxyServer(route: EgressRoute, caFile: string): HaproxyServer {
  const stem = `${route.namespace}_${route.name}`;
  // Named by the chain it holds (which fixes the key too): a path never changes content,
  // so an intermediate the partner reissued under the same leaf is a new file, loaded.
  const certificateFile = `${certificateDir}/${stem}.${sha256(route.clientCertificate.chainPem).slice(0, 16)}.pem`;
  const hostHeader = route.port === 443 ? hostForUrl(route.host) : `${hostForUrl(route.host)}:${route.port}`;
  // The address is part of the server: a host that moves is a new server, added beside
  // the old one, which is taken out and deleted once idle (as any changed server is).
  const address = route.addresses[0]!;
  const identity = [route.key, route.host, address, route.port, route.serverName, certificateFile, caFile].join('\n');
  return {
    key: route.key,
    listenerPort: route.listenerPort,
    backend: backendName(route.listenerPort),
    server: `s${sha256(identity).slice(0, 12)}`,
    host: route.host,
    address,
    port: route.port,
    serverName: route.serverName,
    hostHeader,
    certificateFile,
    caFile,
    fingerprintSha256: route.clientCertificate.fingerprintSha256,
    serialNumber: route.clientCertificate.serialNumber,
  };
}

/** The name HAProxy knows a certificate or CA file by: its path, as the config spells it once expanded. */
export function storeName(configDir: string, file: string): string {
  return file === systemTrustStore ? systemTrustStore : `${configDir}/${file}`;
}

/**
 * The arguments of a server line after its address, as the config file and the runtime
 * API's `add server` both take them, with paths resolved against `configDir`. The config
 * quotes paths (the directory is spelled through an environment variable, which HAProxy
 * expands only in double quotes); the runtime API takes no quotes, so the agent passes a
 * plain absolute directory. The address is the controller's, checked against the
 * destination policy: neither HAProxy nor the agent resolves a name (no `init-addr libc`,
 * no resolvers), so a name that answers otherwise later reaches HAProxy only as a new,
 * checked address in a new config.
 */
export function serverArguments(server: HaproxyServer, configDir: string, options: { quote: boolean }): string[] {
  const path = (file: string): string => (file === systemTrustStore || !options.quote ? storeName(configDir, file) : `"${storeName(configDir, file)}"`);
  return [
    'ssl',
    'crt',
    path(server.certificateFile),
    'verify',
    'required',
    'ca-file',
    path(server.caFile),
    'sni',
    `str(${server.serverName})`,
    'verifyhost',
    server.serverName,
    'ssl-min-ver',
    'TLSv1.2',
    // No pool-max-conn or pool-purge-delay: in HAProxy 3.0 a server made by `add server`
    // keeps idle connections to the partner as one from the config file does (the e2e
    // reuse test: one partner connection for 20 keep-alive requests; 2.6.12 opened 20).
  ];
}

function haproxyConfig(servers: readonly HaproxyServer[], options: HaproxyRenderOptions, cache: HaproxyRenderCache): string {
  const dir = `\${${configDirVariable}}`;
  const byPort = new Map(servers.map((s) => [s.listenerPort, s]));
  const { first, last } = options.listenerPorts;
  const map = (file: string): string => `map_int(${dir}/${file})`;
  const lines = [
    '# Rendered by mtls-egress from ClientCertificateBindings; rewritten on every change, do not edit.',
    `# ${servers.length} binding${servers.length === 1 ? '' : 's'} on ports ${first}-${last}. Paths are spelled through ${configDirVariable}`,
    `# (this file's directory) and ${runDirVariable} (sockets), which the agent sets; run it by hand with`,
    `#   ${configDirVariable}=DIR ${runDirVariable}=DIR haproxy -W -db -f DIR/${haproxyConfigFile}`,
    'global',
    ...(options.logTarget === 'off' ? [] : [`    log ${options.logTarget ?? 'stdout'} format raw local0 info`]),
    // The runtime API: admin level, and the listening sockets handed to the next process
    // on a reload, so a reload drops no connection.
    `    stats socket "\${${runDirVariable}}/${runtimeSocket}" mode 600 level admin expose-fd listeners`,
    '    ssl-server-verify required',
    ...(options.threads === undefined ? [] : [`    nbthread ${options.threads}`]),
    // An old process finishing its requests after a reload is stopped at last.
    '    hard-stop-after 30s',
    '',
    'defaults',
    '    mode http',
    '    log global',
    '    option dontlognull',
    '    timeout connect 10s',
    '    timeout client 60s',
    '    timeout server 60s',
    // How long an application's idle keep-alive connection stays open: long, as nginx's
    // 75 s default, because a client writing onto a connection the proxy is closing gets
    // ECONNRESET, and a POST is not retried. (Connections to partners are HAProxy's own
    // pool, which retries a request that meets a connection the partner just closed.)
    '    timeout http-keep-alive 75s',
    '    http-reuse safe',
    // A partner closes an idle connection when its keep-alive timeout ends (5 s is common),
    // and the proxy may send a request on it at that moment. Such a request reached nothing,
    // so it is sent again on a new connection, but only for the methods RFC 9110 calls
    // idempotent (the frontend turns retries off for the rest), as nginx does.
    '    retry-on conn-failure empty-response',
    // A reload (only the listener range or addresses cause one) retires the old worker: it
    // answers the next request on each idle keep-alive connection with "Connection:
    // close" instead of closing it under a client that may be writing a POST.
    '    option idle-close-on-response',
    `    errorfile 503 "${dir}/${badGatewayFile}"`,
    `    log-format '${accessLogFormat}'`,
    '',
    'frontend egress',
    `    bind ${hostForUrl(options.listenAddress)}:${first}-${last}`,
    `    http-request set-var(txn.binding) "dst_port,${map(bindingsMap)}"`,
    `    http-request set-header Host "%[dst_port,${map(hostsMap)}]" if { "dst_port,${map(hostsMap)}" -m found }`,
    '    http-request disable-l7-retry unless { method GET HEAD OPTIONS TRACE PUT DELETE }',
    `    use_backend "%[dst_port,${map(portsMap)}]"`,
    `    http-after-response set-status 502 if { res.hdr(${proxyErrorHeader}) -m found }`,
    `    default_backend ${unboundBackend}`,
  ];
  if (options.statusPort !== undefined) {
    lines.push(
      '',
      'frontend status',
      `    bind ${hostForUrl(options.listenAddress)}:${options.statusPort}`,
      '    no log',
      '    http-request return status 200 content-type text/plain string "ok\\n" if { path /healthz }',
      '    http-request return status 404',
    );
  }
  lines.push(
    '',
    `backend ${unboundBackend}`,
    '    http-request return status 503 content-type text/plain string "no ClientCertificateBinding serves this port\\n"',
  );
  const text = [lines.join('\n')];
  for (let port = first; port <= last; port++) {
    text.push(`\n\nbackend ${backendName(port)}\n    balance roundrobin`);
    const server = byPort.get(port);
    if (server) text.push(cache.serverText(server).block);
  }
  text.push('\n');
  return text.join('');
}

function serverText(server: HaproxyServer): ServerText {
  const dir = `\${${configDirVariable}}`;
  const block = [
    '',
    `    # ${server.key} -> https://${hostForUrl(server.host)}:${server.port}, SNI ${server.serverName}`,
    `    # client certificate serial ${commentSafe(server.serialNumber)}, SHA-256 ${commentSafe(server.fingerprintSha256)}`,
    `    server ${server.server} ${hostForUrl(server.address)}:${server.port} ${serverArguments(server, dir, { quote: true }).join(' ')}`,
  ].join('\n');
  return { block, port: String(server.listenerPort) };
}

/** What each map gives for a listener port. */
const mapValues: ReadonlyArray<readonly [string, (s: HaproxyServer) => string]> = [
  [portsMap, (s) => s.backend],
  [hostsMap, (s) => s.hostHeader],
  [bindingsMap, (s) => s.key],
];

/**
 * Each map's entries (listener port → value): what the map files list, and what the
 * agent sets through the runtime API.
 */
export function haproxyMaps(servers: readonly HaproxyServer[], cache = new HaproxyRenderCache()): Map<string, Map<string, string>> {
  const maps = new Map<string, Map<string, string>>();
  for (const [file, value] of mapValues) {
    const entries = new Map<string, string>();
    for (const server of servers) entries.set(cache.serverText(server).port, value(server));
    maps.set(file, entries);
  }
  return maps;
}

/** The map files: one "port value" line per entry, sorted as text. */
function mapFiles(servers: readonly HaproxyServer[], cache: HaproxyRenderCache): RenderedFile[] {
  return [...haproxyMaps(servers, cache)].map(([path, entries]) => ({
    path,
    content: [...entries]
      .map(([port, value]) => `${port} ${value}\n`)
      .sort()
      .join(''),
    mode: 0o644,
  }));
}

function checkOptions(routes: readonly EgressRoute[], options: HaproxyRenderOptions): void {
  const fail = (message: string): never => {
    throw new Error(`renderHaproxy: ${message}`);
  };
  const { first, last } = options.listenerPorts;
  if (!isPortNumber(first) || !isPortNumber(last) || first > last) fail(`listenerPorts ${first}-${last} is not a port range`);
  if (!/^[0-9a-fA-F:.]+$/.test(options.listenAddress)) fail(`listenAddress ${JSON.stringify(options.listenAddress)} is not an IP address`);
  if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1 && options.threads <= maxHaproxyThreads)) {
    fail(`threads ${options.threads} is not a number of threads from 1 to ${maxHaproxyThreads}`);
  }
  if (options.statusPort !== undefined && (!isPortNumber(options.statusPort) || (options.statusPort >= first && options.statusPort <= last))) {
    fail(`statusPort ${options.statusPort} is not a port outside the listener range`);
  }
  checkRoutes(routes, fail);
  for (const route of routes) {
    if (!/^[0-9a-f]+$/.test(hex(route.clientCertificate.fingerprintSha256))) fail(`route ${route.key}: a fingerprint that is not hex`);
  }
  checkServers(
    routes.map((r) => ({ key: r.key, listenerPort: r.listenerPort })),
    options,
  );
}

/** Each server on its own port inside the range, each binding once. */
function checkServers(servers: ReadonlyArray<Pick<HaproxyServer, 'key' | 'listenerPort'>>, options: HaproxyRenderOptions): void {
  const { first, last } = options.listenerPorts;
  const ports = new Set<number>();
  const keys = new Set<string>();
  for (const server of servers) {
    const fail = (message: string): never => {
      throw new Error(`renderHaproxy: route ${server.key}: ${message}`);
    };
    if (keys.has(server.key)) fail('appears twice');
    keys.add(server.key);
    if (server.listenerPort < first || server.listenerPort > last) fail(`listener port ${server.listenerPort} is outside ${first}-${last}`);
    if (ports.has(server.listenerPort)) fail(`listener port ${server.listenerPort} is already used`);
    ports.add(server.listenerPort);
  }
}

function hex(fingerprint: string): string {
  return fingerprint.replace(/:/g, '').toLowerCase();
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
