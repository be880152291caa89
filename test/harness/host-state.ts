// What a node cluster changes on the machine outside its state directory, how it is
// recorded before the change, and how `down` puts it back. The kubelet, containerd, the
// CNI plugins and kube-proxy write some fixed host paths, change sysctls, and add network
// interfaces, nftables tables, cgroups and mounts; the harness records what did not
// exist before and removes exactly that.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { nodeNetwork } from './node-config.ts';
import { pollUntil } from './poll.ts';

const execFileAsync = promisify(execFile);

/**
 * Host paths that a component writes whatever it is configured to do. Each is removed on
 * `down` if it did not exist before `up`.
 * - /var/log/containers: the kubelet's symlinks to container logs (a constant in the kubelet).
 * - /var/lib/cni: libcni's result cache, which containerd does not let one move.
 * - /run/containerd: the runc shim's sockets (/run/containerd/s), a constant in the shim.
 * - /run/xtables.lock: iptables' lock, should anything run iptables.
 * The others are defaults the configuration moves into the state directory, listed so a
 * component that ignores its configuration is caught by the leftover check.
 */
export const fixedHostPaths = [
  '/var/log/containers',
  '/var/log/pods',
  '/var/lib/kubelet',
  '/var/lib/cni',
  '/etc/cni',
  '/opt/cni',
  '/run/containerd',
  '/var/lib/containerd',
  '/opt/containerd',
  '/run/netns',
  '/run/nri',
  '/etc/kubernetes',
  '/run/xtables.lock',
] as const;

/**
 * Every sysctl the node's components may change: the kubelet's kernel tunables
 * (panic_on_oops, overcommit_memory, ...), IP forwarding (the bridge plugin, as gateway),
 * bridged traffic through netfilter (set here: Services and NetworkPolicy between pods on
 * the bridge need it), and kube-proxy's conntrack and localnet settings. Restored on `down`.
 */
export const touchedSysctls = [
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'net/ipv4/ip_forward',
  'net/ipv4/conf/all/forwarding',
  'net/ipv6/conf/all/forwarding',
  'net/ipv4/conf/all/route_localnet',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
] as const;

/** nftables tables the node's components create: ours, kube-proxy's, kube-network-policies', portmap's. */
export const nodeNftTables = [
  `inet ${nodeNetwork.guardTable}`,
  'ip kube-proxy',
  'ip6 kube-proxy',
  'inet kube-network-policies',
  'ip cni_hostport',
  'ip6 cni_hostport',
  'inet cni_hostport',
] as const;

/** What the machine looked like before `up`, as far as `down` needs to know. */
export interface HostBaseline {
  /** Fixed host paths that did not exist, so `down` removes them. */
  missingPaths: string[];
  /** Each touched sysctl's value; absent when the kernel has no such sysctl. */
  sysctls: Record<string, string>;
  /** "family name" of every nftables table. */
  nftTables: string[];
}

/** A broader picture for tests: everything `down` must leave as `up` found it. */
export interface HostSnapshot extends HostBaseline {
  existingPaths: string[];
  links: string[];
  /** Mount points under the given prefixes. */
  mounts: string[];
  /** Directories named after the cgroup root, in any cgroup hierarchy. */
  cgroups: string[];
}

const cgroupMountRoot = '/sys/fs/cgroup';

async function run(command: string, args: readonly string[]): Promise<string> {
  try {
    return (await execFileAsync(command, args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`${command} ${args.join(' ')} failed: ${stderr || String(error)}`, { cause: error });
  }
}

async function readSysctl(name: string): Promise<string | undefined> {
  return readFile(join('/proc/sys', name), 'utf8').then(
    (value) => value.trim(),
    () => undefined,
  );
}

export async function writeSysctl(name: string, value: string): Promise<void> {
  await writeFile(join('/proc/sys', name), `${value}\n`);
}

export async function listNftTables(): Promise<string[]> {
  const output = await run('nft', ['list', 'tables']);
  return output
    .split('\n')
    .map((line) => line.replace(/^table\s+/, '').trim())
    .filter(Boolean)
    .sort();
}

export async function captureBaseline(): Promise<HostBaseline> {
  const sysctls: Record<string, string> = {};
  for (const name of touchedSysctls) {
    const value = await readSysctl(name);
    if (value !== undefined) sysctls[name] = value;
  }
  return {
    missingPaths: fixedHostPaths.filter((path) => !existsSync(path)),
    sysctls,
    nftTables: await listNftTables(),
  };
}

/** Mount points at or below any of `prefixes`, deepest first (the order to unmount them in). */
export async function mountsUnder(prefixes: readonly string[]): Promise<string[]> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
  const points = mountinfo
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4] ?? '')
    .map((point) => point.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  const under = points.filter((point) => prefixes.some((prefix) => point === prefix || point.startsWith(`${prefix}/`)));
  return [...new Set(under)].sort((a, b) => b.split('/').length - a.split('/').length || b.localeCompare(a));
}

async function listLinks(): Promise<string[]> {
  const links = JSON.parse(await run('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  return links.map((link) => link.ifname).sort();
}

/** The cgroup root's directory in every mounted hierarchy (cgroup v1 controllers, name=systemd, and the hybrid unified one). */
export async function cgroupRootDirs(): Promise<string[]> {
  const hierarchies = await readdir(cgroupMountRoot, { withFileTypes: true });
  return hierarchies.filter((entry) => entry.isDirectory()).map((entry) => join(cgroupMountRoot, entry.name, nodeNetwork.cgroupRoot));
}

export async function captureSnapshot(mountPrefixes: readonly string[]): Promise<HostSnapshot> {
  const baseline = await captureBaseline();
  const cgroups = (await cgroupRootDirs()).filter((dir) => existsSync(dir));
  return {
    ...baseline,
    existingPaths: fixedHostPaths.filter((path) => existsSync(path)),
    links: await listLinks(),
    mounts: await mountsUnder(mountPrefixes),
    cgroups,
  };
}

/**
 * Creates the pods' parent cgroup in every hierarchy: the kubelet requires its cgroupRoot
 * to exist. A new cpuset cgroup starts with no CPUs and no memory nodes, so it inherits
 * its parent's.
 */
export async function createCgroupRoot(): Promise<void> {
  for (const dir of await cgroupRootDirs()) {
    await mkdir(dir, { recursive: true });
    if (existsSync(join(dir, 'cpuset.cpus'))) {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        const current = (await readFile(join(dir, file), 'utf8')).trim();
        if (current === '') await writeFile(join(dir, file), await readFile(join(dir, '..', file), 'utf8'));
      }
    }
  }
}

async function cgroupTree(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const children = (await readdir(dir, { withFileTypes: true })).filter((entry) => entry.isDirectory());
  const below = await Promise.all(children.map((child) => cgroupTree(join(dir, child.name))));
  // Children before their parent: the order rmdir needs.
  return [...below.flat(), dir];
}

async function pidsInCgroups(dirs: readonly string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const dir of dirs) {
    const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const pid of procs.split('\n').filter(Boolean)) pids.add(Number(pid));
  }
  return [...pids];
}

/**
 * Kills every process under the cgroup root (the pods' containers, which outlive the
 * kubelet and containerd) and removes the cgroups. The freezer holds them still while
 * they are killed, so none forks a child past the kill.
 */
export async function removeCgroupRoot(): Promise<void> {
  const roots = await cgroupRootDirs();
  const trees = (await Promise.all(roots.map(cgroupTree))).flat();
  const freezer = join(cgroupMountRoot, 'freezer', nodeNetwork.cgroupRoot, 'freezer.state');
  const frozen =
    existsSync(freezer) &&
    (await writeFile(freezer, 'FROZEN').then(
      () => true,
      () => false,
    ));
  for (const pid of await pidsInCgroups(trees)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }
  if (frozen) await writeFile(freezer, 'THAWED');
  await pollUntil(async () => ((await pidsInCgroups(trees)).length === 0 ? true : undefined), {
    what: `the processes in ${nodeNetwork.cgroupRoot} cgroups to exit`,
    timeoutMs: 20_000,
  });
  for (const dir of trees) {
    // A cgroup whose last task just exited can be busy for a moment.
    await pollUntil(
      () =>
        rmdir(dir).then(
          () => true,
          (error: NodeJS.ErrnoException) => {
            if (error.code === 'ENOENT') return true;
            throw error;
          },
        ),
      { what: `rmdir ${dir}`, timeoutMs: 10_000, intervalMs: 50 },
    );
  }
}

/** Unmounts everything at or below `prefixes`, deepest first; lazily when a mount is still busy. */
export async function unmountUnder(prefixes: readonly string[]): Promise<void> {
  for (const point of await mountsUnder(prefixes)) {
    await run('umount', [point]).catch(() => run('umount', ['--lazy', point]));
  }
}

export async function deleteLink(name: string): Promise<void> {
  if (existsSync(join('/sys/class/net', name))) await run('ip', ['link', 'delete', name]);
}

/** Deletes the node's nftables tables that did not exist before `up` (never one that did). */
export async function deleteNodeNftTables(baseline: HostBaseline): Promise<void> {
  const existing = new Set(await listNftTables());
  for (const table of nodeNftTables) {
    if (existing.has(table) && !baseline.nftTables.includes(table)) await run('nft', ['delete', 'table', ...table.split(' ')]);
  }
}

interface NftObject {
  table?: { family: string; name: string };
  chain?: { family: string; table: string; name: string; hook?: string };
  rule?: { family: string; table: string; chain: string; handle: number; expr: unknown[] };
}

/** The tables iptables-nft makes, where the kubelet still keeps chains of its own (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...). */
const iptablesTables = ['filter', 'nat', 'mangle', 'raw', 'security'].flatMap((table) => [`ip ${table}`, `ip6 ${table}`]);
const isNodeChain = (name: string): boolean => /^(KUBE|CNI)-/.test(name);

/**
 * Removes the kubelet's iptables chains and the rules that jump to them. A table that
 * did not exist before `up` and holds nothing else afterwards goes whole; in a table
 * that did exist (or that something else wrote to meanwhile), nothing else is touched.
 */
export async function removeNodeIptablesChains(baseline: HostBaseline): Promise<void> {
  const existing = new Set(await listNftTables());
  for (const table of iptablesTables.filter((name) => existing.has(name))) {
    const [family = '', name = ''] = table.split(' ');
    const objects = (JSON.parse(await run('nft', ['-j', 'list', 'table', family, name])) as { nftables: NftObject[] }).nftables;
    const rules = objects.flatMap((object) => (object.rule === undefined ? [] : [object.rule]));
    const chains = objects.flatMap((object) => (object.chain === undefined ? [] : [object.chain]));
    const jumpsToNodeChain = (rule: { expr: unknown[] }): boolean =>
      rule.expr.some((expr) => {
        const target =
          (expr as { jump?: { target?: string }; goto?: { target?: string } }).jump?.target ?? (expr as { goto?: { target?: string } }).goto?.target;
        return target !== undefined && isNodeChain(target);
      });
    const foreign = rules.filter((rule) => !isNodeChain(rule.chain) && !jumpsToNodeChain(rule));
    const foreignChains = chains.filter((chain) => !isNodeChain(chain.name) && chain.hook === undefined);
    if (!baseline.nftTables.includes(table) && foreign.length === 0 && foreignChains.length === 0) {
      await run('nft', ['delete', 'table', family, name]);
      continue;
    }
    for (const rule of rules.filter((candidate) => !isNodeChain(candidate.chain) && jumpsToNodeChain(candidate))) {
      await run('nft', ['delete', 'rule', family, name, rule.chain, 'handle', String(rule.handle)]);
    }
    const nodeChains = chains.filter((chain) => isNodeChain(chain.name));
    for (const chain of nodeChains) await run('nft', ['flush', 'chain', family, name, chain.name]);
    for (const chain of nodeChains) await run('nft', ['delete', 'chain', family, name, chain.name]);
  }
}

export async function restoreSysctls(baseline: HostBaseline): Promise<void> {
  for (const [name, value] of Object.entries(baseline.sysctls)) {
    if ((await readSysctl(name)) !== value) await writeSysctl(name, value);
  }
}

export async function removeCreatedPaths(baseline: HostBaseline): Promise<void> {
  for (const path of baseline.missingPaths) await rm(path, { recursive: true, force: true });
}

/** The differences between two snapshots, worded for an assertion message; empty when equal. */
export function describeHostChanges(before: HostSnapshot, after: HostSnapshot): string[] {
  const changes: string[] = [];
  const added = (what: string, a: readonly string[], b: readonly string[]): void => {
    for (const item of b) if (!a.includes(item)) changes.push(`${what} added: ${item}`);
    for (const item of a) if (!b.includes(item)) changes.push(`${what} removed: ${item}`);
  };
  added('host path', before.existingPaths, after.existingPaths);
  added('nftables table', before.nftTables, after.nftTables);
  added('network interface', before.links, after.links);
  added('mount', before.mounts, after.mounts);
  added('cgroup', before.cgroups, after.cgroups);
  for (const name of touchedSysctls) {
    if (before.sysctls[name] !== after.sysctls[name]) changes.push(`sysctl ${name}: ${before.sysctls[name]} → ${after.sysctls[name]}`);
  }
  return changes;
}
