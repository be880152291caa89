// Every name the nginx data plane reserves, in one place.

/** The file nginx runs from: -c DIR/current/nginx.conf. */
export const nginxConfigFile = 'nginx.conf';
/** Where each binding's server and upstream blocks live, one file per binding: nginx.conf includes them all. */
export const bindingConfDir = 'bindings';
/** A binding's client certificate and key (0600), and its partner CA. */
export const certificateDir = 'certs';
export const caDir = 'ca';
/** nginx's pid file, relative to its -p prefix, as nginx.conf names it. */
export const nginxPidFile = 'nginx.pid';
