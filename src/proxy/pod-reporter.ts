import type { KubeClient } from '../k8s/client.ts';
import { Runner } from '../runner/runner.ts';
import type { Logger } from '../log.ts';
import { annotationApplyError, annotationAppliedHash } from '../api/labels.ts';

/** What the agent tells the controller through its Pod's annotations. */
export interface PodReport {
  /** The config hash the data plane serves; absent until one was applied. */
  appliedHash: string | undefined;
  /** Why the newest config is not served; absent when it is. */
  applyError: string | undefined;
}

function sameReport(a: PodReport | undefined, b: PodReport | undefined): boolean {
  return a !== undefined && b !== undefined && a.appliedHash === b.appliedHash && a.applyError === b.applyError;
}

/**
 * Keeps the agent's own Pod annotated with the latest report. `set` never waits for the
 * API: the patch runs on a runner of its own, and one that fails is retried with backoff
 * until it lands or a newer report replaces it, so an apiserver outage cannot hold up
 * serving a new config. Only changes are written (the first report always is, to replace
 * what a previous container of this Pod left).
 */
export class PodReporter {
  readonly #client: KubeClient;
  readonly #path: string;
  readonly #runner: Runner;
  readonly #stop = new AbortController();
  readonly #running: Promise<void>;
  #desired: PodReport | undefined;
  #reported: PodReport | undefined;

  constructor(options: { client: KubeClient; namespace: string; podName: string; logger: Logger }) {
    this.#client = options.client;
    this.#path = `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods/${encodeURIComponent(options.podName)}`;
    this.#runner = new Runner({ name: 'pod-reporter', reconcile: () => this.#flush(), logger: options.logger, backoff: { baseMs: 250, maxMs: 30_000 } });
    this.#running = this.#runner.run(this.#stop.signal);
  }

  set(report: PodReport): void {
    this.#desired = { ...report };
    this.#runner.add(reportKey);
  }

  /** The last report the API accepted. */
  get reported(): PodReport | undefined {
    return this.#reported;
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#runner.shutDown();
    await this.#running;
  }

  async #flush(): Promise<void> {
    const report = this.#desired;
    if (report === undefined || sameReport(report, this.#reported)) return;
    // A merge patch with null deletes the annotation.
    await this.#client.mergePatch(this.#path, {
      metadata: { annotations: { [annotationAppliedHash]: report.appliedHash ?? null, [annotationApplyError]: report.applyError ?? null } },
    });
    this.#reported = report;
  }
}

const reportKey = 'report';
