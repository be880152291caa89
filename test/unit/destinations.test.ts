import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { DestinationPolicy, parseCidr, parseCidrList, unmapIpv4 } from '../../src/model/destinations.ts';
import { proxyEgressPolicy } from '../../src/model/network-policies.ts';

const cluster = parseCidrList('10.96.0.0/12, 10.244.0.0/16, fd00:10:96::/108');
const policy = new DestinationPolicy({ clusterCidrs: cluster, allowed: parseCidrList('10.96.7.7, 192.0.2.0/24') });

describe('the egress destination policy', () => {
  const table: Array<[string, string | undefined]> = [
    ['169.254.169.254', '169.254.0.0/16'],
    ['127.0.0.1', '127.0.0.0/8'],
    ['127.255.0.9', '127.0.0.0/8'],
    ['::1', '::1/128'],
    ['::ffff:127.0.0.1', '127.0.0.0/8'],
    ['::ffff:7f00:1', '127.0.0.0/8'],
    ['::ffff:169.254.169.254', '169.254.0.0/16'],
    ['0.0.0.0', '0.0.0.0/8'],
    ['::', '::/128'],
    ['fe80::1', 'fe80::/10'],
    ['fd00:ec2::254', 'fd00:ec2::254/128'],
    ['100.100.100.200', '100.100.100.200/32'],
    ['168.63.129.16', '168.63.129.16/32'],
    ['224.0.0.1', '224.0.0.0/4'],
    ['10.96.0.1', '10.96.0.0/12'],
    ['10.244.3.4', '10.244.0.0/16'],
    ['fd00:10:96::a', 'fd00:10:96::/108'],
    // Opened by a platform team: wins over the cluster range it lies in.
    ['10.96.7.7', undefined],
    ['192.0.2.10', undefined],
    ['203.0.113.5', undefined],
    ['10.0.0.5', undefined],
    ['2001:db8::5', undefined],
  ];
  for (const [address, refusedBy] of table) {
    test(`${address} → ${refusedBy ?? 'allowed'}`, () => {
      const refusal = policy.refusal(address);
      if (refusedBy === undefined) assert.equal(refusal, undefined);
      else assert.ok(refusal?.startsWith(`${refusedBy}:`), refusal);
    });
  }

  test('a host is refused when any address it resolves to is', () => {
    assert.equal(policy.problem('api.partner.example', ['203.0.113.5']), undefined);
    const problem = policy.problem('rebind.example', ['203.0.113.5', '169.254.169.254']);
    assert.equal(problem?.reason, reasons.DestinationNotAllowed);
    assert.match(
      problem?.message ?? '',
      /^spec\.host rebind\.example resolves to 169\.254\.169\.254, which is not an allowed egress destination \(169\.254\.0\.0\/16: link-local/,
    );
    assert.match(policy.problem('169.254.169.254', ['169.254.169.254'])?.message ?? '', /^spec\.host 169\.254\.169\.254 is not an allowed egress destination/);
  });

  test('CIDRs parse strictly', () => {
    assert.deepEqual(parseCidr('10.0.0.1'), { text: '10.0.0.1/32', address: '10.0.0.1', prefix: 32, family: 4 });
    assert.equal(parseCidr('fd00::/64')?.family, 6);
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'fd00::/129', 'x/8', '10.0.0.0/8/8', '10.0.0.0/-1', '10.0.0.0/ 8', ''])
      assert.equal(parseCidr(bad), undefined, bad);
    assert.throws(() => parseCidrList('10.0.0.0/8,nope'), /"nope" is not an address or CIDR/);
  });

  test('IPv4-mapped IPv6 addresses are judged as IPv4', () => {
    assert.equal(unmapIpv4('::FFFF:10.1.2.3'), '10.1.2.3');
    assert.equal(unmapIpv4('::ffff:a01:203'), '10.1.2.3');
    assert.equal(unmapIpv4('2001:db8::1'), '2001:db8::1');
    assert.equal(unmapIpv4('0:0:0:0:0:ffff:7f00:1'), '127.0.0.1');
    assert.equal(unmapIpv4('::ffff:0:7f00:1'), '::ffff:0:7f00:1', 'IPv4-translated (SIIT) is not mapped: left to the IPv6 rules');
    assert.equal(unmapIpv4('::1'), '::1');
  });

  test('the proxy pods’ egress NetworkPolicy carries the same rule: DNS, everything but the refused ranges, and what was opened', () => {
    const np = proxyEgressPolicy(policy, 'mtls-egress-system', { app: 'proxy' }, { managed: 'yes' });
    assert.deepEqual(np.spec.policyTypes, ['Egress']);
    assert.deepEqual(np.spec.podSelector, { matchLabels: { app: 'proxy' } });
    const [dns, everywhere, opened] = np.spec.egress;
    assert.deepEqual(dns, { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }] });
    const v4 = everywhere?.to[0] as { ipBlock: { cidr: string; except: string[] } };
    const v6 = everywhere?.to[1] as { ipBlock: { cidr: string; except: string[] } };
    assert.equal(v4.ipBlock.cidr, '0.0.0.0/0');
    assert.ok(
      ['169.254.0.0/16', '127.0.0.0/8', '10.96.0.0/12', '10.244.0.0/16'].every((c) => v4.ipBlock.except.includes(c)),
      v4.ipBlock.except.join(),
    );
    assert.ok(
      ['fe80::/10', '::1/128', 'fd00:10:96::/108'].every((c) => v6.ipBlock.except.includes(c)),
      v6.ipBlock.except.join(),
    );
    assert.deepEqual(opened?.to, [{ ipBlock: { cidr: '10.96.7.7/32' } }, { ipBlock: { cidr: '192.0.2.0/24' } }]);
  });
});

describe('NAT64 (64:ff9b::/96): the embedded IPv4 address is judged', () => {
  const table: Array<[string, boolean]> = [
    ['64:ff9b::169.254.169.254', true],
    ['64:ff9b::a9fe:a9fe', true],
    ['64:ff9b:0:0:0:0:7f00:1', true],
    ['64:ff9b::10.244.1.5', true],
    ['64:ff9b::203.0.113.9', false],
  ];
  for (const [address, refused] of table) {
    test(`${address} → ${refused ? 'refused' : 'allowed'}`, () => assert.equal(policy.refusal(address) !== undefined, refused, policy.refusal(address)));
  }
});

describe("the nodes' own addresses", () => {
  // A node's InternalIP outside every pod and Service range, and an ExternalIP: `host: <node IP>`, `port: 10250` is the kubelet.
  const nodes = parseCidrList('172.18.0.2, 203.0.113.50, 2001:db8:1::2');
  const withNodes = new DestinationPolicy({ clusterCidrs: cluster, nodeAddresses: nodes, allowed: parseCidrList('203.0.113.50/32') });

  const table: Array<{ address: string; refused: boolean; why?: RegExp }> = [
    { address: '172.18.0.2', refused: true, why: /172\.18\.0\.2\/32: a node's address: the kubelet and node ports/ },
    { address: '::ffff:172.18.0.2', refused: true, why: /a node's address/ },
    { address: '::ffff:ac12:2', refused: true, why: /a node's address/ },
    { address: '2001:db8:1::2', refused: true, why: /2001:db8:1::2\/128: a node's address/ },
    { address: '172.18.0.3', refused: false },
    { address: '203.0.113.50', refused: false },
  ];
  for (const c of table) {
    test(`${c.address} → ${c.refused ? 'refused' : 'allowed'}`, () => {
      const refusal = withNodes.refusal(c.address);
      assert.equal(refusal !== undefined, c.refused, refusal);
      if (c.why) assert.match(refusal!, c.why);
    });
  }

  test('a binding aimed at a node is DestinationNotAllowed, whether by IP or by a name that resolves there', () => {
    assert.equal(withNodes.problem('172.18.0.2', ['172.18.0.2'])?.reason, reasons.DestinationNotAllowed);
    assert.equal(withNodes.problem('kubelet.attacker.example', ['198.51.100.1', '172.18.0.2'])?.reason, reasons.DestinationNotAllowed);
  });

  test("the proxy's egress NetworkPolicy excepts each node address as a /32 or /128, and opens the API server's own address and port", () => {
    const known = new DestinationPolicy({
      clusterCidrs: cluster,
      nodeAddresses: nodes,
      allowed: parseCidrList('203.0.113.50/32'),
      apiServer: [{ address: '172.18.0.2', port: 6443 }],
    });
    const np = proxyEgressPolicy(known, 'mtls-egress-system', { app: 'proxy' }, {});
    const [, everywhere, opened, apiServer] = np.spec.egress;
    const v4 = everywhere?.to[0] as { ipBlock: { cidr: string; except: string[] } };
    const v6 = everywhere?.to[1] as { ipBlock: { cidr: string; except: string[] } };
    assert.ok(v4.ipBlock.except.includes('172.18.0.2/32'));
    assert.ok(v4.ipBlock.except.includes('203.0.113.50/32'), 'excepted like every refusal; the opened address comes back in its own rule');
    assert.ok(v6.ipBlock.except.includes('2001:db8:1::2/128'));
    assert.deepEqual(opened?.to, [{ ipBlock: { cidr: '203.0.113.50/32' } }]);
    // The agent's watch: the API server on a node (kubeadm, kind, k3s), its port alone.
    assert.deepEqual(apiServer, { to: [{ ipBlock: { cidr: '172.18.0.2/32' } }], ports: [{ protocol: 'TCP', port: 6443 }] });
  });

  test("where the API server's endpoints are unknown, the nodes stay out of the NetworkPolicy's except lists (the controller still refuses them)", () => {
    const np = proxyEgressPolicy(withNodes, 'mtls-egress-system', { app: 'proxy' }, {});
    const [, everywhere] = np.spec.egress;
    const v4 = everywhere?.to[0] as { ipBlock: { cidr: string; except: string[] } };
    assert.ok(!v4.ipBlock.except.includes('172.18.0.2/32'), 'the agent keeps its watch');
    assert.ok(v4.ipBlock.except.includes('10.244.0.0/16'));
    assert.equal(withNodes.refusal('172.18.0.2') !== undefined, true);
  });
});

describe('a destination policy that does not know the pod range says so', () => {
  test('podRangeKnown false: a gap with reason PodRangeUnknown, naming the flag that closes it', () => {
    const gap = new DestinationPolicy({ clusterCidrs: [], allowed: [], podRangeKnown: false }).gap;
    assert.equal(gap?.reason, reasons.PodRangeUnknown);
    assert.match(gap!.message, /--cluster-cidrs/);
  });

  test('known (the default): no gap', () => {
    assert.equal(new DestinationPolicy({ clusterCidrs: cluster, allowed: [] }).gap, undefined);
  });
});
