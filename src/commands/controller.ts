import { group, version, plural, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import { controllerUsage, parseControllerConfig, parseFlagsOrUsage, type ControllerConfig } from '../config.ts';
import { BindingController } from '../controller/binding-controller.ts';
import { decodeCertificateInput } from '../controller/identity-decoder.ts';
import { LeaderElector } from '../controller/leader-election.ts';
import { WorkQueue } from '../controller/queue.ts';
import { KubeClient, loadKubeConfig, type KubeObject } from '../k8s/client.ts';
import { EventRecorder } from '../k8s/events.ts';
import { errorSummary } from '../errors.ts';
import { aborted } from '../runner/backoff.ts';
import { Informer } from '../k8s/informer.ts';
import { createLogger, type Logger } from '../log.ts';
import { ControllerMetrics } from '../metrics/metrics.ts';
import type { SecretLike } from '../model/certificate-input.ts';
import { objectKey } from '../api/v1alpha1/types.ts';
import { SecretIndex } from '../model/secret-refs.ts';
import { IdentityCache } from '../controller/identity-cache.ts';
import { ProxyConfigController } from '../controller/proxy-config-controller.ts';
import { annotationApplyError, annotationAppliedHash } from '../proxy/proxy-objects.ts';
import { ServedCertificateHistory, type ProxyReplica } from '../status/programmed.ts';
import { startHealthServer } from '../server/health.ts';

function collectionPaths(config: ControllerConfig, resource: (ns?: string) => string): string[] {
  return config.namespaces.length === 0 ? [resource()] : config.namespaces.map((ns) => resource(ns));
}

/**
 * Wiring only: settings, logger, clients, caches, controller, leader election, health
 * server and signals. Resolves with the process exit code.
 */
export async function runController(argv: string[], env: NodeJS.ProcessEnv = process.env, options: { logger?: Logger } = {}): Promise<number> {
  const parsed = parseFlagsOrUsage('controller', controllerUsage, argv, () => parseControllerConfig(argv, env));
  if (!parsed.ok) return parsed.exitCode;
  const config = parsed.config;
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const client = new KubeClient(loadKubeConfig(config.kubeconfig));
  const metrics = new ControllerMetrics();
  const secretIndex = new SecretIndex();
  const stop = new AbortController();

  const bindings = new Informer<ClientCertificateBinding>({
    client,
    logger,
    paths: collectionPaths(config, (ns) => (ns ? `/apis/${group}/${version}/namespaces/${ns}/${plural}` : `/apis/${group}/${version}/${plural}`)),
    onError: () => metrics.watchErrors.inc({ resource: plural }),
  });
  const secrets = new Informer<SecretLike>({
    client,
    logger,
    paths: collectionPaths(config, (ns) => (ns ? `/api/v1/namespaces/${ns}/secrets` : '/api/v1/secrets')),
    keep: (s) => secretIndex.isReferenced(objectKey(s.metadata.namespace ?? '', s.metadata.name)),
    // Only what resolution reads: no labels, annotations or managedFields of foreign Secrets.
    transform: (s) => ({ metadata: { name: s.metadata.name, namespace: s.metadata.namespace, uid: s.metadata.uid, resourceVersion: s.metadata.resourceVersion }, type: s.type, data: s.data }) as SecretLike,
    onError: () => metrics.watchErrors.inc({ resource: 'secrets' }),
  });
  const identities = new IdentityCache(decodeCertificateInput);
  const history = new ServedCertificateHistory();
  const proxyPods =
    config.dataPlane === 'nginx'
      ? new Informer<PodLike>({
          client,
          logger,
          paths: [`/api/v1/namespaces/${config.namespace}/pods`],
          keep: (p) => Object.entries(config.proxyPodLabels).every(([k, v]) => p.metadata.labels?.[k] === v),
          transform: (p) => ({ metadata: { name: p.metadata.name, namespace: p.metadata.namespace, resourceVersion: p.metadata.resourceVersion, labels: p.metadata.labels, annotations: p.metadata.annotations }, status: { conditions: p.status?.conditions } }) as PodLike,
          onError: () => metrics.watchErrors.inc({ resource: 'pods' }),
        })
      : undefined;
  const queue = new WorkQueue();
  const controller = new BindingController({
    client,
    bindings,
    secrets,
    secretIndex,
    queue,
    recorder: new EventRecorder(client, { component: 'mtls-egress-controller', instance: config.identity, logger }),
    metrics,
    logger,
    identities,
    ...(proxyPods ? { programmed: { replicas: () => proxyPods.list().map(proxyReplica), served: history.served, proxyProblem: (key: string) => proxyConfig?.problemFor(key) } } : {}),
    listenerPorts: config.listenerPorts,
    endpointFor: (port) => `http://${config.proxyService}.${config.namespace}.svc:${port}`,
  });

  const proxyConfig =
    config.dataPlane === 'nginx'
      ? new ProxyConfigController({
          client,
          bindings,
          secrets,
          identities,
          history,
          namespace: config.namespace,
          listenerPorts: config.listenerPorts,
          render: { listenAddress: config.proxyListenAddress, statusPort: config.proxyStatusPort, accessLog: config.proxyAccessLog, errorLog: config.proxyErrorLog },
          proxyPodLabels: config.proxyPodLabels,
          metrics,
          logger,
          onProblemsChanged: (keys) => controller.enqueue(keys),
        })
      : undefined;
  // A replica that applied a configuration can move any binding's Programmed.
  proxyPods?.addHandlers({ onAdd: () => controller.enqueueAll(), onUpdate: () => controller.enqueueAll(), onDelete: () => controller.enqueueAll() });

  let synced = false;
  const health = await startHealthServer(config.healthAddress, { live: () => !stop.signal.aborted, ready: () => synced }, metrics.registry);
  logger.info({ port: health.port, id: config.identity, namespaces: config.namespaces.length ? config.namespaces : 'all' }, 'controller starting');

  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'shutting down');
    stop.abort();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  try {
    // Bindings first: the Secret cache keeps only what the binding index references.
    await Promise.race([bindings.start(), aborted(stop.signal)]);
    await Promise.race([Promise.all([secrets.start(), proxyPods?.start(), proxyConfig?.loadHistory()]), aborted(stop.signal)]);
    synced = !stop.signal.aborted;
    if (synced) logger.info({ bindings: bindings.size, secrets: secrets.size }, 'caches synced');

    const lead = (leading: AbortSignal): void => {
      metrics.isLeader.set(1);
      leading.addEventListener('abort', () => metrics.isLeader.set(0), { once: true });
      controller.run(config.workers, leading).catch((err: unknown) => logger.error({ err: errorSummary(err) }, 'controller stopped'));
      proxyConfig?.run(leading).catch((err: unknown) => logger.error({ err: errorSummary(err) }, 'proxy config controller stopped'));
    };
    if (!stop.signal.aborted) {
      if (config.leaderElect) {
        const elector = new LeaderElector({
          client,
          namespace: config.namespace,
          name: config.leaseName,
          identity: config.identity,
          leaseDurationMs: config.leaseDurationMs,
          renewDeadlineMs: config.renewDeadlineMs,
          retryPeriodMs: config.retryPeriodMs,
          logger,
        });
        // A lost lease (an apiserver outage longer than the renew deadline, say) stops
        // every write at once and rejoins the election, with the caches kept warm; the
        // process itself keeps running, so it converges without a pod restart.
        while (!stop.signal.aborted) {
          const outcome = await elector.run(stop.signal, lead);
          if (outcome === 'lost') logger.warn('lost leadership; campaigning again');
        }
      } else {
        lead(stop.signal);
        await aborted(stop.signal);
      }
    }
  } finally {
    stop.abort();
    queue.shutDown();
    await Promise.all([bindings.stop(), secrets.stop(), proxyPods?.stop()]);
    identities.close();
    await new Promise((resolve) => health.server.close(resolve));
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    logger.info('controller stopped');
  }
  return 0;
}

interface PodLike extends KubeObject {
  status?: { conditions?: Array<{ type: string; status: string }> };
}

function proxyReplica(pod: PodLike): ProxyReplica {
  return {
    name: pod.metadata.name,
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    appliedHash: pod.metadata.annotations?.[annotationAppliedHash] || undefined,
    applyError: pod.metadata.annotations?.[annotationApplyError] || undefined,
  };
}

