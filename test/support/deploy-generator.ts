// The Helm chart is the one source of the objects the operator installs; deploy/ (the
// kustomize base) is rendered from it. `npm run generate` writes, and the chart's test
// fails on any difference:
//
// - deploy/<template>.yaml for each template in deploy/helm/mtls-egress/templates/ (but
//   crds.yaml), from `helm template` with the chart's default values, comments kept;
// - deploy/helm/mtls-egress/files/crds/*, byte copies of crds/, the CRD's own source
//   (the harness, `kubectl apply -f crds/`, the npm package and deploy/ read it there).
//
// Hand-written, not generated: deploy/kustomization.yaml, deploy/namespace.yaml (Helm
// installs into a namespace that exists; kustomize users get it from deploy/), deploy/samples/,
// and the deploy/data-plane-nginx/ component (the chart's dataPlane=nginx; the chart test
// compares the two).
//
//   node test/support/deploy-generator.ts           write the files
//   node test/support/deploy-generator.ts --check   exit 1 and name every file that differs
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { chartDir, helmTemplate, repoRoot } from './helm.ts';

/** Templates whose objects deploy/ takes from elsewhere: the CRD comes from crds/ as a kustomize base. */
const notInDeploy = new Set(['crds.yaml']);

export interface RenderedDocument {
  /** The template it came from, relative to the chart's templates/: "controller.yaml". */
  template: string;
  /** The document's text without helm's "# Source:" line, comments kept. */
  text: string;
}

/** Splits `helm template` output into its documents, each with the template that made it. */
export function splitRendered(output: string): RenderedDocument[] {
  const documents: RenderedDocument[] = [];
  for (const chunk of output.split(/^---[ \t]*$/m)) {
    const source = /^# Source: [^/\n]+\/templates\/(.+)$/m.exec(chunk);
    if (!source) continue;
    const text = chunk
      .replace(source[0], '')
      .replace(/^\s*\n/, '')
      .trimEnd();
    if (!/^[^#\s]/m.test(text)) continue;
    documents.push({ template: source[1]!, text });
  }
  return documents;
}

/**
 * Helm prints objects in its install order (by kind); a generated file keeps its
 * template's order instead, so deploy/controller.yaml reads like the template: the
 * Deployment first, then its PodDisruptionBudget and Service.
 */
function inTemplateOrder(template: string, documents: RenderedDocument[]): RenderedDocument[] {
  const source = readFileSync(join(chartDir, 'templates', template), 'utf8');
  const position = (d: RenderedDocument): number => {
    const kind = /^kind: (\S+)/m.exec(d.text)?.[1];
    const at = kind === undefined ? -1 : source.search(new RegExp(`^kind: ${kind}$`, 'm'));
    return at < 0 ? Number.MAX_SAFE_INTEGER : at;
  };
  return documents
    .map((d, i) => ({ d, i, at: position(d) }))
    .sort((a, b) => a.at - b.at || a.i - b.i)
    .map(({ d }) => d);
}

function header(template: string): string {
  return [
    `# Generated from deploy/helm/mtls-egress/templates/${template} with the chart's default values`,
    '# by `npm run generate`: edit the chart, not this file (the chart test fails on drift).',
  ].join('\n');
}

/** Every generated file, by path relative to the repository, with the content it must have. */
export async function generatedFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const byTemplate = new Map<string, RenderedDocument[]>();
  for (const document of splitRendered(await helmTemplate())) {
    if (notInDeploy.has(document.template)) continue;
    byTemplate.set(document.template, [...(byTemplate.get(document.template) ?? []), document]);
  }
  for (const [template, documents] of [...byTemplate].sort(([a], [b]) => a.localeCompare(b))) {
    const body = inTemplateOrder(template, documents)
      .map((d) => d.text)
      .join('\n---\n');
    files.set(join('deploy', template), `${header(template)}\n\n${body}\n`);
  }
  for (const name of readdirSync(join(repoRoot, 'crds')).filter((n) => /\.ya?ml$/.test(n))) {
    files.set(relative(repoRoot, join(chartDir, 'files/crds', name)), readFileSync(join(repoRoot, 'crds', name), 'utf8'));
  }
  return files;
}

/** The generated files whose content on disk differs from what the chart renders now. */
export async function driftedFiles(): Promise<string[]> {
  const drifted: string[] = [];
  for (const [path, content] of await generatedFiles()) {
    let current: string | undefined;
    try {
      current = readFileSync(join(repoRoot, path), 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== content) drifted.push(path);
  }
  return drifted;
}

if (import.meta.main) {
  if (process.argv.includes('--check')) {
    const drifted = await driftedFiles();
    for (const path of drifted) process.stderr.write(`generate: ${path} differs from what the chart renders; run npm run generate\n`);
    process.exitCode = drifted.length === 0 ? 0 : 1;
  } else {
    for (const [path, content] of await generatedFiles()) {
      writeFileSync(join(repoRoot, path), content);
      process.stderr.write(`generate: wrote ${path}\n`);
    }
  }
}
