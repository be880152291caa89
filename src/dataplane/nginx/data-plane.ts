import type { ApplyResult, DataPlane, TestResult } from '../../proxy/data-plane.ts';
import { NginxError, type NginxControl } from './control.ts';
import { nginxConfigFile } from './paths.ts';

// nginx as the agent's process driver.

/** nginx: every change is a new generation and a reload; nothing lives only in memory. */
export class NginxDataPlane implements DataPlane {
  readonly kind = 'nginx';
  readonly configFile = nginxConfigFile;
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
