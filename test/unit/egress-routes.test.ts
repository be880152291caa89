import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ClientCertificateBinding, ClientCertificateBindingSpec } from '../../src/api/v1alpha1/types.ts';
import type { CertificateInput, SecretLike } from '../../src/model/certificate-input.ts';
import {
  buildEgressRoutes,
  resolveBindings,
  type IdentityOutcome,
  type ResolvedBinding,
  type SecretsByNamespace,
} from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import type { EvaluatedFacts } from '../../src/status/evaluate.ts';
import { binding, day, facts, secret, t0 } from '../fixtures/bindings.ts';

const listenerPorts = { first: 10000, last: 10009 };
const options = { now: t0, listenerPorts };
const keyPem = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n';

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

/** A binding whose inputs resolved as given; defaults: a valid certificate, system trust. */
function resolved(
  b: ClientCertificateBinding,
  overrides: Partial<Omit<ResolvedBinding, 'binding'>> = {},
): ResolvedBinding {
  return { binding: b, certificate: identity(), serverCA: { ok: true, ca: undefined }, ...overrides };
}

function named(name: string, spec: Partial<ClientCertificateBindingSpec> = {}, extra: Parameters<typeof binding>[0] = {}): ClientCertificateBinding {
  return binding({ name, spec, ...extra });
}

describe('buildEgressRoutes', () => {
  test('applies the defaults an offline render does not get from the API server: port 443, serverName = host', () => {
    const { routes, leftOut } = buildEgressRoutes([resolved(named('payments', { host: 'api.pay.example' }))], options);
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
    const b = named('ledger', { host: '10.0.0.7', port: 8443, serverName: 'ledger.partner.example' });
    const { routes } = buildEgressRoutes([resolved(b, { serverCA: { ok: true, ca: { pem: 'CA PEM\n', subjects: ['CN=CA'] } } })], options);
    assert.deepEqual(
      routes.map((r) => [r.host, r.port, r.serverName, r.serverCA?.pem]),
      [['10.0.0.7', 8443, 'ledger.partner.example', 'CA PEM\n']],
    );
  });

  test('routes and left-out bindings come sorted by key, whatever the input order', () => {
    const input = [
      resolved(named('c')),
      resolved(named('a'), { certificate: { ok: false, reason: reasons.PasswordIncorrect, message: 'wrong' } }),
      resolved(named('b')),
      resolved(binding({ name: 'a', namespace: 'team-0' }), { certificate: { ok: false, reason: reasons.PfxMalformed, message: 'junk' } }),
    ];
    const forward = buildEgressRoutes(input, options);
    assert.deepEqual(forward.routes.map((r) => r.key), ['team-a/b', 'team-a/c']);
    assert.deepEqual(forward.leftOut.map((l) => l.key), ['team-0/a', 'team-a/a']);
    assert.deepEqual(buildEgressRoutes([...input].reverse(), options), forward);
  });

  // Each case: one broken binding beside a healthy one; the broken one is left out with
  // the reason its status would show, the healthy one is still served.
  const broken: Array<[string, ResolvedBinding, string]> = [
    ['a Secret that is missing', resolved(named('broken'), { certificate: { ok: false, reason: reasons.SecretNotFound, message: 'Secret x not found' } }), reasons.SecretNotFound],
    ['a wrong password', resolved(named('broken'), { certificate: { ok: false, reason: reasons.PasswordIncorrect, message: 'the password is wrong' } }), reasons.PasswordIncorrect],
    ['an expired certificate', resolved(named('broken'), { certificate: identity({ notAfter: new Date(t0.getTime() - 1000) }) }), reasons.CertificateExpired],
    ['a certificate expiring this very second', resolved(named('broken'), { certificate: identity({ notAfter: t0 }) }), reasons.CertificateExpired],
    ['a certificate not valid yet', resolved(named('broken'), { certificate: identity({ notBefore: new Date(t0.getTime() + day) }) }), reasons.CertificateNotYetValid],
    ['an unusable serverCA', resolved(named('broken'), { serverCA: { ok: false, reason: reasons.ServerCAInvalid, message: 'no PEM' } }), reasons.ServerCAInvalid],
    ['a fixed listener port outside the range', resolved(named('broken', { listenerPort: 20000 })), reasons.InvalidSpec],
    ['a fixed listener port that is not a number', resolved(named('broken', { listenerPort: '10001; x' as unknown as number })), reasons.InvalidSpec],
    ['an IP host without a serverName (nginx cannot verify an IP)', resolved(named('broken', { host: '192.0.2.10' })), reasons.InvalidSpec],
    ['an IPv6 host without a serverName', resolved(named('broken', { host: '2001:db8::1' })), reasons.InvalidSpec],
  ];
  for (const [what, input, reason] of broken) {
    test(`leaves out ${what} (${reason}) and still serves the rest`, () => {
      const { routes, leftOut } = buildEgressRoutes([input, resolved(named('healthy'))], options);
      assert.deepEqual(routes.map((r) => r.key), ['team-a/healthy']);
      assert.deepEqual(leftOut.map((l) => [l.key, l.reason]), [['team-a/broken', reason]]);
    });
  }

  test('a certificate that expires soon is still served: expiry warnings are for status, not for the proxy', () => {
    const { routes } = buildEgressRoutes([resolved(named('soon'), { certificate: identity({ notAfter: new Date(t0.getTime() + 60_000) }) })], options);
    assert.equal(routes.length, 1);
  });

  test('the clock is injected: the same certificate is served before notAfter and left out after', () => {
    const input = [resolved(named('edge'), { certificate: identity({ notAfter: new Date(t0.getTime() + day) }) })];
    assert.equal(buildEgressRoutes(input, { ...options, now: new Date(t0.getTime() + day - 1) }).routes.length, 1);
    const after = buildEgressRoutes(input, { ...options, now: new Date(t0.getTime() + day) });
    assert.deepEqual(after.leftOut.map((l) => l.reason), [reasons.CertificateExpired]);
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
      const { routes, leftOut } = buildEgressRoutes([resolved(named('hostile', spec)), resolved(named('healthy'))], options);
      assert.deepEqual(routes.map((r) => r.key), ['team-a/healthy']);
      assert.deepEqual(leftOut.map((l) => l.reason), [reasons.InvalidSpec]);
    });
  }

  test('refuses a hostile name or namespace with InvalidSpec', () => {
    const { leftOut } = buildEgressRoutes(
      [resolved(binding({ name: 'x;y' })), resolved(binding({ name: 'ok', namespace: 'a b' }))],
      options,
    );
    assert.deepEqual(leftOut.map((l) => l.reason), [reasons.InvalidSpec, reasons.InvalidSpec]);
  });

  describe('listener ports', () => {
    test('a port held in status is kept, a fixed one honoured, the rest get the lowest free ones', () => {
      const { routes } = buildEgressRoutes(
        [
          resolved(named('held', {}, { status: { listenerPort: 10005 } })),
          resolved(named('fixed', { listenerPort: 10000 })),
          resolved(named('fresh')),
        ],
        options,
      );
      assert.deepEqual(Object.fromEntries(routes.map((r) => [r.name, r.listenerPort])), { held: 10005, fixed: 10000, fresh: 10001 });
    });

    test('the younger of two bindings asking for one port is left out with ListenerPortConflict', () => {
      const { routes, leftOut } = buildEgressRoutes(
        [
          resolved(named('young', { listenerPort: 10003 }, { creationTimestamp: '2026-02-01T00:00:00Z' })),
          resolved(named('old', { listenerPort: 10003 }, { creationTimestamp: '2026-01-01T00:00:00Z' })),
        ],
        options,
      );
      assert.deepEqual(routes.map((r) => [r.name, r.listenerPort]), [['old', 10003]]);
      assert.deepEqual(leftOut.map((l) => [l.key, l.reason]), [['team-a/young', reasons.ListenerPortConflict]]);
    });

    test('a left-out binding keeps its port, so fixing it later moves nobody', () => {
      const broken = resolved(named('a-broken', {}, { creationTimestamp: '2026-01-01T00:00:00Z' }), {
        certificate: { ok: false, reason: reasons.PasswordIncorrect, message: 'wrong' },
      });
      const other = resolved(named('b-other', {}, { creationTimestamp: '2026-01-02T00:00:00Z' }));
      assert.deepEqual(buildEgressRoutes([broken, other], options).routes.map((r) => r.listenerPort), [10001]);
    });

    test('an exhausted range leaves the youngest out with ListenerPortsExhausted', () => {
      const many = Array.from({ length: 11 }, (_, i) =>
        resolved(named(`b${String(i).padStart(2, '0')}`, {}, { creationTimestamp: `2026-01-${String(i + 1).padStart(2, '0')}T00:00:00Z` })),
      );
      const { routes, leftOut } = buildEgressRoutes(many, options);
      assert.equal(routes.length, 10);
      assert.deepEqual(leftOut.map((l) => [l.key, l.reason]), [['team-a/b10', reasons.ListenerPortsExhausted]]);
    });

    test('a status port that is not a number holds nothing', () => {
      const { routes } = buildEgressRoutes([resolved(named('odd', {}, { status: { listenerPort: 'x' as unknown as number } }))], options);
      assert.equal(routes[0]?.listenerPort, 10000);
    });
  });
});

describe('resolveBindings', () => {
  const decoded: CertificateInput[] = [];
  const decode = async (input: CertificateInput): Promise<IdentityOutcome> => {
    decoded.push(input);
    if (input.kind === 'pfx' && input.password?.reveal() !== 'right') return { ok: false, reason: reasons.PasswordIncorrect, message: 'the password is wrong' };
    return identity();
  };
  const secrets = (entries: Array<[string, SecretLike[]]>): SecretsByNamespace =>
    new Map(entries.map(([ns, list]) => [ns, new Map(list.map((s) => [s.metadata.name, s]))]));

  test('reads Secrets from the binding’s own namespace only, decodes, and passes the decoder’s reason on', async () => {
    const pfx = (password: string, namespace: string) => secret('partner-pfx', { 'keystore.p12': 'pfx bytes', password }, { namespace });
    const result = await resolveBindings(
      [binding({ name: 'ok' }), binding({ name: 'wrong', namespace: 'team-b' }), binding({ name: 'elsewhere', namespace: 'team-c' })],
      secrets([
        ['team-a', [pfx('right', 'team-a')]],
        ['team-b', [pfx('nope', 'team-b')]],
      ]),
      decode,
    );
    assert.deepEqual(
      result.map((r) => [r.binding.metadata.name, r.certificate.ok ? 'ok' : r.certificate.reason]),
      [['ok', 'ok'], ['wrong', reasons.PasswordIncorrect], ['elsewhere', reasons.SecretNotFound]],
    );
    assert.equal(decoded.length, 2, 'a binding whose Secret is missing is not decoded');
  });

  test('resolves the serverCA, and what it resolved never prints the key', async () => {
    const ca = '-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHHIgK5z1gWMA0GCSqGSIb3DQEBCwUAMA0xCzAJBgNVBAMMAkNBMB4XDTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAwMDAwMFowDTELMAkGA1UEAwwCQ0EwXDANBgkqhkiG9w0BAQEFAANLADBIAkEAwX\n-----END CERTIFICATE-----\n';
    const [r] = await resolveBindings(
      [binding({ spec: { serverCA: { secretRef: { name: 'partner-ca' } } } })],
      secrets([['team-a', [secret('partner-pfx', { 'keystore.p12': 'x', password: 'right' }), secret('partner-ca', { 'ca.crt': ca })]]]),
      decode,
    );
    const serverCA = r?.serverCA;
    assert.equal(serverCA && !serverCA.ok ? serverCA.reason : 'ok', reasons.ServerCAInvalid, 'a PEM block that is not a certificate');
    assert.doesNotMatch(inspect(r, { depth: 10 }) + JSON.stringify(r), /c2VjcmV0LWtleQ/);
  });
});
