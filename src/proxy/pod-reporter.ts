import type { KubeClient } from '../k8s/client.ts';
import { errorSummary } from '../errors.ts';
import { sleep } from '../runner/backoff.ts';
import type { Logger } from '../log.ts';
import { annotationApplyError, annotationAppliedHash } from './proxy-objects.ts';

/** What the agent tells the controller through its Pod's annotations. */
export interface PodReport {
  /** The config hash nginx serves; absent until one was applied. */
  appliedHash: string | undefined;
  /** Why the newest config is not served; absent when it is. */
  applyError: string | undefined;
}

function sameReport(a: PodReport | undefined, b: PodReport | undefined): boolean {
  return a !== undefined && b !== undefined && a.appliedHash === b.appliedHash && a.applyError === b.applyError;
}

/**
 * Keeps the agent's own Pod annotated with the latest report. `set` never waits for the
 * API: a patch that fails is retried with backoff in the background until it lands or a
 * newer report replaces it, so an apiserver outage cannot hold up serving a new config.
 * Only changes are written (the first report always is, to replace what a previous
 * container of this Pod left).
 */
export class PodReporter {
  readonly #client: KubeClient;
  readonly #path: string;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  #desired: PodReport | undefined;
  #reported: PodReport | undefined;
  #flushing: Promise<void> | undefined;

  constructor(options: { client: KubeClient; namespace: string; podName: string; logger: Logger }) {
    this.#client = options.client;
    this.#path = `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods/${encodeURIComponent(options.podName)}`;
    this.#log = options.logger.child({ component: 'pod-reporter' });
  }

  set(report: PodReport): void {
    this.#desired = { ...report };
    this.#kick();
  }

  /** The last report the API accepted. */
  get reported(): PodReport | undefined {
    return this.#reported;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#flushing;
  }

  #pending(): boolean {
    return !this.#abort.signal.aborted && this.#desired !== undefined && !sameReport(this.#desired, this.#reported);
  }

  #kick(): void {
    if (this.#flushing || !this.#pending()) return;
    this.#flushing = this.#flush().finally(() => {
      this.#flushing = undefined;
      this.#kick();
    });
  }

  async #flush(): Promise<void> {
    let failures = 0;
    while (this.#pending()) {
      const report = this.#desired!;
      try {
        // A merge patch with null deletes the annotation.
        await this.#client.mergePatch(this.#path, {
          metadata: { annotations: { [annotationAppliedHash]: report.appliedHash ?? null, [annotationApplyError]: report.applyError ?? null } },
        });
        this.#reported = report;
        failures = 0;
      } catch (err) {
        const retryInMs = Math.min(250 * 2 ** failures, 30_000);
        failures++;
        this.#log.warn({ err: errorSummary(err), retryInMs }, 'could not annotate the Pod; retrying');
        await sleep(retryInMs, this.#abort.signal);
      }
    }
  }
}
