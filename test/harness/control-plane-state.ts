import { readdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { isComponentOf, isProcessAlive, stopProcessGroup } from './processes.ts';

/**
 * What a control plane writes into its state directory so that a process other than
 * the one that started it can find and stop it: `cluster-cli down`, or the reaper that
 * cleans up after a test run that was killed before its exit handlers could run.
 */
export interface ControlPlaneState {
  /** The Node process whose exit should take the control plane with it; null when it outlives its starter. */
  ownerPid: number | null;
  apiServerUrl: string;
  kubeConfigPath: string;
  /** Component name → process-group leader pid. */
  components: Record<string, number>;
}

const stateFileName = 'control-plane.json';

export async function writeControlPlaneState(stateDir: string, state: ControlPlaneState): Promise<void> {
  // Rename into place, so a reader never sees half a file.
  const file = join(stateDir, stateFileName);
  await writeFile(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  await rename(`${file}.tmp`, file);
}

export async function readControlPlaneState(stateDir: string): Promise<ControlPlaneState | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, stateFileName), 'utf8')) as ControlPlaneState;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Whether every recorded component of the control plane in `stateDir` is still running. */
export function isRecordedControlPlaneRunning(stateDir: string, state: ControlPlaneState): boolean {
  const pids = Object.values(state.components);
  return pids.length > 0 && pids.every((pid) => isProcessAlive(pid) && isComponentOf(pid, stateDir));
}

/** Stops every recorded component that is still ours; pids since reused by other programs are left alone. */
export async function stopRecordedControlPlane(stateDir: string, state: ControlPlaneState): Promise<void> {
  // The apiserver first, so it does not spend its shutdown retrying a vanished etcd.
  const pids = Object.values(state.components).reverse();
  for (const pid of pids) {
    if (isProcessAlive(pid) && isComponentOf(pid, stateDir)) await stopProcessGroup(pid, 5_000);
  }
}

/**
 * Stops and deletes control planes under `parentDir` whose owning process died without
 * cleaning up (SIGKILL, OOM, a crashed CI step). Cheap enough to run on every start: one
 * readdir and a JSON file per leftover directory.
 */
export async function reapOrphanedControlPlanes(parentDir: string, dirPrefix: string): Promise<string[]> {
  const reaped: string[] = [];
  for (const entry of await readdir(parentDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !entry.name.startsWith(dirPrefix)) continue;
    const stateDir = join(parentDir, entry.name);
    const state = await readControlPlaneState(stateDir).catch(() => undefined);
    // No state yet means a start in progress (or one that failed before spawning anything).
    if (state === undefined || state.ownerPid === null || isProcessAlive(state.ownerPid)) continue;
    await stopRecordedControlPlane(stateDir, state);
    await rm(stateDir, { recursive: true, force: true });
    reaped.push(stateDir);
  }
  return reaped;
}
