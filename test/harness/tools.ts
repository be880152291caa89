// The tools the deploy/ tests run, built from the Go module proxy by build-binaries.sh
// like the control plane: helm (the chart), promtool (the alert rules and the dashboard)
// and, when the node's binaries are built, the cluster's own kubectl.
import { join, resolve } from 'node:path';
import { checkBuiltBinaries } from './control-plane.ts';

const script = join(resolve(import.meta.dirname, '../..'), 'test/harness/build-binaries.sh');

async function built(name: string, args: readonly string[]): Promise<string> {
  try {
    const path = (await checkBuiltBinaries(script, args)).get(name);
    if (path === undefined) throw new Error(`build-binaries.sh ${args.join(' ')} --check did not name ${name}`);
    return path;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    // The script's own message names the missing binary and the command that builds it.
    throw new Error(stderr || `could not locate ${name}: ${String(error)}`, { cause: error });
  }
}

/** helm, at the version test/harness/go/helm/go.mod pins. Never builds: `bash test/bootstrap.sh` does. */
export function findHelm(): Promise<string> {
  return built('helm', ['tools']);
}

/** promtool, at the version test/harness/go/promtool/go.mod pins. */
export function findPromtool(): Promise<string> {
  return built('promtool', ['tools']);
}

/** The kubectl of the node cluster's release (built with the node), beside the machine's own. */
export function findClusterKubectl(): Promise<string> {
  return built('kubectl', ['node']);
}
