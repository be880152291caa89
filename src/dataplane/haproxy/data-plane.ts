import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../log.ts';
import type { HeldFile } from '../../contract/proxy-objects.ts';
import type { ContentReader } from '../../proxy/content-store.ts';
import type { ApplyRequest, ApplyResult, DataPlane, TestResult } from '../../proxy/data-plane.ts';
import { currentLink } from '../../proxy/generations.ts';
import { hostForUrl } from '../../render/files.ts';
import { systemClock, type Clock } from '../../runner/clock.ts';
import { forEachLimited } from '../../runner/limited.ts';
import type { HaproxyConfig } from './assemble.ts';
import { haproxyConfigFile } from './paths.ts';
import {
  afterSteps,
  backendOf,
  changedBackends,
  convergenceProblems,
  countedBusy,
  leftoverStores,
  narrowTo,
  planHaproxy,
  replaceBackends,
  PlanMemo,
  touchedBackends,
  type DesiredHaproxy,
  type LiveHaproxy,
  type Step,
} from './plan.ts';
import type { ManagedHaproxy } from './process.ts';
import { expectAnswer, HaproxyError, type HaproxyRuntime } from './runtime.ts';
import {
  parseCertificateDetails,
  parseMapEntries,
  parseServersConn,
  parseServersState,
  parseStoreList,
  type LiveServer,
  type ServerConnections,
  type StoreList,
} from './state.ts';

// The HAProxy data plane: a binding added, removed or rotated is a runtime API change,
// never a reload. Each pass reads what HAProxy serves, plans the difference to the
// manifest (plan.ts, pure), applies it, and reads it back: only what HAProxy
// says it serves counts as applied. A reload happens only when the part of the config
// that no runtime command reaches (the skeleton: listener range, addresses) changes.
//
// At ten thousand bindings a full read-back is a few megabytes of listings and most of
// a second, so a change reads back only the backends it touches, planned against the
// picture the last pass left; the full read-back runs on the periodic recheck, and after
// anything that may have changed HAProxy behind the agent's back.

/** How often an applied config is compared with what HAProxy serves. */
const defaultRecheckMs = 30_000;
/** How soon to look again at servers draining their last requests. */
const drainRecheckMs = 1_000;
/** A change that touches more backends than this reads HAProxy back whole: fewer commands than one pair per backend. */
const maxDeltaBackends = 64;
/** Certificate files read at once from the content store. */
const readConcurrency = 16;
/** Backends whose listings share one runtime API line: well under its length limit with the longest names. */
const backendsPerLine = 32;
/** A listing refused while HAProxy's certificate lock is held (a commit from another session): asked again this often. */
const lockedAttempts = 20;
const lockedRetryMs = 25;

export interface HaproxyDataPlaneOptions {
  haproxy: ManagedHaproxy;
  /** The agent's config directory; HAProxy reads DIR/current. */
  configRoot: string;
  /** Where a binding file's bytes are (the agent's content store): a certificate's payload and its leaf's SHA-1 are read from it when needed. */
  contents: ContentReader;
  test: (generationDir: string) => Promise<TestResult>;
  recheckMs?: number;
  logger: Logger;
  onReload?: () => void;
  /** Each runtime change that took effect, by step ("add-server", "load-cert", ...). */
  onChange?: (op: Step['op']) => void;
  /** When the next full read-back is due (default: the system clock). */
  clock?: Clock;
}

/** HAProxy as the last converged pass left it. */
interface Known {
  live: LiveHaproxy;
  desired: DesiredHaproxy;
  /** Backends with servers still draining: looked at again on the next pass, changed or not. */
  draining: Set<string>;
  /** Certificates and CA files HAProxy holds that the manifest no longer uses (leftoverStores). */
  leftover: Set<string>;
}

interface Applied {
  desired: DesiredHaproxy;
  /** Bytes of a certificate or CA file by its path in the generation, as `set ssl cert` is given them: read when a step needs them, not for every file on every pass. */
  contents: (file: string) => Promise<string | undefined>;
  /** SHA-1 of each certificate's leaf, by HAProxy name, as `show ssl cert` prints it. */
  sha1: Map<string, string>;
}

export class HaproxyDataPlane implements DataPlane<HaproxyConfig> {
  readonly kind = 'haproxy';
  readonly configFile = haproxyConfigFile;
  readonly #o: HaproxyDataPlaneOptions;
  readonly #clock: Clock;
  readonly #runtime: HaproxyRuntime;
  readonly #log: Logger;
  readonly #storeDir: string;
  /** The skeleton the running HAProxy loaded; undefined until this agent started or reloaded it. */
  #skeleton: string | undefined;
  #applied: Applied | undefined;
  /** The leaf SHA-1 of each certificate file in use, by the file's sha256. */
  #leafSha1 = new Map<string, string>();
  /** Certificates read back and found as rendered, by name → SHA-1; forgotten when HAProxy restarts. */
  readonly #verified = new Map<string, string>();
  /**
   * What HAProxy held when the last pass converged, and the manifest it converged to:
   * read back whole by a full pass, then kept up to date by each delta pass (what it did,
   * and the backends it touched read back). Forgotten whenever HAProxy may hold something
   * else: a start, a reload, a restart, a pass that failed.
   */
  #known: Known | undefined;
  /** When the next full read-back is due. */
  #fullDueAt = 0;
  /** Certificates HAProxy refused to delete (see #execute); forgotten when it reads its config again. */
  readonly #undeletable = new Set<string>();
  /** Names and indexes planning makes, kept by the objects they were made from. */
  readonly #memo = new PlanMemo();

  constructor(options: HaproxyDataPlaneOptions) {
    this.#o = options;
    this.#runtime = options.haproxy.runtime;
    this.#log = options.logger.child({ component: 'haproxy-data-plane' });
    this.#storeDir = join(options.configRoot, currentLink);
    this.#clock = options.clock ?? systemClock;
    // A restarted HAProxy read the config on disk: what it holds must be read back.
    options.haproxy.onRestarted(() => this.#forget());
  }

  /**
   * haproxy -c when HAProxy will read this generation from disk: at a start, and at a
   * reload (the skeleton changed). A change the runtime API carries is checked by HAProxy
   * itself, command by command, and read back; the server lines and files it writes to
   * disk are the same bytes, so a later start reads a config HAProxy has accepted. That
   * saves a full parse of every certificate on every change (a quarter of a second at 50
   * bindings on a busy 2-core machine, seconds at thousands).
   */
  async test(generationDir: string, config: HaproxyConfig): Promise<TestResult> {
    if (this.#o.haproxy.running() && config.skeletonHash !== undefined && config.skeletonHash === this.#skeleton) return { ok: true };
    // A first start reads and checks every file as haproxy -c would, and at ten thousand
    // bindings each read is half of a new replica's time to serve (bench:scale): the start
    // is the test, and haproxy -c runs only to say why one failed (apply, rejection).
    // Not once HAProxy has run here: a restart after a crash is the supervisor's, from
    // `current`, and must never meet a generation nothing has checked.
    if (this.#firstStart()) return { ok: true };
    return this.#o.test(generationDir);
  }

  /** HAProxy has never served under this agent: nothing runs, and nothing will restart it but an apply. */
  #firstStart(): boolean {
    return !this.#o.haproxy.running() && this.#skeleton === undefined;
  }

  running(): boolean {
    return this.#o.haproxy.running();
  }

  /** Certificates and servers go in through the runtime API with their bytes: no file is read unless HAProxy starts or reloads. */
  appliesWithoutFiles(config: HaproxyConfig): boolean {
    return this.#o.haproxy.running() && config.skeletonHash !== undefined && config.skeletonHash === this.#skeleton;
  }

  stop(): Promise<void> {
    return this.#o.haproxy.stop();
  }

  /** A runtime change failed half-way: HAProxy serves a mix, which the next pass completes from `current`. */
  rollsBack(err: unknown): boolean {
    return err instanceof HaproxyError && (err.code === 'ERR_HAPROXY_RELOAD_FAILED' || err.code === 'ERR_HAPROXY_CONFIG_INVALID');
  }

  /** A first start that failed on a config haproxy -c refuses too. */
  rejection(err: unknown): string | undefined {
    return err instanceof HaproxyError && err.code === 'ERR_HAPROXY_CONFIG_INVALID' ? err.message : undefined;
  }

  async apply(request: ApplyRequest<HaproxyConfig>): Promise<ApplyResult> {
    const applied = await this.#desired(request);
    const skeleton = request.config.skeletonHash;
    const haproxy = this.#o.haproxy;
    // What a start, a reload or a restart after a crash reads from disk from now on.
    haproxy.certificatesToLoad(request.config.servers.length);
    if (!haproxy.running()) {
      // A cold start reads the whole config from disk: every binding served at once.
      const untested = this.#firstStart();
      await haproxy.start().catch(async (err: unknown) => {
        if (!untested) throw err;
        // The start was the test (see test()): a config haproxy -c refuses too is a
        // verdict, in the words of the start (-q keeps -c quiet about a file it cannot
        // load); a start that failed otherwise is tried again.
        const verdict = await this.#o.test(join(this.#o.configRoot, request.generation));
        if (verdict.ok) throw err;
        throw new HaproxyError('ERR_HAPROXY_CONFIG_INVALID', err instanceof HaproxyError ? err.message : verdict.reason);
      });
      this.#skeleton = skeleton;
      this.#forget();
    } else if (skeleton === undefined || skeleton !== this.#skeleton) {
      this.#log.info({ from: this.#skeleton?.slice(0, 12), to: skeleton?.slice(0, 12) }, 'the listener configuration changed: reloading HAProxy');
      await haproxy.reload();
      this.#o.onReload?.();
      this.#skeleton = skeleton;
      this.#forget();
    }
    this.#applied = applied;
    return this.#converge(applied, this.#known);
  }

  /** HAProxy read its config from disk: nothing known of it before holds. */
  #forget(): void {
    this.#verified.clear();
    this.#known = undefined;
    this.#undeletable.clear();
  }

  /**
   * A full read-back and correction of whatever drifted; only a look at the servers still
   * draining when that is all the last pass asked for and the full one is not due yet.
   * Nothing is resolved here: a partner that moves arrives as a new config with its new,
   * checked address (the controller resolves and checks), and the plan replaces the server.
   */
  async recheck(): Promise<ApplyResult> {
    const applied = this.#applied;
    if (!applied || !this.#o.haproxy.running()) return {};
    if (this.#known && this.#known.draining.size > 0 && this.#clock.now() < this.#fullDueAt) return this.#converge(applied, this.#known);
    return this.#converge(applied, undefined);
  }

  async #desired({ config }: ApplyRequest<HaproxyConfig>): Promise<Applied> {
    const servers = config.servers;
    const sha1 = new Map<string, string>();
    const known = new Map<string, string>();
    const store = this.#o.contents;
    // Parsing ten thousand certificates on every pass cost more than the pass: the leaf's
    // SHA-1 is kept by the file's digest for as long as the file is in use, and only a new
    // digest's bytes are read: from memory while they wait to be stored, else from the
    // store, several at a time (a new replica reads them all).
    const unseen = new Map<string, HeldFile>();
    for (const server of servers) {
      const file = config.file(server.certificateFile);
      if (file && !this.#leafSha1.has(file.sha256)) unseen.set(file.sha256, file);
    }
    await forEachLimited([...unseen.values()], readConcurrency, async (file) => {
      known.set(file.sha256, leafSha1(await store.read(file)));
    });
    for (const server of servers) {
      const { certificate } = this.#memo.storeNames(server, this.#storeDir);
      const digest = config.file(server.certificateFile)?.sha256 ?? '';
      // Never equal to what HAProxy prints: a binding with no certificate file is reported as not served.
      const leaf = known.get(digest) ?? this.#leafSha1.get(digest) ?? '';
      known.set(digest, leaf);
      sha1.set(certificate, leaf);
    }
    this.#leafSha1 = known;
    // Not the whole config: once written, its rendered files (a 4 MB haproxy.cfg at ten
    // thousand bindings) need not live as long as this pass's picture. Nor any bytes: a
    // step that needs a certificate reads it then.
    const file = config.file;
    const contents = async (path: string): Promise<string | undefined> => {
      const held = file(path);
      return held === undefined ? undefined : withoutBlankLines(await store.read(held));
    };
    return { desired: { storeDir: this.#storeDir, servers, maps: config.maps }, contents, sha1 };
  }

  /**
   * read → plan → act → read back. Throws when HAProxy does not serve the manifest
   * afterwards. With a picture of HAProxy from the last pass (`known`), only the backends
   * the change touches are read, planned and checked; without one, all of it.
   */
  async #converge(applied: Applied, known: Known | undefined): Promise<ApplyResult> {
    // Unknown until this pass converges: a pass that fails part-way leaves HAProxy in a
    // state only a full read-back knows.
    this.#known = undefined;
    const t0 = performance.now();
    const { desired } = applied;
    const scope = known ? changedBackends(known.desired, desired, known.draining, this.#memo) : undefined;
    const full = !known || !scope || scope.size > maxDeltaBackends;
    // A backend with a server draining is read fresh, so the plan deletes what holds no
    // connection any more. The others are planned on the picture the last pass read back,
    // every server counted busy: such a plan adds, enables and takes out of service but
    // deletes nothing, and what it takes out is deleted by the drain pass a second later,
    // which reads it fresh. What it did is read back below either way. That is one round
    // trip less for a rotation, on a replica where each waits for HAProxy's threads.
    let live = full
      ? await this.#readLive(desired)
      : await this.#withBackends(
          countedBusy(known.live, new Set([...scope].filter((b) => !known.draining.has(b)))),
          new Set([...scope].filter((b) => known.draining.has(b))),
        );
    const view = (state: LiveHaproxy): { desired: DesiredHaproxy; live: LiveHaproxy } =>
      full ? { desired, live: state } : narrowTo(scope, known.desired, desired, state, known.leftover, this.#memo);
    let seen = view(live);
    const planned = planHaproxy(seen.desired, seen.live, this.#memo);
    // What HAProxy refused to delete is not asked again (see #execute).
    const plan = { ...planned, steps: planned.steps.filter((s) => !((s.op === 'del-cert' || s.op === 'del-ca') && this.#undeletable.has(s.name))) };
    const t1 = performance.now();
    let loaded: Map<string, boolean> | undefined;
    if (plan.steps.length > 0) {
      const done = await this.#execute(plan.steps, applied);
      const t2 = performance.now();
      if (full) live = await this.#readLive(desired);
      else {
        // A delta read-back lists servers only, so the certificates are read back beside
        // it; a full one lists the stores, whose lock a second listing would find held.
        [live, loaded] = await Promise.all([this.#withBackends(afterSteps(live, done, this.#memo), touchedBackends(plan)), this.#checkCertificates(applied)]);
      }
      seen = view(live);
      const ops: Record<string, number> = {};
      for (const step of plan.steps) ops[step.op] = (ops[step.op] ?? 0) + 1;
      const ms = { readAndPlan: round(t1 - t0), execute: round(t2 - t1), readBack: round(performance.now() - t2) };
      this.#log.debug(
        { full, backends: full ? undefined : scope.size, steps: plan.steps.length, ops, done: done.length, draining: plan.draining.length, ms },
        'runtime changes applied',
      );
    }
    loaded ??= await this.#checkCertificates(applied);
    const problems = convergenceProblems(seen.desired, seen.live, loaded, this.#memo);
    if (problems.length > 0) {
      throw new HaproxyError(
        'ERR_HAPROXY_NOT_CONVERGED',
        `HAProxy does not serve the manifest: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ''}`,
      );
    }
    this.#known = { live, desired, draining: new Set(plan.draining.map(backendOf)), leftover: leftoverStores(seen.desired, seen.live, this.#memo) };
    const now = this.#clock.now();
    if (full) this.#fullDueAt = now + (this.#o.recheckMs ?? defaultRecheckMs);
    return { recheckAfterMs: plan.draining.length > 0 ? drainRecheckMs : Math.max(0, this.#fullDueAt - now) };
  }

  /**
   * `live` with the servers of these backends as HAProxy prints them now: every backend's
   * two listings chained on one connection (a few dozen backends a line), not a round trip
   * each. Under churn a pass's scope holds every backend still draining, and one after the
   * other they were half of a pass.
   */
  async #withBackends(live: LiveHaproxy, backends: ReadonlySet<string>): Promise<LiveHaproxy> {
    const servers: LiveServer[] = [];
    const connections = new Map<string, ServerConnections>();
    const all = [...backends];
    for (let i = 0; i < all.length; i += backendsPerLine) {
      const commands = all.slice(i, i + backendsPerLine).flatMap((backend) => [`show servers state ${backend}`, `show servers conn ${backend}`]);
      const answers = await this.#runtime.chain(commands);
      for (let j = 0; j < answers.length; j += 2) {
        servers.push(...parseServersState(withEnd(answers[j]!)));
        for (const [key, value] of parseServersConn(withEnd(answers[j + 1]!))) connections.set(key, value);
      }
    }
    return replaceBackends(live, backends, { servers, connections });
  }

  async #readLive(desired: DesiredHaproxy): Promise<LiveHaproxy> {
    const r = this.#runtime;
    const [servers, connections] = await Promise.all([r.run('show servers state').then(parseServersState), r.run('show servers conn').then(parseServersConn)]);
    // One after the other: each takes HAProxy's certificate lock, and a listing that finds
    // it held is refused, not waited for.
    const certificates = await this.#storeList('show ssl cert');
    const caFiles = await this.#storeList('show ssl ca-file');
    const maps = new Map<string, Map<string, string>>();
    for (const file of desired.maps.keys()) {
      const name = `${desired.storeDir}/${file}`;
      maps.set(name, parseMapEntries(await r.run(`show map ${name}`)));
    }
    return { servers, connections, certificates, caFiles, maps };
  }

  async #storeList(command: string): Promise<StoreList> {
    for (let attempt = 1; ; attempt++) {
      const list = parseStoreList(await this.#runtime.run(command));
      if (list) return list;
      if (attempt === lockedAttempts) {
        throw new HaproxyError(
          'ERR_HAPROXY_COMMAND_FAILED',
          `HAProxy refused "${command}" ${lockedAttempts} times: its certificates are locked by another session`,
        );
      }
      await sleep(lockedRetryMs);
    }
  }

  /** Reads back each certificate not yet seen as rendered: the proof that a binding's identity is what HAProxy presents. */
  async #checkCertificates(applied: Applied): Promise<Map<string, boolean>> {
    const result = new Map<string, boolean>();
    const unseen: string[] = [];
    for (const [name, expected] of applied.sha1) {
      if (this.#verified.get(name) === expected) result.set(name, true);
      else unseen.push(name);
    }
    // All of them after a start: one connection per few dozen, not one each, and each
    // connection's answers (a few hundred kilobytes) parsed as they come.
    const details = new Map<string, { sha1: string }>();
    for await (const answers of this.#runtime.runAll(unseen.map((name) => `show ssl cert ${name}`))) {
      for (const [name, detail] of parseCertificateDetails(answers)) details.set(name, detail);
    }
    for (const name of unseen) {
      const expected = applied.sha1.get(name)!;
      const ok = details.get(name)?.sha1 === expected;
      if (ok) this.#verified.set(name, expected);
      result.set(name, ok);
    }
    return result;
  }

  /**
   * Returns the steps that took effect; a step HAProxy refuses for now (a server still busy)
   * waits for the next pass. Pairs whose second command may run whatever the first
   * answered go on one connection (HaproxyRuntime.chain): a store created and filled, a
   * server added and enabled, a server taken out and deleted. A certificate is committed
   * alone, before any server may use it.
   */
  async #execute(steps: readonly Step[], applied: Applied): Promise<Step[]> {
    const r = this.#runtime;
    const done: Step[] = [];
    // A server that took a request since the plan is not deleted, and may use the
    // certificate and CA file the plan deletes after it (see planHaproxy).
    let serverKept = false;
    /** The step whose command went out with the one before it, and its answer. */
    let ranWith: { step: Step; answer: string } | undefined;
    for (const [i, step] of steps.entries()) {
      const next = steps[i + 1];
      const sameServer = (s: Step | undefined): boolean =>
        s !== undefined && 'server' in s && 'server' in step && s.backend === step.backend && s.server === step.server;
      const answered = ranWith?.step === step ? ranWith.answer : undefined;
      switch (step.op) {
        case 'abort-cert':
          await r.run(`abort ssl cert ${step.name}`);
          break;
        case 'abort-ca':
          await r.run(`abort ssl ca-file ${step.name}`);
          break;
        case 'load-ca': {
          const commands = [`new ssl ca-file ${step.name}`, `set ssl ca-file ${step.name}`];
          const [created, set] = await r.chain(commands, await applied.contents(step.file));
          expectAnswer(commands[0]!, created!, /New CA file created|already exists/);
          expectAnswer(commands[1]!, set!, /transaction created|transaction updated/i);
          await r.expect(`commit ssl ca-file ${step.name}`, /Success!/);
          break;
        }
        case 'load-cert': {
          this.#verified.delete(step.name);
          const commands = [`new ssl cert ${step.name}`, `set ssl cert ${step.name}`];
          const [created, set] = await r.chain(commands, await applied.contents(step.file));
          expectAnswer(commands[0]!, created!, /New empty certificate store|already exists/);
          expectAnswer(commands[1]!, set!, /transaction created|transaction updated/i);
          await r.expect(`commit ssl cert ${step.name}`, /Success!/);
          break;
        }
        case 'add-server': {
          const add = `add server ${step.backend}/${step.server} ${hostForUrl(step.address)}:${step.port} ${step.args.join(' ')}`;
          if (next?.op === 'enable-server' && sameServer(next)) {
            // Enabling a server that was not added answers "No such server": refused below.
            const [added, enabled] = await r.chain([add, `enable server ${step.backend}/${step.server}`]);
            expectAnswer(add, added!, /New server registered/);
            ranWith = { step: next, answer: enabled! };
          } else {
            await r.expect(add, /New server registered/);
          }
          break;
        }
        case 'enable-server':
        case 'disable-server': {
          const command = `${step.op === 'enable-server' ? 'enable' : 'disable'} server ${step.backend}/${step.server}`;
          if (answered !== undefined) {
            expectAnswer(command, answered, /^\s*$/);
          } else if (step.op === 'disable-server' && next?.op === 'del-server' && sameServer(next)) {
            const [disabled, deleted] = await r.chain([command, `del server ${step.backend}/${step.server}`]);
            expectAnswer(command, disabled!, /^\s*$/);
            ranWith = { step: next, answer: deleted! };
          } else {
            await r.expect(command, /^\s*$/);
          }
          break;
        }
        case 'del-server':
          // Refused while a request still runs on it: deleted on a later pass.
          if (!/Server deleted/.test(answered ?? (await r.run(`del server ${step.backend}/${step.server}`)))) {
            serverKept = true;
            continue;
          }
          break;
        case 'map-add':
        case 'map-set':
          await r.expect(`${step.op === 'map-add' ? 'add' : 'set'} map ${step.map} ${step.key} ${step.value}`, /^\s*$/);
          break;
        case 'map-del':
          await r.expect(`del map ${step.map} ${step.key}`, /^\s*$|Key not found/);
          break;
        case 'del-cert':
        case 'del-ca':
          // "Certificate 'x' deleted!"; a refusal says "in use, can't be deleted!": a
          // server HAProxy still holds uses it (one whose deletion was refused above, or
          // one this agent did not make). It goes with the next reload.
          // Planned only once no server drains, so a refusal lasts until HAProxy reads
          // its config again: not asked again on every pass until then.
          if (serverKept) continue;
          if (!/' deleted!/.test(await r.run(`del ssl ${step.op === 'del-cert' ? 'cert' : 'ca-file'} ${step.name}`))) {
            this.#undeletable.add(step.name);
            continue;
          }
          break;
      }
      done.push(step);
      this.#o.onChange?.(step.op);
    }
    return done;
  }
}

/**
 * PEM as a runtime API payload: the API ends a payload at its first empty line, and a
 * CA bundle pasted on Windows has CRLF line ends; PEM parsers skip both anyway.
 */
function withoutBlankLines(pem: string): string {
  return pem
    .split(/\r?\n|\r/)
    .filter((line) => line.trim() !== '')
    .join('\n');
}

/**
 * SHA-1 of the first certificate in a PEM file, as HAProxy prints it (upper-case hex, no
 * colons): the digest of its DER, the PEM block's base64. Not parsed: ten thousand
 * X509Certificate objects were most of a second of a new replica's start, and native
 * memory V8 did not count.
 */
function leafSha1(pem: string): string {
  const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1];
  // Never equal to what HAProxy prints: the binding is reported as not served.
  if (body === undefined || !/^[A-Za-z0-9+/=\s]+$/.test(body)) return '';
  return createHash('sha1').update(Buffer.from(body, 'base64')).digest('hex').toUpperCase();
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** A chained answer as the parsers know a listing: its lines, each ended. */
function withEnd(answer: string): string {
  return answer === '' ? '' : `${answer}\n`;
}
