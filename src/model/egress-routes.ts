import { isIP } from 'node:net';
import * as reasons from '../api/v1alpha1/reasons.ts';
import { bindingKey, defaultPort, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import { certificateChainPem, type DecodedIdentity } from '../pki/index.ts';
import type { Sensitive } from '../pki/sensitive.ts';
import { certificateCondition, type EvaluatedFacts, type PortOutcome, type Problem } from '../status/evaluate.ts';
import { resolveCertificateInput, resolveServerCA, type CertificateInput, type SecretLike, type ServerCA } from './certificate-input.ts';
import { allocateListenerPorts, type PortRange } from './listener-ports.ts';

/** One binding as the proxy serves it: everything the renderer needs, nothing it must look up. */
export interface EgressRoute {
  key: string;
  namespace: string;
  name: string;
  listenerPort: number;
  host: string;
  port: number;
  /**
   * The name sent as SNI and verified in the partner's certificate; always a DNS name,
   * because nginx verifies names only (see ipHostProblem).
   */
  serverName: string;
  clientCertificate: {
    /** Leaf first, then its chain: what nginx presents. */
    chainPem: string;
    privateKey: Sensitive<string>;
    serialNumber: string;
    fingerprintSha256: string;
  };
  /** Absent: the system trust store verifies the partner. */
  serverCA?: { pem: string };
}

export interface LeftOut {
  key: string;
  reason: string;
  message: string;
}

/** What a route needs of a decoded identity; the CLI and the proxy-config controller adapt the identity core's to it. */
export interface ClientIdentity {
  facts: EvaluatedFacts;
  chainPem: string;
  privateKey: Sensitive<string>;
}

export type IdentityOutcome = { ok: true; identity: ClientIdentity } | Problem;

/** The identity core's decoded identity as a route needs it: leaf and chain as one PEM, leaf first. */
export function clientIdentity(decoded: DecodedIdentity): ClientIdentity {
  return {
    facts: { ...decoded.facts, dnsNames: [...decoded.facts.dnsNames] },
    chainPem: certificateChainPem(decoded),
    privateKey: decoded.privateKey,
  };
}

/** Turns Secret bytes into an identity or a stable reason; never throws for bad input. */
export type RouteIdentityDecoder = (input: CertificateInput) => Promise<IdentityOutcome>;

/** A binding with every input read and decoded: what the pure stage works from. */
export interface ResolvedBinding {
  binding: ClientCertificateBinding;
  certificate: IdentityOutcome;
  serverCA: ({ ok: true; ca: ServerCA | undefined }) | Problem;
}

export type SecretsByNamespace = ReadonlyMap<string, ReadonlyMap<string, SecretLike>>;

/**
 * The only asynchronous step: reads each binding's Secrets and decodes its certificate.
 * Everything that decides what is served happens afterwards, in buildEgressRoutes, so it
 * can be tested with an injected clock and no key material.
 */
export async function resolveBindings(
  bindings: readonly ClientCertificateBinding[],
  secretsByNamespace: SecretsByNamespace,
  decode: RouteIdentityDecoder,
): Promise<ResolvedBinding[]> {
  return Promise.all(
    bindings.map(async (binding): Promise<ResolvedBinding> => {
      const secrets = secretsByNamespace.get(binding.metadata.namespace);
      const lookup = (name: string): SecretLike | undefined => secrets?.get(name);
      const input = resolveCertificateInput(binding.spec, lookup);
      return {
        binding,
        certificate: input.ok ? await decode(input) : input,
        serverCA: resolveServerCA(binding.spec, lookup),
      };
    }),
  );
}

export interface BuildOptions {
  now: Date;
  listenerPorts: PortRange;
}

export interface EgressRoutes {
  /** Sorted by key. */
  routes: EgressRoute[];
  /** Sorted by key; each binding with the first reason it cannot be served. */
  leftOut: LeftOut[];
}

/**
 * Decides which bindings the proxy serves. A binding with a problem is left out with the
 * same reason its status would show; the others are still served, so one bad Secret never
 * takes a partner away from everyone else. Ports are allocated over every binding, served
 * or not, exactly as the status controller does, so the two always agree on them.
 */
export function buildEgressRoutes(resolved: readonly ResolvedBinding[], options: BuildOptions): EgressRoutes {
  const ports = allocateListenerPorts(
    resolved.map(({ binding }) => ({
      key: bindingKey(binding),
      creationTimestamp: binding.metadata.creationTimestamp ?? '',
      // Offline YAML can hold anything here; a value that is not a port claims nothing.
      ...(isPortNumber(binding.spec.listenerPort) ? { requested: binding.spec.listenerPort } : {}),
      ...(isPortNumber(binding.status?.listenerPort) ? { held: binding.status.listenerPort } : {}),
    })),
    options.listenerPorts,
  );
  const routes: EgressRoute[] = [];
  const leftOut: LeftOut[] = [];
  for (const r of resolved) {
    const key = bindingKey(r.binding);
    const outcome = buildRoute(r, ports.get(key), options);
    if (outcome.ok) routes.push(outcome.route);
    else leftOut.push({ key, reason: outcome.reason, message: outcome.message });
  }
  return { routes: routes.sort(byKey), leftOut: leftOut.sort(byKey) };
}

/** Code-unit order, not locale order: the same on every machine, so output is too. */
export function byKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** The checks in the status controller's order: spec, certificate, server CA, port. */
function buildRoute(r: ResolvedBinding, port: PortOutcome | undefined, options: BuildOptions): { ok: true; route: EgressRoute } | Problem {
  const { binding } = r;
  const spec = routeSpec(binding, options.listenerPorts);
  if (!spec.ok) return spec;
  if (!r.certificate.ok) return r.certificate;
  const { identity } = r.certificate;
  // The same verdict the status shows: an expired or not-yet-valid certificate would only
  // make the partner refuse every handshake, so it is not served at all.
  const validity = certificateCondition({ certificate: { ok: true, facts: identity.facts }, expiryWarningMs: 0, now: options.now });
  if (validity.status !== 'True') return { ok: false, reason: validity.reason, message: validity.message };
  if (!r.serverCA.ok) return r.serverCA;
  if (!port?.ok) return port ?? { ok: false, reason: reasons.ListenerPortsExhausted, message: 'no listener port allocated' };
  return {
    ok: true,
    route: {
      key: bindingKey(binding),
      namespace: binding.metadata.namespace,
      name: binding.metadata.name,
      listenerPort: port.port,
      host: spec.host,
      port: spec.port,
      serverName: spec.serverName,
      clientCertificate: {
        chainPem: identity.chainPem,
        privateKey: identity.privateKey,
        serialNumber: identity.facts.serialNumber,
        fingerprintSha256: identity.facts.fingerprintSha256,
      },
      ...(r.serverCA.ca ? { serverCA: { pem: r.serverCA.ca.pem } } : {}),
    },
  };
}

// Values that end up in nginx.conf. The CRD validates host and serverName with CEL, but an
// offline render reads whatever YAML it is given, and the renderer must never turn a value
// into configuration: these patterns admit no whitespace, quote, semicolon, brace, `$` or `#`.
const dnsLabel = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const dnsName = new RegExp(`^${dnsLabel}(\\.${dnsLabel})*$`);
const namespacePattern = new RegExp(`^${dnsLabel}$`);
const ipv6Chars = /^[0-9a-fA-F:.]+$/;

/** A lowercase RFC 1123 DNS name of at most 253 characters. */
export function isDnsName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 253 && dnsName.test(value);
}

/** An IPv4 or IPv6 literal without zone or brackets. */
export function isIpLiteral(value: unknown): value is string {
  return typeof value === 'string' && (isIP(value) === 4 || (isIP(value) === 6 && ipv6Chars.test(value)));
}

export function isPortNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/**
 * The problem with a route's values, if any, checked the same way for the model (which
 * leaves the binding out) and the renderer (which refuses to render it).
 */
export function routeValueProblem(route: Pick<EgressRoute, 'namespace' | 'name' | 'host' | 'port' | 'serverName' | 'listenerPort'>): string | undefined {
  if (typeof route.namespace !== 'string' || !namespacePattern.test(route.namespace)) return `metadata.namespace ${JSON.stringify(route.namespace)} is not a DNS label`;
  if (!isDnsName(route.name)) return `metadata.name ${JSON.stringify(route.name)} is not a DNS subdomain name`;
  if (!isDnsName(route.host) && !isIpLiteral(route.host)) {
    return `spec.host ${JSON.stringify(route.host)} must be a lowercase DNS name (RFC 1123) or an IP address, without scheme, port or path`;
  }
  if (!isPortNumber(route.port)) return `spec.port ${JSON.stringify(route.port)} is not a port number`;
  // SNI cannot carry an IP address (RFC 6066), and nginx would verify it as a DNS name.
  if (!isDnsName(route.serverName) || isIpLiteral(route.serverName)) {
    return `spec.serverName ${JSON.stringify(route.serverName)} must be a lowercase DNS name (RFC 1123), not an IP address`;
  }
  if (!isPortNumber(route.listenerPort)) return `spec.listenerPort ${JSON.stringify(route.listenerPort)} is not a port number`;
  return undefined;
}

/** host, port and serverName with defaults applied (the API server applies them too, but an offline render does not). */
function routeSpec(binding: ClientCertificateBinding, listenerPorts: PortRange): ({ ok: true; host: string; port: number; serverName: string }) | Problem {
  const { spec } = binding;
  const host = spec.host;
  const port = spec.port ?? defaultPort;
  const ipHost = isIpLiteral(host);
  if (ipHost && spec.serverName === undefined) return { ok: false, reason: reasons.InvalidSpec, message: ipHostProblem(host) };
  const serverName = spec.serverName ?? host;
  const fixed = spec.listenerPort;
  const problem = routeValueProblem({
    namespace: binding.metadata.namespace,
    name: binding.metadata.name,
    host,
    port,
    serverName,
    // Not allocated yet; only a fixed request can be wrong at this point.
    listenerPort: fixed ?? listenerPorts.first,
  });
  if (problem) return { ok: false, reason: reasons.InvalidSpec, message: problem };
  if (fixed !== undefined && (fixed < listenerPorts.first || fixed > listenerPorts.last)) {
    return { ok: false, reason: reasons.InvalidSpec, message: `spec.listenerPort ${fixed} is outside the proxy's listener range ${listenerPorts.first}-${listenerPorts.last}` };
  }
  return { ok: true, host, port, serverName };
}

/**
 * nginx 1.22 checks the partner's certificate with X509_check_host only, which never
 * matches an IP subjectAltName: a binding to a bare IP would fail every request with
 * "upstream SSL certificate does not match". Turning verification off for it is not an
 * option, so it is refused, with the way out in the message.
 */
function ipHostProblem(host: string): string {
  return `spec.host ${host} is an IP address and spec.serverName is empty: the egress proxy verifies the partner's certificate by DNS name only; set spec.serverName to a DNS name in the partner's certificate`;
}
