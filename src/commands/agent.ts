import { KubeClient, loadKubeConfig } from '../k8s/client.ts';
import { Informer } from '../k8s/informer.ts';
import { createLogger } from '../log.ts';
import { ProxyAgent, readCredentialSecret, type CredentialSecretLike, type ProxyConfigMap } from '../proxy/agent.ts';
import { agentUsage, asksForHelp, parseAgentConfig, parseFlagsOrUsage } from '../config.ts';
import type { CommandIo } from './command.ts';
import { AgentMetrics } from '../proxy/agent-metrics.ts';
import { ConfigDir } from '../proxy/config-dir.ts';
import { dataPlanes } from '../dataplane/registry.ts';
import { PodReporter } from '../proxy/pod-reporter.ts';
import { credentialsSelector, proxyConfigMapName } from '../contract/proxy-objects.ts';
import { startHealthServer } from '../server/health.ts';
import { shutdownOnSignals } from '../server/signals.ts';
import { turnOffCoreDumps } from '../server/core-dumps.ts';
import { availableCpus } from '../server/cpu-limit.ts';
import { aborted, sleep } from '../runner/backoff.ts';

/**
 * Wiring only: settings, logger, client, the two caches (both limited to the agent's
 * namespace and, on the server, to the objects it reads), nginx, the agent loop, health
 * server and signals. Resolves with the process exit code.
 */
export async function runAgent(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlagsOrUsage('agent', agentUsage, io, () => (asksForHelp(argv) ? 'help' : parseAgentConfig(argv, io.env)));
  if (!parsed.ok) return parsed.exitCode;
  const config = parsed.config;
  const logger = createLogger({ level: config.logLevel });
  const client = new KubeClient(loadKubeConfig(config.kubeconfig));
  const metrics = new AgentMetrics();
  const { stop, dispose } = shutdownOnSignals(logger);
  const ns = encodeURIComponent(config.namespace);

  const dir = new ConfigDir(config.configDir);
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
    // Read when the watch delivers it: that time is the rotation's `watch` stage's end.
    // The files' bytes go to the config directory's content store, not the cache.
    transform: (s) => readCredentialSecret(s as unknown as Parameters<typeof readCredentialSecret>[0], dir.store, Date.now()),
    onError: () => metrics.watchErrors.inc({ resource: 'secrets' }),
  });

  // Before the data plane starts: HAProxy and nginx inherit the limit.
  await turnOffCoreDumps(logger);
  await dir.prepare();
  // The data plane's restart hook reaches the agent, which is built after it. (A plain
  // variable, not an object with a `then`: that would be a thenable, awaited by mistake.)
  let restarted = (): void => undefined;
  const driver = dataPlanes[config.dataPlane];
  const { cpus, cpuLimit } = await availableCpus();
  const dataPlane = await driver.start({ ...config, dir, logger, metrics, onRestarted: () => restarted() });
  const reporter = new PodReporter({ client, namespace: config.namespace, podName: config.podName, logger });
  const agent = new ProxyAgent({
    namespace: config.namespace,
    configMaps,
    secrets,
    dir,
    dataPlane,
    assemble: driver.assembler({ cpus, haproxyThreads: config.haproxyThreads }),
    reporter,
    logger,
    metrics,
    persistDelayMs: config.persistDelayMs,
  });

  restarted = () => agent.recheckSoon();
  // Not ready from the signal on, and live until the end: the kubelet must not restart a
  // replica that is draining.
  const health = await startHealthServer(config.healthAddress, { live: () => true, ready: () => !stop.signal.aborted && agent.ready() }, metrics.registry);
  logger.info(
    {
      port: health.port,
      namespace: config.namespace,
      pod: config.podName,
      configDir: config.configDir,
      dataPlane: config.dataPlane,
      manage: config.manage,
      cpus,
      cpuLimit,
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
    const serving = agent.ready();
    stop.abort();
    // The drain. /readyz fails from the signal on; a terminating Pod has left the
    // endpoints already, and a headless Service's DNS answers follow within their TTL.
    // Clients that resolved this address just before may still open connections, so the
    // data plane keeps accepting and serving, and keeps taking config changes, for the
    // drain delay. Then it stops gracefully: its listeners close, the request in flight
    // on each connection finishes, and with HAProxy (option idle-close-on-response) each
    // keep-alive connection gets "Connection: close" on its next response rather than a
    // reset. nginx's graceful quit closes idle keep-alive connections at once instead.
    if (serving && config.drainDelayMs > 0) {
      logger.info({ drainDelayMs: config.drainDelayMs }, 'draining: not ready; serving until clients have moved on');
      await sleep(config.drainDelayMs);
    }
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
