import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from './client.ts';
import { metaV1Time } from '../api/time.ts';
import { errorSummary } from '../errors.ts';

export interface EventToRecord {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Events written at once; a cold start's thousand transitions queue behind these. */
const maxInFlight = 4;
/** Beyond this backlog new Events are dropped (and logged): status, not Events, is the record. */
const maxQueued = 10_000;

/**
 * Writes core/v1 Events, which `kubectl describe` and `kubectl get events` show. An
 * Event is best-effort: record() returns at once, writes happen in order a few at a time,
 * and a failure is logged, never retried in a loop, and never fails a reconcile.
 */
export class EventRecorder {
  readonly #client: KubeClient;
  readonly #component: string;
  readonly #instance: string;
  readonly #logger: Logger;
  readonly #queue: Array<() => Promise<void>> = [];
  #inFlight = 0;

  constructor(client: KubeClient, options: { component: string; instance: string; logger: Logger }) {
    this.#client = client;
    this.#component = options.component;
    this.#instance = options.instance;
    this.#logger = options.logger;
  }

  record(obj: KubeObject & { apiVersion: string; kind: string }, event: EventToRecord, now = new Date()): void {
    if (this.#queue.length >= maxQueued) {
      this.#logger.warn({ reason: event.reason }, 'event backlog full; dropping event');
      return;
    }
    this.#queue.push(() => this.#write(obj, event, now));
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < maxInFlight) {
      const write = this.#queue.shift();
      if (!write) return;
      this.#inFlight++;
      void write().finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #write(obj: KubeObject & { apiVersion: string; kind: string }, event: EventToRecord, now: Date): Promise<void> {
    const namespace = obj.metadata.namespace ?? 'default';
    const timestamp = metaV1Time(now);
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${obj.metadata.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      type: event.type,
      reason: event.reason,
      message: event.message.slice(0, 1024),
      source: { component: this.#component },
      reportingComponent: this.#component,
      reportingInstance: this.#instance,
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
      count: 1,
    };
    try {
      await this.#client.create(`/api/v1/namespaces/${namespace}/events`, body);
    } catch (err) {
      this.#logger.warn({ err: errorSummary(err), reason: event.reason }, 'could not record event');
    }
  }
}
