// How many threads HAProxy runs (nbthread): as many as the CPUs its container may use,
// which the agent reads from its cgroup (src/server/cpu-limit.ts; HAProxy is its child, in
// the same cgroup). HAProxy's own default counts the CPUs it may be scheduled on, which in
// a pod is every CPU of the node, however few its limit allows.

/**
 * One thread group's worth: HAProxy 3.0 runs at most 64 threads in a group, and more
 * would need thread-groups, over which the listeners would then be spread. A proxy that
 * needs more than 64 CPUs is better run as more replicas.
 */
export const maxHaproxyThreads = 64;

/** The flag's value: a number of threads, or "auto" (also 0 on the command line) to follow the CPUs. */
export type HaproxyThreadsSetting = number | 'auto';

/** nbthread: the setting when it names a number, else the CPUs the container may use; at least 1, at most maxHaproxyThreads. */
export function haproxyThreads(setting: HaproxyThreadsSetting, cpus: number): number {
  const wanted = setting === 'auto' ? cpus : setting;
  return Math.max(1, Math.min(maxHaproxyThreads, Math.floor(wanted) || 1));
}
