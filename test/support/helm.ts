// The chart as tests and `npm run generate` run it: the pinned helm (test/harness/tools.ts)
// with its config, cache and data kept in a temporary directory, never the user's.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { loadAll } from 'js-yaml';
import { findHelm } from '../harness/tools.ts';

const run = promisify(execFile);
export const repoRoot = resolve(import.meta.dirname, '../..');
export const chartDir = join(repoRoot, 'deploy/helm/mtls-egress');
/** The release name and namespace that deploy/ stands for, and that the README's `helm install` uses. */
export const releaseName = 'mtls-egress';
export const releaseNamespace = 'mtls-egress-system';

let home: string | undefined;

function helmEnv(): NodeJS.ProcessEnv {
  home ??= mkdtempSync(join(tmpdir(), 'mtls-egress-helm-home-'));
  return { ...process.env, HELM_CONFIG_HOME: join(home, 'config'), HELM_CACHE_HOME: join(home, 'cache'), HELM_DATA_HOME: join(home, 'data') };
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; resolves with its exit code and output whatever the code. */
export async function runHelm(args: readonly string[], options: { kubeConfigPath?: string } = {}): Promise<HelmResult> {
  const helm = await findHelm();
  const all = [...(options.kubeConfigPath ? ['--kubeconfig', options.kubeConfigPath] : []), ...args];
  return run(helm, all, { encoding: 'utf8', env: helmEnv(), cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );
}

/** `helm template` of the chart, as `helm install mtls-egress deploy/helm/mtls-egress -n mtls-egress-system ARGS` would apply it. */
export async function helmTemplate(args: readonly string[] = []): Promise<string> {
  const r = await runHelm(['template', releaseName, chartDir, '--namespace', releaseNamespace, ...args]);
  if (r.code !== 0) throw new Error(`helm template ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A rendered Kubernetes object, as far as the chart's tests read it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The objects of a multi-document YAML text (helm template, kubectl kustomize), empty documents dropped. */
export function parseManifests(text: string): Manifest[] {
  return (loadAll(text) as Array<Manifest | null>).filter((d): d is Manifest => d !== null && typeof d === 'object');
}

/** "Kind namespace/name", the identity two installs are compared by. */
export function objectId(m: Manifest): string {
  return `${m.kind} ${m.metadata.namespace ?? ''}/${m.metadata.name}`;
}
