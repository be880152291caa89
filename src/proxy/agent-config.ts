import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { hostPort, positiveDuration, UsageError } from '../config.ts';

export interface AgentConfig {
  kubeconfig: string | undefined;
  /** The proxy's namespace: where the ConfigMap, the credential Secrets and the Pod are. */
  namespace: string;
  podName: string;
  configDir: string;
  dataPlane: 'nginx' | 'haproxy';
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
  if (dataPlane !== 'nginx' && dataPlane !== 'haproxy') throw new UsageError('--data-plane: want nginx or haproxy');
  // HAProxy's runtime API takes the paths it is given as names, unquoted: they must be plain.
  if (dataPlane === 'haproxy' && !/^\/[A-Za-z0-9._/-]*$/.test(configDir))
    throw new UsageError(`--config-dir ${configDir}: HAProxy needs a path of letters, digits, ".", "_", "-" and "/"`);
  return {
    kubeconfig: values.kubeconfig,
    namespace,
    podName,
    configDir,
    nginxPrefix,
    nginxBinary: values['nginx-binary'],
    nginxPidFile: resolve(values['nginx-pid-file'] ?? join(nginxPrefix, 'nginx.pid')),
    dataPlane,
    manage: values.manage || values['manage-nginx'] || dataPlane === 'haproxy',
    haproxyBinary: values['haproxy-binary'],
    runDir: resolve(values['run-dir'] ?? join(configDir, 'run')),
    reloadTimeoutMs: positiveDuration('reload-timeout', values['reload-timeout']),
    stopTimeoutMs: positiveDuration('stop-timeout', values['stop-timeout']),
    healthAddress: hostPort('health-addr', values['health-addr']),
    logLevel: values['log-level'] ?? env.LOG_LEVEL ?? 'info',
  };
}
