import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { toPfx, type Issued } from './partner-pki.ts';

/** What the partner saw of one request: the identity it authenticated and how it was reached. */
export interface PartnerSeen {
  /** The client certificate's subject CN and O, and its serial as status prints it (lowercase hex, no leading zeros). */
  cn: string;
  organization: string;
  serialNumber: string;
  /** The Host header. */
  host: string | undefined;
  /** The TLS SNI; false when the client sent none. */
  sni: string | false;
  /** Whether this request's connection resumed an earlier TLS session (no new certificate was sent). */
  sessionReused: boolean;
  protocol: string | null;
  method: string;
  path: string;
  bodyBytes: number;
}

export interface MtlsPartner {
  port: number;
  /** https://localhost:<port> */
  url: string;
  /** Every request answered, in order (empty when started with record: false). */
  seen: PartnerSeen[];
  /** TLS connections the partner accepted, and how many of them resumed a session. */
  connections: { total: number; resumed: number };
  close(): Promise<void>;
}

export interface MtlsPartnerOptions {
  /** The partner's server certificate and key (PEM). */
  cert: string;
  key: string;
  /** The CA(s) whose client certificates it accepts. */
  clientCA: string;
  /** Answer this many requests per connection, then close it: forces new handshakes, so resumption shows. */
  maxRequestsPerSocket?: number;
  /** Keep every PartnerSeen (default true); off for benchmarks. */
  record?: boolean;
  host?: string;
  /** Cap the TLS version, e.g. to show that TLS 1.2 session resumption is isolated too. */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

/**
 * A real mTLS partner: it requires a client certificate from `clientCA` and refuses the
 * handshake otherwise, and answers each request with the identity it authenticated, the
 * Host header and the SNI it saw, as JSON. Tests on the proxy assert on what the partner
 * saw, not on what the proxy was configured to do.
 */
export async function startMtlsPartner(options: MtlsPartnerOptions): Promise<MtlsPartner> {
  const seen: PartnerSeen[] = [];
  const connections = { total: 0, resumed: 0 };
  const record = options.record ?? true;
  const identities = new WeakMap<TLSSocket, Pick<PartnerSeen, 'cn' | 'organization' | 'serialNumber'>>();
  const server: Server = createServer(
    {
      cert: options.cert,
      key: options.key,
      ca: options.clientCA,
      requestCert: true,
      rejectUnauthorized: true,
      ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
    },
    (req, res) => {
      let bodyBytes = 0;
      req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
      req.on('end', () => {
        const socket = req.socket as TLSSocket;
        // On a resumed session the certificate comes from the session, which is exactly
        // the identity the partner attributes the request to. A TLS connection keeps its
        // identity for its life, and reading it is costly (the benchmarks' partner did
        // little else), so it is read once per connection.
        let peer = identities.get(socket);
        if (!peer) {
          const certificate = socket.getPeerCertificate();
          peer = {
            cn: String(certificate.subject?.CN ?? ''),
            organization: String(certificate.subject?.O ?? ''),
            serialNumber: (certificate.serialNumber ?? '').toLowerCase().replace(/^0+(?=.)/, ''),
          };
          identities.set(socket, peer);
        }
        const answer: PartnerSeen = {
          ...peer,
          host: req.headers.host,
          sni: (socket as TLSSocket & { servername: string | false }).servername,
          sessionReused: socket.isSessionReused(),
          protocol: socket.getProtocol(),
          method: req.method ?? '',
          path: req.url ?? '',
          bodyBytes,
        };
        if (record) seen.push(answer);
        const body = JSON.stringify(answer);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    },
  );
  server.on('secureConnection', (socket: TLSSocket) => {
    connections.total++;
    if (socket.isSessionReused()) connections.resumed++;
  });
  // A refused handshake is part of some tests; it must not crash the partner.
  server.on('tlsClientError', () => undefined);
  if (options.maxRequestsPerSocket !== undefined) server.maxRequestsPerSocket = options.maxRequestsPerSocket;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `https://localhost:${port}`,
    seen,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface PartnerBindingOptions {
  name: string;
  namespace?: string;
  /** The client identity; its PFX is made by the real `openssl pkcs12 -export`. */
  client: Issued;
  password: string;
  host: string;
  port: number;
  serverName?: string;
  /** The CA that signed the partner's server certificate, as the binding's serverCA Secret. */
  serverCA?: string;
  listenerPort?: number;
}

/** A ClientCertificateBinding to the partner and the Secret it reads, as manifests a person would apply. */
export function partnerBindingManifests(options: PartnerBindingOptions): object[] {
  const namespace = options.namespace ?? 'team-a';
  const secretName = `${options.name}-pfx`;
  const pfx = toPfx(options.client, { password: options.password });
  const caSecret = options.serverCA
    ? [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: `${options.name}-partner-ca`, namespace }, stringData: { 'ca.crt': options.serverCA } }]
    : [];
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: secretName, namespace },
      type: 'Opaque',
      data: { 'keystore.p12': pfx.toString('base64') },
      stringData: { password: options.password },
    },
    ...caSecret,
    {
      apiVersion: 'mtls-egress.io/v1alpha1',
      kind: 'ClientCertificateBinding',
      metadata: { name: options.name, namespace },
      spec: {
        host: options.host,
        port: options.port,
        ...(options.serverName ? { serverName: options.serverName } : {}),
        certificate: { secretRef: { name: secretName }, passwordSecretRef: { name: secretName } },
        ...(options.serverCA ? { serverCA: { secretRef: { name: `${options.name}-partner-ca` } } } : {}),
        ...(options.listenerPort ? { listenerPort: options.listenerPort } : {}),
      },
    },
  ];
}
