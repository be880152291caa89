import { HttpMethod, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { fetch, type Dispatcher } from 'undici';
import type { ObjectList, WatchEvent } from '../api/meta.ts';
import { CodedError } from '../errors.ts';

export type { KubeObject, ObjectList, ObjectMeta, WatchEvent } from '../api/meta.ts';

/**
 * An API error with the HTTP status and the Status reason. `transient` is what the
 * retry policy reads: a conflict, a throttle, a timeout or a server fault may succeed on
 * the next try; a 4xx about the request itself will not.
 */
export class KubeApiError extends CodedError<'ERR_KUBE_API'> {
  readonly status: number;
  readonly reason: string | undefined;
  /** The Status object's details: which object the error is about (a 404 names what is missing). */
  readonly details: { kind?: string; name?: string } | undefined;

  constructor(status: number, reason: string | undefined, message: string, details?: { kind?: string; name?: string }) {
    super('ERR_KUBE_API', message);
    this.status = status;
    this.reason = reason;
    this.details = details;
  }

  override get transient(): boolean {
    return this.status === 0 || this.status === 409 || this.status === 429 || this.status >= 500;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}

export type Query = Record<string, string | number | boolean | undefined>;

export const contentTypes = {
  json: 'application/json',
  mergePatch: 'application/merge-patch+json',
  apply: 'application/apply-patch+yaml',
  /**
   * Lists of PartialObjectMetadata (metadata only, no data or spec), or the plain list
   * from a server that cannot convert: what client-go's metadata informers ask for.
   */
  metadataList: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json',
  /** Watch events carrying PartialObjectMetadata, or the plain object from a server that cannot convert. */
  metadata: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json',
} as const;

/** Per request: what to send, and which representation to ask for (default plain JSON). */
export interface RequestOptions {
  query?: Query;
  body?: unknown;
  contentType?: string;
  accept?: string;
  /**
   * Read the response and throw it away: for writes whose answer the caller does not use
   * (a status patch, an Event), so a cold start does not parse ten thousand objects for nothing.
   */
  discardResponse?: boolean;
}

/** --kubeconfig FILE, else in-cluster config, $KUBECONFIG or ~/.kube/config (client-node's order). */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

/** A small JSON client over the kubeconfig's transport (TLS, tokens, client certs). */
export class KubeClient {
  readonly #config: KubeConfig;
  readonly #server: string;
  readonly requestTimeoutMs: number;
  /**
   * client-node builds a new undici Agent for every request it authenticates, so each
   * call would pay a TLS handshake and leave a pooled socket behind: at 1,000 bindings
   * that cost seconds and hundreds of megabytes. The TLS settings come from the
   * kubeconfig and do not change, so the first Agent serves every request; headers
   * (rotating tokens) are still computed per request.
   */
  #dispatcher: Dispatcher | undefined;

  constructor(config: KubeConfig, options: { requestTimeoutMs?: number } = {}) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.#config = config;
    this.#server = cluster.server.replace(/\/$/, '');
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  get server(): string {
    return this.#server;
  }

  async #authenticate(url: string, method: HttpMethod, accept: string): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher | undefined }> {
    const ctx = new RequestContext(url, method);
    await this.#config.applySecurityAuthentication(ctx);
    this.#dispatcher ??= ctx.getDispatcher() as Dispatcher | undefined;
    return { headers: { ...ctx.getHeaders(), accept }, dispatcher: this.#dispatcher };
  }

  async request<T>(method: keyof typeof HttpMethod, path: string, options: RequestOptions = {}): Promise<T> {
    const url = this.#url(path, options.query);
    const { headers, dispatcher } = await this.#authenticate(url, HttpMethod[method], options.accept ?? contentTypes.json);
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? contentTypes.json;
      body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body,
        ...(dispatcher ? { dispatcher } : {}),
        signal: AbortSignal.timeout(this.requestTimeoutMs),
      });
    } catch (err) {
      throw new KubeApiError(0, 'ConnectionFailed', `${method} ${path}: ${describeFetchError(err)}`);
    }
    if (!response.ok) throw apiError(method, path, response.status, await response.text());
    if (options.discardResponse) {
      // Drained, not cancelled: a cancelled body would close the pooled connection.
      if (response.body) for await (const _ of response.body);
      return undefined as T;
    }
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, query ? { query } : {});
  }

  list<T>(path: string, query?: Query, options: { accept?: string } = {}): Promise<ObjectList<T>> {
    return this.request<ObjectList<T>>('GET', path, { ...(query ? { query } : {}), ...options });
  }

  create<T>(path: string, body: unknown, options: { discardResponse?: boolean } = {}): Promise<T> {
    return this.request<T>('POST', path, { body, ...options });
  }

  replace<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  mergePatch<T>(path: string, body: unknown, options: { discardResponse?: boolean } = {}): Promise<T> {
    return this.request<T>('PATCH', path, { body, contentType: contentTypes.mergePatch, ...options });
  }

  delete(path: string): Promise<unknown> {
    return this.request('DELETE', path);
  }

  /**
   * Streams watch events until the server closes the stream (resolves) or the
   * connection fails (rejects). The caller owns reconnecting, so that it also owns
   * the resourceVersion bookkeeping and the backoff.
   */
  async watch<T>(path: string, query: Query, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal, options: { accept?: string } = {}): Promise<void> {
    const url = this.#url(path, { ...query, watch: true });
    const { headers, dispatcher } = await this.#authenticate(url, HttpMethod.GET, options.accept ?? contentTypes.json);
    let response;
    try {
      response = await fetch(url, { method: 'GET', headers, ...(dispatcher ? { dispatcher } : {}), signal });
    } catch (err) {
      throw new KubeApiError(0, 'ConnectionFailed', `watch ${path}: ${describeFetchError(err)}`);
    }
    if (!response.ok || !response.body) throw apiError('GET', path, response.status, await response.text());
    const input = Readable.fromWeb(response.body);
    const lines = createInterface({ input, crlfDelay: Infinity });
    const iterator = lines[Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<string>;
        try {
          next = await iterator.next();
        } catch (err) {
          if (signal.aborted) return;
          throw new KubeApiError(0, 'ConnectionFailed', `watch ${path}: ${describeFetchError(err)}`);
        }
        if (next.done) return;
        // Outside the read's try: an error the handler throws (410 Gone, say) must reach
        // the caller as itself, not as a connection failure.
        if (next.value.trim()) onEvent(JSON.parse(next.value) as WatchEvent<T>);
      }
    } finally {
      lines.close();
      input.destroy();
    }
  }

  #url(path: string, query: Query | undefined): string {
    const url = new URL(this.#server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }
}

function apiError(method: string, path: string, status: number, text: string): KubeApiError {
  let reason: string | undefined;
  let message = text.slice(0, 500);
  let details: { kind?: string; name?: string } | undefined;
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string; details?: { kind?: unknown; name?: unknown } };
    reason = parsed.reason;
    message = parsed.message ?? message;
    const { kind, name } = parsed.details ?? {};
    if (typeof kind === 'string' || typeof name === 'string') {
      details = { ...(typeof kind === 'string' ? { kind } : {}), ...(typeof name === 'string' ? { name } : {}) };
    }
  } catch {
    // not a Status object: keep the raw text
  }
  return new KubeApiError(status, reason, `${method} ${path}: ${status} ${message}`, details);
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}
