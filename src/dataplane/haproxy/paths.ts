import { bindingDirectories } from '../../contract/proxy-objects.ts';

// Every name the HAProxy data plane reserves, in one place: the files of a generation,
// the sockets of its run directory, and the variables its config spells paths through.

/** The file HAProxy runs from: -f DIR/current/haproxy.cfg. */
export const haproxyConfigFile = 'haproxy.cfg';
/** The options the agent renders haproxy.cfg with: travels as a shared file, so its hash covers them. */
export const optionsFile = 'haproxy-options.json';
/** What a client gets when HAProxy cannot reach the partner or the partner fails verification. */
export const badGatewayFile = 'bad-gateway.http';
/** Listener port → backend. */
export const portsMap = 'ports.map';
/** Listener port → the Host header the partner gets. */
export const hostsMap = 'hosts.map';
/** Listener port → the binding's key, for the access log. */
export const bindingsMap = 'bindings.map';
/** A binding's client certificate with its key (0600), and its partner CA. */
export const certificateDir = 'certs';
export const caDir = 'ca';

/** The files the agent makes itself from the others (they list every binding): no shared object may carry one. */
export const assembledFiles: readonly string[] = [haproxyConfigFile, portsMap, hostsMap, bindingsMap];
/** Names no shared file may take: the assembled files, and the directories binding files live in. */
export const reservedSharedPaths: ReadonlySet<string> = new Set([...assembledFiles, ...bindingDirectories]);

/** In the run directory: the runtime API (admin level) and the master CLI. */
export const runtimeSocket = 'haproxy.sock';
export const masterSocket = 'master.sock';

/** Where this config lives; set by the agent, so the same bytes run from any directory and hash alike everywhere. */
export const configDirVariable = 'MTLS_EGRESS_CONFIG_DIR';
/** Where the sockets are. */
export const runDirVariable = 'MTLS_EGRESS_RUN_DIR';
