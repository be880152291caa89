import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CodedError } from './errors.ts';
import { parseCidrList, type Cidr } from './model/destinations.ts';
import { defaultPortShare, parsePortRange, parsePortShare, type PortRange } from './model/listener-ports.ts';
import { parseDuration, parseRfc3339 } from './api/time.ts';
import { isIpLiteral } from './model/egress-routes.ts';
import { defaultSystemTrustBundle, isPlainPath } from './render/files.ts';
import {
  dataPlaneKinds,
  dataPlanes,
  defaultDataPlane,
  isDataPlaneKind,
  maxHaproxyThreads,
  type DataPlaneKind,
  type HaproxyThreadsSetting,
} from './dataplane/registry.ts';

/** The environment a command reads: process.env when run, a plain object in a test. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** Where a command writes: process.stdout or process.stderr when run, a string in a test. */
export interface Output {
  write(text: string): unknown;
}

/** A flag or argument is wrong: the command prints its usage and exits 2. */
export class UsageError extends CodedError<'ERR_USAGE'> {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

export interface ControllerConfig {
  kubeconfig: string | undefined;
  /** Empty: every namespace. */
  namespaces: string[];
  /** Where the Lease, the proxy and its config live. */
  namespace: string;
  listenerPorts: PortRange;
  proxyService: string;
  leaderElect: boolean;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity: string;
  healthAddress: { host: string; port: number };
  workers: number;
  /** Status writes and Events a second, together (status first); 0: no limit. */
  statusQps: number;
  /** Writes that may go at once before --status-qps paces them. */
  statusBurst: number;
  logLevel: string;
  /** nginx or haproxy: render the proxy config for that server and require Programmed; none: status only. */
  dataPlane: DataPlaneKind | 'none';
  proxyPodLabels: Record<string, string>;
  proxyListenAddress: string;
  proxyStatusPort: number;
  proxyAccessLog: string;
  proxyErrorLog: string;
  /** Destinations opened although refused by default. */
  allowedDestinations: Cidr[];
  /** The cluster's pod and Service ranges, or auto: read from Nodes and ServiceCIDRs. */
  clusterCidrs: 'auto' | Cidr[];
  /** DNS servers asked for partners' addresses ("IP" or "IP:PORT", "[IPv6]:PORT"); empty: /etc/resolv.conf's. */
  dnsServers: string[];
  /** How long a freed listener port is kept from other namespaces; 0: not at all. */
  portQuarantineMs: number;
  /** How many listener ports one namespace may hold, unless its Namespace's mtls-egress.io/max-listener-ports says otherwise. */
  namespacePortShare: number;
  /** How long a binding whose certificate Secret is missing keeps its listener port; 0: for ever. */
  brokenPortGraceMs: number;
}

export const controllerUsage = `Usage: mtls-egress controller [options]

Watches ClientCertificateBindings and their Secrets and keeps each binding's status true.

Options:
  --kubeconfig FILE        kubeconfig to use (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
  --namespaces a,b         watch only these namespaces (default: all)
  --namespace NS           the controller's own namespace: Lease, proxy (default: $POD_NAMESPACE or mtls-egress-system)
  --listener-ports A-B     the proxy's listener port range (default: 10000-10999)
  --proxy-service NAME     the proxy Service that endpoints name (default: mtls-egress-proxy)
  --leader-elect BOOL      elect a leader on a Lease (default: true)
  --lease-name NAME        (default: mtls-egress-controller)
  --lease-duration D       (default: 15s)
  --renew-deadline D       (default: 10s)
  --retry-period D         (default: 2s)
  --id NAME                this replica's identity (default: $POD_NAME or the hostname)
  --health-addr HOST:PORT  /metrics, /healthz, /readyz (default: 0.0.0.0:8080; port 0 picks one)
  --workers N              concurrent reconciles (default: 4)
  --status-qps N           API writes a second for binding status, Events and proxy objects
                           together (default: 200; 0: no limit). Status writes go first; a binding
                           whose status changes again while its write waits costs one write.
                           10,000 bindings' first status takes at least 10,000 / N seconds
  --status-burst N         writes that may go at once before --status-qps paces them (default: 400)
  --log-level LEVEL        (default: $LOG_LEVEL or info)
  --data-plane ${dataPlaneKinds.join('|')}|none
                           render the egress proxy's config for that server and require
                           Programmed (default: ${defaultDataPlane}); the agent runs with the same value.
                           haproxy changes bindings through its runtime API without reloads;
                           none reports certificate status only
  --proxy-selector k=v,... labels of the proxy pods (default: app.kubernetes.io/name=mtls-egress-proxy)
  --proxy-listen-address A where proxy listeners bind (default: 0.0.0.0)
  --proxy-status-port N    the proxy's /healthz listener (default: 8081)
  --proxy-access-log P     nginx access log (default: /dev/stdout, the container log); HAProxy
                           logs to stdout, or to stderr when this is /dev/stderr; off: none
  --proxy-error-log P      nginx error log (default: stderr, written to fd 2 without opening a file)
  --allowed-destinations CIDR,...
                           addresses the proxy may reach although they are refused by default:
                           loopback, link-local and cloud metadata, the cluster's pod and Service
                           ranges (default: none)
  --cluster-cidrs auto|CIDR,...
                           the cluster's pod and Service ranges, refused as destinations
                           (default: auto, read from Nodes' podCIDRs and ServiceCIDRs)
  --dns-server IP[:PORT],...
                           ask these DNS servers for partners' addresses instead of
                           /etc/resolv.conf's; repeatable (default: none)
  --port-quarantine D      a listener port freed by a binding is not given to a binding in
                           another namespace for D: callers there may still use it (default: 10m;
                           0: off). Within its namespace it may be reused at once
  --namespace-port-share N%|N
                           listener ports one namespace may hold: a share of --listener-ports or a
                           count (default: 10% of the range, at least 10 ports); a Namespace's
                           mtls-egress.io/max-listener-ports annotation overrides it
  --broken-port-grace D    a binding whose certificate Secret has been missing for D gives up its
                           listener port (default: 24h; 0: never). A binding gets its first port
                           only once its Secret exists
`;

export function positiveDuration(name: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`--${name}: "${text}" is not a positive duration such as 15s`);
  return ms;
}

function haproxyThreadsFlag(text: string): HaproxyThreadsSetting {
  if (text === 'auto' || text === '0') return 'auto';
  const n = /^\d{1,3}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= maxHaproxyThreads))
    throw new UsageError(`--haproxy-threads: "${text}" is not auto or a number of threads from 1 to ${maxHaproxyThreads}`);
  return n;
}

export function hostPort(name: string, text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  const port = Number(text.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--${name}: "${text}" is not HOST:PORT`);
  return { host: text.slice(0, i) || '0.0.0.0', port };
}

/** What a parser returns when the usage was asked for. */
export type HelpWanted = 'help';

/**
 * The long-running commands' rule: --help or -h anywhere asks for the usage, even beside
 * a flag that is wrong or missing. (The offline commands parse -h like any other flag.)
 */
export function asksForHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/**
 * The prologue every command shares: when the parser says 'help' the usage goes to
 * stdout (exit code 0), a flag error goes to stderr with the reason and the usage (exit
 * code 2), anything else is a bug.
 */
export function parseFlagsOrUsage<T>(
  command: string,
  usage: string,
  io: { readonly stdout: Output; readonly stderr: Output },
  parse: () => T | HelpWanted,
): { ok: true; config: T } | { ok: false; exitCode: number } {
  let parsed: T | HelpWanted;
  try {
    parsed = parse();
  } catch (err) {
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown or malformed flags.
    if (err instanceof UsageError || String((err as { code?: string }).code).startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`mtls-egress ${command}: ${(err as Error).message}\n\n${usage}`);
      return { ok: false, exitCode: 2 };
    }
    throw err;
  }
  if (parsed === 'help') {
    io.stdout.write(usage);
    return { ok: false, exitCode: 0 };
  }
  return { ok: true, config: parsed };
}

/** Flags and environment → settings, validated once at start-up. */
export function parseControllerConfig(argv: readonly string[], env: Environment): ControllerConfig {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      kubeconfig: { type: 'string' },
      namespaces: { type: 'string' },
      namespace: { type: 'string' },
      'listener-ports': { type: 'string', default: '10000-10999' },
      'proxy-service': { type: 'string', default: 'mtls-egress-proxy' },
      'leader-elect': { type: 'string', default: 'true' },
      'lease-name': { type: 'string', default: 'mtls-egress-controller' },
      'lease-duration': { type: 'string', default: '15s' },
      'renew-deadline': { type: 'string', default: '10s' },
      'retry-period': { type: 'string', default: '2s' },
      id: { type: 'string' },
      'health-addr': { type: 'string', default: '0.0.0.0:8080' },
      workers: { type: 'string', default: '4' },
      'status-qps': { type: 'string', default: '200' },
      'status-burst': { type: 'string', default: '400' },
      'log-level': { type: 'string' },
      'data-plane': { type: 'string', default: defaultDataPlane },
      'proxy-selector': { type: 'string', default: 'app.kubernetes.io/name=mtls-egress-proxy' },
      'proxy-listen-address': { type: 'string', default: '0.0.0.0' },
      'proxy-status-port': { type: 'string', default: '8081' },
      'proxy-access-log': { type: 'string', default: '/dev/stdout' },
      'proxy-error-log': { type: 'string', default: 'stderr' },
      'allowed-destinations': { type: 'string', default: '' },
      'cluster-cidrs': { type: 'string', default: 'auto' },
      'dns-server': { type: 'string', multiple: true, default: [] },
      'port-quarantine': { type: 'string', default: '10m' },
      'namespace-port-share': { type: 'string' },
      'broken-port-grace': { type: 'string', default: '24h' },
    },
  });
  let listenerPorts: PortRange;
  try {
    listenerPorts = parsePortRange(values['listener-ports']);
  } catch (err) {
    throw new UsageError(`--listener-ports: ${(err as Error).message}`);
  }
  const workers = Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new UsageError(`--workers: want 1-64, got "${values.workers}"`);
  const statusQps = Number(values['status-qps']);
  if (!Number.isFinite(statusQps) || statusQps < 0) throw new UsageError(`--status-qps: want a number >= 0, got "${values['status-qps']}"`);
  const statusBurst = Number(values['status-burst']);
  if (!Number.isInteger(statusBurst) || statusBurst < 1) throw new UsageError(`--status-burst: want a whole number >= 1, got "${values['status-burst']}"`);
  const leaderElect = values['leader-elect'];
  if (leaderElect !== 'true' && leaderElect !== 'false') throw new UsageError('--leader-elect: want true or false');
  const dataPlane = values['data-plane'];
  if (dataPlane !== 'none' && !isDataPlaneKind(dataPlane)) throw new UsageError(`--data-plane: want ${dataPlaneKinds.join(', ')} or none`);
  const proxyStatusPort = Number(values['proxy-status-port']);
  if (!Number.isInteger(proxyStatusPort) || proxyStatusPort < 1 || proxyStatusPort > 65535) throw new UsageError('--proxy-status-port: not a port');
  if (proxyStatusPort >= listenerPorts.first && proxyStatusPort <= listenerPorts.last) throw new UsageError('--proxy-status-port lies inside --listener-ports');
  const portQuarantineMs = durationOrZero('port-quarantine', values['port-quarantine']);
  const brokenPortGraceMs = durationOrZero('broken-port-grace', values['broken-port-grace']);
  let namespacePortShare: number;
  try {
    const share = values['namespace-port-share'];
    namespacePortShare = share === undefined ? defaultPortShare(listenerPorts) : parsePortShare(share, listenerPorts);
  } catch (err) {
    throw new UsageError(`--namespace-port-share: ${(err as Error).message}`);
  }
  const config: ControllerConfig = {
    kubeconfig: values.kubeconfig,
    namespaces: values.namespaces
      ? values.namespaces
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean)
      : [],
    namespace: values.namespace ?? env.POD_NAMESPACE ?? 'mtls-egress-system',
    listenerPorts,
    proxyService: values['proxy-service'],
    leaderElect: leaderElect === 'true',
    leaseName: values['lease-name'],
    leaseDurationMs: positiveDuration('lease-duration', values['lease-duration']),
    renewDeadlineMs: positiveDuration('renew-deadline', values['renew-deadline']),
    retryPeriodMs: positiveDuration('retry-period', values['retry-period']),
    identity: values.id ?? env.POD_NAME ?? `${hostname()}-${process.pid}`,
    healthAddress: hostPort('health-addr', values['health-addr']),
    workers,
    statusQps,
    statusBurst,
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
    dataPlane,
    proxyPodLabels: parseLabels(values['proxy-selector']),
    proxyListenAddress: values['proxy-listen-address'],
    proxyStatusPort,
    proxyAccessLog: values['proxy-access-log'],
    proxyErrorLog: values['proxy-error-log'],
    allowedDestinations: cidrFlag('allowed-destinations', values['allowed-destinations']),
    clusterCidrs: values['cluster-cidrs'] === 'auto' ? 'auto' : cidrFlag('cluster-cidrs', values['cluster-cidrs']),
    dnsServers: values['dns-server']
      .flatMap((text) => text.split(','))
      .map((t) => t.trim())
      .filter(Boolean)
      .map(dnsServerFlag),
    portQuarantineMs,
    namespacePortShare,
    brokenPortGraceMs,
  };
  if (config.renewDeadlineMs >= config.leaseDurationMs) throw new UsageError('--renew-deadline must be shorter than --lease-duration');
  return config;
}

/**
 * "IP", "IP:PORT" or "[IPv6]:PORT", as the resolver takes it: an address, never a name,
 * since the name of a DNS server would itself need resolving.
 */
export function dnsServerFlag(text: string): string {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const [address, port] = bracketed
    ? [bracketed[1]!, bracketed[2]]
    : isIP(text) === 6
      ? [text, undefined]
      : [text.replace(/:\d+$/, ''), /:(\d+)$/.exec(text)?.[1]];
  const family = isIP(address);
  if (family === 0 || (port !== undefined && (Number(port) < 1 || Number(port) > 65535)))
    throw new UsageError(`--dns-server: "${text}" is not IP[:PORT] (an IPv6 address with a port is [IP]:PORT)`);
  if (port === undefined) return address;
  return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A positive duration, or 0 for "off". */
function durationOrZero(name: string, text: string): number {
  return text.trim() === '0' ? 0 : positiveDuration(name, text);
}

function cidrFlag(name: string, text: string): Cidr[] {
  try {
    return parseCidrList(text);
  } catch (err) {
    throw new UsageError(`--${name}: ${(err as Error).message}`);
  }
}

/** "k=v,k2=v2" → labels; equality selectors only, because NetworkPolicies reuse them as matchLabels. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const match = /^([A-Za-z0-9./_-]+)=([A-Za-z0-9._-]*)$/.exec(part);
    if (!match) throw new UsageError(`--proxy-selector: "${part}" is not key=value`);
    labels[match[1]!] = match[2]!;
  }
  if (Object.keys(labels).length === 0) throw new UsageError('--proxy-selector: want at least one key=value');
  return labels;
}

export interface AgentConfig {
  kubeconfig: string | undefined;
  /** The proxy's namespace: where the ConfigMap, the credential Secrets and the Pod are. */
  namespace: string;
  podName: string;
  configDir: string;
  dataPlane: DataPlaneKind;
  nginxPrefix: string;
  nginxBinary: string;
  nginxPidFile: string;
  /** Run the data plane as the agent's child (always, for HAProxy). */
  manage: boolean;
  haproxyBinary: string;
  /** HAProxy's nbthread, or "auto": as many as the CPUs the container may use (src/server/cpu-limit.ts). */
  haproxyThreads: HaproxyThreadsSetting;
  /** HAProxy's master and runtime API sockets. */
  runDir: string;
  reloadTimeoutMs: number;
  stopTimeoutMs: number;
  /**
   * On SIGTERM: how long /readyz fails while the data plane still serves as before, so
   * that endpoints, DNS and clients stop choosing this replica before its listeners close.
   */
  drainDelayMs: number;
  /** How far the files on disk may lag behind a config HAProxy took through its runtime API. */
  persistDelayMs: number;
  healthAddress: { host: string; port: number };
  logLevel: string;
}

/** A drain longer than this would outlast any sensible terminationGracePeriodSeconds. */
export const maxDrainDelayMs = 5 * 60_000;

export const agentUsage = `Usage: mtls-egress agent --namespace NS --config-dir DIR [options]

Runs in each proxy pod with its data plane: watches the proxy ConfigMap and credential
Secrets in its namespace, writes each config as a new generation in DIR, validates it
(nginx -t, haproxy -c), switches DIR/current to it, and makes the data plane serve it:
nginx by a reload, HAProxy through its runtime API (a reload only when the listener
range or addresses change), read back before it counts. Then it annotates its own Pod
with the config hash served. nginx runs with -p PREFIX -c DIR/current/nginx.conf;
HAProxy with -W -f DIR/current/haproxy.cfg and its sockets in RUN_DIR.

Options:
  --kubeconfig FILE        kubeconfig to use (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
  --namespace NS           the proxy's namespace (default: $POD_NAMESPACE)
  --pod-name NAME          this Pod, to annotate (default: $POD_NAME)
  --config-dir DIR         where generations and the current symlink live, e.g. /etc/mtls-egress
  --data-plane ${dataPlaneKinds.join('|')}
                           the server the controller renders for (default: ${defaultDataPlane}); the same
                           value as the controller's --data-plane
  --manage                 run the data plane as a child: start it once a config is applied,
                           restart it when it dies, stop it gracefully on SIGTERM; what deploy/
                           runs, with the image's own nginx or HAProxy. Always on for HAProxy.
                           (default for nginx: signal an nginx that runs beside the agent, whose
                           pid file it can read and whose process it can see)
  --haproxy-binary FILE    (default: /usr/sbin/haproxy)
  --haproxy-threads N|auto HAProxy's threads (nbthread), 1-${maxHaproxyThreads}; auto or 0: as many as the
                           container's CPU limit (its cgroup's quota, rounded up), else as the CPUs
                           the agent may run on (default: auto)
  --run-dir DIR            HAProxy's master and runtime API sockets (default: DIR/run)
  --nginx-prefix DIR       nginx's -p: pid, logs, temp files (default: the config dir)
  --nginx-binary FILE      (default: /usr/sbin/nginx)
  --nginx-pid-file FILE    the master's pid file (default: PREFIX/nginx.pid, as the rendered config says)
  --manage-nginx           the same as --manage (its earlier name)
  --reload-timeout D       how long a start or reload may take to show (default: 30s;
                           HAProxy adds 10 ms per certificate its config holds)
  --stop-timeout D         how long the data plane may take to finish requests on SIGTERM (default: 25s)
  --drain-delay D          on SIGTERM, fail /readyz at once and keep serving for D before the data
                           plane stops accepting, so the replica leaves the Service's endpoints and
                           clients' DNS answers first (default: 0; deploy/ sets 35s; at most 5m)
  --persist-delay D        how far the generation on disk (what a restarted HAProxy reads) may lag
                           behind the changes HAProxy took through its runtime API; 0 writes one
                           per change (default: 1s)
  --health-addr HOST:PORT  /metrics, /healthz, /readyz (default: 0.0.0.0:8081; port 0 picks one)
  --log-level LEVEL        (default: $LOG_LEVEL or info)
`;

/** Flags and environment → settings, validated once at start-up. */
export function parseAgentConfig(argv: readonly string[], env: Environment): AgentConfig {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'pod-name': { type: 'string' },
      'config-dir': { type: 'string' },
      'nginx-prefix': { type: 'string' },
      'nginx-binary': { type: 'string', default: '/usr/sbin/nginx' },
      'nginx-pid-file': { type: 'string' },
      'data-plane': { type: 'string', default: defaultDataPlane },
      manage: { type: 'boolean', default: false },
      'manage-nginx': { type: 'boolean', default: false },
      'haproxy-binary': { type: 'string', default: '/usr/sbin/haproxy' },
      'haproxy-threads': { type: 'string', default: 'auto' },
      'run-dir': { type: 'string' },
      'reload-timeout': { type: 'string', default: '30s' },
      'stop-timeout': { type: 'string', default: '25s' },
      'drain-delay': { type: 'string', default: '0' },
      'persist-delay': { type: 'string', default: '1s' },
      'health-addr': { type: 'string', default: '0.0.0.0:8081' },
      'log-level': { type: 'string' },
    },
  });
  const namespace = values.namespace ?? env.POD_NAMESPACE;
  if (!namespace) throw new UsageError('--namespace (or $POD_NAMESPACE) is required');
  const podName = values['pod-name'] ?? env.POD_NAME;
  if (!podName) throw new UsageError('--pod-name (or $POD_NAME) is required: the agent reports on its Pod');
  if (!values['config-dir']) throw new UsageError('--config-dir is required');
  // Absolute: nginx resolves a relative -c against its prefix, not our working directory.
  const configDir = resolve(values['config-dir']);
  const nginxPrefix = resolve(values['nginx-prefix'] ?? configDir);
  const dataPlane = values['data-plane'];
  if (!isDataPlaneKind(dataPlane)) throw new UsageError(`--data-plane: want ${dataPlaneKinds.join(' or ')}`);
  const configDirProblem = dataPlanes[dataPlane].directoryProblem(configDir);
  if (configDirProblem) throw new UsageError(`--config-dir ${configDir}: ${configDirProblem}`);
  return {
    kubeconfig: values.kubeconfig,
    namespace,
    podName,
    configDir,
    nginxPrefix,
    nginxBinary: values['nginx-binary'],
    nginxPidFile: resolve(values['nginx-pid-file'] ?? join(nginxPrefix, 'nginx.pid')),
    dataPlane,
    manage: values.manage || values['manage-nginx'] || dataPlanes[dataPlane].alwaysManaged,
    haproxyBinary: values['haproxy-binary'],
    haproxyThreads: haproxyThreadsFlag(values['haproxy-threads']),
    runDir: resolve(values['run-dir'] ?? join(configDir, 'run')),
    reloadTimeoutMs: positiveDuration('reload-timeout', values['reload-timeout']),
    stopTimeoutMs: positiveDuration('stop-timeout', values['stop-timeout']),
    drainDelayMs: drainDelay(values['drain-delay']),
    persistDelayMs: durationOrZero('persist-delay', values['persist-delay']),
    healthAddress: hostPort('health-addr', values['health-addr']),
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
  };
}

function drainDelay(text: string): number {
  const ms = durationOrZero('drain-delay', text);
  if (ms > maxDrainDelayMs) throw new UsageError(`--drain-delay: "${text}" is longer than ${maxDrainDelayMs / 60_000}m`);
  return ms;
}

/** The flags render and validate share: the manifests to read, and the time to judge certificates at. */
const manifestFlags = {
  filename: { type: 'string', short: 'f', multiple: true },
  now: { type: 'string' },
} as const;

function manifestFiles(filename: string[] | undefined): string[] {
  if (!filename?.length) throw new UsageError('at least one -f FILE|DIR is required');
  return filename;
}

function nowFlag(text: string | undefined, clock: () => Date): Date {
  const now = text === undefined ? clock() : parseRfc3339(text);
  if (now === undefined) throw new UsageError(`--now: "${text}" is not an RFC 3339 time such as 2026-06-01T00:00:00Z`);
  return now;
}

export const renderUsage = `Usage: mtls-egress render -f FILE|DIR [-f ...] --out DIR [options]

Renders the egress proxy's config from ClientCertificateBinding and Secret manifests,
offline, exactly as the proxy would get it. It prints the command that runs the result:
  nginx -p DIR -c nginx.conf -g 'daemon off;'
  MTLS_EGRESS_CONFIG_DIR=DIR MTLS_EGRESS_RUN_DIR=DIR haproxy -W -db -f DIR/haproxy.cfg

Options:
  -f, --filename PATH      a YAML file (multi-document, kind: List too) or a directory of them; repeatable
  --out DIR                where to write the config and certificates (created; may hold an earlier render)
  --data-plane ${dataPlaneKinds.join('|')}
                           the server to render for (default: ${defaultDataPlane})
  --listen-address IP      the address listeners bind (default: 127.0.0.1)
  --listener-ports A-B     range for bindings without a listener port (default: 10000-10999)
  --now RFC3339            the time certificates are checked against (default: now)
  --system-trust-bundle F  nginx: CA bundle for partners whose binding names no serverCA
                           (default: ${defaultSystemTrustBundle}; HAProxy uses the system's store)
  -h, --help

Exit status: 0 every binding rendered, 1 some were left out, 2 usage or input errors.
`;

export interface RenderArgs {
  files: string[];
  out: string;
  dataPlane: DataPlaneKind;
  listenAddress: string;
  listenerPorts: PortRange;
  now: Date;
  systemTrustBundle: string;
}

/** render's flags → what to render, where, and against which time. */
export function parseRenderArgs(argv: readonly string[], clock: () => Date): RenderArgs | HelpWanted {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      ...manifestFlags,
      out: { type: 'string' },
      'data-plane': { type: 'string', default: defaultDataPlane },
      'listen-address': { type: 'string', default: '127.0.0.1' },
      'listener-ports': { type: 'string', default: '10000-10999' },
      'system-trust-bundle': { type: 'string', default: defaultSystemTrustBundle },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const files = manifestFiles(values.filename);
  if (!values.out) throw new UsageError('--out DIR is required');
  const dataPlane = values['data-plane'];
  if (!isDataPlaneKind(dataPlane)) throw new UsageError(`--data-plane: want ${dataPlaneKinds.join(' or ')}, got "${dataPlane}"`);
  const outProblem = dataPlanes[dataPlane].directoryProblem(resolve(values.out));
  if (outProblem) throw new UsageError(`--out: ${outProblem}`);
  const listenAddress = values['listen-address'];
  if (!isIpLiteral(listenAddress)) throw new UsageError(`--listen-address: "${listenAddress}" is not an IP address`);
  let listenerPorts: PortRange;
  try {
    listenerPorts = parsePortRange(values['listener-ports']);
  } catch (err) {
    throw new UsageError(`--listener-ports: ${(err as Error).message}`);
  }
  const now = nowFlag(values.now, clock);
  const systemTrustBundle = values['system-trust-bundle'];
  if (!isPlainPath(systemTrustBundle)) throw new UsageError(`--system-trust-bundle: "${systemTrustBundle}" is not a plain path`);
  return { files, out: values.out, dataPlane, listenAddress, listenerPorts, now, systemTrustBundle };
}

export const validateUsage = `Usage: mtls-egress validate -f FILE|DIR [-f ...] [options]

Checks ClientCertificateBinding and Secret manifests offline, before they are applied:
each binding against the CRD's schema and validation rules, as the API server would with
strict field validation, and the certificates in the Secrets of the same set, as the
controller would.

Options:
  -f, --filename PATH  a YAML file (multi-document, kind: List too) or a directory of them; repeatable
  --warn-days N        report certificates that expire within N days (default: 30)
  --now RFC3339        the time certificates are checked against (default: now)
  --strict             also fail when a binding's Secret is not in the set
  --json               print {"findings": [...], "summary": {...}} on stdout
  -h, --help

A Secret that a binding names but the set does not hold is a warning that does not fail
the run: Secrets often come from External Secrets or Sealed Secrets, and the controller
reads them from the cluster. --strict makes it fail.

Exit status: 0 no findings (or only Secrets not in the set), 1 findings, 2 usage or input
errors (bad flags, unreadable files, invalid YAML) or a broken installation (no CRDs).
`;

export interface ValidateArgs {
  files: string[];
  warnDays: number;
  now: Date;
  json: boolean;
  strict: boolean;
}

/** validate's flags → the files to check, and how. */
export function parseValidateArgs(argv: readonly string[], clock: () => Date): ValidateArgs | HelpWanted {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      ...manifestFlags,
      'warn-days': { type: 'string', default: '30' },
      strict: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const files = manifestFiles(values.filename);
  const warnDays = Number(values['warn-days']);
  if (!/^\d+$/.test(values['warn-days']) || !Number.isSafeInteger(warnDays)) {
    throw new UsageError(`--warn-days: "${values['warn-days']}" is not a whole number of days`);
  }
  const now = nowFlag(values.now, clock);
  return { files, warnDays, now, json: values.json, strict: values.strict };
}

export const inspectUsage = `Usage: mtls-egress inspect FILE [--password-file F | --password-env VAR] [--json] [--now RFC3339]
       mtls-egress inspect --cert CERT.pem --key KEY.pem [--password-file F | --password-env VAR] [--json] [--now RFC3339]

Decodes a PFX/PKCS#12 file (DER, or base64 text of one as Azure Key Vault delivers it), or a
PEM certificate chain and private key as in a kubernetes.io/tls Secret, and prints the leaf
certificate's facts. Never prints the private key or the password.

Options:
  --password-file F    read the password from file F. The file's content is the password,
                       minus one trailing newline ("\\n" or "\\r\\n"), so \`echo pw > F\` works.
  --password-env VAR   read the password from environment variable VAR
                       (there is no --password: arguments end up in shell history and ps)
  --cert F --key F     a PEM certificate (chain) and private key, instead of FILE; the
                       password is only needed for an encrypted key
  --json               print JSON on stdout
  --now RFC3339        judge validity at this time (e.g. 2030-01-01T00:00:00Z), not the clock

Exit status:
  0  the identity decodes and is valid now
  1  it is not usable: "Reason: message" on stderr, or {"reason", "message"} on stdout with
     --json; the reasons are those a ClientCertificateBinding's status shows
  2  usage error
`;

export interface InspectArgs {
  readonly source: { readonly kind: 'pfx'; readonly file: string } | { readonly kind: 'pem'; readonly cert: string; readonly key: string };
  readonly passwordFile: string | undefined;
  readonly passwordEnv: string | undefined;
  readonly json: boolean;
  readonly now: Date | undefined;
}

/** inspect's FILE or --cert/--key, and where the password comes from. */
export function parseInspectArgs(argv: readonly string[]): InspectArgs | HelpWanted {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      'password-file': { type: 'string' },
      'password-env': { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      json: { type: 'boolean', default: false },
      now: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 1) throw new UsageError(`one FILE at a time (got ${positionals.length})`);
  const [file] = positionals;
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
  if (file !== undefined && values.cert !== undefined) throw new UsageError('give either FILE or --cert/--key, not both');
  if (file === undefined && values.cert === undefined) throw new UsageError('missing FILE (or --cert and --key)');
  if (values['password-file'] !== undefined && values['password-env'] !== undefined) {
    throw new UsageError('give either --password-file or --password-env, not both');
  }
  return {
    source: file !== undefined ? { kind: 'pfx', file } : { kind: 'pem', cert: values.cert!, key: values.key! },
    passwordFile: values['password-file'],
    passwordEnv: values['password-env'],
    json: values.json,
    now: values.now === undefined ? undefined : parseNow(values.now),
  };
}

function parseNow(text: string): Date {
  const date = parseRfc3339(text);
  if (date === undefined) throw new UsageError(`--now wants an RFC 3339 time such as 2030-01-01T00:00:00Z, got "${text}"`);
  return date;
}
