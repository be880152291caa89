import type { Logger } from 'pino';
import type { KubeObject } from '../api/meta.ts';
import type { KubeClient } from '../k8s/client.ts';
import { Informer } from '../k8s/informer.ts';
import { annotationMaxListenerPorts, type NamespaceMeta } from '../model/namespace-consent.ts';
import type { NamespaceSource } from '../inputs/binding-inputs.ts';

interface NamespaceObject extends KubeObject {
  metadata: KubeObject['metadata'] & { labels?: Record<string, string>; annotations?: Record<string, string> };
}

/**
 * The cluster's Namespaces as the gatherer reads them: their labels (consent to a
 * binding's allowedNamespaces) and the one annotation the platform sets (a namespace's
 * share of listener ports). A metadata-only watch; nothing is written. Until its first
 * list succeeds (RBAC may forbid it) it knows none, and says so: consent is then
 * Unknown, and the NetworkPolicy, which requires the consent label itself, fails closed.
 */
export class ClusterNamespaces implements NamespaceSource {
  readonly #informer: Informer<NamespaceObject>;
  #synced = false;

  constructor(client: KubeClient, logger: Logger, onError?: () => void) {
    this.#informer = new Informer<NamespaceObject>({
      client,
      logger,
      paths: ['/api/v1/namespaces'],
      metadataOnly: true,
      transform: (ns) => ({
        metadata: {
          name: ns.metadata.name,
          resourceVersion: ns.metadata.resourceVersion,
          labels: ns.metadata.labels ?? {},
          annotations: ownAnnotations(ns.metadata.annotations),
        },
      }),
      ...(onError ? { onError } : {}),
    });
  }

  /** Resolves once the first list succeeded; the watch goes on until stop(). */
  async start(): Promise<void> {
    await this.#informer.start();
    this.#synced = true;
  }

  stop(): Promise<void> {
    return this.#informer.stop();
  }

  list(): readonly NamespaceMeta[] | undefined {
    return this.#synced ? this.#informer.list().map(meta) : undefined;
  }

  get(name: string): NamespaceMeta | undefined {
    const ns = this.#informer.get(`/${name}`);
    return ns ? meta(ns) : undefined;
  }

  onChange(handler: (now: NamespaceMeta | undefined, before: NamespaceMeta | undefined) => void): void {
    this.#informer.addHandlers({
      onAdd: (ns) => handler(meta(ns), undefined),
      onUpdate: (ns, old) => handler(meta(ns), meta(old)),
      onDelete: (ns) => handler(undefined, meta(ns)),
    });
  }
}

function meta(ns: NamespaceObject): NamespaceMeta {
  return { name: ns.metadata.name, labels: ns.metadata.labels ?? {}, annotations: ns.metadata.annotations ?? {} };
}

/** The annotation the platform sets; the rest are not ours to keep. Labels are kept whole: a selector may name any. */
function ownAnnotations(annotations: Record<string, string> | undefined): Record<string, string> {
  const value = annotations?.[annotationMaxListenerPorts];
  return value === undefined ? {} : { [annotationMaxListenerPorts]: value };
}
