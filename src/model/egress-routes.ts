import { isIP } from 'node:net';
import { quoteValue } from '../api/meta.ts';
import type { Outcome, Problem } from '../api/v1alpha1/reasons.ts';
import type { IdentityFacts } from '../pki/certificate-facts.ts';
import { certificateChainPem, type DecodedIdentity } from '../pki/identity.ts';
import type { Sensitive } from '../pki/sensitive.ts';

/** One binding as the proxy serves it: everything the renderer needs, nothing it must look up. */
export interface EgressRoute {
  key: string;
  namespace: string;
  name: string;
  listenerPort: number;
  host: string;
  /**
   * Where the proxy connects: the host's addresses as the controller resolved them, each
   * checked against the destination policy, sorted (an IP host is its own). The proxy is
   * never given the name to resolve, so what it connects to is what was checked. Empty
   * only where nothing is rendered (validate).
   */
  addresses: readonly string[];
  port: number;
  /**
   * The name sent as SNI and verified in the partner's certificate; always a DNS name,
   * because nginx verifies names only (see translate's ipHostProblem).
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

/** A binding the proxy does not serve, and why: the reason its status shows. */
export interface LeftOut extends Problem {
  readonly key: string;
}

/** What a route needs of a decoded identity; the CLI and the proxy-config controller adapt the identity core's to it. */
export interface ClientIdentity {
  facts: IdentityFacts;
  chainPem: string;
  privateKey: Sensitive<string>;
}

/**
 * A decoded identity, or why there is none. `transient` marks a problem that is not a
 * verdict on the file (the decode ran out of time on a busy machine): it is not cached,
 * and the binding is looked at again.
 */
export type IdentityOutcome = Outcome<{ identity: ClientIdentity }> | ({ readonly ok: false; readonly transient?: boolean } & Problem);

/** The identity core's decoded identity as a route needs it: leaf and chain as one PEM, leaf first. */
export function clientIdentity(decoded: DecodedIdentity): ClientIdentity {
  return {
    facts: { ...decoded.facts, dnsNames: [...decoded.facts.dnsNames] },
    chainPem: certificateChainPem(decoded),
    privateKey: decoded.privateKey,
  };
}

/** Code-unit order, not locale order: the same on every machine, so output is too. */
export function byKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
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
  if (typeof route.namespace !== 'string' || !namespacePattern.test(route.namespace))
    return `metadata.namespace ${quoteValue(route.namespace)} is not a DNS label`;
  if (!isDnsName(route.name)) return `metadata.name ${quoteValue(route.name)} is not a DNS subdomain name`;
  if (!isDnsName(route.host) && !isIpLiteral(route.host)) {
    return `spec.host ${quoteValue(route.host)} must be a lowercase DNS name (RFC 1123) or an IP address, without scheme, port or path`;
  }
  if (!isPortNumber(route.port)) return `spec.port ${quoteValue(route.port)} is not a port number`;
  // SNI cannot carry an IP address (RFC 6066), and nginx would verify it as a DNS name.
  if (!isDnsName(route.serverName) || isIpLiteral(route.serverName)) {
    return `spec.serverName ${quoteValue(route.serverName)} must be a lowercase DNS name (RFC 1123), not an IP address`;
  }
  if (!isPortNumber(route.listenerPort)) return `spec.listenerPort ${quoteValue(route.listenerPort)} is not a port number`;
  return undefined;
}
