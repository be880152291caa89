import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  afterSteps,
  changedBackends,
  convergenceProblems,
  countedBusy,
  leftoverStores,
  narrowTo,
  planHaproxy,
  replaceBackends,
  touchedBackends,
  type DesiredHaproxy,
  type LiveHaproxy,
  type Step,
} from '../../src/dataplane/haproxy/plan.ts';
import type { LiveServer } from '../../src/dataplane/haproxy/state.ts';
import type { HaproxyServer } from '../../src/dataplane/haproxy/render.ts';

const dir = '/etc/mtls-egress/current';

/** A binding's server as renderHaproxy makes it; `version` stands for a certificate (a rotation is a new one). */
function server(name: string, port: number, version = 1, ca: boolean | string = true): HaproxyServer {
  return {
    key: `team-a/${name}`,
    listenerPort: port,
    backend: `p${port}`,
    server: `s${name.padEnd(11, '0').slice(0, 11)}${version}`,
    host: 'partner.example',
    address: '203.0.113.10',
    port: 443,
    serverName: 'partner.example',
    hostHeader: 'partner.example',
    certificateFile: `certs/team-a_${name}.${String(version).repeat(16)}.pem`,
    caFile: ca === false ? '@system-ca' : `ca/team-a_${name}.${ca === true ? 'abcdefabcdefabcd' : ca}.pem`,
    fingerprintSha256: 'AA',
    serialNumber: String(version),
  };
}

function desired(servers: HaproxyServer[]): DesiredHaproxy {
  const entries = (value: (s: HaproxyServer) => string) => new Map(servers.map((s) => [String(s.listenerPort), value(s)]));
  return {
    storeDir: dir,
    servers,
    maps: new Map([
      ['ports.map', entries((s) => s.backend)],
      ['hosts.map', entries((s) => s.hostHeader)],
      ['bindings.map', entries((s) => s.key)],
    ]),
  };
}

/** HAProxy serving exactly `servers`, with optional changes. */
function live(servers: HaproxyServer[], change: Partial<LiveHaproxy> = {}): LiveHaproxy {
  const want = desired(servers);
  return {
    servers: servers.map((s): LiveServer => ({ backend: s.backend, name: s.server, address: '10.0.0.1', port: s.port, adminState: 0, fqdn: '-' })),
    connections: new Map(),
    certificates: { loaded: new Set(servers.map((s) => `${dir}/${s.certificateFile}`)), transactions: [] },
    caFiles: { loaded: new Set(['@system-ca', ...servers.filter((s) => s.caFile !== '@system-ca').map((s) => `${dir}/${s.caFile}`)]), transactions: [] },
    maps: new Map([...want.maps].map(([file, entries]) => [`${dir}/${file}`, new Map(entries)])),
    ...change,
  };
}

const ops = (steps: Step[]): string[] =>
  steps.map((s) => {
    if ('server' in s) return `${s.op} ${s.backend}/${s.server}`;
    if ('map' in s) return `${s.op} ${s.map.slice(dir.length + 1)} ${s.key}`;
    return `${s.op} ${s.name.startsWith(dir) ? s.name.slice(dir.length + 1) : s.name}`;
  });

const alpha = server('alpha', 10000);
const bravo = server('bravo', 10001);

describe('planHaproxy', () => {
  const cases: Array<{ name: string; want: HaproxyServer[]; have: LiveHaproxy; steps: string[]; draining?: string[] }> = [
    { name: 'in sync: nothing to do', want: [alpha, bravo], have: live([alpha, bravo]), steps: [] },
    {
      name: 'a new binding: CA and certificate first, then the server, then the maps with the port last',
      want: [alpha, bravo],
      have: live([alpha]),
      steps: [
        `load-ca ${bravo.caFile}`,
        `load-cert ${bravo.certificateFile}`,
        `add-server p10001/${bravo.server}`,
        `enable-server p10001/${bravo.server}`,
        'map-add hosts.map 10001',
        'map-add bindings.map 10001',
        'map-add ports.map 10001',
      ],
    },
    {
      name: 'a rotation: the new server in service before the old one leaves; a busy old server drains, and keeps its certificate and CA file',
      want: [alpha, server('bravo', 10001, 2, 'new-ca')],
      have: live([alpha, bravo], { connections: new Map([[`p10001/${bravo.server}`, { used: 1, idle: 0 }]]) }),
      steps: [
        `load-ca ${server('bravo', 10001, 2, 'new-ca').caFile}`,
        `load-cert ${server('bravo', 10001, 2).certificateFile}`,
        `add-server p10001/${server('bravo', 10001, 2).server}`,
        `enable-server p10001/${server('bravo', 10001, 2).server}`,
        `disable-server p10001/${bravo.server}`,
      ],
      draining: [`p10001/${bravo.server}`],
    },
    {
      name: 'the pass after the drain: the old server goes, then its certificate and CA file',
      want: [alpha, server('bravo', 10001, 2, 'new-ca')],
      have: (() => {
        const have = live([alpha, bravo, server('bravo', 10001, 2, 'new-ca')]);
        return { ...have, servers: have.servers.map((s) => (s.name === bravo.server ? { ...s, adminState: 1 } : s)) };
      })(),
      steps: [`del-server p10001/${bravo.server}`, `del-cert ${bravo.certificateFile}`, `del-ca ${bravo.caFile}`],
    },
    {
      name: 'a removed binding: the port leaves the map first, then the server (idle: deleted now), its certificate and CA',
      want: [alpha],
      have: live([alpha, bravo]),
      steps: [
        'map-del ports.map 10001',
        'map-del bindings.map 10001',
        'map-del hosts.map 10001',
        `disable-server p10001/${bravo.server}`,
        `del-server p10001/${bravo.server}`,
        `del-cert ${bravo.certificateFile}`,
        `del-ca ${bravo.caFile}`,
      ],
    },
    {
      name: 'a removed binding planned on a picture not read now (countedBusy): taken out and left draining, nothing deleted yet',
      want: [alpha],
      have: countedBusy(live([alpha, bravo]), new Set(['p10001'])),
      steps: ['map-del ports.map 10001', 'map-del bindings.map 10001', 'map-del hosts.map 10001', `disable-server p10001/${bravo.server}`],
      draining: [`p10001/${bravo.server}`],
    },
    {
      name: 'drift: a server taken out of service by hand is put back; a map value changed by hand is set back',
      want: [alpha],
      have: (() => {
        const have = live([alpha]);
        return {
          ...have,
          servers: have.servers.map((s) => ({ ...s, adminState: 1 })),
          maps: new Map([...have.maps].map(([f, m]) => [f, f.endsWith('hosts.map') ? new Map([['10000', 'evil.example']]) : m])),
        };
      })(),
      steps: [`enable-server p10000/${alpha.server}`, 'map-set hosts.map 10000'],
    },
    {
      name: 'a transaction a stopped agent left open is aborted before anything else',
      want: [alpha],
      have: live([alpha], {
        certificates: { loaded: new Set([`${dir}/${alpha.certificateFile}`]), transactions: [`${dir}/certs/x.pem`] },
      }),
      steps: [`abort-cert certs/x.pem`],
    },
    {
      name: 'what is not ours is never touched: other backends, other certificate names, @system-ca',
      want: [server('alpha', 10000, 1, false)],
      have: (() => {
        const have = live([server('alpha', 10000, 1, false)]);
        return {
          ...have,
          servers: [...have.servers, { backend: 'unbound', name: 'x', address: '-', port: 0, adminState: 0, fqdn: '-' }],
          certificates: { loaded: new Set([...have.certificates.loaded, '/etc/other/cert.pem']), transactions: [] },
        };
      })(),
      steps: [],
    },
  ];

  for (const c of cases) {
    test(c.name, () => {
      const plan = planHaproxy(desired(c.want), c.have);
      assert.deepEqual(ops(plan.steps), c.steps);
      assert.deepEqual(plan.draining, c.draining ?? []);
    });
  }

  test('a new server is added with the arguments the config file has, without quotes', () => {
    const add = planHaproxy(desired([alpha]), live([])).steps.find((s) => s.op === 'add-server');
    assert.ok(add && add.op === 'add-server');
    assert.deepEqual(add.args.slice(0, 3), ['ssl', 'crt', `${dir}/${alpha.certificateFile}`]);
    assert.ok(add.args.includes(`${dir}/${alpha.caFile}`));
    assert.ok(!add.args.some((a) => a.includes('"')));
  });
});

describe('convergenceProblems: read back, HAProxy serves the manifest or says what differs', () => {
  const want = desired([alpha, bravo]);
  const verified = new Map([
    [`${dir}/${alpha.certificateFile}`, true],
    [`${dir}/${bravo.certificateFile}`, true],
  ]);
  test('in sync', () => assert.deepEqual(convergenceProblems(want, live([alpha, bravo]), verified), []));
  test('a missing server, a certificate not as rendered, a stray server in service, a map off', () => {
    const have = live([alpha, bravo]);
    const problems = convergenceProblems(
      want,
      {
        ...have,
        servers: [
          ...have.servers.filter((s) => s.name !== bravo.server),
          { backend: 'p10000', name: 'sold00000000', address: '-', port: 443, adminState: 0, fqdn: '-' },
        ],
        maps: new Map([...have.maps].map(([f, m]) => [f, f.endsWith('ports.map') ? new Map() : m])),
      },
      new Map([...verified, [`${dir}/${alpha.certificateFile}`, false]]),
    );
    assert.deepEqual(problems, [
      `team-a/alpha: HAProxy does not hold certificate ${alpha.certificateFile} as rendered`,
      `team-a/bravo: server p10001/${bravo.server} is missing`,
      'server p10000/sold00000000 still takes requests',
      'map ports.map differs from the manifest',
    ]);
  });
});

describe('the picture between full read-backs: afterSteps, touchedBackends, replaceBackends', () => {
  const bravo2 = server('bravo', 10001, 2, 'new-ca');
  const charlie = server('charlie', 10002);
  const verified = (servers: HaproxyServer[]): Map<string, boolean> => new Map(servers.map((s) => [`${dir}/${s.certificateFile}`, true]));

  const changes: Array<{ name: string; from: HaproxyServer[]; to: HaproxyServer[]; touched: string[] }> = [
    { name: 'a rotation', from: [alpha, bravo], to: [alpha, bravo2], touched: ['p10001'] },
    { name: 'a binding added', from: [alpha], to: [alpha, charlie], touched: ['p10002'] },
    { name: 'a binding removed', from: [alpha, charlie], to: [alpha], touched: ['p10002'] },
    { name: 'nothing changed', from: [alpha, bravo], to: [alpha, bravo], touched: [] },
  ];
  for (const c of changes) {
    test(`${c.name}: the steps planned, once done, leave a picture that serves the manifest; the backends touched are the change's`, () => {
      const plan = planHaproxy(desired(c.to), live(c.from));
      assert.deepEqual([...touchedBackends(plan)], c.touched);
      const after = afterSteps(live(c.from), plan.steps);
      assert.deepEqual(convergenceProblems(desired(c.to), after, verified(c.to)), []);
      assert.deepEqual(planHaproxy(desired(c.to), after).steps, [], 'a second pass over the picture finds nothing to do');
    });
  }

  test('a step HAProxy refused is not in the picture: a server still busy stays, and so do its certificate and CA file', () => {
    const have = live([alpha, bravo]);
    const plan = planHaproxy(desired([alpha, bravo2]), have);
    const refused = plan.steps.filter((s) => s.op !== 'del-server' && s.op !== 'del-cert' && s.op !== 'del-ca');
    const after = afterSteps(have, refused);
    assert.ok(
      after.servers.some((s) => s.name === bravo.server && s.adminState === 1),
      'out of service, still there',
    );
    assert.ok(after.certificates.loaded.has(`${dir}/${bravo.certificateFile}`));
    assert.ok(after.caFiles.loaded.has(`${dir}/${bravo.caFile}`));
    assert.deepEqual(ops(planHaproxy(desired([alpha, bravo2]), after).steps), [
      `del-server p10001/${bravo.server}`,
      `del-cert ${bravo.certificateFile}`,
      `del-ca ${bravo.caFile}`,
    ]);
  });

  test('a draining server is a touched backend, so the next pass reads its connections fresh', () => {
    const have = live([alpha, bravo], { connections: new Map([[`p10001/${bravo.server}`, { used: 0, idle: 2 }]]) });
    const disabled = afterSteps(have, planHaproxy(desired([alpha, bravo2]), have).steps);
    const plan = planHaproxy(desired([alpha, bravo2]), disabled);
    assert.deepEqual(plan.steps, [], 'nothing to do but wait');
    assert.deepEqual([...touchedBackends(plan)], ['p10001']);
  });

  test('replaceBackends: the servers and connections of those backends as read; the rest as they were', () => {
    const have = live([alpha, bravo], {
      connections: new Map([
        [`p10000/${alpha.server}`, { used: 1, idle: 0 }],
        [`p10001/${bravo.server}`, { used: 3, idle: 0 }],
      ]),
    });
    const read: LiveServer = { backend: 'p10001', name: bravo2.server, address: '10.0.0.2', port: 443, adminState: 0, fqdn: '-' };
    const next = replaceBackends(have, new Set(['p10001']), { servers: [read], connections: new Map([[`p10001/${bravo2.server}`, { used: 0, idle: 1 }]]) });
    assert.deepEqual(
      next.servers.map((s) => `${s.backend}/${s.name}`),
      [`p10000/${alpha.server}`, `p10001/${bravo2.server}`],
    );
    assert.deepEqual(
      [...next.connections],
      [
        [`p10000/${alpha.server}`, { used: 1, idle: 0 }],
        [`p10001/${bravo2.server}`, { used: 0, idle: 1 }],
      ],
    );
    assert.equal(have.servers.length, 2, 'the picture it was made from is unchanged');
  });
});

describe('a delta pass: changedBackends and narrowTo plan what a change touches, as a full plan would', () => {
  const bravo2 = server('bravo', 10001, 2, 'new-ca');
  const charlie = server('charlie', 10002);
  const none = new Set<string>();
  const cases: Array<{ name: string; from: HaproxyServer[]; to: HaproxyServer[]; backends: string[] }> = [
    { name: 'a rotation', from: [alpha, bravo], to: [alpha, bravo2], backends: ['p10001'] },
    { name: 'a binding added', from: [alpha], to: [alpha, charlie], backends: ['p10002'] },
    { name: 'a binding removed', from: [alpha, charlie], to: [alpha], backends: ['p10002'] },
    { name: 'a binding moved to another port', from: [alpha, bravo], to: [alpha, server('bravo', 10003)], backends: ['p10003', 'p10001'] },
    { name: 'nothing changed', from: [alpha, bravo], to: [alpha, bravo], backends: [] },
    // The agent's cache gives it the same objects; a server made again is the same server.
    { name: 'the same servers, made again', from: [alpha, bravo], to: [server('alpha', 10000), server('bravo', 10001)], backends: [] },
  ];
  for (const c of cases) {
    test(`${c.name}: the backends changed, and the narrowed plan is the full plan`, () => {
      const backends = changedBackends(desired(c.from), desired(c.to), none)!;
      assert.deepEqual([...backends], c.backends);
      const full = planHaproxy(desired(c.to), live(c.from));
      const narrowed = narrowTo(backends, desired(c.from), desired(c.to), live(c.from), none);
      assert.deepEqual(ops(planHaproxy(narrowed.desired, narrowed.live).steps).sort(), ops(full.steps).sort());
      const after = afterSteps(live(c.from), full.steps);
      const checked = narrowTo(backends, desired(c.from), desired(c.to), after, none);
      assert.deepEqual(
        convergenceProblems(
          checked.desired,
          checked.live,
          new Map([
            [`${dir}/${bravo2.certificateFile}`, true],
            [`${dir}/${charlie.certificateFile}`, true],
            [`${dir}/${alpha.certificateFile}`, true],
            [`${dir}/${server('bravo', 10003).certificateFile}`, true],
          ]),
        ),
        [],
      );
    });
  }

  // One bundle, one CA entry: the servers of every binding that trusts it name the same file.
  const sharing = (s: HaproxyServer): HaproxyServer => ({ ...s, caFile: `ca/${'ab'.repeat(32)}.pem` });
  const sharedCases: Array<{ name: string; from: HaproxyServer[]; to: HaproxyServer[]; steps: string[] }> = [
    {
      name: 'a binding that shares its bundle with another backend is removed: the bundle stays',
      from: [sharing(alpha), sharing(charlie)],
      to: [sharing(alpha)],
      steps: [
        'map-del ports.map 10002',
        'map-del bindings.map 10002',
        'map-del hosts.map 10002',
        `disable-server p10002/${charlie.server}`,
        `del-server p10002/${charlie.server}`,
        `del-cert ${charlie.certificateFile}`,
      ],
    },
    {
      name: 'a binding that moves to a bundle another backend uses: the bundle is not loaded again, the old one goes',
      from: [sharing(alpha), bravo],
      to: [sharing(alpha), sharing(server('bravo', 10001, 2))],
      steps: [
        `load-cert ${server('bravo', 10001, 2).certificateFile}`,
        `add-server p10001/${server('bravo', 10001, 2).server}`,
        `enable-server p10001/${server('bravo', 10001, 2).server}`,
        `disable-server p10001/${bravo.server}`,
        `del-server p10001/${bravo.server}`,
        `del-cert ${bravo.certificateFile}`,
        `del-ca ${bravo.caFile}`,
      ],
    },
  ];
  for (const c of sharedCases) {
    test(`${c.name}, in the narrowed plan as in the full one`, () => {
      const backends = changedBackends(desired(c.from), desired(c.to), none)!;
      const full = planHaproxy(desired(c.to), live(c.from));
      const narrowed = narrowTo(backends, desired(c.from), desired(c.to), live(c.from), none);
      assert.deepEqual(ops(full.steps), c.steps);
      assert.deepEqual(ops(planHaproxy(narrowed.desired, narrowed.live).steps).sort(), [...c.steps].sort());
    });
  }

  test("a map entry that differs is its port's backend; a store that moved trusts nothing", () => {
    const changed = desired([alpha, bravo]);
    const hosts = new Map(changed.maps.get('hosts.map'));
    hosts.set('10000', 'elsewhere.example');
    assert.deepEqual([...changedBackends(desired([alpha, bravo]), { ...changed, maps: new Map([...changed.maps, ['hosts.map', hosts]]) }, none)!], ['p10000']);
    assert.equal(changedBackends(desired([alpha]), { ...desired([alpha]), storeDir: '/elsewhere' }, none), undefined);
  });

  test('a server left draining: its backend is looked at again, and the certificate and CA file it used go with it', () => {
    const have = live([alpha, bravo], { connections: new Map([[`p10001/${bravo.server}`, { used: 1, idle: 0 }]]) });
    const first = narrowTo(
      changedBackends(desired([alpha, bravo]), desired([alpha, bravo2]), none)!,
      desired([alpha, bravo]),
      desired([alpha, bravo2]),
      have,
      none,
    );
    const plan = planHaproxy(first.desired, first.live);
    assert.deepEqual(plan.draining, [`p10001/${bravo.server}`]);
    const drained = afterSteps(have, plan.steps);
    const checked = narrowTo(new Set(['p10001']), desired([alpha, bravo]), desired([alpha, bravo2]), drained, none);
    const leftover = leftoverStores(checked.desired, checked.live);
    assert.deepEqual([...leftover].sort(), [`${dir}/${bravo.caFile}`, `${dir}/${bravo.certificateFile}`]);
    // The next pass: the manifest is the same, the request finished.
    const idle = { ...drained, connections: new Map() };
    const backends = changedBackends(desired([alpha, bravo2]), desired([alpha, bravo2]), new Set(['p10001']))!;
    assert.deepEqual([...backends], ['p10001']);
    const second = narrowTo(backends, desired([alpha, bravo2]), desired([alpha, bravo2]), idle, leftover);
    assert.deepEqual(ops(planHaproxy(second.desired, second.live).steps), [
      `del-server p10001/${bravo.server}`,
      `del-cert ${bravo.certificateFile}`,
      `del-ca ${bravo.caFile}`,
    ]);
    const without = narrowTo(backends, desired([alpha, bravo2]), desired([alpha, bravo2]), idle, none);
    assert.deepEqual(ops(planHaproxy(without.desired, without.live).steps), [`del-server p10001/${bravo.server}`], 'without the leftovers, they would stay');
  });
});
