import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CodedError } from './errors.ts';
import { parseCidrList, type Cidr } from './model/destinations.ts';
import { parsePortRange, type PortRange } from './model/listener-ports.ts';
import { parseDuration } from './api/time.ts';
import { dataPlaneKinds, dataPlanes, isDataPlaneKind, type DataPlaneKind } from './dataplane/registry.ts';

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
  --data-plane nginx|haproxy|none
                           render the egress proxy's config for that server and require
                           Programmed (default: nginx); the agent runs with the same value.
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
`;

export function positiveDuration(name: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`--${name}: "${text}" is not a positive duration such as 15s`);
  return ms;
}

export function hostPort(name: string, text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  const port = Number(text.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--${name}: "${text}" is not HOST:PORT`);
  return { host: text.slice(0, i) || '0.0.0.0', port };
}

/**
 * The prologue every long-running command shares: --help prints the usage, a flag
 * error prints it with the reason and means exit code 2, anything else is a bug.
 */
export function parseFlagsOrUsage<T>(
  command: string,
  usage: string,
  argv: readonly string[],
  parse: () => T,
): { ok: true; config: T } | { ok: false; exitCode: number } {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage);
    return { ok: false, exitCode: 0 };
  }
  try {
    return { ok: true, config: parse() };
  } catch (err) {
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown or malformed flags.
    if (err instanceof UsageError || String((err as { code?: string }).code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`mtls-egress ${command}: ${(err as Error).message}\n\n${usage}`);
      return { ok: false, exitCode: 2 };
    }
    throw err;
  }
}

/** Flags and environment → settings, validated once at start-up. */
export function parseControllerConfig(argv: string[], env: NodeJS.ProcessEnv): ControllerConfig {
  const { values } = parseArgs({
    args: argv,
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
      'data-plane': { type: 'string', default: 'nginx' },
      'proxy-selector': { type: 'string', default: 'app.kubernetes.io/name=mtls-egress-proxy' },
      'proxy-listen-address': { type: 'string', default: '0.0.0.0' },
      'proxy-status-port': { type: 'string', default: '8081' },
      'proxy-access-log': { type: 'string', default: '/dev/stdout' },
      'proxy-error-log': { type: 'string', default: 'stderr' },
      'allowed-destinations': { type: 'string', default: '' },
      'cluster-cidrs': { type: 'string', default: 'auto' },
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
  };
  if (config.renewDeadlineMs >= config.leaseDurationMs) throw new UsageError('--renew-deadline must be shorter than --lease-duration');
  return config;
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
  /** HAProxy's master and runtime API sockets. */
  runDir: string;
  reloadTimeoutMs: number;
  stopTimeoutMs: number;
  healthAddress: { host: string; port: number };
  logLevel: string;
}

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
  --data-plane nginx|haproxy
                           the server the controller renders for (default: nginx); the same
                           value as the controller's --data-plane
  --manage                 run the data plane as a child: start it once a config is applied,
                           restart it when it dies, stop it gracefully on SIGTERM; what deploy/
                           runs, with the image's own nginx or HAProxy. Always on for HAProxy.
                           (default for nginx: signal an nginx that runs beside the agent, whose
                           pid file it can read and whose process it can see)
  --haproxy-binary FILE    (default: /usr/sbin/haproxy)
  --run-dir DIR            HAProxy's master and runtime API sockets (default: DIR/run)
  --nginx-prefix DIR       nginx's -p: pid, logs, temp files (default: the config dir)
  --nginx-binary FILE      (default: /usr/sbin/nginx)
  --nginx-pid-file FILE    the master's pid file (default: PREFIX/nginx.pid, as the rendered config says)
  --manage-nginx           the same as --manage (its earlier name)
  --reload-timeout D       how long a start or reload may take to show (default: 30s)
  --stop-timeout D         how long the data plane may take to finish requests on SIGTERM (default: 25s)
  --health-addr HOST:PORT  /metrics, /healthz, /readyz (default: 0.0.0.0:8081; port 0 picks one)
  --log-level LEVEL        (default: $LOG_LEVEL or info)
`;

/** Flags and environment → settings, validated once at start-up. */
export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv): AgentConfig {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'pod-name': { type: 'string' },
      'config-dir': { type: 'string' },
      'nginx-prefix': { type: 'string' },
      'nginx-binary': { type: 'string', default: '/usr/sbin/nginx' },
      'nginx-pid-file': { type: 'string' },
      'data-plane': { type: 'string', default: 'nginx' },
      manage: { type: 'boolean', default: false },
      'manage-nginx': { type: 'boolean', default: false },
      'haproxy-binary': { type: 'string', default: '/usr/sbin/haproxy' },
      'run-dir': { type: 'string' },
      'reload-timeout': { type: 'string', default: '30s' },
      'stop-timeout': { type: 'string', default: '25s' },
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
    runDir: resolve(values['run-dir'] ?? join(configDir, 'run')),
    reloadTimeoutMs: positiveDuration('reload-timeout', values['reload-timeout']),
    stopTimeoutMs: positiveDuration('stop-timeout', values['stop-timeout']),
    healthAddress: hostPort('health-addr', values['health-addr']),
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
  };
}
