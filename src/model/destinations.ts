import { BlockList, isIP } from 'node:net';
import { quoteValue } from '../api/meta.ts';
import { DestinationNotAllowed, PodRangeUnknown, type Problem } from '../api/v1alpha1/reasons.ts';

// Where the egress proxy may connect. A binding names its partner, and whoever can write
// a binding would otherwise send the proxy, with the proxy's network identity, anywhere
// the proxy can reach: the cloud's metadata service, the node's loopback, another team's
// Services. So some destinations are refused unless a platform team opens them: the
// same rule is checked when a binding is translated (its host and every address the host
// resolves to) and enforced by the proxy pods' egress NetworkPolicy, so it holds even if
// DNS answers differently after the check.

export interface Cidr {
  readonly text: string;
  readonly address: string;
  readonly prefix: number;
  readonly family: 4 | 6;
}

/** "10.96.0.0/12" or "fd00::/108"; a bare address is a /32 or /128. Undefined when it is not one. */
export function parseCidr(text: string): Cidr | undefined {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  const family = isIP(address);
  if ((family !== 4 && family !== 6) || rest.length > 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(max)) || prefix > max) return undefined;
  return { text: `${address}/${prefix}`, address, prefix, family };
}

/** Parses a comma-separated list; throws with the entry that is not a CIDR. */
export function parseCidrList(text: string): Cidr[] {
  return text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => parseCidr(entry) ?? throwError(`${quoteValue(entry)} is not an address or CIDR`));
}

/** Refused whatever the cluster: no partner lives here, and each is a way into the node or the cloud account. */
export const alwaysDenied: ReadonlyArray<{ cidr: string; why: string }> = [
  { cidr: '0.0.0.0/8', why: '"this network", which reaches the node itself' },
  { cidr: '127.0.0.0/8', why: 'loopback' },
  { cidr: '::1/128', why: 'loopback' },
  { cidr: '::/128', why: 'the unspecified address' },
  { cidr: '169.254.0.0/16', why: 'link-local, home of the cloud metadata service 169.254.169.254' },
  { cidr: 'fe80::/10', why: 'link-local' },
  { cidr: 'fd00:ec2::254/128', why: "AWS's metadata service over IPv6" },
  { cidr: '100.100.100.200/32', why: "Alibaba Cloud's metadata service" },
  { cidr: '168.63.129.16/32', why: "Azure's WireServer" },
  { cidr: '224.0.0.0/4', why: 'multicast' },
  { cidr: 'ff00::/8', why: 'multicast' },
];

export interface DestinationPolicyOptions {
  /** The cluster's pod and Service ranges, refused like the fixed ones. */
  clusterCidrs: readonly Cidr[];
  /**
   * Every address of every Node (status.addresses: InternalIP, ExternalIP, any that is an
   * IP), each a /32 or /128: a binding aimed at a node reaches its kubelet (:10250) and
   * every NodePort and hostPort with the proxy's network identity.
   */
  nodeAddresses?: readonly Cidr[];
  /** What a platform team opened: these win over every refusal. */
  allowed: readonly Cidr[];
  /** Whether clusterCidrs holds the pod range (from Nodes or the flag); default true. */
  podRangeKnown?: boolean;
  /**
   * The API server's own endpoints (the `kubernetes` Service's), which the proxy's agent
   * watches: where they are node addresses (kubeadm, kind, k3s), the egress
   * NetworkPolicy must open them, address and port, or excepting the nodes would cut the
   * agent off. Undefined when unknown: then the nodes' addresses stay out of the
   * NetworkPolicy's except lists (the controller's check still refuses them).
   */
  apiServer?: ReadonlyArray<{ address: string; port: number }>;
}

export class DestinationPolicy {
  readonly denied: ReadonlyArray<{ cidr: Cidr; why: string }>;
  readonly allowed: readonly Cidr[];
  /** What this policy cannot refuse, said on every binding's status; undefined when it is complete. */
  readonly gap: Problem | undefined;
  /** The refused ranges the egress NetworkPolicy excepts: all of them, but the nodes' addresses while the API server's endpoints are unknown. */
  readonly networkPolicyDenied: ReadonlyArray<{ cidr: Cidr; why: string }>;
  /** What the egress NetworkPolicy opens whatever it excepts: the API server's endpoints. */
  readonly apiServer: ReadonlyArray<{ address: string; port: number }>;
  readonly #deny = new BlockList();
  readonly #allow = new BlockList();

  constructor(options: DestinationPolicyOptions) {
    this.denied = [
      ...alwaysDenied.map(({ cidr, why }) => ({ cidr: parseCidr(cidr)!, why })),
      ...options.clusterCidrs.map((cidr) => ({ cidr, why: "the cluster's pod or Service range" })),
      ...(options.nodeAddresses ?? []).map((cidr) => ({ cidr, why: "a node's address: the kubelet and node ports" })),
    ];
    this.allowed = [...options.allowed];
    const nodes = new Set((options.nodeAddresses ?? []).map((cidr) => cidr.text));
    this.apiServer = [...(options.apiServer ?? [])];
    this.networkPolicyDenied = options.apiServer === undefined ? this.denied.filter(({ cidr }) => !nodes.has(cidr.text)) : this.denied;
    this.gap =
      options.podRangeKnown === false
        ? {
            reason: PodRangeUnknown,
            message:
              "the cluster's pod range is unknown (no Node has spec.podCIDRs, and --cluster-cidrs does not name it), so pod addresses are not refused as destinations; " +
              "set the controller's --cluster-cidrs to the pod and Service ranges",
          }
        : undefined;
    for (const { cidr } of this.denied) this.#deny.addSubnet(cidr.address, cidr.prefix, cidr.family === 4 ? 'ipv4' : 'ipv6');
    for (const cidr of this.allowed) this.#allow.addSubnet(cidr.address, cidr.prefix, cidr.family === 4 ? 'ipv4' : 'ipv6');
  }

  /** Why the proxy may not connect to this address, or undefined when it may. */
  refusal(address: string): string | undefined {
    const normalized = unmapIpv4(address);
    const family = isIP(normalized);
    if (family !== 4 && family !== 6) return 'it is not an IP address';
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (this.#allow.check(normalized, type)) return undefined;
    if (!this.#deny.check(normalized, type)) return undefined;
    const hit = this.denied.find(({ cidr }) => cidr.family === family && contains(cidr, normalized));
    return hit ? `${hit.cidr.text}: ${hit.why}` : 'a refused range';
  }

  /**
   * Why a binding may not send the proxy to `host`, given the addresses it resolves to
   * (an IP host is its own address): any refused address refuses the host, since the
   * proxy may connect to any of them.
   */
  problem(host: string, addresses: readonly string[]): Problem | undefined {
    for (const address of addresses) {
      const refusal = this.refusal(address);
      if (refusal === undefined) continue;
      const target = address === host ? `spec.host ${host}` : `spec.host ${host} resolves to ${address}, which`;
      return {
        reason: DestinationNotAllowed,
        message: `${target} is not an allowed egress destination (${refusal}); a platform team can open it with the controller's --allowed-destinations`,
      };
    }
    return undefined;
  }
}

function contains(cidr: Cidr, address: string): boolean {
  const list = new BlockList();
  list.addSubnet(cidr.address, cidr.prefix, cidr.family === 4 ? 'ipv4' : 'ipv6');
  return list.check(address, cidr.family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The IPv4 address an IPv6 address carries to an IPv4 host, judged as that IPv4 address:
 * IPv4-mapped ("::ffff:127.0.0.1", "::ffff:7f00:1", "0:0:0:0:0:ffff:7f00:1") must not slip
 * past an IPv4 rule, nor must the NAT64 well-known prefix (RFC 6052, 64:ff9b::/96), which
 * a cluster with DNS64/NAT64 translates to the embedded IPv4 address:
 * 64:ff9b::169.254.169.254 is the metadata service there. Anything else is returned as is.
 */
export function unmapIpv4(address: string): string {
  const words = ipv6Words(address);
  if (!words) return address;
  const mapped = words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff;
  const nat64 = words[0] === 0x64 && words[1] === 0xff9b && words.slice(2, 6).every((w) => w === 0);
  if (!mapped && !nat64) return address;
  const [high = 0, low = 0] = words.slice(6);
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/** An IPv6 address as its eight 16-bit words (a dotted IPv4 tail counts as two); undefined when it is not one. */
function ipv6Words(address: string): number[] | undefined {
  if (isIP(address) !== 6) return undefined;
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const first = parse(head);
  const last = tail === undefined ? [] : parse(tail);
  const words = tail === undefined ? first : [...first, ...Array<number>(8 - first.length - last.length).fill(0), ...last];
  return words.length === 8 ? words : undefined;
}

function throwError(message: string): never {
  throw new Error(message);
}
