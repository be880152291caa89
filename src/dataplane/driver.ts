import type { BindingPart } from '../contract/proxy-objects.ts';
import type { Logger } from '../log.ts';
import type { EgressRoute } from '../model/egress-routes.ts';
import type { PortRange } from '../model/listener-ports.ts';
import type { AgentMetrics } from '../proxy/agent-metrics.ts';
import type { ConfigDir } from '../proxy/config-dir.ts';
import type { AssembledConfig, Assembler, DataPlane } from '../proxy/data-plane.ts';
import type { RenderedConfig, RenderedFile } from '../render/files.ts';
import type { Clock } from '../runner/clock.ts';

// One interface every data plane (nginx, HAProxy) implements, in its own folder
// (src/dataplane/<plane>/driver.ts), and one registry that names them (registry.ts).
// Nothing else asks which plane it is: the controller renders through a driver, the
// agent assembles and runs through one, and the offline commands do both.
//
//   controller   renderer(settings): the shared files, and one binding's part
//   contract     (src/contract/) carries the parts and shared files as objects, unread
//   agent        assembler(): shared files + held parts → the config the server runs
//                start(settings): the process driver that tests, applies and rechecks it

/** What the agent's assembly takes beyond the objects: how big a server this container may run. */
export interface AssemblySettings {
  /** The CPUs the container may use: its cgroup's limit, or the CPUs the agent may run on. */
  cpus: number;
  /** HAProxy's nbthread: a number, or "auto" to follow `cpus`. */
  haproxyThreads: number | 'auto';
}

/** The proxy's settings, whichever the plane; each driver maps them to its renderer's options. */
export interface ProxySettings {
  /** The address the listeners bind: 127.0.0.1 on a workstation, 0.0.0.0 in the proxy pod. */
  listenAddress: string;
  listenerPorts: PortRange;
  /** A listener with /healthz; none when absent. */
  statusPort?: number;
  /** Where the access log goes: a path, "/dev/stdout", "/dev/stderr", or "off". */
  accessLog?: string;
  errorLog?: string;
  /** Trust for partners whose binding names no serverCA, for a plane that reads it from a file. */
  systemTrustBundle?: string;
}

/** A data plane's renderer, split the way the proxy objects are: what no binding owns, and each binding's part. */
export interface ProxyRenderer {
  /** The plane's kind, as the index names it. */
  dataPlane: string;
  /** Depends on the controller's flags alone. */
  shared(): RenderedFile[];
  /** Depends on this one route alone, so a change to a binding rewrites only its object. */
  binding(route: EgressRoute): BindingPart;
}

/** What the agent starts a plane's process driver with: its flags, and the agent's own parts. */
export interface ProcessSettings {
  /** The agent's config directory: generations, and `current`, which the server reads. */
  dir: ConfigDir;
  /** Run the server as the agent's child, rather than signal one beside it. */
  manage: boolean;
  nginxBinary: string;
  /** nginx's -p: pid, logs, temp files. */
  nginxPrefix: string;
  nginxPidFile: string;
  haproxyBinary: string;
  /** HAProxy's master and runtime API sockets. */
  runDir: string;
  reloadTimeoutMs: number;
  stopTimeoutMs: number;
  logger: Logger;
  metrics: AgentMetrics;
  /** The server restarted on its own: the agent compares what it serves with the manifest soon. */
  onRestarted: () => void;
  clock?: Clock;
}

export interface DataPlaneDriver<Config extends AssembledConfig = AssembledConfig> {
  /** The name flags and the index use (DataPlaneKind). */
  readonly kind: string;
  /** The file of a generation (or of `render --out`) the server runs from. */
  readonly configFile: string;
  /** Names no shared file may take: the files the agent makes itself. */
  readonly reservedSharedPaths: ReadonlySet<string>;
  /** Always run as the agent's child, whatever --manage says (HAProxy: the agent holds its sockets). */
  readonly alwaysManaged: boolean;
  /** Why the server cannot run from a config in `dir` (an agent's --config-dir, render's --out), or undefined. */
  directoryProblem(dir: string): string | undefined;
  /** The controller's half: shared files and binding parts, as the proxy objects carry them. */
  renderer(settings: ProxySettings): ProxyRenderer;
  /** Every binding at once, as files the server runs: what `render` writes. */
  render(routes: readonly EgressRoute[], settings: ProxySettings): RenderedConfig;
  /** A whole render (of this plane) split as the controller writes it: for tools and tests that render at once. */
  split(rendered: RenderedConfig, routes: readonly EgressRoute[]): { shared: RenderedFile[]; parts: BindingPart[] };
  /** The command that runs a rendered directory by hand. */
  runCommand(dir: string): string;
  /**
   * The agent's half of rendering; one per agent, since it may keep a cache between
   * passes. Without settings, what the controller's shared files say, as `render` does.
   */
  assembler(settings?: AssemblySettings): Assembler<Config>;
  /** The process driver the agent runs: tests a generation, makes the server serve it, rechecks it. */
  start(settings: ProcessSettings): Promise<DataPlane<Config>>;
}
