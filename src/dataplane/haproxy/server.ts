import { isIP } from 'node:net';
import { caDir, certificateDir } from './paths.ts';
import { systemTrustStore } from './render.ts';

// A binding's server as the agent reads it from the binding object: the contract carries
// it unread, and anyone who can write Secrets in the proxy namespace could write one, so
// it is checked here before any value of it reaches HAProxy.

const dnsName = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const ipLiteral = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:.]*)$/i;
const certificatePattern = new RegExp(`^${certificateDir}/[A-Za-z0-9._-]+\\.pem$`);
const caPattern = new RegExp(`^${caDir}/[A-Za-z0-9._-]+\\.pem$`);

/**
 * The agent turns a server into runtime API commands, where a space, a ";" or a newline
 * would start another argument or command: every value must be exactly what the renderer
 * makes, whoever wrote the object. `paths` are the binding's own files.
 */
export function haproxyServerProblem(entry: unknown, key: string, paths: ReadonlySet<string>): string | undefined {
  const s = (entry ?? {}) as Record<string, unknown>;
  const port = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
  if (typeof entry !== 'object' || entry === null) return 'no server';
  if (s.key !== key) return 'the server belongs to another binding';
  if (!port(s.listenerPort) || s.backend !== `p${String(s.listenerPort)}`) return 'the backend is not p<listenerPort>';
  if (typeof s.server !== 'string' || !/^s[0-9a-f]{12}$/.test(s.server)) return 'the server name is not s<12 hex digits>';
  if (typeof s.host !== 'string' || !(dnsName.test(s.host) || ipLiteral.test(s.host))) return 'the host is not a DNS name or an IP address';
  // Connected to as it is: an IP literal only, never a name HAProxy would resolve unchecked.
  if (typeof s.address !== 'string' || !ipLiteral.test(s.address) || isIP(s.address) === 0) return 'the address is not an IP address';
  if (!port(s.port)) return 'the port is not a port number';
  if (typeof s.serverName !== 'string' || !dnsName.test(s.serverName)) return 'the serverName is not a DNS name';
  if (typeof s.hostHeader !== 'string' || !/^[a-z0-9.:[\]-]+$/i.test(s.hostHeader)) return 'the Host header is not host[:port]';
  if (typeof s.certificateFile !== 'string' || !certificatePattern.test(s.certificateFile) || !paths.has(s.certificateFile))
    return "the certificate file is not one of the binding's certs/ files";
  if (s.caFile !== systemTrustStore && (typeof s.caFile !== 'string' || !caPattern.test(s.caFile) || !paths.has(s.caFile)))
    return "the CA file is neither @system-ca nor one of the binding's ca/ files";
  if (typeof s.fingerprintSha256 !== 'string' || typeof s.serialNumber !== 'string') return 'no certificate fingerprint or serial';
  return undefined;
}
