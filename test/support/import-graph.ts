// The shape of src/ as folders: who imports whom, how many floors the import graph has,
// which folders import each other in a circle, and which arrows run back up a floor.
// `node test/support/import-graph.ts [--json]` prints the figures a shape issue asks for.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The folder a file belongs to: its first path segment under src/; a file directly in src/ stands alone (errors.ts sits low, cli.ts on top). */
function folderOf(path: string): string {
  const rel = relative(root, path);
  return rel.includes('/') ? rel.split('/')[0]! : rel;
}

export interface ImportGraph {
  folders: string[];
  arrows: Array<[string, string]>;
  /** Each folder's floor: 0 imports nothing of ours; a circle shares one floor. */
  floors: Record<string, number>;
  circles: string[][];
  /** Arrows from a folder to one on its own or a higher floor (inside a circle, or a cycle). */
  backArrows: Array<[string, string]>;
  fileCircles: string[][];
}

export function importGraph(): ImportGraph {
  const edges = new Map<string, Set<string>>();
  const fileEdges = new Map<string, Set<string>>();
  for (const file of files(root)) {
    const from = folderOf(file);
    if (!edges.has(from)) edges.set(from, new Set());
    const own = new Set<string>();
    fileEdges.set(file, own);
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
      const target = resolve(dirname(file), m[1]!);
      own.add(target);
      const to = folderOf(target);
      if (to !== from) edges.get(from)!.add(to);
    }
  }
  const folders = [...edges.keys()].sort();
  const components = stronglyConnected(folders, (f) => [...(edges.get(f) ?? [])]);
  const componentOf = new Map<string, number>();
  components.forEach((c, i) => c.forEach((f) => componentOf.set(f, i)));
  const floorOfComponent = new Map<number, number>();
  const floor = (c: number): number => {
    const known = floorOfComponent.get(c);
    if (known !== undefined) return known;
    floorOfComponent.set(c, 0);
    let highest = -1;
    for (const f of components[c]!)
      for (const to of edges.get(f) ?? []) if (componentOf.get(to) !== c) highest = Math.max(highest, floor(componentOf.get(to)!));
    floorOfComponent.set(c, highest + 1);
    return highest + 1;
  };
  const floors = Object.fromEntries(folders.map((f) => [f, floor(componentOf.get(f)!)]));
  const arrows = folders.flatMap((f) => [...(edges.get(f) ?? [])].sort().map((to) => [f, to] as [string, string]));
  const fileList = [...fileEdges.keys()];
  const fileCircles = stronglyConnected(fileList, (f) => [...(fileEdges.get(f) ?? [])].filter((t) => fileEdges.has(t)))
    .filter((c) => c.length > 1)
    .map((c) => c.map((f) => relative(root, f)).sort());
  return {
    folders,
    arrows,
    floors,
    circles: components.filter((c) => c.length > 1).map((c) => [...c].sort()),
    backArrows: arrows.filter(([a, b]) => floors[b]! >= floors[a]!),
    fileCircles,
  };
}

/** Tarjan's algorithm. */
function stronglyConnected(nodes: string[], next: (n: string) => string[]): string[][] {
  let index = 0;
  const stack: string[] = [];
  const on = new Set<string>();
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const result: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      result.push(c);
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return result;
}

if (import.meta.main) {
  const g = importGraph();
  if (process.argv.includes('--json')) console.log(JSON.stringify(g, null, 2));
  else {
    const byFloor = new Map<number, string[]>();
    for (const [f, n] of Object.entries(g.floors)) byFloor.set(n, [...(byFloor.get(n) ?? []), f]);
    console.log(
      `folders ${g.folders.length}, arrows ${g.arrows.length}, floors ${byFloor.size}, folder circles ${g.circles.length}, back arrows ${g.backArrows.length}, file circles ${g.fileCircles.length}`,
    );
    for (const n of [...byFloor.keys()].sort((a, b) => a - b)) console.log(`  floor ${n}: ${byFloor.get(n)!.sort().join(' ')}`);
    for (const c of g.circles) console.log(`  circle: ${c.join(' ↔ ')}`);
    for (const [a, b] of g.backArrows) console.log(`  back arrow: ${a} → ${b}`);
    for (const c of g.fileCircles) console.log(`  file circle: ${c.join(' ↔ ')}`);
  }
}
