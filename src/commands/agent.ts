import { KubeClient, loadKubeConfig } from '../k8s/client.ts';
import { Informer } from '../k8s/informer.ts';
import { createLogger, type Logger } from '../log.ts';
import { ProxyAgent, readCredentialSecret, type CredentialSecretLike, type ProxyConfigMap } from '../proxy/agent.ts';
import { agentUsage, parseAgentConfig, parseFlagsOrUsage, type AgentConfig } from '../config.ts';
import { AgentMetrics } from '../proxy/agent-metrics.ts';
import { ConfigDir } from '../proxy/config-dir.ts';
import { NginxDataPlane, type DataPlane } from '../proxy/data-plane.ts';
import { HaproxyDataPlane } from '../proxy/haproxy-data-plane.ts';
import { ManagedHaproxy, testHaproxyConfig } from '../proxy/haproxy-process.ts';
import { HaproxyRuntime } from '../proxy/haproxy-runtime.ts';
import { parseDroppedLogs } from '../proxy/haproxy-state.ts';
import { ExternalNginx, ManagedNginx, testNginxConfig } from '../proxy/nginx-control.ts';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PodReporter } from '../proxy/pod-reporter.ts';
import { credentialsSelector, proxyConfigMapName } from '../proxy/proxy-objects.ts';
import { startHealthServer } from '../server/health.ts';
import { shutdownOnSignals } from '../server/signals.ts';
import { aborted } from '../runner/backoff.ts';

/**
 * Wiring only: settings, logger, client, the two caches (both limited to the agent's
 * namespace and, on the server, to the objects it reads), nginx, the agent loop, health
 * server and signals. Resolves with the process exit code.
 */
export async function runAgent(argv: string[], env: NodeJS.ProcessEnv = process.env, options: { logger?: Logger } = {}): Promise<number> {
  const parsed = parseFlagsOrUsage('agent', agentUsage, argv, () => parseAgentConfig(argv, env));
  if (!parsed.ok) return parsed.exitCode;
  const config = parsed.config;
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const client = new KubeClient(loadKubeConfig(config.kubeconfig));
  const metrics = new AgentMetrics();
  const { stop, dispose } = shutdownOnSignals(logger);
  const ns = encodeURIComponent(config.namespace);

  const configMaps = new Informer<ProxyConfigMap>({
    client,
    logger,
    paths: [`/api/v1/namespaces/${ns}/configmaps`],
    query: { fieldSelector: `metadata.name=${proxyConfigMapName}` },
    transform: (cm) => ({
      metadata: { name: cm.metadata.name, namespace: cm.metadata.namespace, resourceVersion: cm.metadata.resourceVersion },
      data: cm.data,
      binaryData: cm.binaryData,
    }),
    onError: () => metrics.watchErrors.inc({ resource: 'configmaps' }),
  });
  const secrets = new Informer<CredentialSecretLike>({
    client,
    logger,
    paths: [`/api/v1/namespaces/${ns}/secrets`],
    query: { labelSelector: credentialsSelector },
    transform: (s) => readCredentialSecret(s as unknown as Parameters<typeof readCredentialSecret>[0]),
    onError: () => metrics.watchErrors.inc({ resource: 'secrets' }),
  });

  const dir = new ConfigDir(config.configDir);
  await dir.prepare();
  // The data plane's restart hook reaches the agent, which is built after it.
  const restarted = { then: (): void => undefined };
  const dataPlane = await buildDataPlane(config, dir, logger, metrics, () => restarted.then());
  const reporter = new PodReporter({ client, namespace: config.namespace, podName: config.podName, logger });
  const agent = new ProxyAgent({
    namespace: config.namespace,
    configMaps,
    secrets,
    dir,
    dataPlane,
    reporter,
    logger,
    metrics,
  });

  restarted.then = () => agent.recheckSoon();
  const health = await startHealthServer(config.healthAddress, { live: () => !stop.signal.aborted, ready: () => agent.ready() }, metrics.registry);
  logger.info(
    {
      port: health.port,
      namespace: config.namespace,
      pod: config.podName,
      configDir: config.configDir,
      dataPlane: config.dataPlane,
      manage: config.manage,
    },
    'agent starting',
  );

  try {
    await Promise.race([Promise.all([configMaps.start(), secrets.start()]), aborted(stop.signal)]);
    if (!stop.signal.aborted) {
      logger.info({ configMaps: configMaps.size, secrets: secrets.size }, 'caches synced');
      agent.start();
      await aborted(stop.signal);
    }
  } finally {
    stop.abort();
    await Promise.all([configMaps.stop(), secrets.stop()]);
    // The apply in progress finishes (nginx is never left between two generations), then nginx stops.
    await agent.stop();
    await dataPlane.stop();
    await reporter.stop();
    await new Promise((resolve) => health.server.close(resolve));
    dispose();
    logger.info('agent stopped');
  }
  return 0;
}

/** nginx (managed, or one beside the agent) or HAProxy (always managed: the agent holds its sockets). */
async function buildDataPlane(config: AgentConfig, dir: ConfigDir, logger: Logger, metrics: AgentMetrics, onRestarted: () => void): Promise<DataPlane> {
  const onUnexpectedExit = (): void => metrics.dataPlaneExits.inc({ data_plane: config.dataPlane });
  const timeouts = { reloadTimeoutMs: config.reloadTimeoutMs, stopTimeoutMs: config.stopTimeoutMs };
  if (config.dataPlane === 'haproxy') {
    await mkdir(config.runDir, { recursive: true, mode: 0o700 });
    const haproxy = new ManagedHaproxy({
      binary: config.haproxyBinary,
      configDir: dir.generationPath(),
      runDir: config.runDir,
      startTimeoutMs: config.reloadTimeoutMs,
      ...timeouts,
      logger,
      onUnexpectedExit,
    });
    haproxy.onRestarted(onRestarted);
    // Its own connection with a short timeout: a scrape must not wait on a busy HAProxy.
    const scrape = new HaproxyRuntime(join(config.runDir, 'haproxy.sock'), { timeoutMs: 2_000 });
    metrics.haproxyDroppedLogsSource = async () => (haproxy.running() ? parseDroppedLogs(await scrape.run('show info')) : undefined);
    return new HaproxyDataPlane({
      haproxy,
      configRoot: dir.root,
      test: (generationDir) => testHaproxyConfig(config.haproxyBinary, generationDir, config.runDir),
      logger,
      onReload: () => metrics.reloads.inc({ data_plane: 'haproxy' }),
      onChange: (op) => metrics.runtimeChanges.inc({ op }),
    });
  }
  const paths = { binary: config.nginxBinary, prefix: config.nginxPrefix };
  const nginx = config.manage
    ? new ManagedNginx({ ...paths, confPath: dir.nginxConf(), pidFile: config.nginxPidFile, ...timeouts, logger, onUnexpectedExit })
    : new ExternalNginx({ pidFile: config.nginxPidFile, reloadTimeoutMs: config.reloadTimeoutMs });
  return new NginxDataPlane({ test: (confPath) => testNginxConfig(paths, confPath), nginx, onReload: () => metrics.reloads.inc({ data_plane: 'nginx' }) });
}
