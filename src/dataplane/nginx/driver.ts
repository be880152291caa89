import { join } from 'node:path';
import { assembleObjectFiles } from '../assembly.ts';
import { bindingPart, splitRendered } from '../binding-parts.ts';
import type { DataPlaneDriver, ProxySettings } from '../driver.ts';
import { ExternalNginx, ManagedNginx, testNginxConfig } from './control.ts';
import { NginxDataPlane } from './data-plane.ts';
import { nginxConfigFile } from './paths.ts';
import { nginxBindingFiles, nginxSharedFiles, renderNginx, type NginxRenderOptions } from './render.ts';

// nginx: the controller renders every file, nginx.conf includes each binding's own, and
// the agent serves the objects' files as they are, by a reload.

/** nginx.conf is itself a shared file, and binding files live in directories the contract keeps apart: nothing else to reserve. */
const reservedSharedPaths: ReadonlySet<string> = new Set();

function nginxOptions(settings: ProxySettings): NginxRenderOptions {
  return {
    listenAddress: settings.listenAddress,
    statusPort: settings.statusPort,
    accessLog: settings.accessLog,
    errorLog: settings.errorLog,
    listenerPorts: settings.listenerPorts,
    systemTrustBundle: settings.systemTrustBundle,
  };
}

export const nginxDriver: DataPlaneDriver = {
  kind: 'nginx',
  configFile: nginxConfigFile,
  reservedSharedPaths,
  alwaysManaged: false,
  // Every path in nginx.conf is relative to it, and nginx quotes none: any directory runs it.
  directoryProblem: () => undefined,
  renderer(settings) {
    const options = nginxOptions(settings);
    return {
      dataPlane: 'nginx',
      shared: () => nginxSharedFiles(options),
      binding: (route) => bindingPart(route, nginxBindingFiles(route, options)),
    };
  },
  render: (routes, settings) => renderNginx(routes, nginxOptions(settings)),
  split: (rendered, routes) => splitRendered(rendered, routes, reservedSharedPaths),
  runCommand: (dir) => `nginx -p ${dir} -c ${nginxConfigFile} -e ${join(dir, 'error.log')} -g 'daemon off;'`,
  assembler: () => (shared, held) => assembleObjectFiles('nginx', nginxConfigFile, shared, held, reservedSharedPaths),
  // Managed, or one beside the agent whose pid file it reads and whose process it signals.
  async start(s) {
    const paths = { binary: s.nginxBinary, prefix: s.nginxPrefix };
    const nginx = s.manage
      ? new ManagedNginx({
          ...paths,
          confPath: s.dir.configPath(nginxConfigFile),
          pidFile: s.nginxPidFile,
          reloadTimeoutMs: s.reloadTimeoutMs,
          stopTimeoutMs: s.stopTimeoutMs,
          logger: s.logger,
          onUnexpectedExit: () => s.metrics.dataPlaneExits.inc({ data_plane: 'nginx' }),
        })
      : new ExternalNginx({ pidFile: s.nginxPidFile, reloadTimeoutMs: s.reloadTimeoutMs });
    return new NginxDataPlane({ test: (confPath) => testNginxConfig(paths, confPath), nginx, onReload: () => s.metrics.reloads.inc({ data_plane: 'nginx' }) });
  },
};
