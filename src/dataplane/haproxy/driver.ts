import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isPlainPath } from '../../render/files.ts';
import { bindingPart, splitRendered } from '../binding-parts.ts';
import type { DataPlaneDriver, ProxySettings } from '../driver.ts';
import { assembleHaproxyConfig, HaproxyAssemblyCache, type HaproxyConfig } from './assemble.ts';
import { HaproxyDataPlane } from './data-plane.ts';
import { assembledFiles, configDirVariable, haproxyConfigFile, reservedSharedPaths, runDirVariable, runtimeSocket } from './paths.ts';
import { ManagedHaproxy, testHaproxyConfig } from './process.ts';
import { haproxyBindingPart, haproxySharedFiles, renderHaproxy, type HaproxyRenderOptions, type RenderedHaproxy } from './render.ts';
import { HaproxyRuntime } from './runtime.ts';
import { haproxyThreads } from './threads.ts';
import { parseDroppedLogs } from './state.ts';

// HAProxy: the controller renders the options, the 502 page and each binding's server
// and certificate files; the agent assembles haproxy.cfg and the maps from them
// (assemble.ts) and keeps HAProxy serving them through its runtime API (data-plane.ts),
// with a reload only when the listener skeleton changes.

function haproxyOptions(settings: ProxySettings): HaproxyRenderOptions {
  return {
    listenAddress: settings.listenAddress,
    listenerPorts: settings.listenerPorts,
    statusPort: settings.statusPort,
    // HAProxy writes its access log to a stream, never a file of its own.
    logTarget: settings.accessLog === 'off' ? 'off' : settings.accessLog === '/dev/stderr' ? 'stderr' : 'stdout',
  };
}

const assembled: ReadonlySet<string> = new Set(assembledFiles);

export const haproxyDriver: DataPlaneDriver<HaproxyConfig> = {
  kind: 'haproxy',
  configFile: haproxyConfigFile,
  reservedSharedPaths,
  // The agent holds its master and runtime API sockets.
  alwaysManaged: true,
  // The runtime API takes the paths it is given as names, unquoted, and the config names
  // its files through an environment variable in double quotes: the path must be plain.
  directoryProblem: (dir) => (isPlainPath(dir) && dir.startsWith('/') ? undefined : 'HAProxy needs a path of letters, digits, ".", "_", "-" and "/"'),
  renderer(settings) {
    const options = haproxyOptions(settings);
    return {
      dataPlane: 'haproxy',
      shared: () => haproxySharedFiles(options),
      binding: (route) => {
        const { server, files } = haproxyBindingPart(route);
        return bindingPart(route, files, server);
      },
    };
  },
  render: (routes, settings) => renderHaproxy(routes, haproxyOptions(settings)),
  split(rendered, routes) {
    const servers = new Map(((rendered as Partial<RenderedHaproxy>).servers ?? []).map((s) => [s.key, s]));
    return splitRendered(rendered, routes, assembled, (key) => servers.get(key));
  },
  runCommand: (dir) => `${configDirVariable}=${dir} ${runDirVariable}=${dir} haproxy -W -db -f ${join(dir, haproxyConfigFile)}`,
  assembler(settings) {
    const cache = new HaproxyAssemblyCache();
    // The threads are this pod's to decide (its CPU limit), not the controller's: a
    // replica with another limit runs the same objects with another nbthread.
    const agentOptions = settings ? { threads: haproxyThreads(settings.haproxyThreads, settings.cpus) } : {};
    return (shared, held) => assembleHaproxyConfig(shared, held, cache, agentOptions);
  },
  async start(s) {
    await mkdir(s.runDir, { recursive: true, mode: 0o700 });
    const haproxy = new ManagedHaproxy({
      binary: s.haproxyBinary,
      configDir: s.dir.generationPath(),
      runDir: s.runDir,
      startTimeoutMs: s.reloadTimeoutMs,
      reloadTimeoutMs: s.reloadTimeoutMs,
      stopTimeoutMs: s.stopTimeoutMs,
      logger: s.logger,
      onUnexpectedExit: () => s.metrics.dataPlaneExits.inc({ data_plane: 'haproxy' }),
    });
    haproxy.onRestarted(s.onRestarted);
    // Its own connection with a short timeout: a scrape must not wait on a busy HAProxy.
    const scrape = new HaproxyRuntime(join(s.runDir, runtimeSocket), { timeoutMs: 2_000 });
    s.metrics.haproxyDroppedLogsSource = async () => (haproxy.running() ? parseDroppedLogs(await scrape.run('show info')) : undefined);
    return new HaproxyDataPlane({
      haproxy,
      configRoot: s.dir.root,
      contents: s.dir.store,
      test: (generationDir) => testHaproxyConfig(s.haproxyBinary, generationDir, s.runDir),
      logger: s.logger,
      onReload: () => s.metrics.reloads.inc({ data_plane: 'haproxy' }),
      onChange: (op) => s.metrics.runtimeChanges.inc({ op }),
      clock: s.clock,
    });
  },
};
