import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from './client.ts';
import { metaV1Time } from '../api/time.ts';
import { errorSummary } from '../errors.ts';
import type { TokenBucket } from '../runner/token-bucket.ts';

export interface EventToRecord {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface EventRecorderOptions {
  component: string;
  instance: string;
  logger: Logger;
  /** Shared with other writes; an Event takes its token at low priority, after every waiting status write. */
  limiter?: TokenBucket;
  /** After every Event written, failed or dropped, and every change in the backlog. */
  observe?: { result(result: 'success' | 'error' | 'dropped'): void; waiting(count: number): void };
}

/** Events written (or waiting for a token) at once; a cold start's thousand transitions queue behind these. */
const maxInFlight = 4;
/** Beyond this backlog new Events are dropped (and logged): status, not Events, is the record. */
const maxQueued = 10_000;

/** What an Event needs of the object it is about: copied at record(), so the backlog holds no object. */
interface PendingEvent {
  involvedObject: { apiVersion: string; kind: string; name: string; namespace: string; uid: string | undefined; resourceVersion: string | undefined };
  event: EventToRecord;
  now: Date;
}

/**
 * Writes core/v1 Events, which `kubectl describe` and `kubectl get events` show. An
 * Event is best-effort: record() returns at once, writes happen in order a few at a time
 * (each after a token, when a limiter is given), and a failure is logged, never retried
 * in a loop, and never fails a reconcile.
 */
export class EventRecorder {
  readonly #client: KubeClient;
  readonly #o: EventRecorderOptions;
  readonly #queue: PendingEvent[] = [];
  #inFlight = 0;
  /** Said once per full backlog, not once per dropped Event. */
  #dropping = false;

  constructor(client: KubeClient, options: EventRecorderOptions) {
    this.#client = client;
    this.#o = options;
  }

  /** Events not yet sent. */
  get waiting(): number {
    return this.#queue.length;
  }

  record(obj: KubeObject & { apiVersion: string; kind: string }, event: EventToRecord, now = new Date()): void {
    if (this.#queue.length >= maxQueued) {
      if (!this.#dropping) this.#o.logger.warn({ reason: event.reason, backlog: maxQueued }, 'event backlog full; dropping events until it drains');
      this.#dropping = true;
      this.#o.observe?.result('dropped');
      return;
    }
    if (this.#queue.length < maxQueued / 2) this.#dropping = false;
    const { name, uid, resourceVersion } = obj.metadata;
    const namespace = obj.metadata.namespace ?? 'default';
    this.#queue.push({ involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name, namespace, uid, resourceVersion }, event, now });
    this.#o.observe?.waiting(this.#queue.length);
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < maxInFlight) {
      const pending = this.#queue.shift();
      if (!pending) return;
      this.#o.observe?.waiting(this.#queue.length);
      this.#inFlight++;
      void this.#send(pending).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #send(pending: PendingEvent): Promise<void> {
    await this.#o.limiter?.take('low');
    await this.#write(pending);
  }

  async #write({ involvedObject, event, now }: PendingEvent): Promise<void> {
    const { namespace } = involvedObject;
    const timestamp = metaV1Time(now);
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${involvedObject.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`, namespace },
      involvedObject,
      type: event.type,
      reason: event.reason,
      message: event.message.slice(0, 1024),
      source: { component: this.#o.component },
      reportingComponent: this.#o.component,
      reportingInstance: this.#o.instance,
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
      count: 1,
    };
    try {
      await this.#client.create(`/api/v1/namespaces/${namespace}/events`, body, { discardResponse: true });
      this.#o.observe?.result('success');
    } catch (err) {
      this.#o.observe?.result('error');
      this.#o.logger.warn({ err: errorSummary(err), reason: event.reason }, 'could not record event');
    }
  }
}
