// What a bench reads of a process from /proc: its resident memory and its CPU time, and
// the processes of a group (nginx's and HAProxy's master and workers run in a process
// group of their own, whose id is the master's pid). Linux only, as every bench here.
import { readdirSync, readFileSync } from 'node:fs';

/** A field of /proc/<pid>/status (VmRSS, VmHWM) or smaps_rollup (Pss), in MB; 0 for a process that is gone. */
export function procMb(pid: number, file: 'status' | 'smaps_rollup', field: string): number {
  try {
    return Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

export const rssMb = (pid: number): number => procMb(pid, 'status', 'VmRSS');
export const pssMb = (pid: number): number => procMb(pid, 'smaps_rollup', 'Pss');

function statFields(pid: number): string[] | undefined {
  try {
    // The command name is in parentheses and may hold spaces: split after its last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds of a process, all its threads; 0 for one that is gone. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; in clock ticks (100 Hz).
  return fields ? (Number(fields[11]) + Number(fields[12])) / 100 : 0;
}

/** The live processes whose process group is `pgid`. */
export function processGroup(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    // pgrp is field 5 of stat, 2 after the name.
    if (fields && Number(fields[2]) === pgid) pids.push(Number(entry));
  }
  return pids;
}

/** RSS and CPU seconds summed over the processes of a group. */
export function groupUsage(pgid: number): { rssMb: number; cpuSeconds: number; processes: number } {
  const pids = processGroup(pgid);
  return {
    rssMb: pids.reduce((sum, pid) => sum + rssMb(pid), 0),
    cpuSeconds: pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0),
    processes: pids.length,
  };
}

/**
 * The live processes running `binaries` (their executable's base name, a version after it) whose command line
 * holds `fragment`: a control plane's etcd and kube-apiserver by its state directory, not
 * the controller and agent whose --kubeconfig lies in that directory too.
 */
export function processesOf(binaries: readonly string[], fragment: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const base = argv[0]!.slice(argv[0]!.lastIndexOf('/') + 1);
      // A cached build carries its version: etcd-v3.6.16.
      const named = binaries.some((binary) => base === binary || base.startsWith(`${binary}-v`));
      if (named && argv.some((arg) => arg.includes(fragment))) pids.push(Number(entry));
    } catch {
      // Gone since the listing.
    }
  }
  return pids;
}

/** CPU seconds every process on the machine spent busy (all but idle and iowait in /proc/stat's first line). */
export function machineBusySeconds(): number {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / 100;
}
