import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { dump, load } from 'js-yaml';
import type { SecretLike } from '../../src/api/meta.ts';
import type { Problem } from '../../src/api/v1alpha1/reasons.ts';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import type { ClientCertificateBinding } from '../../src/api/v1alpha1/types.ts';
import { secretFrom } from '../../src/manifests/read-manifests.ts';
import type { IdentityOutcome } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import { translate, type DataPlaneView, type TranslateOptions, type Translation } from '../../src/translate/translate.ts';

// Golden files for the one translation: test/golden/translate/<case>.in.yaml holds
// bindings and Secrets as manifests, the decoded outcome of each certificate Secret
// (facts, or the decoder's problem: decoding is not this stage's job), the time and the
// data plane's view; <case>.out.yaml holds everything translate() decides: the routes,
// the bindings left out and why, each binding's status and Events, and when to look
// again. Regenerate with UPDATE_GOLDEN=1 and review the diff like code. A new check is
// one pure function in src/translate and a case here.

const dir = new URL('./translate/', import.meta.url);
const update = process.env.UPDATE_GOLDEN === '1';

interface FactsInput {
  subject: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  fingerprintSha256: string;
}

interface GoldenInput {
  options: { now: string; listenerPorts: { first: number; last: number }; dataPlane?: { unresolvable?: string[]; serving?: Record<string, string> } };
  /** "namespace/secret-name" → the decoded identity's facts, or a problem. */
  identities: Record<string, FactsInput | Problem>;
  objects: Array<Record<string, unknown>>;
}

function loadCase(name: string): {
  bindings: ClientCertificateBinding[];
  secrets: Map<string, SecretLike>;
  identities: GoldenInput['identities'];
  options: TranslateOptions;
} {
  const input = load(readFileSync(new URL(`${name}.in.yaml`, dir), 'utf8')) as GoldenInput;
  const bindings = input.objects.filter((o) => o.kind === 'ClientCertificateBinding') as unknown as ClientCertificateBinding[];
  const secrets = new Map<string, SecretLike>();
  for (const object of input.objects.filter((o) => o.kind === 'Secret')) {
    const secret = secretFrom(object)!;
    secrets.set(`${secret.metadata.namespace}/${secret.metadata.name}`, secret);
  }
  const { dataPlane } = input.options;
  const view: DataPlaneView | undefined = dataPlane && {
    hostProblem: (host) =>
      dataPlane.unresolvable?.includes(host) ? { reason: reasons.HostUnresolvable, message: `host ${host} does not resolve` } : undefined,
    programmed: (key, fingerprint) =>
      fingerprint !== undefined && dataPlane.serving?.[key] === fingerprint
        ? { ok: true }
        : { ok: false, reason: reasons.ProgrammingPending, message: `the proxy serves ${dataPlane.serving?.[key] ?? 'nothing'} for ${key}` },
  };
  return {
    bindings,
    secrets,
    identities: input.identities,
    options: {
      now: new Date(input.options.now),
      listenerPorts: input.options.listenerPorts,
      endpointFor: (port) => `http://mtls-egress-proxy.mtls-egress-system.svc:${port}`,
      ...(view ? { dataPlane: view } : {}),
    },
  };
}

function identityOf(given: FactsInput | Problem | undefined): IdentityOutcome | undefined {
  if (given === undefined) return undefined;
  if ('reason' in given) return { ok: false, ...given };
  return {
    ok: true,
    identity: {
      facts: {
        subject: given.subject,
        issuer: 'CN=Partner CA',
        serialNumber: given.serialNumber,
        notBefore: new Date(given.notBefore),
        notAfter: new Date(given.notAfter),
        fingerprintSha256: given.fingerprintSha256,
        dnsNames: [],
        keyAlgorithm: 'RSA',
        keySize: 2048,
        chainLength: 1,
      },
      chainPem: `-----BEGIN CERTIFICATE-----\n${Buffer.from(`fake certificate ${given.serialNumber}`).toString('base64')}\n-----END CERTIFICATE-----\n`,
      privateKey: new Sensitive('-----BEGIN PRIVATE KEY-----\nZmFrZSBrZXk=\n-----END PRIVATE KEY-----\n'),
    },
  };
}

function run(name: string, order: (b: ClientCertificateBinding[]) => ClientCertificateBinding[] = (b) => b): Translation {
  const { bindings, secrets, identities, options } = loadCase(name);
  return translate(
    order(bindings),
    (namespace, secretName) => secrets.get(`${namespace}/${secretName}`),
    // The version of a manifest Secret begins with its namespace/name.
    (input) => identityOf(identities[input.version.slice(0, input.version.indexOf('@'))]),
    options,
  );
}

/** What the translation decided, as reviewable YAML: no key material, no PEM text. */
function formatGolden(t: Translation): string {
  return dump(
    {
      requeueAfterMs: t.requeueAfterMs ?? null,
      routes: t.routes.map((r) => ({
        key: r.key,
        listenerPort: r.listenerPort,
        upstream: `${r.host}:${r.port}`,
        serverName: r.serverName,
        clientCertificate: `serial ${r.clientCertificate.serialNumber}, ${r.clientCertificate.fingerprintSha256}`,
        serverCA: r.serverCA ? 'from the binding' : 'system trust store',
      })),
      leftOut: t.leftOut.map((l) => ({ key: l.key, reason: l.reason, message: l.message })),
      statuses: Object.fromEntries(
        t.bindings.map((b) => [
          b.key,
          { status: b.status.status, events: b.status.events, ...(b.status.requeueAfterMs === undefined ? {} : { requeueAfterMs: b.status.requeueAfterMs }) },
        ]),
      ),
    },
    { lineWidth: 160, noRefs: true },
  );
}

const cases = readdirSync(dir)
  .filter((f) => f.endsWith('.in.yaml'))
  .map((f) => f.slice(0, -'.in.yaml'.length))
  .sort();

describe('translate golden files: bindings and Secrets in, routes and statuses out', () => {
  test('there are cases', () => assert.ok(cases.length >= 3, `found ${cases.length} cases in ${dir.pathname}`));

  for (const name of cases) {
    test(name, () => {
      const translation = run(name);
      const actual = formatGolden(translation);
      const outUrl = new URL(`${name}.out.yaml`, dir);
      if (update) writeFileSync(outUrl, actual);
      assert.equal(actual, readFileSync(outUrl, 'utf8'), `${name}.out.yaml differs; rerun with UPDATE_GOLDEN=1 if the change is intended`);

      // Input order changes nothing.
      assert.equal(formatGolden(run(name, (b) => [...b].reverse())), actual);
      // Status and proxy agree: a binding is served exactly when nothing but Programmed
      // stands in its Ready chain, and a left-out binding's Ready names why.
      for (const b of translation.bindings) {
        const ready = b.status.status.conditions?.find((c) => c.type === 'Ready');
        if (b.route)
          assert.ok(ready?.status === 'True' || ready?.reason === reasons.ProgrammingPending, `${b.key} is served, so Ready is True or waits for the proxy`);
        else assert.equal(ready?.reason, b.leftOut?.reason, `${b.key} is left out for the reason its Ready shows`);
      }
      assert.doesNotMatch(actual, /PRIVATE KEY|ZmFrZSBrZXk/);
    });
  }
});
