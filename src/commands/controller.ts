import { controllerUsage, parseControllerConfig, parseFlagsOrUsage } from '../config.ts';
import { ControllerManager } from '../controller/manager.ts';
import { KubeClient, loadKubeConfig } from '../k8s/client.ts';
import { createLogger, type Logger } from '../log.ts';
import { closeDecodeSandbox } from '../pki/index.ts';
import { startHealthServer } from '../server/health.ts';
import { shutdownOnSignals } from '../server/signals.ts';

/**
 * Wiring only: settings, logger, client, the manager (caches, controllers, leader
 * election), health server and signals. Resolves with the process exit code.
 */
export async function runController(argv: string[], env: NodeJS.ProcessEnv = process.env, options: { logger?: Logger } = {}): Promise<number> {
  const parsed = parseFlagsOrUsage('controller', controllerUsage, argv, () => parseControllerConfig(argv, env));
  if (!parsed.ok) return parsed.exitCode;
  const config = parsed.config;
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const client = new KubeClient(loadKubeConfig(config.kubeconfig));
  const manager = new ControllerManager(config, { client, logger });
  const { stop, dispose } = shutdownOnSignals(logger);

  const health = await startHealthServer(config.healthAddress, { live: () => !stop.signal.aborted, ready: () => manager.synced }, manager.metrics.registry);
  logger.info({ port: health.port, id: config.identity, namespaces: config.namespaces.length ? config.namespaces : 'all' }, 'controller starting');

  try {
    await manager.run(stop.signal);
  } finally {
    stop.abort();
    await closeDecodeSandbox();
    await new Promise((resolve) => health.server.close(resolve));
    dispose();
    logger.info('controller stopped');
  }
  return 0;
}
