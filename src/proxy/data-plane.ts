import { NginxError, type NginxControl, type NginxTestResult } from './nginx-control.ts';
import type { AssembledConfig } from './assemble.ts';

// What the agent needs of a data plane, whichever it is. The agent owns the config
// directory (generations, `current`) and the reports; a data plane validates a
// generation, makes the server serve it, and says whether it does.

export type TestResult = NginxTestResult;

export interface ApplyRequest {
  config: AssembledConfig;
  /** The generation directory `current` now points at. */
  generation: string;
}

export interface ApplyResult {
  /** Look again after this long: something is still draining, or a periodic check is due. */
  recheckAfterMs?: number;
}

export interface DataPlane {
  readonly kind: 'nginx' | 'haproxy';
  /** The file of a generation the server runs from. */
  readonly configFile: string;
  /**
   * Validates a generation on disk before it becomes current (nginx -t, haproxy -c): a
   * verdict on the config, or a thrown error when the check could not run.
   */
  test(generationDir: string, config: AssembledConfig): Promise<TestResult>;
  /** Makes the server serve `current`, which points at request.generation; resolves once it does. */
  apply(request: ApplyRequest): Promise<ApplyResult>;
  /**
   * Whether the running server takes this config without reading the generation from
   * disk (HAProxy's runtime API, the listener skeleton unchanged): the agent then applies
   * first and writes the generation after, so the files a restart would read are not on
   * the path between a change and the partner seeing it.
   */
  appliesWithoutFiles?(config: AssembledConfig): boolean;
  /** Compares what the server serves with the last config applied and corrects any drift (level-triggered); absent when a reload leaves nothing to drift. */
  recheck?(): Promise<ApplyResult>;
  /** After a failed apply: whether `current` should point back at the previous generation, which the server still serves whole. */
  rollsBack(err: unknown): boolean;
  running(): boolean;
  stop(): Promise<void>;
}

/** nginx: every change is a new generation and a reload; nothing lives only in memory. */
export class NginxDataPlane implements DataPlane {
  readonly kind = 'nginx';
  readonly configFile = 'nginx.conf';
  readonly #test: (confPath: string) => Promise<TestResult>;
  readonly #nginx: NginxControl;
  readonly #onReload: (() => void) | undefined;

  constructor(options: { test: (confPath: string) => Promise<TestResult>; nginx: NginxControl; onReload?: () => void }) {
    this.#test = options.test;
    this.#nginx = options.nginx;
    this.#onReload = options.onReload;
  }

  test(generationDir: string): Promise<TestResult> {
    return this.#test(`${generationDir}/${this.configFile}`);
  }

  async apply(): Promise<ApplyResult> {
    // Waits until nginx runs the new generation. Only then may the next apply swap
    // `current` again: nginx reads nginx.conf and the certificates through the symlink,
    // and must not see one generation's nginx.conf and another's files.
    const reload = this.#nginx.running();
    await this.#nginx.apply();
    if (reload) this.#onReload?.();
    return {};
  }

  rollsBack(err: unknown): boolean {
    // nginx still runs what `current` pointed at before; point back at it, so that a
    // restart does not pick up a config nginx could not take. Not when nginx is merely
    // not running (yet): it should start with the new config.
    return !(err instanceof NginxError && err.code === 'ERR_NGINX_NOT_RUNNING');
  }

  running(): boolean {
    return this.#nginx.running();
  }

  stop(): Promise<void> {
    return this.#nginx.stop();
  }
}
