import { byKey, isIpLiteral, isPortNumber, type EgressRoute } from '../../model/egress-routes.ts';
import type { PortRange } from '../../model/listener-ports.ts';
import {
  checkRoutes,
  commentSafe,
  defaultSystemTrustBundle,
  hashFiles,
  hostForUrl,
  isPlainPath,
  routeBundles,
  withNewline,
  withoutRepeatedBundles,
  type RenderedConfig,
  type RenderedFile,
} from '../../render/files.ts';
import { bindingConfDir, certificateDir, nginxConfigFile, nginxPidFile } from './paths.ts';

// Routes → the files nginx runs from: nginx.conf, which depends on the options alone, and
// each binding's own files, which nginx.conf includes. Pure; golden-tested
// (test/golden/nginx/). The controller renders both halves, and the agent serves them as
// they are (driver.ts).

export { hashFiles, hostForUrl, isPlainPath, type RenderedFile } from '../../render/files.ts';
export { bindingConfDir } from './paths.ts';

export interface RenderedNginx extends RenderedConfig {
  dataPlane?: 'nginx';
}

export interface NginxRenderOptions {
  /** The address every binding's listener binds: 127.0.0.1 on a workstation, 0.0.0.0 in the proxy pod. */
  listenAddress: string;
  /** Trust for partners whose binding names no serverCA. */
  systemTrustBundle?: string;
  workerProcesses?: number | 'auto';
  /** Relative paths resolve against nginx's -p prefix; "/dev/stdout" in a container; "off" for none. */
  accessLog?: string;
  errorLog?: string;
  /** A listener with /healthz and nginx's stub_status, on listenAddress; none when absent. */
  statusPort?: number;
  /** The range bindings' listeners come from: each takes a connection slot in every worker. */
  listenerPorts?: PortRange;
}

/** Idle upstream connections each worker keeps per binding. */
const upstreamKeepalive = 32;
/**
 * Below the 5 s idle timeout of Node's and Apache's servers, so nginx drops an idle
 * connection before the partner does: a request written into a connection the partner is
 * closing cannot be retried when it is a POST, and would fail with a 502.
 */
const upstreamKeepaliveTimeout = '4s';
/** Leaf plus up to three intermediates between it and the trusted root. */
const verifyDepth = 4;

export function certificateFile(route: Pick<EgressRoute, 'namespace' | 'name'>): string {
  return `${certificateDir}/${fileStem(route)}.crt`;
}

export function keyFile(route: Pick<EgressRoute, 'namespace' | 'name'>): string {
  return `${certificateDir}/${fileStem(route)}.key`;
}

/** Namespaces and names never contain "_", so "<ns>_<name>" is unique per binding. */
function fileStem(route: Pick<EgressRoute, 'namespace' | 'name'>): string {
  return `${route.namespace}_${route.name}`;
}

/**
 * One upstream block per binding. nginx keeps idle keepalive connections per upstream
 * block and the TLS session to resume per upstream peer; two bindings that shared a block
 * (or an implicit upstream, which `proxy_pass https://host:port` in two locations creates
 * once and shares) would hand B a connection or a session that A authenticated, and the
 * partner would see A's certificate on B's request. test/e2e/nginx-isolation.test.ts
 * shows that leak on a shared upstream and its absence here.
 */
export function upstreamName(route: Pick<EgressRoute, 'namespace' | 'name'>): string {
  return `binding_${fileStem(route)}`;
}

/**
 * Routes → the files nginx runs from. Pure and deterministic: routes are sorted by key,
 * nothing depends on time or the environment, so equal inputs give byte-identical files
 * and an equal hash. Every path in nginx.conf is relative, so `nginx -p DIR -c nginx.conf`
 * runs it as any user: pid, logs and temp files land in the -p prefix, certificates are
 * read next to nginx.conf.
 *
 * Throws on a route or option value that could change the meaning of the config; the
 * model leaves such bindings out with InvalidSpec, so reaching that is a caller's bug.
 */
export function renderNginx(routes: readonly EgressRoute[], options: NginxRenderOptions): RenderedNginx {
  const sorted = [...routes].sort(byKey);
  checkOptions(options, sorted);
  const files = withoutRepeatedBundles([...nginxSharedFiles(options), ...sorted.flatMap((route) => nginxBindingFiles(route, options))]);
  files.sort((a, b) => byKey({ key: a.path }, { key: b.path }));
  return { dataPlane: 'nginx', files, hash: hashFiles(files) };
}

/**
 * The files no binding owns: nginx.conf, which includes every binding's own file. It
 * depends on the options alone, so a binding added, changed or removed never rewrites it,
 * and a proxy serving thousands of bindings gets each change as that binding's files.
 */
export function nginxSharedFiles(options: NginxRenderOptions): RenderedFile[] {
  checkOptions(options, []);
  return [{ path: nginxConfigFile, content: nginxConf(options), mode: 0o644 }];
}

/** One binding's files: its server and upstream blocks, its certificate and key, its partner CA. */
export function nginxBindingFiles(route: EgressRoute, options: NginxRenderOptions): RenderedFile[] {
  checkOptions(options, [route]);
  const listen = hostForUrl(options.listenAddress);
  // A partner's CA is named by its content, so the bindings that trust one bundle share its file.
  const [serverCA] = routeBundles(route);
  const trusted = serverCA?.path ?? options.systemTrustBundle ?? defaultSystemTrustBundle;
  const files: RenderedFile[] = [
    { path: bindingConfFile(route), content: `${routeBlock(route, listen, trusted).join('\n')}\n`, mode: 0o644, binding: route.key },
    { path: certificateFile(route), content: withNewline(route.clientCertificate.chainPem), mode: 0o644, binding: route.key },
    { path: keyFile(route), content: withNewline(route.clientCertificate.privateKey.reveal()), mode: 0o600, binding: route.key },
  ];
  if (serverCA) files.push(serverCA);
  return files;
}

export function bindingConfFile(route: Pick<EgressRoute, 'namespace' | 'name'>): string {
  return `${bindingConfDir}/${fileStem(route)}.conf`;
}

function checkOptions(options: NginxRenderOptions, routes: readonly EgressRoute[]): void {
  const fail = (message: string): never => {
    throw new Error(`renderNginx: ${message}`);
  };
  if (!isIpLiteral(options.listenAddress)) fail(`listenAddress ${JSON.stringify(options.listenAddress)} is not an IP address`);
  for (const [name, value] of [
    ['systemTrustBundle', options.systemTrustBundle],
    ['accessLog', options.accessLog],
    ['errorLog', options.errorLog],
  ] as const) {
    if (value !== undefined && !isPlainPath(value)) fail(`${name} ${JSON.stringify(value)} is not a plain path`);
  }
  const workers = options.workerProcesses;
  if (workers !== undefined && workers !== 'auto' && !(Number.isInteger(workers) && workers >= 1))
    fail(`workerProcesses ${JSON.stringify(workers)} is not a count`);
  const ports = new Map<number, string>();
  if (options.statusPort !== undefined) {
    if (!isPortNumber(options.statusPort)) fail(`statusPort ${JSON.stringify(options.statusPort)} is not a port number`);
    ports.set(options.statusPort, 'the status listener');
  }
  checkRoutes(routes, fail);
  for (const route of routes) {
    const holder = ports.get(route.listenerPort);
    if (holder) fail(`route ${route.key}: listener port ${route.listenerPort} is already used by ${holder}`);
    ports.set(route.listenerPort, `route ${route.key}`);
  }
}

function nginxConf(options: NginxRenderOptions): string {
  const listen = hostForUrl(options.listenAddress);
  const range = options.listenerPorts;
  // Every listener takes a connection slot in every worker, before any request does, and
  // a proxied request takes two descriptors: the client's and the partner's.
  const connections = 4096 + (range ? range.last - range.first + 1 : 0);
  const lines = [
    '# Rendered by mtls-egress from ClientCertificateBindings; do not edit. Each binding is one',
    `# file under ${bindingConfDir}/. Relative paths: pid, logs and temp files resolve against`,
    '# the -p prefix, certificates and includes against the directory of this file.',
    `pid ${nginxPidFile};`,
    `error_log ${options.errorLog ?? 'error.log'} notice;`,
    `worker_processes ${options.workerProcesses ?? 'auto'};`,
    `worker_rlimit_nofile ${2 * connections};`,
    '',
    'events {',
    `    worker_connections ${connections};`,
    '}',
    '',
    'http {',
    '    server_tokens off;',
    '    client_body_temp_path client_body_temp;',
    '    proxy_temp_path proxy_temp;',
    '    fastcgi_temp_path fastcgi_temp;',
    '    uwsgi_temp_path uwsgi_temp;',
    '    scgi_temp_path scgi_temp;',
    '',
    // Declares the variable each binding's server sets, so the log format also loads
    // with no binding at all (a proxy starts before anyone binds).
    '    map "" $mtls_egress_binding {',
    '        default "-";',
    '    }',
    // The path, not the query string: partners' APIs put tokens in queries.
    `    log_format mtls_egress escape=json '{"time":"$time_iso8601","binding":"$mtls_egress_binding","client":"$remote_addr",'`,
    `        '"method":"$request_method","path":"$uri","status":$status,"bytes_sent":$bytes_sent,"request_time":$request_time,'`,
    `        '"upstream":"$upstream_addr","upstream_status":"$upstream_status","upstream_connect_time":"$upstream_connect_time",'`,
    `        '"upstream_response_time":"$upstream_response_time"}';`,
    options.accessLog === 'off' ? '    access_log off;' : `    access_log ${options.accessLog ?? 'access.log'} mtls_egress;`,
    '',
    '    client_max_body_size 10m;',
    '    client_body_buffer_size 128k;',
    '    proxy_connect_timeout 10s;',
    '    proxy_send_timeout 60s;',
    '    proxy_read_timeout 60s;',
    '    proxy_buffer_size 16k;',
    '    proxy_buffers 8 16k;',
    '    proxy_busy_buffers_size 32k;',
    '    proxy_redirect off;',
  ];
  if (options.statusPort !== undefined) {
    lines.push(
      '',
      '    server {',
      `        listen ${listen}:${options.statusPort};`,
      '        access_log off;',
      '        location = /healthz {',
      '            default_type text/plain;',
      '            return 200 "ok\\n";',
      '        }',
      '        location = /stub_status {',
      '            stub_status;',
      '        }',
      '        location / {',
      '            return 404;',
      '        }',
      '    }',
    );
  }
  lines.push('', `    include ${bindingConfDir}/*.conf;`, '}', '');
  return lines.join('\n');
}

/** `trusted`: the file of the partner's CA bundle, or the system trust bundle. */
function routeBlock(route: EgressRoute, listen: string, trusted: string): string[] {
  const upstream = upstreamName(route);
  const target = `${hostForUrl(route.host)}:${route.port}`;
  // What a browser would send for https://host:port: the port only when it is not 443.
  const hostHeader = route.port === 443 ? hostForUrl(route.host) : target;
  const { serialNumber, fingerprintSha256 } = route.clientCertificate;
  return [
    `    # ${route.key} -> https://${target}, SNI ${route.serverName}`,
    `    # client certificate serial ${commentSafe(serialNumber)}, SHA-256 ${commentSafe(fingerprintSha256)}`,
    `    upstream ${upstream} {`,
    // Addresses, never the name: nginx would resolve a name at every reload, unchecked.
    ...route.addresses.map((address) => `        server ${hostForUrl(address)}:${route.port};`),
    `        keepalive ${upstreamKeepalive};`,
    `        keepalive_timeout ${upstreamKeepaliveTimeout};`,
    '    }',
    '    server {',
    `        listen ${listen}:${route.listenerPort};`,
    `        set $mtls_egress_binding "${route.key}";`,
    '        location / {',
    `            proxy_pass https://${upstream};`,
    '            proxy_http_version 1.1;',
    `            proxy_set_header Host "${hostHeader}";`,
    '            proxy_set_header Connection "";',
    `            proxy_ssl_certificate ${certificateFile(route)};`,
    `            proxy_ssl_certificate_key ${keyFile(route)};`,
    '            proxy_ssl_protocols TLSv1.2 TLSv1.3;',
    '            proxy_ssl_server_name on;',
    `            proxy_ssl_name ${route.serverName};`,
    '            proxy_ssl_verify on;',
    `            proxy_ssl_verify_depth ${verifyDepth};`,
    `            proxy_ssl_trusted_certificate ${trusted};`,
    // Safe only because the session cache lives in this binding's own upstream peer.
    '            proxy_ssl_session_reuse on;',
    '        }',
    '    }',
  ];
}
