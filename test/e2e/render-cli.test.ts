import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { killProcessGroupOnExit } from '../harness/processes.ts';
import { pollUntil } from '../harness/poll.ts';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { runRender } from '../../src/commands/render.ts';
import { captureIo } from '../support/captured-io.ts';
import { partnerBindingManifests, startMtlsPartner, type MtlsPartner, type PartnerSeen } from '../support/mtls-partner.ts';
import { pathWithDataPlanes } from '../harness/data-planes.ts';
import { callProxy, renderManifests, startNginx, type CliRun, type NginxProcess } from '../support/nginx-process.ts';
import { PartnerPki } from '../support/partner-pki.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';

// `mtls-egress render` end to end: manifests with real openssl-made PFX files → the
// command → real nginx running its output as is → a real mTLS partner that reports what
// it saw. Listener ports 10200-10299 keep clear of the other e2e files.

const day = 86_400_000;
const pki = new PartnerPki('Render Partner CA');
const strangerPki = new PartnerPki('Someone Else CA');
const serverCert = pki.issueServer({ cn: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const impostorCert = strangerPki.issueServer({ cn: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
// Serials start below 8 so that node-forge encodes them as positive integers.
const direct = pki.issueClient({ cn: 'client-direct', serial: '1d1' });
const byIp = pki.issueClient({ cn: 'client-by-ip', serial: '2e2' });
const pem = pki.issueClient({ cn: 'client-pem', serial: '3f3' });
const expired = pki.issueClient({ cn: 'client-expired', notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) });

/** Every password and every key in the inputs: none may appear in output other than the key files. */
const passwords = ['direct-pw-Zq81', 'by-ip-pw-Lk22', 'wrong-ca-pw-Pp37', 'expired-pw-Xc44', 'the-right-one-Rr55'];
const ports = { first: 10200, last: 10299 };
// nginx, named: HAProxy is the default, and has its own describe below.
const portArgs = ['--data-plane', 'nginx', '--listener-ports', `${ports.first}-${ports.last}`];

function keyBody(keyPem: string): string {
  return keyPem.split('\n').slice(1, 3).join('');
}

function manifests(partner: MtlsPartner, impostor: MtlsPartner): object[] {
  const to = { host: 'localhost', port: partner.port, serverCA: pki.ca.certPem };
  const wrongPassword = partnerBindingManifests({ name: 'wrong-password', client: direct, password: 'the-right-one-Rr55', ...to });
  // The Secret says one password, the binding reads another key holding a wrong one.
  (wrongPassword[0] as { stringData: Record<string, string> }).stringData.password = 'not-the-password';
  return [
    ...partnerBindingManifests({ name: 'direct', client: direct, password: passwords[0]!, listenerPort: 10200, ...to }),
    ...partnerBindingManifests({
      name: 'by-ip',
      client: byIp,
      password: passwords[1]!,
      listenerPort: 10201,
      ...to,
      host: '127.0.0.1',
      serverName: 'localhost',
    }),
    // A kubernetes.io/tls Secret, inside a kind: List, given as stringData.
    {
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'pem-tls', namespace: 'team-a' },
          type: 'kubernetes.io/tls',
          stringData: { 'tls.crt': pem.certPem, 'tls.key': pem.keyPem },
        },
        {
          apiVersion: 'mtls-egress.io/v1alpha1',
          kind: 'ClientCertificateBinding',
          metadata: { name: 'pem', namespace: 'team-a' },
          spec: {
            host: 'localhost',
            port: partner.port,
            listenerPort: 10202,
            certificate: { tlsSecretRef: { name: 'pem-tls' } },
            serverCA: { secretRef: { name: 'direct-partner-ca' } },
          },
        },
      ],
    },
    ...partnerBindingManifests({
      name: 'wrong-ca',
      namespace: 'team-b',
      client: direct,
      password: passwords[2]!,
      listenerPort: 10203,
      host: 'localhost',
      port: impostor.port,
      serverCA: pki.ca.certPem,
    }),
    // Left out, each for its own reason:
    ...wrongPassword,
    ...partnerBindingManifests({ name: 'expired', client: expired, password: passwords[3]!, ...to }),
    ...partnerBindingManifests({ name: 'ip-host', client: direct, password: passwords[0]!, ...to, host: '127.0.0.1' }),
    ...partnerBindingManifests({ name: 'hostile', client: direct, password: passwords[0]!, ...to, host: 'localhost; proxy_ssl_verify off' }),
    {
      apiVersion: 'mtls-egress.io/v1alpha1',
      kind: 'ClientCertificateBinding',
      metadata: { name: 'no-secret', namespace: 'team-a' },
      spec: { host: 'localhost', certificate: { secretRef: { name: 'does-not-exist' } } },
    },
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'an-app' } },
  ];
}

function assertNothingSecretIn(text: string, where: string): void {
  for (const password of passwords) assert.ok(!text.includes(password), `a password appears in ${where}`);
  for (const issued of [direct, byIp, pem, expired]) assert.ok(!text.includes(keyBody(issued.keyPem)), `key material appears in ${where}`);
  assert.doesNotMatch(text, /PRIVATE KEY/, `a PEM key appears in ${where}`);
}

function filesUnder(dir: string): Map<string, { content: string; mode: number }> {
  const files = new Map<string, { content: string; mode: number }>();
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      // Regular files only: a running HAProxy's sockets live beside its config.
      else if (entry.isFile()) files.set(relative(dir, path), { content: readFileSync(path, 'utf8'), mode: statSync(path).mode & 0o777 });
    }
  };
  walk(dir);
  return files;
}

/** nginx writes a request's access-log line in its log phase, after the response went out: wait for it. */
function loggedFor(nginx: NginxProcess, binding: string) {
  return pollUntil(() => nginx.accessLog().find((l) => l.binding === binding), { what: `an access-log line for ${binding}`, timeoutMs: 5_000, intervalMs: 20 });
}

describe('mtls-egress render, run by real nginx', () => {
  let partner: MtlsPartner;
  let impostor: MtlsPartner;
  let run: CliRun;
  let nginx: NginxProcess;

  before(async () => {
    partner = await startMtlsPartner({ cert: serverCert.certPem, key: serverCert.keyPem, clientCA: pki.ca.certPem });
    impostor = await startMtlsPartner({ cert: impostorCert.certPem, key: impostorCert.keyPem, clientCA: pki.ca.certPem });
    run = await renderManifests(manifests(partner, impostor), portArgs);
    nginx = await startNginx(run.out);
  });

  after(async () => {
    await nginx?.stop();
    await partner?.close();
    await impostor?.close();
  });

  test('exits 1 and prints one line per binding: where to call it, or why it was left out', () => {
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stdout.trimEnd().split('\n');
    const byKey = new Map(lines.map((l) => [l.split(/\s+/)[0]!, l]));
    assert.equal(lines.length, 9, run.stdout);
    assert.match(byKey.get('team-a/direct')!, new RegExp(`^team-a/direct +http://127\\.0\\.0\\.1:10200  → localhost:${partner.port}$`));
    assert.match(byKey.get('team-a/by-ip')!, new RegExp(`http://127\\.0\\.0\\.1:10201  → 127\\.0\\.0\\.1:${partner.port}$`));
    assert.match(byKey.get('team-a/pem')!, /http:\/\/127\.0\.0\.1:10202 /);
    assert.match(byKey.get('team-b/wrong-ca')!, /http:\/\/127\.0\.0\.1:10203 /);
    const leftOut = (key: string): string => /left out: (\w+):/.exec(byKey.get(key) ?? '')?.[1] ?? `no left-out line for ${key}`;
    assert.equal(leftOut('team-a/wrong-password'), reasons.PasswordIncorrect);
    assert.equal(leftOut('team-a/expired'), reasons.CertificateExpired);
    assert.equal(leftOut('team-a/ip-host'), reasons.InvalidSpec);
    assert.equal(leftOut('team-a/hostile'), reasons.InvalidSpec);
    assert.equal(leftOut('team-a/no-secret'), reasons.SecretNotFound);
    assert.match(run.stderr, /ignored 1 object of other kinds/);
  });

  test('a plain-HTTP call reaches the partner with the binding’s identity, SNI = serverName, Host = host', async () => {
    const response = await callProxy(10200, { path: '/orders?id=7', method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    assert.equal(response.status, 200, response.body);
    const seen = JSON.parse(response.body) as PartnerSeen;
    assert.deepEqual(
      { cn: seen.cn, serial: seen.serialNumber, sni: seen.sni, host: seen.host, method: seen.method, path: seen.path, bodyBytes: seen.bodyBytes },
      { cn: 'client-direct', serial: direct.serial, sni: 'localhost', host: `localhost:${partner.port}`, method: 'POST', path: '/orders?id=7', bodyBytes: 7 },
    );
  });

  test('a partner reached by IP: SNI and verification use serverName, the Host header is the IP host', async () => {
    const seen = JSON.parse((await callProxy(10201)).body) as PartnerSeen;
    assert.deepEqual([seen.cn, seen.sni, seen.host], ['client-by-ip', 'localhost', `127.0.0.1:${partner.port}`]);
  });

  test('a PEM pair from a kubernetes.io/tls Secret in a List works the same', async () => {
    const seen = JSON.parse((await callProxy(10202)).body) as PartnerSeen;
    assert.deepEqual([seen.cn, seen.serialNumber], ['client-pem', pem.serial]);
  });

  test('a partner whose certificate another CA signed gets nothing: 502, a clear error line, no request accepted', async () => {
    const response = await callProxy(10203, { path: '/secret-stuff' });
    assert.equal(response.status, 502);
    assert.match(nginx.errorLog(), /upstream SSL certificate verify error: \(\d+:[^)]+\) while SSL handshaking to upstream/);
    // nginx checks the verify result once the handshake is done, so the impostor may have
    // completed one (and seen the public client certificate); no request ever follows.
    assert.equal(impostor.seen.length, 0, 'the impostor received no request');
    const line = await loggedFor(nginx, 'team-b/wrong-ca');
    assert.equal(line.status, 502);
  });

  test('the access log names the binding and the upstream status, not the query string', async () => {
    const line = await loggedFor(nginx, 'team-a/direct');
    assert.equal(line.upstream_status, '200');
    assert.equal(line.path, '/orders');
  });

  test('nothing written or printed outside the key files holds a password or key material', () => {
    assertNothingSecretIn(run.stdout + run.stderr, 'the output');
    for (const [path, file] of filesUnder(run.out)) {
      if (path.endsWith('.key')) {
        assert.equal(file.mode, 0o600, `${path} is 0600`);
        assert.match(file.content, /^-----BEGIN PRIVATE KEY-----\n/);
      } else {
        assertNothingSecretIn(file.content, path);
      }
    }
    assert.equal(statSync(join(run.out, 'certs')).mode & 0o777, 0o700);
  });

  test('pid, logs and temp files stay inside the output directory', () => {
    const names = readdirSync(run.out).sort();
    for (const expected of ['access.log', 'error.log', 'nginx.pid', 'proxy_temp', 'client_body_temp'])
      assert.ok(names.includes(expected), `${expected} in ${names.join(' ')}`);
  });
});

describe('mtls-egress render --data-plane haproxy, run by the command it prints', () => {
  let partner: MtlsPartner;
  let impostor: MtlsPartner;
  let run: CliRun;
  let haproxy: ChildProcess | undefined;

  before(async () => {
    partner = await startMtlsPartner({ cert: serverCert.certPem, key: serverCert.keyPem, clientCA: pki.ca.certPem });
    impostor = await startMtlsPartner({ cert: impostorCert.certPem, key: impostorCert.keyPem, clientCA: pki.ca.certPem });
    // HAProxy binds the whole range; 10248-10259 are the test node's kubelet, kube-proxy,
    // controller-manager and scheduler ports.
    run = await renderManifests(manifests(partner, impostor), ['--data-plane', 'haproxy', '--listener-ports', '10200-10239']);
    const command = /^run it: (.+)$/m.exec(run.stderr)?.[1];
    assert.ok(command, run.stderr);
    // From another directory, as a person pastes it: every path in it is absolute.
    // `haproxy` found on PATH as a person's would be: the image's HAProxy, built for this host.
    haproxy = spawn('sh', ['-c', command], { cwd: '/', detached: true, stdio: 'ignore', env: { ...process.env, PATH: pathWithDataPlanes() } });
    killProcessGroupOnExit(haproxy.pid!);
    await pollUntil(async () => ((await callProxy(10200).catch(() => undefined))?.status === 200 ? true : undefined), {
      what: 'HAProxy started by the printed command to serve',
      timeoutMs: 20_000,
    });
  });

  after(async () => {
    try {
      if (haproxy?.pid) process.kill(-haproxy.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await partner?.close();
    await impostor?.close();
  });

  test('the same bindings are served, or left out, as with nginx', async () => {
    assert.equal(run.code, 1, run.stderr);
    const seen = JSON.parse((await callProxy(10200, { method: 'POST', body: '{"n":1}' })).body) as PartnerSeen;
    assert.deepEqual(
      { cn: seen.cn, serial: seen.serialNumber, sni: seen.sni, host: seen.host },
      {
        cn: 'client-direct',
        serial: direct.serial,
        sni: 'localhost',
        host: `localhost:${partner.port}`,
      },
    );
    assert.equal((JSON.parse((await callProxy(10201)).body) as PartnerSeen).sni, 'localhost');
    assert.equal((await callProxy(10203)).status, 502, 'a partner from another CA');
    assert.equal(impostor.seen.length, 0);
  });

  test('key material only in the certificate files, 0600', () => {
    for (const [path, file] of filesUnder(run.out)) {
      if (path.startsWith('certs/')) assert.equal(file.mode, 0o600, path);
      else assertNothingSecretIn(file.content, path);
    }
    assertNothingSecretIn(run.stdout + run.stderr, 'the output');
  });
});

describe('mtls-egress render is deterministic', () => {
  test('the same manifests render to byte-identical files, twice, and again in place', async () => {
    // Ports and certificates fixed by the manifests, so two runs can be compared; hosts that
    // resolve anywhere (an IP, and /etc/hosts' localhost), since the render is given addresses.
    const input = [
      ...partnerBindingManifests({ name: 'one', client: direct, password: passwords[0]!, host: 'localhost', port: 443 }),
      ...partnerBindingManifests({
        name: 'two',
        client: byIp,
        password: passwords[1]!,
        host: '192.0.2.2',
        serverName: 'two.partner.example',
        port: 8443,
        serverCA: pki.ca.certPem,
      }),
    ];
    const first = await renderManifests(input, portArgs);
    const second = await renderManifests(input, portArgs);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.deepEqual(filesUnder(second.out), filesUnder(first.out));
    assert.equal(/sha256 (\w+)/.exec(second.stderr)?.[1], /sha256 (\w+)/.exec(first.stderr)?.[1]);

    const again = await renderManifests(input, portArgs, first.out);
    assert.equal(again.code, 0);
    assert.deepEqual(filesUnder(again.out), filesUnder(second.out));
    assert.equal(filesUnder(first.out).get('certs/team-a_one.key')?.mode, 0o600);

    // A binding removed: its certificate and key go with it.
    const fewer = await renderManifests(input.slice(0, 2), portArgs, first.out);
    assert.equal(fewer.code, 0);
    assert.deepEqual([...filesUnder(fewer.out).keys()].sort(), ['bindings/team-a_one.conf', 'certs/team-a_one.crt', 'certs/team-a_one.key', 'nginx.conf']);
  });

  test('--now is the clock certificates are checked against', async () => {
    const input = partnerBindingManifests({ name: 'expired', client: expired, password: passwords[3]!, host: 'localhost', port: 443 });
    const before = await renderManifests(input, [...portArgs, '--now', new Date(Date.now() - 2 * day).toISOString()]);
    assert.equal(before.code, 0, before.stdout);
    const now = await renderManifests(input, portArgs);
    assert.equal(now.code, 1);
    assert.match(now.stdout, /left out: CertificateExpired: /);
  });
});

describe('mtls-egress render gives the proxy addresses, never a name', () => {
  test('a host is rendered as its addresses; one that does not resolve is left out, not handed to nginx to resolve', async () => {
    const input = [
      ...partnerBindingManifests({ name: 'near', client: direct, password: passwords[0]!, host: 'localhost', port: 443 }),
      ...partnerBindingManifests({ name: 'nowhere', client: byIp, password: passwords[1]!, host: 'nowhere.invalid', port: 443 }),
    ];
    const run = await renderManifests(input, portArgs);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /team-a\/nowhere +left out: HostUnresolvable: /);
    const conf = filesUnder(run.out).get('bindings/team-a_near.conf')?.content ?? '';
    assert.match(conf, /server 127\.0\.0\.1:443;/);
    assert.doesNotMatch(conf, /server localhost/);
    assert.equal(filesUnder(run.out).has('bindings/team-a_nowhere.conf'), false);
  });
});

describe('mtls-egress render usage errors exit 2', () => {
  const io = () => {
    const out = captureIo();
    return { out, io: out.io };
  };
  const inputDir = temporaryDirectory('render-usage');
  writeFileSync(join(inputDir, 'empty.yaml'), '');
  const cases: Array<[string, string[], RegExp]> = [
    ['no -f', ['--out', join(inputDir, 'o1')], /-f FILE\|DIR is required/],
    ['no --out', ['-f', inputDir], /--out DIR is required/],
    ['an unknown flag', ['-f', inputDir, '--out', join(inputDir, 'o2'), '--frobnicate'], /frobnicate/],
    ['a listen address that is not an IP', ['-f', inputDir, '--out', join(inputDir, 'o3'), '--listen-address', 'localhost'], /--listen-address/],
    ['a bad port range', ['-f', inputDir, '--out', join(inputDir, 'o4'), '--listener-ports', '80-90'], /--listener-ports/],
    ['a bad --now', ['-f', inputDir, '--out', join(inputDir, 'o5'), '--now', 'yesterday'], /--now/],
    ['a missing file', ['-f', join(inputDir, 'nope.yaml'), '--out', join(inputDir, 'o6')], /no such file/],
  ];
  for (const [what, argv, message] of cases) {
    test(what, async () => {
      const { out, io: sink } = io();
      assert.equal(await runRender(argv, sink), 2);
      assert.match(out.stderr, message);
    });
  }

  test('invalid YAML names the file and position, never the text around it', async () => {
    const dir = temporaryDirectory('render-bad-yaml');
    writeFileSync(join(dir, 'secret.yaml'), 'apiVersion: v1\nkind: Secret\nstringData:\n  password: "s3cr3t-Do-Not-Print\n  other: [\n');
    const { out, io: sink } = io();
    assert.equal(await runRender(['-f', dir, '--out', join(dir, 'out')], sink), 2);
    assert.match(out.stderr, /secret\.yaml: not valid YAML at line \d+/);
    assert.ok(!out.stderr.includes('s3cr3t'), out.stderr);
  });

  test('an --out directory that holds something else is refused', async () => {
    const dir = temporaryDirectory('render-foreign-out');
    mkdirSync(join(dir, 'out'));
    writeFileSync(join(dir, 'out', 'precious.txt'), 'keep me');
    const { out, io: sink } = io();
    assert.equal(await runRender(['-f', inputDir, '--out', join(dir, 'out')], sink), 2);
    assert.match(out.stderr, /not empty and holds no earlier render/);
    assert.equal(readFileSync(join(dir, 'out', 'precious.txt'), 'utf8'), 'keep me');
  });

  test('no bindings at all renders a config nginx accepts, and exits 0', async () => {
    const { out, io: sink } = io();
    assert.equal(await runRender(['-f', inputDir, '--data-plane', 'nginx', '--out', join(inputDir, 'o-empty')], sink), 0, out.stderr);
    assert.equal(out.stdout, '');
    const nginx = await startNginx(join(inputDir, 'o-empty'));
    await nginx.stop();
  });
});
