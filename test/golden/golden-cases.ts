import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { load } from 'js-yaml';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import type { RenderedConfig } from '../../src/render/files.ts';

// What the renderers' golden tests share: <case>.in.yaml holds routes (with fake PEM
// text: a renderer never parses it) and options; <case>.out.conf holds every rendered
// file. Regenerate with UPDATE_GOLDEN=1 and review the diff like code.

interface GoldenInput<O> {
  options: O;
  routes: Array<Omit<EgressRoute, 'clientCertificate'> & { clientCertificate: Omit<EgressRoute['clientCertificate'], 'privateKey'> & { privateKey: string } }>;
}

export function goldenCases(dir: URL): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.in.yaml'))
    .map((f) => f.slice(0, -'.in.yaml'.length))
    .sort();
}

export function loadGoldenCase<O>(dir: URL, name: string): { routes: EgressRoute[]; options: O } {
  const input = load(readFileSync(new URL(`${name}.in.yaml`, dir), 'utf8')) as GoldenInput<O>;
  const routes = input.routes.map((r) => ({
    ...r,
    clientCertificate: { ...r.clientCertificate, privateKey: new Sensitive(r.clientCertificate.privateKey) },
  }));
  return { routes, options: input.options };
}

/** Every file in one reviewable text: the main config first, then the rest by path. */
function formatGolden(rendered: RenderedConfig, mainFile: string): string {
  const sections = [`# sha256 ${rendered.hash}`];
  const ordered = [...rendered.files.filter((f) => f.path === mainFile), ...rendered.files.filter((f) => f.path !== mainFile)];
  for (const file of ordered) sections.push(`#### ${file.path} (mode ${file.mode.toString(8).padStart(4, '0')})\n${file.content}`);
  return sections.join('\n');
}

/** Compares (or with UPDATE_GOLDEN=1 rewrites) <case>.out.conf. */
export function assertGolden(dir: URL, name: string, rendered: RenderedConfig, mainFile: string): void {
  const actual = formatGolden(rendered, mainFile);
  const outUrl = new URL(`${name}.out.conf`, dir);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(outUrl, actual);
  assert.equal(actual, readFileSync(outUrl, 'utf8'), `${name}.out.conf differs; rerun with UPDATE_GOLDEN=1 if the change is intended`);
}
