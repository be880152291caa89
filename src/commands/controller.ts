import { setFlagsFromString } from 'node:v8';
import { asksForHelp, controllerUsage, parseControllerConfig, parseFlagsOrUsage } from '../config.ts';
import type { CommandIo } from './command.ts';
import { NamespaceNotFoundError } from '../controller/leader-election.ts';
import { ControllerManager } from '../controller/manager.ts';
import { KubeClient, loadKubeConfig } from '../k8s/client.ts';
import { createLogger } from '../log.ts';
import { closeDecodeSandbox } from '../pki/index.ts';
import { startHealthServer } from '../server/health.ts';
import { shutdownOnSignals } from '../server/signals.ts';
import { turnOffCoreDumps } from '../server/core-dumps.ts';

/**
 * Wiring only: settings, logger, client, the manager (caches, controllers, leader
 * election), health server and signals. Resolves with the process exit code: 0 after a
 * signal, 1 when it cannot campaign because its namespace does not exist, 2 for usage.
 */
export async function runController(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlagsOrUsage('controller', controllerUsage, io, () => (asksForHelp(argv) ? 'help' : parseControllerConfig(argv, io.env)));
  if (!parsed.ok) return parsed.exitCode;
  const config = parsed.config;
  // The controller waits on the API server and holds every binding: on a machine with
  // gigabytes free, V8's default heap growth let RSS reach 4x the live heap (480 MB at
  // 10,000 bindings, 80 MB live). Sized for memory it stays near the live heap (about
  // 200 MB), at no throughput we could measure. Read by V8 at each collection, so it
  // takes effect when set here; deploy/'s NODE_OPTIONS cap the heap besides.
  setFlagsFromString('--optimize-for-size');
  const logger = createLogger({ level: config.logLevel });
  // Before the decode sandbox starts: it holds the keys it decodes.
  await turnOffCoreDumps(logger);
  const client = new KubeClient(loadKubeConfig(config.kubeconfig));
  const manager = new ControllerManager(config, { client, logger });
  const { stop, dispose } = shutdownOnSignals(logger);

  const health = await startHealthServer(config.healthAddress, { live: () => !stop.signal.aborted, ready: () => manager.synced }, manager.metrics.registry);
  logger.info({ port: health.port, id: config.identity, namespaces: config.namespaces.length ? config.namespaces : 'all' }, 'controller starting');

  let exitCode = 0;
  try {
    await manager.run(stop.signal);
  } catch (err) {
    if (!(err instanceof NamespaceNotFoundError)) throw err;
    // Said once, with what to do; no retry can create the namespace.
    logger.error({ code: err.code, namespace: err.namespace }, err.message);
    exitCode = 1;
  } finally {
    stop.abort();
    await closeDecodeSandbox();
    await new Promise((resolve) => health.server.close(resolve));
    dispose();
    logger.info('controller stopped');
  }
  return exitCode;
}
