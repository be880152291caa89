import { performance } from 'node:perf_hooks';
import type { KubeObject } from '../k8s/client.ts';
import { errorSummary } from '../errors.ts';
import type { Informer } from '../k8s/informer.ts';
import { systemClock, type Clock, type Timer } from '../runner/clock.ts';
import { earliest, Runner, type ReconcileResult } from '../runner/runner.ts';
import type { Logger } from '../log.ts';
import type { AgentMetrics } from './agent-metrics.ts';
import type { ConfigDir } from './config-dir.ts';
import { objectName, type ContentStore } from './content-store.ts';
import { fileIdentity, generationName } from './generations.ts';
import type { ApplyResult, AssembledConfig, Assembler, DataPlane, HeldBinding } from './data-plane.ts';
import type { PodReport } from './pod-reporter.ts';
import {
  BundleResolver,
  isBundleObjectName,
  manifestFormat,
  manifestKey,
  parseManifest,
  proxyConfigMapName,
  readBindingObject,
  readBundleObject,
  readSharedFiles,
  type ReadBinding,
  type ReadBundle,
  type StoredFile,
} from '../contract/proxy-objects.ts';
import { parseStamps, rotationSplit, rotationStages, type RotationStage, type RotationStamps } from '../contract/rotation-stamps.ts';

/** How often at most the content store is looked through for objects nothing uses. */
const objectPruneIntervalMs = 10_000;

/**
 * How far the files a restart would read may lag behind what HAProxy serves from memory.
 * Each generation links every file of the config (a hundred thousand links a change at
 * ten thousand bindings), and a change HAProxy takes through its runtime API needs none
 * of them: only a restart after a crash reads them, and the pass that follows it
 * converges HAProxy from whatever it read. Under churn one generation now stands for
 * every change of its second.
 */
export const defaultPersistDelayMs = 1000;

/** The agent's one key: it applies the whole manifest, whichever object changed. */
const applyKey = 'apply';

export interface ProxyConfigMap extends KubeObject {
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

/**
 * A binding or bundle object as the agent's cache keeps it: read and checked once, when
 * the watch delivers it (readBindingObject, readBundleObject), and without its bytes:
 * neither the base64 data nor the files' content, which at ten thousand bindings were
 * 29 MB of PEM strings, a second copy of what the config directory holds. Each file is
 * its path, mode and digest; its bytes are in the content store (content-store.ts).
 */
export interface CredentialSecretLike extends KubeObject {
  read: ({ kind: 'binding' } & ReadBinding<StoredFile>) | ({ kind: 'bundle' } & ReadBundle<StoredFile>);
  /** A binding object's rotation stamps (src/contract/rotation-stamps.ts), and when the watch delivered it (wall-clock ms). */
  rotation?: { stamps: RotationStamps; watchedAt: number };
}

/**
 * The informer transform that makes a CredentialSecretLike of a Secret from the API: the
 * files' bytes go to `store` (pending until the next apply stores them), the cache keeps
 * their digests. `now` is when the watch delivered it.
 */
export function readCredentialSecret(
  s: KubeObject & { data?: Record<string, string>; metadata: { annotations?: Record<string, string> } },
  store: Pick<ContentStore, 'hold'>,
  now?: number,
): CredentialSecretLike {
  const metadata = { name: s.metadata.name, namespace: s.metadata.namespace, resourceVersion: s.metadata.resourceVersion };
  if (isBundleObjectName(s.metadata.name)) {
    const read = readBundleObject(s);
    return { metadata, read: read.ok ? { kind: 'bundle', ok: true, file: store.hold(read.file) } : { kind: 'bundle', ...read } };
  }
  const stamps = now === undefined ? undefined : parseStamps(s.metadata.annotations);
  const read = readBindingObject(s);
  const stored: ReadBinding<StoredFile> = read.ok ? { ...read, part: { ...read.part, files: read.part.files.map((file) => store.hold(file)) } } : read;
  return { metadata, read: { kind: 'binding', ...stored }, ...(stamps ? { rotation: { stamps, watchedAt: now! } } : {}) };
}

/** Every object the cache's files name: the store keeps them, so a binding left out for now can be served again. */
export function referencedObjects(secrets: readonly CredentialSecretLike[]): Set<string> {
  const names = new Set<string>();
  for (const { read } of secrets) {
    if (!read.ok) continue;
    if (read.kind === 'bundle') names.add(objectName(read.file));
    else for (const file of read.part.files) names.add(objectName(file));
  }
  return names;
}

/** One rotation as the agent reports it: its stages in ms, and the stamps' ends in wall-clock ms (the churn bench joins on `source`). */
export interface RotationReport {
  binding: string;
  source: string;
  ms: Record<RotationStage, number>;
  seenAt: number;
  servedAt: number;
}

/** Rotations listed in one log line at most; the histograms count every one. */
const maxRotationsLogged = 32;

export interface ProxyAgentOptions {
  namespace: string;
  configMaps: Informer<ProxyConfigMap>;
  secrets: Informer<CredentialSecretLike>;
  dir: ConfigDir;
  /** nginx or HAProxy (its driver's start(), src/dataplane/): validates a generation and makes the server serve it. */
  dataPlane: DataPlane;
  /** The same plane's assembly (its driver's assembler()): the objects held → the config the data plane runs. */
  assemble: Assembler;
  reporter: { set(report: PodReport): void };
  logger: Logger;
  metrics?: AgentMetrics;
  /** At most one pass starts per this window, so a controller's burst of writes becomes one reload; a change after a quiet window applies at once. */
  debounceMs?: number;
  retry?: { baseMs: number; maxMs: number };
  /** How far the files on disk may lag behind a config the data plane took in memory (defaultPersistDelayMs). */
  persistDelayMs?: number;
  /** When the data plane asked to be looked at again, and when a config was applied (default: the system clock). */
  clock?: Clock;
}

interface WriteCounts {
  written: number;
  linked: number;
  stored: number;
}

interface Persisted {
  generation: string;
  /** path → fileIdentity of each file written with its bytes (haproxy.cfg, maps, shared files), so the next generation can link what did not change. */
  identities: Map<string, string>;
}

/**
 * The proxy-side loop: watch the proxy ConfigMap and the credential Secrets, and make
 * the data plane serve what the manifest describes, without ever serving less than a
 * whole, valid config.
 *
 *   change → (at most one pass per debounce window) → materialize → write gen-<hash> → nginx -t / haproxy -c →
 *   swap `current` → reload (nginx) or runtime API changes (HAProxy), confirmed →
 *   prune old generations → annotate the Pod
 *
 * A change HAProxy takes through its runtime API (the listeners unchanged) is served
 * first, and its generation follows within persistDelayMs, with the others of its window.
 *
 * Applies run on the one reconcile runner, one at a time, and always read the newest
 * cached state, so a burst of changes ends in one apply of the latest. What cannot
 * succeed without new input (a config nginx -t or haproxy -c rejects, a malformed
 * manifest) is reported and not retried until the input changes; what may succeed later
 * (a reload that did not take, an I/O error, the server not running yet) is thrown, and
 * the runner retries it with backoff. Waiting for a Secret the manifest names is neither:
 * the next watch event brings it.
 *
 * Which plane it is, the agent does not ask: the plane's driver (src/dataplane/) gives it
 * the assembler and the process driver.
 */
export class ProxyAgent {
  readonly #options: ProxyAgentOptions;
  readonly #log: Logger;
  readonly #debounceMs: number;
  readonly #runner: Runner;
  readonly #stop = new AbortController();
  readonly #clock: Clock;
  #started = false;
  #running: Promise<void> | undefined;
  /** The config the data plane serves. */
  #applied: { hash: string } | undefined;
  /** The generation `current` names, as this process wrote it. */
  #persisted: Persisted | undefined;
  #persistedAt = Number.NEGATIVE_INFINITY;
  /** A config the data plane serves from memory whose generation is not written yet. */
  #unpersisted: { config: AssembledConfig; generation: string } | undefined;
  readonly #persistDelayMs: number;
  /** The input last rejected: a config hash, or the ConfigMap version whose manifest is unreadable. */
  #rejected: string | undefined;
  #applyError: string | undefined;
  #lastWait: string | undefined;
  #lastLeftOut = '';
  /** The index's config hash, as last read. */
  #index: string | undefined;
  /** The config hash last reported on the Pod. */
  #reported: string | undefined;
  #emptying: Promise<void> | undefined;
  #trashAgain = false;
  /** When unused objects were last looked for, and the look put off until the interval ends. */
  #prunedAt = Number.NEGATIVE_INFINITY;
  #pruneLater: Timer | undefined;
  /** Binding objects found unusable, by name@resourceVersion: each is logged once. */
  #unusable = new Set<string>();
  /** Each binding's part with its bundles' files, kept by part so a pass hands assembly the same objects. */
  readonly #bundles = new BundleResolver<StoredFile>();
  /** When the data plane asked to be looked at again (a periodic check, servers draining); 0: now. */
  #recheckAt = 0;
  /** When the last pass started: changes within debounceMs of it wait for the window's end. */
  #lastPassAt = Number.NEGATIVE_INFINITY;
  /** The stamped bindings of the pass being applied: binding key → its stamps and watch time. */
  #stamped = new Map<string, NonNullable<CredentialSecretLike['rotation']>>();
  /** Per binding, the source Secret version last reported: each rotation is reported once, when it is served. */
  readonly #reportedSource = new Map<string, string>();

  constructor(options: ProxyAgentOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: 'proxy-agent' });
    this.#debounceMs = options.debounceMs ?? 25;
    this.#persistDelayMs = options.persistDelayMs ?? defaultPersistDelayMs;
    this.#clock = options.clock ?? systemClock;
    this.#runner = new Runner({
      name: 'proxy-agent',
      reconcile: () => this.#reconcile(),
      logger: options.logger,
      backoff: options.retry ?? { baseMs: 500, maxMs: 30_000 },
    });
    const onChange = { onAdd: () => this.#kick(), onUpdate: () => this.#kick(), onDelete: () => this.#kick() };
    options.configMaps.addHandlers(onChange);
    options.secrets.addHandlers(onChange);
  }

  /** Call once both caches have synced: changes before then only filled the caches. */
  start(): void {
    this.#started = true;
    this.#runner.add(applyKey);
    this.#running = this.#runner.run(this.#stop.signal);
  }

  /** Waits for an apply in progress; schedules none after. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#runner.shutDown();
    await this.#running;
    await this.#emptying;
    this.#pruneLater?.cancel();
  }

  /**
   * The proxy can take traffic: it has served a config the controller wrote whole (every
   * binding the index counts), and the data plane runs. A replica that holds only some of
   * the binding objects serves those, but stays out of the Service until it holds them
   * all, so a rollout never trades a replica that serves every binding for one that does
   * not. Once it has, a newer index it is still catching up with does not take it out:
   * every replica gets each change at about the same moment, and failing them all
   * together would empty the Service on every change.
   */
  ready(): boolean {
    return this.#reported !== undefined && this.#options.dataPlane.running();
  }

  /** The data plane restarted on its own: compare what it serves with the manifest soon. */
  recheckSoon(): void {
    this.#recheckAt = 0;
    this.#kick();
  }

  /**
   * A change: applied at once when no pass started within the last debounceMs, else when
   * that window ends. A lone change (a rotation) waits for nothing; a burst (a cold
   * start, a controller writing a bundle and then its binding object) still costs at most
   * one pass per window, and changes that arrive during a pass make one more after it.
   */
  #kick(): void {
    if (this.#started) this.#runner.addAfter(applyKey, this.#lastPassAt + this.#debounceMs - this.#clock.now());
  }

  async #reconcile(): Promise<ReconcileResult> {
    this.#lastPassAt = this.#clock.now();
    try {
      // First, whatever this pass finds: a pass that ends early (a refused config, a
      // manifest it waits on) must not leave what is served off the disk, nor come back
      // at once to try again.
      if (this.#unpersisted && this.#persistWaitMs() === 0) await this.#persistServed();
      const result = await this.#sync();
      const after = earliest(result?.recheckAfterMs, this.#persistWaitMs());
      return after === undefined ? {} : { requeueAfterMs: after };
    } catch (err) {
      this.#failed(err);
      throw err;
    }
  }

  /** One pass: compare what the caches describe with what the data plane serves, and act. */
  async #sync(): Promise<ApplyResult | void> {
    const { namespace } = this.#options;
    const configMap = this.#options.configMaps.get(`${namespace}/${proxyConfigMapName}`);
    if (!configMap) return this.#wait(`ConfigMap ${proxyConfigMapName}`, undefined);
    const manifest = parseManifest(configMap);
    const input = `ConfigMap ${proxyConfigMapName} at resourceVersion ${configMap.metadata.resourceVersion ?? '?'}`;
    if (!manifest) return this.#reject(input, `ConfigMap ${proxyConfigMapName} has no readable ${manifestKey} (format ${manifestFormat})`);
    if (manifest.dataPlane !== this.#options.dataPlane.kind) {
      return this.#reject(
        input,
        `the config is rendered for ${String(manifest.dataPlane)}, and this proxy runs ${this.#options.dataPlane.kind}: run the controller and the agent with the same --data-plane`,
      );
    }
    const shared = readSharedFiles(manifest, configMap);
    if (!shared.ok) return 'waitingFor' in shared ? this.#wait(shared.waitingFor, manifest.hash) : this.#reject(input, shared.problem);
    const assembly = this.#options.assemble(shared.files, this.#heldBindings());
    if (!assembly.ok) return this.#reject(input, assembly.problem);
    const { config } = assembly;
    this.#noteLeftOut(assembly.leftOut);
    // What is rejected is this exact set of files: a change to any object is a new try.
    if (config.hash === this.#rejected) {
      this.#log.debug({ hash: config.hash }, 'the rejected config is unchanged; not trying it again');
      return;
    }
    this.#rejected = undefined;
    // The index says what the controller wrote; the config hash is only reported once the
    // agent serves exactly that, so a replica never claims a set the controller never made.
    this.#index = manifest.hash;
    // Served as they arrive: each binding object is whole on its own, so the bindings the
    // agent holds are served while it waits for the rest.
    if (config.hash !== manifest.hash) this.#wait('the binding objects the index counts', manifest.hash);
    if (config.hash === this.#applied?.hash) {
      // Back to what is served (after a rejected config, say): nothing to apply, but the
      // error reported for the newer config no longer holds.
      this.#applyError = undefined;
      this.#report();
      // The watch brought bytes again that change nothing (a relist, an edit back): the
      // store has them, or gets them now, and the heap lets them go.
      if (this.#options.dir.store.pending > 0) await this.#storePending();
      // A data plane that holds state in memory (HAProxy's runtime changes) is read back
      // and corrected now and then: level-triggered, whatever happened to it meanwhile.
      // When it asked, not on every pass that finds the config unchanged: at ten thousand
      // bindings a full read-back is most of a second, and the index alone changes with
      // every binding.
      const waitMs = this.#recheckAt - this.#clock.now();
      if (waitMs > 0) return { recheckAfterMs: waitMs };
      return this.#checked(await this.#options.dataPlane.recheck?.());
    }
    return this.#checked(await this.#apply(config, assembly.leftOut));
  }

  /** Remembers when the data plane wants its next look. */
  #checked(result: ApplyResult | undefined): ApplyResult | undefined {
    if (result?.recheckAfterMs !== undefined) this.#recheckAt = this.#clock.now() + result.recheckAfterMs;
    return result;
  }

  /**
   * Every usable binding object the cache holds (each was read and checked when it
   * arrived), with its bundles' files. A binding whose bundle has not arrived waits out of
   * the config: the controller writes a bundle before the first reference to it and the
   * watch delivers them in that order, so that happens only when a bundle was edited or
   * deleted by hand.
   */
  #heldBindings(): HeldBinding[] {
    const secrets = this.#options.secrets.list();
    const bundles = new Map<string, StoredFile>();
    for (const { read } of secrets) if (read.kind === 'bundle' && read.ok) bundles.set(read.file.sha256, read.file);
    const held: HeldBinding[] = [];
    const unusable = new Set<string>();
    const stamped = new Map<string, NonNullable<CredentialSecretLike['rotation']>>();
    this.#stamped = stamped;
    for (const secret of secrets) {
      const { read } = secret;
      const resolved = read.kind === 'binding' && read.ok ? this.#bundles.resolve(read, bundles) : undefined;
      if (read.kind === 'binding' && read.ok && resolved?.ok) {
        held.push({ contentHash: read.contentHash, part: resolved.part });
        if (secret.rotation) stamped.set(read.part.key, secret.rotation);
        continue;
      }
      if (read.ok && !resolved) continue;
      const id = `${secret.metadata.name}@${secret.metadata.resourceVersion ?? ''}`;
      unusable.add(id);
      if (this.#unusable.has(id)) continue;
      const reason = !read.ok ? read.problem : resolved && !resolved.ok ? `waiting for ${resolved.waitingFor}` : '';
      this.#log.warn(
        { secret: secret.metadata.name, reason },
        read.kind === 'bundle' ? 'a bundle object is unusable; the bindings that use it wait' : 'a binding object is unusable; that binding is left out',
      );
    }
    this.#unusable = unusable;
    return held;
  }

  #noteLeftOut(leftOut: readonly string[]): void {
    const text = leftOut.join('; ');
    if (text === this.#lastLeftOut) return;
    this.#lastLeftOut = text;
    if (leftOut.length > 0) this.#log.warn({ leftOut: leftOut.slice(0, 10), count: leftOut.length }, 'bindings left out of the config');
  }

  async #apply(config: AssembledConfig, leftOut: readonly string[]): Promise<ApplyResult> {
    const { dir } = this.#options;
    try {
      return await this.#applyStored(config, leftOut);
    } finally {
      // What this apply stored is on disk and, if it got that far, served: its bytes leave
      // the heap. What it did not store (a pass that failed first) stays pending.
      dir.store.release();
    }
  }

  async #applyStored(config: AssembledConfig, leftOut: readonly string[]): Promise<ApplyResult> {
    const { dir, dataPlane } = this.#options;
    const t0 = performance.now();
    const generation = generationName(config.hash);
    let counts: WriteCounts;
    let result: ApplyResult;
    let t1: number;
    let t2: number;
    let t3: number;
    let servedAt: number;
    if (dataPlane.appliesWithoutFiles?.(config)) {
      // The running server takes the change in memory: serve it now, and write the files
      // a restart would read at most persistDelayMs later. A restart in between reads the
      // generation before, and the next pass converges it again. Nothing here waits on
      // the file system first.
      t1 = t2 = performance.now();
      result = await dataPlane.apply({ config, generation });
      servedAt = Date.now();
      this.#unpersisted = { config, generation };
      if (this.#persistWaitMs() === 0) counts = await this.#persistServed();
      else counts = { written: 0, linked: 0, ...(await dir.store.store()) };
      t3 = performance.now();
    } else {
      const current = await dir.current();
      counts = await this.#writeGeneration(config, generation, current);
      t1 = performance.now();
      const verdict = await dataPlane.test(dir.generationPath(generation), config);
      t2 = performance.now();
      if (!verdict.ok) {
        if (current !== generation) await dir.remove(generation);
        this.#reject(config.hash, verdict.reason);
        return {};
      }
      await dir.point(generation);
      try {
        result = await dataPlane.apply({ config, generation });
        servedAt = Date.now();
      } catch (err) {
        if (dataPlane.rollsBack(err) && current !== generation) await dir.point(current);
        const reason = dataPlane.rejection?.(err);
        if (reason === undefined) throw err;
        if (current !== generation) await dir.remove(generation);
        this.#reject(config.hash, reason);
        return {};
      }
      t3 = performance.now();
      await this.#pointed(config, generation, current);
    }
    // Before #applied is set: the first apply of a process only learns what is served.
    this.#reportRotations(leftOut, servedAt, this.#applied === undefined);
    this.#applied = { hash: config.hash };
    this.#applyError = undefined;
    this.#options.metrics?.applies.inc({ result: 'applied' });
    this.#options.metrics?.applyDuration.observe((t3 - t0) / 1000);
    this.#options.metrics?.lastApplied.set(this.#clock.now() / 1000);
    this.#log.info(
      {
        hash: config.hash,
        complete: config.hash === this.#index,
        bindings: config.bindings,
        filesWritten: counts.written,
        filesLinked: counts.linked,
        objectsStored: counts.stored,
        ms: { write: round(t1 - t0), test: round(t2 - t1), reload: round(t3 - t2), total: round(t3 - t0) },
      },
      'config applied',
    );
    this.#report();
    return result;
  }

  /** How long until the config served from memory is due on disk; undefined when it is there. */
  #persistWaitMs(): number | undefined {
    if (!this.#unpersisted) return undefined;
    return Math.max(0, this.#persistedAt + this.#persistDelayMs - this.#clock.now());
  }

  /** Writes the generation of the config the data plane serves from memory, and makes it current. */
  async #persistServed(): Promise<WriteCounts> {
    const { config, generation } = this.#unpersisted!;
    const current = await this.#options.dir.current();
    const counts = await this.#writeGeneration(config, generation, current);
    await this.#options.dir.point(generation);
    await this.#pointed(config, generation, current);
    return counts;
  }

  async #writeGeneration(config: AssembledConfig, generation: string, current: string | undefined): Promise<WriteCounts> {
    const { dir } = this.#options;
    // Every file the cache holds bytes for, used by this config or not (a binding left
    // out now keeps its object for when it is served), once, before any link to it.
    const { stored } = await dir.store.store();
    // `current` is already this generation only when a previous run of the agent made
    // it so: it was validated and synced then, so it is reloaded as it is.
    if (current === generation) return { written: 0, linked: 0, stored };
    const persisted = this.#persisted;
    const counts = await dir.write(generation, config.files, persisted && persisted.generation === current ? persisted : undefined);
    return { ...counts, stored };
  }

  /**
   * `generation` is current now: the one before stays for a rollback, and anything older
   * is moved aside, before any other generation is written (retire renames every one it
   * does not keep), and removed off the path of the next change.
   */
  async #pointed(config: AssembledConfig, generation: string, current: string | undefined): Promise<void> {
    const identities = new Map<string, string>();
    for (const file of config.files) if ('content' in file) identities.set(file.path, fileIdentity(file));
    this.#persisted = { generation, identities };
    this.#persistedAt = this.#clock.now();
    this.#unpersisted = undefined;
    const retired = await this.#options.dir.retire([generation, current === generation ? undefined : current]).catch((err: unknown) => {
      this.#log.warn({ err: errorSummary(err) }, 'could not remove old generations; will try after the next apply');
      return [];
    });
    if (retired.length > 0) this.#emptyTrash();
  }

  /**
   * The rotations this apply served: each stamped binding whose source Secret version is
   * new to this agent, split into stages (rotationSplit), into the histogram and one log
   * line. The first apply of a process reports none: what it serves then was rotated
   * before it watched, and would count the agent's start as rotation time.
   */
  #reportRotations(leftOut: readonly string[], servedAt: number, first: boolean): void {
    const out = new Set(leftOut.map((l) => l.slice(0, l.indexOf(': '))));
    const reports: RotationReport[] = [];
    for (const [key, { stamps, watchedAt }] of this.#stamped) {
      if (out.has(key) || this.#reportedSource.get(key) === stamps.source) continue;
      this.#reportedSource.set(key, stamps.source);
      if (first) continue;
      const ms = rotationSplit(stamps, watchedAt, servedAt);
      for (const stage of rotationStages) this.#options.metrics?.rotationStage.observe({ stage }, ms[stage] / 1000);
      reports.push({ binding: key, source: stamps.source, ms, seenAt: stamps.times.seen, servedAt });
    }
    for (const key of this.#reportedSource.keys()) if (!this.#stamped.has(key)) this.#reportedSource.delete(key);
    if (reports.length > 0) this.#log.info({ count: reports.length, rotations: reports.slice(0, maxRotationsLogged) }, 'rotations served');
  }

  async #storePending(): Promise<void> {
    const { store } = this.#options.dir;
    try {
      await store.store();
    } finally {
      store.release();
    }
  }

  /** One removal at a time; one asked for meanwhile runs after it. */
  #emptyTrash(): void {
    this.#trashAgain = true;
    if (this.#emptying) return;
    this.#emptying = (async () => {
      while (this.#trashAgain) {
        this.#trashAgain = false;
        await this.#options.dir.emptyTrash().catch((err: unknown) => this.#log.warn({ err: errorSummary(err) }, 'could not remove retired generations'));
        // Then the objects only those generations linked: a look at every object (a stat
        // each, ten thousand at ten thousand bindings), so at most once per interval, and
        // one put off runs when the interval ends, so a removed binding's key does not
        // stay on disk for want of a next change.
        const waitMs = this.#prunedAt + objectPruneIntervalMs - this.#clock.now();
        if (waitMs > 0) {
          this.#pruneLater ??= this.#clock.setTimer(() => {
            this.#pruneLater = undefined;
            if (!this.#stop.signal.aborted) this.#emptyTrash();
          }, waitMs);
          continue;
        }
        this.#prunedAt = this.#clock.now();
        await this.#options.dir.store
          .prune(referencedObjects(this.#options.secrets.list()))
          .catch((err: unknown) => this.#log.warn({ err: errorSummary(err) }, 'could not remove unused objects'));
      }
      this.#emptying = undefined;
    })();
  }

  /** Not an error: the manifest names a Secret (version) the watch has not brought yet. */
  #wait(waitingFor: string, hash: string | undefined): void {
    const what = `${hash}:${waitingFor}`;
    if (what === this.#lastWait) return;
    this.#lastWait = what;
    this.#log.debug({ hash, waitingFor }, 'waiting for proxy objects; the last good config keeps serving');
  }

  /** The input cannot be applied as it is: report it and wait for it to change. */
  #reject(input: string, reason: string): void {
    this.#rejected = input;
    this.#applyError = reason;
    this.#options.metrics?.applies.inc({ result: 'rejected' });
    this.#log.warn({ input, reason, servingHash: this.#applied?.hash }, 'config rejected; the last good config keeps serving');
    this.#report();
  }

  /** Something that may work next time: report it; the runner retries with backoff. */
  #failed(err: unknown): void {
    this.#applyError = (err instanceof Error ? err.message : String(err)).slice(0, 300);
    this.#options.metrics?.applies.inc({ result: 'failed' });
    this.#log.warn({ err: errorSummary(err), servingHash: this.#applied?.hash }, 'config apply failed; retrying with backoff');
    this.#report();
  }

  #report(): void {
    // The last config the controller wrote that this replica served whole; a set the
    // agent assembled between two of the controller's writes is served, never reported.
    if (this.#applied && this.#applied.hash === this.#index) this.#reported = this.#applied.hash;
    this.#options.reporter.set({ appliedHash: this.#reported, applyError: this.#applyError });
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
