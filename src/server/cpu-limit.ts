import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';

// The CPUs this process may use: its cgroup's CPU limit (the container's resources.limits.cpu)
// and the CPUs it may be scheduled on. A data plane sizes its workers by it (HAProxy's
// nbthread): its own default counts the node's CPUs, which in a pod with a limit of 2 on a
// 64-CPU node means 64 threads sharing 2 CPUs' worth of time, throttled by the CFS quota in
// every period. The parsers are pure; readCpuLimit is the thin I/O beside them.

/**
 * cgroup v2's cpu.max ("$MAX $PERIOD": "200000 100000", or "max 100000" for no limit) as
 * CPUs, rounded up: a limit of 1.5 CPUs counts as 2, so the half CPU is not left idle.
 * undefined for no limit, or for text that is not a cpu.max.
 */
export function cpusOfCpuMax(text: string): number | undefined {
  const m = /^(max|\d{1,18}) (\d{1,18})\s*$/.exec(text);
  if (!m || m[1] === 'max') return undefined;
  return cpusOfQuota(Number(m[1]), Number(m[2]));
}

/** cgroup v1's cpu.cfs_quota_us and cpu.cfs_period_us (quota -1: no limit), as cpusOfCpuMax. */
export function cpusOfCfsQuota(quotaText: string, periodText: string): number | undefined {
  const quota = /^\s*(-?\d{1,18})\s*$/.exec(quotaText)?.[1];
  const period = /^\s*(\d{1,18})\s*$/.exec(periodText)?.[1];
  if (quota === undefined || period === undefined || quota.startsWith('-')) return undefined;
  return cpusOfQuota(Number(quota), Number(period));
}

function cpusOfQuota(quota: number, period: number): number | undefined {
  if (!Number.isSafeInteger(quota) || !Number.isSafeInteger(period) || quota <= 0 || period <= 0) return undefined;
  return Math.ceil(quota / period);
}

/** This process's cgroup paths, from /proc/self/cgroup: the v2 one ("0::/path") and v1's cpu controller's. */
export function cgroupPaths(procSelfCgroup: string): { v2?: string; v1Cpu?: string } {
  const paths: { v2?: string; v1Cpu?: string } = {};
  // A handful of lines; only the first few are read, whatever the file holds.
  for (const line of procSelfCgroup.split('\n', 64)) {
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') paths.v2 = m[3];
    else if (m[2]!.split(',').includes('cpu')) paths.v1Cpu = m[3];
  }
  return paths;
}

/** The directories from `dir` up to `root`, both included: a limit set on a parent (the pod's cgroup) binds the child. */
function upTo(root: string, dir: string): string[] {
  const dirs: string[] = [];
  // join(root, "/") keeps a trailing slash.
  for (let d = dir.replace(/(.)\/+$/, '$1'); d.startsWith(root) && dirs.length < 64; d = dirname(d)) {
    dirs.push(d);
    if (d === root) break;
  }
  return dirs;
}

const readText = (file: string): Promise<string | undefined> =>
  readFile(file, 'utf8').then(
    (text) => text.slice(0, 4096),
    () => undefined,
  );

/**
 * The CPU limit of this process's cgroup, or of an ancestor's when lower: the fewest CPUs
 * any of them allows. In a container with its own cgroup namespace (Kubernetes on cgroup
 * v2) the path is "/" and /sys/fs/cgroup is the container's own cgroup; on cgroup v1 the
 * path is the host's and the mount the container's, so the walk up finds the mount's own
 * files. undefined when nothing limits it, or there is no cgroup to read.
 */
export async function readCpuLimit(options: { root?: string; procSelfCgroup?: string } = {}): Promise<number | undefined> {
  const root = options.root ?? '/sys/fs/cgroup';
  const paths = cgroupPaths((await readText(options.procSelfCgroup ?? '/proc/self/cgroup')) ?? '');
  const limits: number[] = [];
  if (paths.v2 !== undefined) {
    for (const dir of upTo(root, join(root, paths.v2))) {
      const text = await readText(join(dir, 'cpu.max'));
      const cpus = text === undefined ? undefined : cpusOfCpuMax(text);
      if (cpus !== undefined) limits.push(cpus);
    }
  }
  if (paths.v1Cpu !== undefined) {
    // Mounted as cpu,cpuacct, with a cpu symlink, on the machines that still run v1.
    const mount = join(root, 'cpu');
    for (const dir of upTo(mount, join(mount, paths.v1Cpu))) {
      const [quota, period] = await Promise.all([readText(join(dir, 'cpu.cfs_quota_us')), readText(join(dir, 'cpu.cfs_period_us'))]);
      const cpus = quota === undefined || period === undefined ? undefined : cpusOfCfsQuota(quota, period);
      if (cpus !== undefined) limits.push(cpus);
    }
  }
  return limits.length ? Math.min(...limits) : undefined;
}

/** The CPUs this process may use: the cgroup's limit, or the CPUs it may run on, whichever is fewer. */
export async function availableCpus(): Promise<{ cpus: number; cpuLimit: number | undefined }> {
  const cpuLimit = await readCpuLimit();
  return { cpus: Math.max(1, Math.min(cpuLimit ?? Infinity, availableParallelism())), cpuLimit };
}
