import type { HeldFile, HeldPart, ProxyFile } from '../contract/proxy-objects.ts';

// What the agent needs of a data plane, whichever it is. The agent owns the config
// directory (generations, `current`) and the reports; a data plane's driver
// (src/dataplane/<plane>/) assembles the objects it holds into the config the server
// runs, and its process driver validates a generation, makes the server serve it, and
// says whether it does.

/** A server's verdict on a config: nginx -t, haproxy -c. */
export type TestResult = { ok: true } | { ok: false; reason: string };

/** The file set a data plane applies, and what identifies it; a plane's assembly may add what its process driver needs. */
export interface AssembledConfig {
  /** configDigest over what was used: equal to the index's hash when the agent holds exactly what the controller wrote. */
  hash: string;
  /** The kind of data plane (src/dataplane/registry.ts). */
  dataPlane: string;
  /**
   * Every file of the generation, sorted by path. A binding's certificate, key and CA
   * bundle are StoredFiles in the agent: their bytes are in the content store, not here.
   */
  readonly files: HeldFile[];
  /** A shared or binding file by path, without rendering the whole set; holds nothing else of the config. */
  file: (path: string) => HeldFile | undefined;
  bindings: number;
}

/** A binding object the agent holds, read and checked as the contract reads it. */
export interface HeldBinding {
  contentHash: string;
  part: HeldPart<HeldFile>;
}

/** The config, and the bindings left out of it (each with why); or why no config can be made. */
export type Assembly<Config extends AssembledConfig = AssembledConfig> = { ok: true; config: Config; leftOut: string[] } | { ok: false; problem: string };

/**
 * The shared files and every binding object the agent holds → the config the server runs.
 * What it returns depends on its arguments alone; a plane may keep a cache in it (one per
 * agent, made by the plane's driver) so a pass at ten thousand bindings redoes only what
 * changed.
 */
export type Assembler<Config extends AssembledConfig = AssembledConfig> = (shared: readonly ProxyFile[], held: readonly HeldBinding[]) => Assembly<Config>;

export interface ApplyRequest<Config extends AssembledConfig = AssembledConfig> {
  config: Config;
  /** The generation directory `current` now points at. */
  generation: string;
}

export interface ApplyResult {
  /** Look again after this long: something is still draining, or a periodic check is due. */
  recheckAfterMs?: number;
}

export interface DataPlane<Config extends AssembledConfig = AssembledConfig> {
  /** The kind of data plane (src/dataplane/registry.ts): the manifest's must be the same. */
  readonly kind: string;
  /** The file of a generation the server runs from. */
  readonly configFile: string;
  /**
   * Validates a generation on disk before it becomes current (nginx -t, haproxy -c): a
   * verdict on the config, or a thrown error when the check could not run. A plane may
   * leave it to apply, when what apply does reads and checks every file anyway (see
   * rejection).
   */
  test(generationDir: string, config: Config): Promise<TestResult>;
  /** Makes the server serve `current`, which points at request.generation; resolves once it does. */
  apply(request: ApplyRequest<Config>): Promise<ApplyResult>;
  /**
   * Whether the running server takes this config without reading the generation from
   * disk (HAProxy's runtime API, the listener skeleton unchanged): the agent then applies
   * first and writes the generation after, so the files a restart would read are not on
   * the path between a change and the partner seeing it.
   */
  appliesWithoutFiles?(config: Config): boolean;
  /** Compares what the server serves with the last config applied and corrects any drift (level-triggered); absent when a reload leaves nothing to drift. */
  recheck?(): Promise<ApplyResult>;
  /** After a failed apply: whether `current` should point back at the previous generation, which the server still serves whole. */
  rollsBack(err: unknown): boolean;
  /**
   * After a failed apply: the server's verdict on the config, when the apply found the
   * config itself wrong (a start that was also the test); the agent reports it and does
   * not try that config again. Undefined for a failure that may pass next time.
   */
  rejection?(err: unknown): string | undefined;
  running(): boolean;
  stop(): Promise<void>;
}
