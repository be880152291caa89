import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';

// A DNS server the test controls (UDP, A and AAAA only), so a name can answer one address
// now and another a moment later, with any TTL: what a rebinding attacker's server does.
// Hand-written rather than a dependency: a minimal answer is a header, the question
// echoed, and one resource record per address pointing back at the question's name.

export interface DnsRecords {
  /** Addresses the name answers (both families); absent: NXDOMAIN. */
  addresses: string[];
  ttlSeconds: number;
}

export interface TestDnsServer {
  /** "127.0.0.1:PORT", as --dns-server and Resolver.setServers take it. */
  address: string;
  /** What `name` answers from now on; undefined: NXDOMAIN. */
  set(name: string, records: DnsRecords | undefined): void;
  /** Queries received for a name (any type). */
  queries(name: string): number;
  close(): Promise<void>;
}

const typeA = 1;
const typeAAAA = 28;

export async function startDnsServer(): Promise<TestDnsServer> {
  const zone = new Map<string, DnsRecords>();
  const asked = new Map<string, number>();
  const socket: Socket = createSocket('udp4');
  socket.on('message', (query, from) => {
    const answer = respond(query, zone, asked);
    if (answer) socket.send(answer, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    set: (name, records) => (records ? zone.set(name.toLowerCase(), records) : zone.delete(name.toLowerCase())),
    queries: (name) => asked.get(name.toLowerCase()) ?? 0,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

function respond(query: Buffer, zone: ReadonlyMap<string, DnsRecords>, asked: Map<string, number>): Buffer | undefined {
  if (query.length < 12 || query.readUInt16BE(4) < 1) return undefined;
  // The first question: labels, then type and class.
  const labels: string[] = [];
  let at = 12;
  while (at < query.length && query[at] !== 0) {
    const length = query[at]!;
    if (length > 63) return undefined;
    labels.push(query.subarray(at + 1, at + 1 + length).toString('latin1'));
    at += 1 + length;
  }
  const questionEnd = at + 5;
  if (questionEnd > query.length) return undefined;
  const type = query.readUInt16BE(at + 1);
  const name = labels.join('.').toLowerCase();
  asked.set(name, (asked.get(name) ?? 0) + 1);
  const records = zone.get(name);
  const family = type === typeA ? 4 : type === typeAAAA ? 6 : 0;
  const addresses = records?.addresses.filter((a) => isIP(a) === family) ?? [];

  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  // QR, the query's RD, RA; NXDOMAIN when the name is unknown.
  header.writeUInt16BE(0x8080 | (query.readUInt16BE(2) & 0x0100) | (records ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addresses.length, 6);
  const answers = addresses.map((address) => {
    const rdata = family === 4 ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(type, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(records!.ttlSeconds, 6);
    rr.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([rr, rdata]);
  });
  return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const words = (text: string): number[] => (text ? text.split(':').map((w) => parseInt(w, 16)) : []);
  const first = words(head);
  const last = address.includes('::') ? words(tail) : [];
  const all = [...first, ...Array<number>(8 - first.length - last.length).fill(0), ...last];
  const bytes = Buffer.alloc(16);
  all.forEach((word, i) => bytes.writeUInt16BE(word, i * 2));
  return bytes;
}
