import type { Logger } from 'pino';

/**
 * The process's stop signal: SIGTERM (the kubelet) or SIGINT (a terminal) aborts it once,
 * and the command shuts down in order. `dispose` removes the handlers again, so a command
 * run in-process by a test leaves none behind.
 */
export function shutdownOnSignals(logger: Logger): { stop: AbortController; dispose(): void } {
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'shutting down');
    stop.abort();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return {
    stop,
    dispose() {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
