import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';

// Boundaries the import rules cannot see (eslint.config.js guards the imports). Only the
// data-plane folder asks which plane it is: everything else takes a DataPlaneKind and
// looks its driver up in src/dataplane/registry.ts.

const src = resolve(import.meta.dirname, '../../src');
/** The registry, the driver interface and each plane's own folder. */
const dataPlaneFolder = 'dataplane/';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const plane = String.raw`(['"\x60])(?:nginx|haproxy)\1`;
/** A comparison with a plane's name, either operand order, strict or loose, or a switch case on it. */
const asksWhichPlane = new RegExp(String.raw`[!=]==?\s*${plane}|${plane.replace('\\1', '\\2')}\s*[!=]==?|\bcase\s+${plane.replace('\\1', '\\3')}`);
/** The union of plane names, written out instead of named DataPlaneKind. */
const spelledUnion = /(['"])(?:nginx|haproxy)\1\s*\|\s*(['"])(?:nginx|haproxy)\2/;

/** Lines of src/ outside the data-plane folder that match `pattern`, as "file:line: text". */
function findOutsideDataPlanes(pattern: RegExp): string[] {
  const found: string[] = [];
  for (const file of sourceFiles(src)) {
    const path = relative(src, file);
    if (path.startsWith(dataPlaneFolder)) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (pattern.test(line)) found.push(`src/${path}:${i + 1}: ${line.trim()}`);
      });
  }
  return found;
}

describe('one driver per data plane', () => {
  test('the patterns find what they are for', () => {
    for (const line of [
      "if (kind === 'haproxy')",
      'if (kind !== "nginx")',
      "if ('haproxy' === kind)",
      'if ("nginx" !== kind)',
      'x == `haproxy`',
      "case 'nginx':",
    ])
      assert.match(line, asksWhichPlane, line);
    for (const line of ["kind === 'none'", "dataPlanes['haproxy']", "'nginx-binary': { type: 'string' }", "name: 'haproxy',"])
      assert.doesNotMatch(line, asksWhichPlane, line);
    assert.match("dataPlane: 'nginx' | 'haproxy';", spelledUnion);
  });

  test("nothing outside src/dataplane/ asks which plane it is: it looks the kind's driver up", () => {
    assert.deepEqual(findOutsideDataPlanes(asksWhichPlane), [], 'use dataPlanes[kind] (src/dataplane/registry.ts) and add what differs to the driver');
  });

  test('the kinds are named once, as DataPlaneKind', () => {
    assert.deepEqual(findOutsideDataPlanes(spelledUnion), [], "write DataPlaneKind (src/dataplane/registry.ts), not 'nginx' | 'haproxy'");
  });
});

describe('the proxy never resolves a name', () => {
  /** An import or require of node's resolver, in any spelling. */
  const dnsImport = /(?:from\s+|import\s*\(\s*|require\s*\(\s*)(['"`])(?:node:)?dns(?:\/promises)?\1/;

  test('the pattern finds what it is for', () => {
    for (const line of ["import { lookup } from 'node:dns/promises';", 'import dns from "dns";', "const dns = await import('node:dns');", "require('dns')"])
      assert.match(line, dnsImport, line);
    assert.doesNotMatch("import { isIP } from 'node:net';", dnsImport);
  });

  test('nothing under src/dataplane/ or src/proxy/ imports node:dns: the controller hands the proxy checked addresses', () => {
    const found: string[] = [];
    for (const file of sourceFiles(src)) {
      const path = relative(src, file);
      if (!path.startsWith('dataplane/') && !path.startsWith('proxy/')) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (dnsImport.test(line)) found.push(`src/${path}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(
      found,
      [],
      'a name resolved in the proxy is connected to unchecked (DNS rebinding): resolve in the controller (src/inputs/host-resolution.ts)',
    );
  });
});
