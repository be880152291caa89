import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import type { SecretLike } from '../../src/api/meta.ts';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ClientCertificateBinding, ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import type { IdentityOutcome } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import type { EvaluatedFacts } from '../../src/status/evaluate.ts';
import { translate, type DataPlaneView, type TranslateOptions } from '../../src/translate/translate.ts';
import { binding, day, facts, t0 } from '../fixtures/bindings.ts';
import { PartnerPki } from '../support/partner-pki.ts';

// The one translation, table-driven with plain inputs: bindings, the Secrets they read,
// and the decoded identity of each certificate Secret, at an injected time.

const listenerPorts = { first: 10000, last: 10009 };
const options: TranslateOptions = { now: t0, listenerPorts, endpointFor: (port) => `http://proxy:${port}` };
const keyPem = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n';
const caPem = new PartnerPki('Translate Test CA').ca.certPem;

function identity(overrides: Partial<EvaluatedFacts> = {}): IdentityOutcome {
  return {
    ok: true,
    identity: {
      facts: facts({ serialNumber: '1a2b', fingerprintSha256: 'AB:CD', ...overrides }),
      chainPem: '-----BEGIN CERTIFICATE-----\nbGVhZg==\n-----END CERTIFICATE-----\n',
      privateKey: new Sensitive(keyPem),
    },
  };
}

/** How one binding's inputs look: its certificate's decoded outcome (or no Secret at all), and its server CA. */
interface Inputs {
  certificate?: IdentityOutcome | 'no Secret';
  serverCA?: 'unusable' | 'valid';
}

/**
 * Bindings with their Secrets: each binding reads the PFX Secret `<name>-pfx` in its own
 * namespace, whose decoded identity is what `inputs` says (default: a valid certificate).
 */
function world(entries: Array<[ClientCertificateBinding, Inputs?]>) {
  const secrets = new Map<string, SecretLike>();
  const outcomes = new Map<string, IdentityOutcome>();
  const bindings = entries.map(([b, inputs = {}]) => {
    const { namespace, name } = b.metadata;
    const spec: ClientCertificateBindingSpec = { ...b.spec, certificate: { secretRef: { name: `${name}-pfx` }, passwordSecretRef: { name: `${name}-pfx` } } };
    if (inputs.certificate !== 'no Secret') {
      const uid = `${namespace}/${name}-pfx`;
      secrets.set(uid, { metadata: { name: `${name}-pfx`, namespace, uid, resourceVersion: '1' }, data: { 'keystore.p12': 'cGZ4', password: 'cHc=' } });
      outcomes.set(uid, inputs.certificate ?? identity());
    }
    if (inputs.serverCA) {
      spec.serverCA = { secretRef: { name: `${name}-ca` } };
      const pem = inputs.serverCA === 'valid' ? caPem : '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n';
      secrets.set(`${namespace}/${name}-ca`, { metadata: { name: `${name}-ca`, namespace }, data: { 'ca.crt': Buffer.from(pem).toString('base64') } });
    }
    return { ...b, spec };
  });
  return {
    bindings,
    secrets: (namespace: string, name: string) => secrets.get(`${namespace}/${name}`),
    identities: (input: { version: string }) => outcomes.get(input.version.slice(0, input.version.indexOf('@'))),
  };
}

function run(entries: Array<[ClientCertificateBinding, Inputs?]>, overrides: Partial<TranslateOptions> = {}) {
  const w = world(entries);
  return translate(w.bindings, w.secrets, w.identities, { ...options, ...overrides });
}

function named(name: string, spec: Partial<ClientCertificateBindingSpec> = {}, extra: Parameters<typeof binding>[0] = {}): ClientCertificateBinding {
  return binding({ name, spec, ...extra });
}

const ready = (t: ReturnType<typeof run>, key: string) => t.bindings.find((b) => b.key === key)?.status.status.conditions?.find((c) => c.type === 'Ready');

describe('translate: routes', () => {
  test('applies the defaults an offline render does not get from the API server: port 443, serverName = host', () => {
    const { routes, leftOut } = run([[named('payments', { host: 'api.pay.example' })]]);
    assert.deepEqual(leftOut, []);
    const [route] = routes;
    assert.equal(route?.key, 'team-a/payments');
    assert.equal(route?.port, 443);
    assert.equal(route?.serverName, 'api.pay.example');
    assert.equal(route?.listenerPort, 10000);
    assert.equal(route?.clientCertificate.serialNumber, '1a2b');
    assert.equal(route?.clientCertificate.privateKey.reveal(), keyPem);
    assert.equal(route?.serverCA, undefined);
  });

  test('carries the serverCA PEM and an explicit serverName and port', () => {
    const { routes } = run([[named('ledger', { host: '10.0.0.7', port: 8443, serverName: 'ledger.partner.example' }), { serverCA: 'valid' }]]);
    assert.deepEqual(
      routes.map((r) => [r.host, r.port, r.serverName, r.serverCA?.pem.trim()]),
      [['10.0.0.7', 8443, 'ledger.partner.example', caPem.trim()]],
    );
  });

  test('routes and left-out bindings come sorted by key, whatever the input order', () => {
    const entries: Array<[ClientCertificateBinding, Inputs?]> = [
      [named('c')],
      [named('a'), { certificate: { ok: false, reason: reasons.PasswordIncorrect, message: 'wrong' } }],
      [named('b')],
      [binding({ name: 'a', namespace: 'team-0' }), { certificate: { ok: false, reason: reasons.PfxMalformed, message: 'junk' } }],
    ];
    const forward = run(entries);
    assert.deepEqual(
      forward.routes.map((r) => r.key),
      ['team-a/b', 'team-a/c'],
    );
    assert.deepEqual(
      forward.leftOut.map((l) => l.key),
      ['team-0/a', 'team-a/a'],
    );
    const backward = run([...entries].reverse());
    assert.deepEqual(backward.routes, forward.routes);
    assert.deepEqual(backward.leftOut, forward.leftOut);
  });

  // Each case: one broken binding beside a healthy one; the broken one is left out with
  // the reason its status shows, the healthy one is still served.
  const broken: Array<[string, [ClientCertificateBinding, Inputs?], string]> = [
    ['a Secret that is missing', [named('broken'), { certificate: 'no Secret' }], reasons.SecretNotFound],
    [
      'a wrong password',
      [named('broken'), { certificate: { ok: false, reason: reasons.PasswordIncorrect, message: 'the password is wrong' } }],
      reasons.PasswordIncorrect,
    ],
    ['an expired certificate', [named('broken'), { certificate: identity({ notAfter: new Date(t0.getTime() - 1000) }) }], reasons.CertificateExpired],
    [
      'a certificate that expired a millisecond ago (notAfter is inclusive)',
      [named('broken'), { certificate: identity({ notAfter: new Date(t0.getTime() - 1) }) }],
      reasons.CertificateExpired,
    ],
    ['a certificate not valid yet', [named('broken'), { certificate: identity({ notBefore: new Date(t0.getTime() + day) }) }], reasons.CertificateNotYetValid],
    ['an unusable serverCA', [named('broken'), { serverCA: 'unusable' }], reasons.ServerCAInvalid],
    ['a fixed listener port outside the range', [named('broken', { listenerPort: 20000 })], reasons.InvalidSpec],
    ['a fixed listener port that is not a number', [named('broken', { listenerPort: '10001; x' as unknown as number })], reasons.InvalidSpec],
    ['an IP host without a serverName (nginx cannot verify an IP)', [named('broken', { host: '192.0.2.10' })], reasons.InvalidSpec],
    ['an IPv6 host without a serverName', [named('broken', { host: '2001:db8::1' })], reasons.InvalidSpec],
    ['an expiryWarning that is not a duration', [named('broken', { expiryWarning: '30 days' })], reasons.InvalidSpec],
  ];
  for (const [what, entry, reason] of broken) {
    test(`leaves out ${what} (${reason}), says so in Ready, and still serves the rest`, () => {
      const t = run([entry, [named('healthy')]]);
      assert.deepEqual(
        t.routes.map((r) => r.key),
        ['team-a/healthy'],
      );
      assert.deepEqual(
        t.leftOut.map((l) => [l.key, l.reason]),
        [['team-a/broken', reason]],
      );
      assert.equal(ready(t, 'team-a/broken')?.reason, reason, 'status and proxy agree');
      assert.equal(ready(t, 'team-a/healthy')?.reason, reasons.BindingReady);
    });
  }

  test('a certificate that expires soon is still served: expiry warnings are for status, not for the proxy', () => {
    const t = run([[named('soon'), { certificate: identity({ notAfter: new Date(t0.getTime() + 60_000) }) }]]);
    assert.equal(t.routes.length, 1);
    assert.equal(ready(t, 'team-a/soon')?.reason, reasons.CertificateExpiringSoon);
  });

  test('the clock is injected: served through notAfter, left out a millisecond after', () => {
    const entries: Array<[ClientCertificateBinding, Inputs?]> = [[named('edge'), { certificate: identity({ notAfter: new Date(t0.getTime() + day) }) }]];
    assert.equal(run(entries, { now: new Date(t0.getTime() + day) }).routes.length, 1);
    const after = run(entries, { now: new Date(t0.getTime() + day + 1) });
    assert.deepEqual(
      after.leftOut.map((l) => l.reason),
      [reasons.CertificateExpired],
    );
    assert.match(after.leftOut[0]!.message, /expired at/);
  });

  // Offline render reads arbitrary YAML; none of these may reach nginx.conf.
  const hostile: Array<[string, Partial<ClientCertificateBindingSpec>]> = [
    ['a semicolon in host', { host: 'evil.example; proxy_ssl_verify off' }],
    ['a brace in host', { host: 'evil.example}' }],
    ['a quote in host', { host: 'evil.example"' }],
    ['a newline in host', { host: 'evil.example\nserver {' }],
    ['a variable in host', { host: '$http_host' }],
    ['a scheme in host', { host: 'https://evil.example' }],
    ['a port in host', { host: 'evil.example:443' }],
    ['upper case in host', { host: 'Evil.Example' }],
    ['an IPv6 zone in host', { host: 'fe80::1%eth0', serverName: 'ok.example' }],
    ['a non-string host', { host: 42 as unknown as string }],
    ['a semicolon in serverName', { serverName: 'ok.example;' }],
    ['a space in serverName', { serverName: 'ok.example off' }],
    ['an IP serverName', { serverName: '10.0.0.1' }],
    ['a string port', { port: '443; x' as unknown as number }],
    ['a port out of range', { port: 70000 }],
  ];
  for (const [what, spec] of hostile) {
    test(`refuses ${what} with InvalidSpec`, () => {
      const { routes, leftOut } = run([[named('hostile', spec)], [named('healthy')]]);
      assert.deepEqual(
        routes.map((r) => r.key),
        ['team-a/healthy'],
      );
      assert.deepEqual(
        leftOut.map((l) => l.reason),
        [reasons.InvalidSpec],
      );
    });
  }

  // A binding stored before the CRD checked these names (or read offline) is refused
  // before any Secret is looked up: "." or ".." in a GET's path makes it a LIST.
  const badRefs: Array<[string, ClientCertificateBindingSpec['certificate'], ClientCertificateBindingSpec['serverCA']?]> = [
    ['secretRef.name "."', { secretRef: { name: '.' } }],
    ['secretRef.name ".."', { secretRef: { name: '..' } }],
    ['passwordSecretRef.name ".."', { secretRef: { name: 'p' }, passwordSecretRef: { name: '..' } }],
    ['tlsSecretRef.name "."', { tlsSecretRef: { name: '.' } }],
    ['an upper-case secretRef.name', { secretRef: { name: 'Partner' } }],
    ['a secretRef.name with a slash', { secretRef: { name: 'a/b' } }],
    ['a secretRef.name of 254 characters', { secretRef: { name: 'a'.repeat(254) } }],
    ['serverCA.secretRef.name ".."', { secretRef: { name: 'p' } }, { secretRef: { name: '..' } }],
    ['secretRef.key ".."', { secretRef: { name: 'p', key: '..' } }],
    ['passwordSecretRef.key "."', { secretRef: { name: 'p' }, passwordSecretRef: { name: 'p', key: '.' } }],
    ['serverCA.secretRef.key "..ca"', { secretRef: { name: 'p' } }, { secretRef: { name: 'ca', key: '..ca' } }],
  ];
  for (const [what, certificate, serverCA] of badRefs) {
    test(`refuses ${what} with InvalidSpec, and never looks that Secret up`, () => {
      const looked: string[] = [];
      // Every name finds a Secret holding every key: only the name rules can refuse.
      const anySecret = (namespace: string, name: string): SecretLike => {
        looked.push(name);
        const data = { 'keystore.p12': 'cGZ4', password: 'cHc=', 'tls.crt': 'Yw==', 'tls.key': 'aw==', 'ca.crt': Buffer.from(caPem).toString('base64') };
        return { metadata: { name, namespace, uid: name, resourceVersion: '1' }, data: { ...data, '..': 'eA==', '.': 'eA==', '..ca': 'eA==' } };
      };
      const b = named('stored', { certificate, ...(serverCA ? { serverCA } : {}) });
      const t = translate([b], anySecret, () => identity(), options);
      assert.deepEqual(t.routes, []);
      assert.deepEqual(
        t.leftOut.map((l) => l.reason),
        [reasons.InvalidSpec],
      );
      assert.equal(ready(t, 'team-a/stored')?.reason, reasons.InvalidSpec);
      assert.match(ready(t, 'team-a/stored')!.message, /is not a Secret (name|data key)/);
      assert.deepEqual(
        looked.filter((name) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)),
        [],
      );
    });
  }

  test('refuses a hostile name or namespace with InvalidSpec', () => {
    const { leftOut } = run([[binding({ name: 'x;y' })], [binding({ name: 'ok', namespace: 'a b' })]]);
    assert.deepEqual(
      leftOut.map((l) => l.reason),
      [reasons.InvalidSpec, reasons.InvalidSpec],
    );
  });

  test('what the translation returns never prints the key', () => {
    const t = run([[named('one')]]);
    assert.doesNotMatch(inspect(t, { depth: 12 }) + JSON.stringify(t), /c2VjcmV0LWtleQ/);
  });
});

describe('translate: listener ports', () => {
  test('a port held in status is kept, a fixed one honoured, the rest get the lowest free ones', () => {
    const { routes } = run([[named('held', {}, { status: { listenerPort: 10005 } })], [named('fixed', { listenerPort: 10000 })], [named('fresh')]]);
    assert.deepEqual(Object.fromEntries(routes.map((r) => [r.name, r.listenerPort])), { held: 10005, fixed: 10000, fresh: 10001 });
  });

  test('the younger of two bindings asking for one port is left out with ListenerPortConflict', () => {
    const t = run([
      [named('young', { listenerPort: 10003 }, { creationTimestamp: '2026-02-01T00:00:00Z' })],
      [named('old', { listenerPort: 10003 }, { creationTimestamp: '2026-01-01T00:00:00Z' })],
    ]);
    assert.deepEqual(
      t.routes.map((r) => [r.name, r.listenerPort]),
      [['old', 10003]],
    );
    assert.deepEqual(
      t.leftOut.map((l) => [l.key, l.reason]),
      [['team-a/young', reasons.ListenerPortConflict]],
    );
    assert.match(ready(t, 'team-a/young')?.message ?? '', /team-a\/old/);
  });

  test('a left-out binding keeps its port, so fixing it later moves nobody', () => {
    const t = run([
      [
        named('a-broken', {}, { creationTimestamp: '2026-01-01T00:00:00Z' }),
        { certificate: { ok: false, reason: reasons.PasswordIncorrect, message: 'wrong' } },
      ],
      [named('b-other', {}, { creationTimestamp: '2026-01-02T00:00:00Z' })],
    ]);
    assert.deepEqual(
      t.routes.map((r) => r.listenerPort),
      [10001],
    );
    assert.equal(t.bindings[0]?.status.status.listenerPort, 10000, 'the broken binding holds 10000 in status');
  });

  test('an exhausted range leaves the youngest out with ListenerPortsExhausted', () => {
    const many = Array.from({ length: 11 }, (_, i): [ClientCertificateBinding] => [
      named(`b${String(i).padStart(2, '0')}`, {}, { creationTimestamp: `2026-01-${String(i + 1).padStart(2, '0')}T00:00:00Z` }),
    ]);
    const { routes, leftOut } = run(many);
    assert.equal(routes.length, 10);
    assert.deepEqual(
      leftOut.map((l) => [l.key, l.reason]),
      [['team-a/b10', reasons.ListenerPortsExhausted]],
    );
  });

  test('a status port that is not a number holds nothing', () => {
    const { routes } = run([[named('odd', {}, { status: { listenerPort: 'x' as unknown as number } })]]);
    assert.equal(routes[0]?.listenerPort, 10000);
  });

  test('the port a caller just wrote holds before the binding shows it', () => {
    const t = run([[named('fresh')], [named('written', {}, { creationTimestamp: '2026-06-01T00:00:00Z' })]], {
      previousStatus: (b) => (b.metadata.name === 'written' ? { listenerPort: 10000 } : undefined),
    });
    assert.deepEqual(Object.fromEntries(t.routes.map((r) => [r.name, r.listenerPort])), { written: 10000, fresh: 10001 });
  });
});

describe('translate: the data plane', () => {
  const replicasServe =
    (fingerprint: string): DataPlaneView['programmed'] =>
    (_key, fp) =>
      fp === fingerprint ? { ok: true } : { ok: false, reason: reasons.ProgrammingPending, message: 'waiting' };

  test('an unresolvable host is left out, and Programmed says why before the replicas do', () => {
    const dataPlane: DataPlaneView = {
      hostProblem: (host) => (host === 'typo.example' ? { reason: reasons.HostUnresolvable, message: `host ${host} does not resolve` } : undefined),
      programmed: replicasServe('AB:CD'),
    };
    const t = run([[named('typo', { host: 'typo.example' })], [named('fine')]], { dataPlane });
    assert.deepEqual(
      t.routes.map((r) => r.key),
      ['team-a/fine'],
    );
    assert.deepEqual(
      t.leftOut.map((l) => [l.key, l.reason]),
      [['team-a/typo', reasons.HostUnresolvable]],
    );
    const programmed = t.bindings[1]!.status.status.conditions?.find((c) => c.type === 'Programmed');
    assert.equal(programmed?.reason, reasons.HostUnresolvable);
    assert.equal(ready(t, 'team-a/typo')?.reason, reasons.HostUnresolvable);
    assert.equal(ready(t, 'team-a/fine')?.reason, reasons.BindingReady);
  });

  test('Ready waits for Programmed; without a data plane there is no Programmed condition', () => {
    const pending = run([[named('new')]], { dataPlane: { hostProblem: () => undefined, programmed: replicasServe('other') } });
    assert.equal(ready(pending, 'team-a/new')?.reason, reasons.ProgrammingPending);
    const statusOnly = run([[named('new')]]);
    assert.equal(
      statusOnly.bindings[0]!.status.status.conditions?.some((c) => c.type === 'Programmed'),
      false,
    );
    assert.equal(ready(statusOnly, 'team-a/new')?.reason, reasons.BindingReady);
  });
});

describe('translate: time', () => {
  test('says when time alone changes a verdict: the earliest threshold of any binding', () => {
    const t = run([
      [named('later'), { certificate: identity({ notAfter: new Date(t0.getTime() + 200 * day) }) }],
      [named('sooner'), { certificate: identity({ notAfter: new Date(t0.getTime() + 30 * day + 3_600_000) }) }],
    ]);
    // sooner enters its 30-day (720h) warning window in an hour (plus a second of slack).
    assert.equal(t.requeueAfterMs, 3_600_000 + 1000);
  });

  test('validate’s warning window replaces the spec’s', () => {
    const t = run([[named('soon'), { certificate: identity({ notAfter: new Date(t0.getTime() + 40 * day) }) }]], { expiryWarningMs: () => 60 * day });
    assert.equal(ready(t, 'team-a/soon')?.reason, reasons.CertificateExpiringSoon);
  });
});

describe('translate: inputs', () => {
  test('reads Secrets from the binding’s own namespace only', () => {
    const w = world([[named('ok')]]);
    const elsewhere = { ...w.bindings[0]!, metadata: { ...w.bindings[0]!.metadata, namespace: 'team-c', name: 'elsewhere' } };
    const t = translate([...w.bindings, elsewhere], w.secrets, w.identities, options);
    assert.deepEqual(
      t.bindings.map((b) => [b.key, b.checks.certificate.ok ? 'ok' : b.checks.certificate.reason]),
      [
        ['team-a/ok', 'ok'],
        ['team-c/elsewhere', reasons.SecretNotFound],
      ],
    );
  });

  test('a missing Secret key names the reference it is about, so validate can point at the field', () => {
    const w = world([[named('k')]]);
    const b = { ...w.bindings[0]!, spec: { ...w.bindings[0]!.spec, certificate: { secretRef: { name: 'k-pfx', key: 'other.p12' } } } };
    const t = translate([b], w.secrets, w.identities, options);
    const certificate = t.bindings[0]!.checks.certificate;
    assert.ok(!certificate.ok && 'ref' in certificate);
    assert.deepEqual(certificate.ref, { role: 'pfx', name: 'k-pfx', key: 'other.p12' });
    assert.equal(certificate.reason, reasons.SecretKeyNotFound);
  });

  test('a certificate still being decoded is not served yet, and holds up no other binding', () => {
    const w = world([[named('slow')], [named('ready')]]);
    const t = translate(w.bindings, w.secrets, (input, b) => (b.metadata.name === 'slow' ? undefined : w.identities(input)), options);
    assert.deepEqual(
      t.routes.map((r) => r.key),
      ['team-a/ready'],
    );
    assert.deepEqual(
      t.leftOut.map((l) => [l.key, l.reason]),
      [['team-a/slow', reasons.ProgrammingPending]],
    );
  });
});
