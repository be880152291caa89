import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  CertificateExpired,
  CertificateNotYetValid,
  KeyMismatch,
  NoCertificate,
  NoPrivateKey,
  PasswordIncorrect,
  PfxMalformed,
  UnsupportedAlgorithm,
  type IdentityReason,
} from '../../src/api/v1alpha1/reasons.ts';
import { runCli } from '../../src/cli.ts';
import { runInspect } from '../../src/commands/inspect.ts';
import { FIXTURE_PASSWORD, fixtureDirectory, forgePfx, opensslPfx, pemPair } from '../fixtures/pfx.ts';
import { captureIo } from '../support/captured-io.ts';

const execFileAsync = promisify(execFile);
const node = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));
const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

// A clock inside every fixture's validity window (they are issued for 365 days from today).
const clock = () => new Date(Date.now() + 24 * 60 * 60 * 1000);
const LATER = '2100-01-01T00:00:00Z';
const EARLIER = '2000-01-01T00:00:00Z';

interface Files {
  readonly pfx: string;
  readonly legacyPfx: string;
  readonly passwordFile: string;
  readonly passwordFileCrlf: string;
  readonly wrongPasswordFile: string;
  readonly garbage: string;
  readonly des: string;
  readonly keyOnly: string;
  readonly certOnly: string;
  readonly mismatch: string;
  readonly cert: string;
  readonly key: string;
}

async function writeFixture(name: string, content: string | Uint8Array): Promise<string> {
  const path = join(fixtureDirectory(), name);
  await writeFile(path, content);
  return path;
}

let files: Files;

before(async () => {
  const pair = await pemPair({ kind: 'p256', form: 'traditional' });
  const [pfx, legacy, des, keyOnly, certOnly, mismatch] = await Promise.all([
    opensslPfx({ name: 'pfx-openssl3-aes256-sha256' }),
    opensslPfx({ name: 'pfx-legacy-rc2-3des-sha1', opensslArgs: ['-legacy'] }),
    opensslPfx({ name: 'pfx-pbe-sha1-des', opensslArgs: ['-legacy', '-certpbe', 'PBE-SHA1-DES', '-keypbe', 'PBE-SHA1-3DES'] }),
    opensslPfx({ name: 'pfx-key-only', contents: 'key-only', caCertificates: [] }),
    opensslPfx({ name: 'pfx-leaf-certificate-only', contents: 'certificates-only', caCertificates: [] }),
    forgePfx({ name: 'pfx-forge-key-mismatch', certificates: ['leaf', 'int1'], key: 'unrelated', algorithm: 'aes256' }),
  ]);
  files = {
    pfx: pfx.path,
    legacyPfx: legacy.path,
    passwordFile: await writeFixture('password.txt', `${FIXTURE_PASSWORD}\n`),
    passwordFileCrlf: await writeFixture('password-crlf.txt', `${FIXTURE_PASSWORD}\r\n`),
    wrongPasswordFile: await writeFixture('wrong-password.txt', `wrong-${FIXTURE_PASSWORD}\n`),
    garbage: await writeFixture('garbage.p12', 'this is not a PFX'),
    des: des.path,
    keyOnly: keyOnly.path,
    certOnly: certOnly.path,
    mismatch: mismatch.path,
    cert: await writeFixture('tls.crt', pair.certPem),
    key: await writeFixture('tls.key', pair.keyPem),
  };
});

// --- As a real process: the entry point, exit codes and streams, as a user sees them.

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function spawnCli(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(node, [cli, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function assertNoPassword(run: Run): void {
  for (const text of [run.stdout, run.stderr]) {
    assert.ok(!text.includes(FIXTURE_PASSWORD), 'the password was printed');
    assert.doesNotMatch(text, /PRIVATE KEY/);
  }
}

describe('mtls-egress inspect, run as a process', () => {
  test('success, --json: the facts, no key, exit 0', async () => {
    const run = await spawnCli(['inspect', files.pfx, '--password-file', files.passwordFile, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const facts = JSON.parse(run.stdout) as Record<string, unknown>;
    for (const field of [
      'subject',
      'issuer',
      'serialNumber',
      'notBefore',
      'notAfter',
      'fingerprintSha256',
      'keyAlgorithm',
      'keySize',
      'dnsNames',
      'uris',
      'chainLength',
    ]) {
      assert.ok(field in facts, `missing ${field}`);
    }
    assert.match(String(facts.notAfter), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(facts.keyAlgorithm, 'RSA');
    assert.equal(facts.chainLength, 2);
    assertNoPassword(run);
  });

  test('success, human: a table, exit 0', async () => {
    const run = await spawnCli(['inspect', files.legacyPfx, '--password-env', 'PFX_PASSWORD'], { PFX_PASSWORD: FIXTURE_PASSWORD });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Subject +CN=client-rsa2048\.partner\.example,OU=Partner Integrations,O=Acme Payments,C=DE$/m);
    assert.match(run.stdout, /^DNS names +client\.partner\.example, \*\.client\.partner\.example$/m);
    assert.match(run.stdout, /^Key +RSA 2048 bits$/m);
    assertNoPassword(run);
  });

  test('a PEM pair through --cert/--key', async () => {
    const run = await spawnCli(['inspect', '--cert', files.cert, '--key', files.key, '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((({ keyAlgorithm, curve, chainLength }) => ({ keyAlgorithm, curve, chainLength }))(JSON.parse(run.stdout) as Record<string, unknown>), {
      keyAlgorithm: 'ECDSA',
      curve: 'P-256',
      chainLength: 3,
    });
  });

  const failures: readonly { reason: IdentityReason; args: () => string[] }[] = [
    { reason: PasswordIncorrect, args: () => [files.pfx, '--password-file', files.wrongPasswordFile] },
    { reason: PfxMalformed, args: () => [files.garbage] },
    { reason: UnsupportedAlgorithm, args: () => [files.des, '--password-file', files.passwordFile] },
    { reason: NoCertificate, args: () => [files.keyOnly, '--password-file', files.passwordFile] },
    { reason: NoPrivateKey, args: () => [files.certOnly, '--password-file', files.passwordFile] },
    { reason: KeyMismatch, args: () => [files.mismatch, '--password-file', files.passwordFile] },
    { reason: CertificateExpired, args: () => [files.pfx, '--password-file', files.passwordFile, '--now', LATER] },
    { reason: CertificateNotYetValid, args: () => [files.pfx, '--password-file', files.passwordFile, '--now', EARLIER] },
  ];
  for (const { reason, args } of failures) {
    test(`${reason}, --json: {"reason","message"} on stdout, exit 1`, async () => {
      const run = await spawnCli(['inspect', ...args(), '--json']);
      assert.equal(run.code, 1, run.stderr);
      const output = JSON.parse(run.stdout) as { reason: string; message: string };
      assert.equal(output.reason, reason);
      assert.equal(typeof output.message, 'string');
      assert.equal(run.stderr, '');
      assertNoPassword(run);
    });
  }

  test('a failure without --json: "Reason: message" on stderr, no stack trace', async () => {
    const run = await spawnCli(['inspect', files.pfx, '--password-file', files.wrongPasswordFile]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^PasswordIncorrect: the password is incorrect/);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
    assert.equal(run.stdout, '');
    assert.ok(!run.stderr.includes(`wrong-${FIXTURE_PASSWORD}`));
  });

  test('a usage error exits 2', async () => {
    const run = await spawnCli(['inspect', '--json']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /missing FILE/);
  });

  test('--help lists the commands', async () => {
    const run = await spawnCli(['--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^ {2}inspect +/m);
  });
});

// --- In-process: the argument handling in detail, without a process per case.

interface Captured {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function inProcess(argv: readonly string[], env: Record<string, string> = {}): Promise<Captured> {
  const run = captureIo({ env, now: clock });
  const code = await runInspect(argv, run.io);
  return { code, stdout: run.stdout, stderr: run.stderr };
}

describe('mtls-egress inspect, arguments', () => {
  const usageErrors: readonly { name: string; argv: () => string[]; env?: Record<string, string>; says: RegExp }[] = [
    { name: 'FILE and --cert together', argv: () => [files.pfx, '--cert', files.cert, '--key', files.key], says: /either FILE or --cert/ },
    { name: '--cert without --key', argv: () => ['--cert', files.cert], says: /--cert and --key go together/ },
    { name: 'two files', argv: () => [files.pfx, files.legacyPfx], says: /one FILE at a time/ },
    { name: 'both password sources', argv: () => [files.pfx, '--password-file', files.passwordFile, '--password-env', 'X'], says: /not both/ },
    { name: 'an unset password variable', argv: () => [files.pfx, '--password-env', 'NOT_SET'], says: /NOT_SET is not set/ },
    { name: 'a --now that is not RFC 3339', argv: () => [files.pfx, '--now', 'tomorrow'], says: /RFC 3339/ },
    { name: 'a file that does not exist', argv: () => [join(fixtureDirectory(), 'missing.p12')], says: /cannot read file .*ENOENT/ },
    { name: 'an unknown option', argv: () => [files.pfx, '--password', 'x'], says: /Unknown option '--password'/ },
  ];
  for (const { name, argv, env, says } of usageErrors) {
    test(`usage error: ${name} → exit 2`, async () => {
      const run = await inProcess(argv(), env);
      assert.equal(run.code, 2);
      assert.match(run.stderr, says);
      assert.equal(run.stdout, '');
    });
  }

  test('the password file may end in CRLF; one line ending is stripped', async () => {
    const run = await inProcess([files.pfx, '--password-file', files.passwordFileCrlf, '--json']);
    assert.equal(run.code, 0, run.stderr);
  });

  test('--now inside the window passes; the human report says how long is left', async () => {
    const run = await inProcess([files.pfx, '--password-env', 'PW', '--now', new Date(Date.now() + 2 * 24 * 60 * 60 * 1000).toISOString()], {
      PW: FIXTURE_PASSWORD,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Not after +\S+ \(valid, 36[23] days left\)$/m);
  });

  test('inspect --help prints its usage and exits 0', async () => {
    const run = await inProcess(['--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /trailing newline/);
  });

  test('the dispatcher rejects an unknown command with exit 2', async () => {
    const run = captureIo({ now: clock });
    const code = await runCli(['nonsense'], run.io);
    assert.equal(code, 2);
    assert.match(run.stderr, /unknown command "nonsense"/);
  });
});
