import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import { pino } from 'pino';
import { decodePem, decodePfx, type DecodedIdentity } from '../../src/pki/index.ts';
import { FIXTURE_PASSWORD, pemPair } from '../fixtures/pfx.ts';
import { failureCases, formatCases, type BuiltPfx } from '../fixtures/pki/pfx-cases.ts';

// Every fixture and every failure, decoded with a distinctive password: neither the password
// nor any piece of the private key may reach a message, a stack, a serialisation or a log.

/** What must never be printed: the password, and the key's secret parts in every encoding a log could carry. */
function secrets(input: { password: string | undefined; keyPem: string | undefined }, publicText: string): string[] {
  const fragments = input.password ? [input.password] : [];
  if (input.keyPem !== undefined) {
    const key = createPrivateKey(input.keyPem);
    const jwk = key.export({ format: 'jwk' });
    for (const part of [jwk.d, jwk.p, jwk.q, jwk.dp, jwk.dq, jwk.qi]) {
      if (part === undefined) continue;
      const bytes = Buffer.from(part, 'base64url');
      fragments.push(
        part.slice(0, 24),
        bytes.toString('base64').slice(0, 24),
        bytes.toString('hex').slice(0, 32),
        bytes.toString('hex').slice(0, 32).toUpperCase(),
      );
    }
    // PEM lines of the key, except any that also occur in a certificate (the public key is public).
    const pkcs8Lines = String(key.export({ type: 'pkcs8', format: 'pem' }))
      .split('\n')
      .filter((line) => line.length > 40);
    fragments.push(...pkcs8Lines.filter((line) => !publicText.includes(line)));
  }
  return fragments;
}

function captureLogs(log: (logger: pino.Logger) => void): string {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString());
      callback();
    },
  });
  log(pino({ level: 'trace' }, stream));
  return lines.join('');
}

function printedForms(outcome: { identity?: DecodedIdentity; error?: unknown }): Record<string, string> {
  if (outcome.identity !== undefined) {
    const { identity } = outcome;
    return {
      'JSON.stringify(result)': JSON.stringify(identity),
      'util.inspect(result)': inspect(identity, { depth: Infinity }),
      'String(result.privateKey)': String(identity.privateKey),
      'pino log of the result': captureLogs((logger) => {
        logger.info({ identity }, 'decoded');
        logger.info(identity, 'decoded');
      }),
    };
  }
  const error = outcome.error as Error;
  return {
    'String(err)': String(error),
    'err.stack': error.stack ?? '',
    'JSON.stringify(err)': JSON.stringify(error),
    'util.inspect(err)': inspect(error, { depth: Infinity }),
    'pino log of the error': captureLogs((logger) => logger.error({ err: error }, 'decode failed')),
  };
}

function assertNoSecrets(input: { password: string | undefined; keyPem: string | undefined }, outcome: { identity?: DecodedIdentity; error?: unknown }): void {
  const publicText = outcome.identity === undefined ? '' : [outcome.identity.leaf, ...outcome.identity.chain].map(({ pem }) => pem).join('');
  const forms = printedForms(outcome);
  for (const secret of secrets(input, publicText)) {
    for (const [form, text] of Object.entries(forms)) {
      assert.ok(!text.includes(secret), `${form} contains a secret (${secret.length} characters)`);
    }
  }
  for (const [form, text] of Object.entries(forms)) assert.doesNotMatch(text, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, `${form} contains a PEM private key`);
}

async function outcomeOf(decode: () => Promise<DecodedIdentity>): Promise<{ identity?: DecodedIdentity; error?: unknown }> {
  try {
    return { identity: await decode() };
  } catch (error) {
    return { error };
  }
}

async function checkPfx(built: BuiltPfx): Promise<void> {
  assertNoSecrets(built, await outcomeOf(() => decodePfx(built.bytes, built.password)));
}

describe('no password or key material in any output', () => {
  for (const testCase of formatCases) test(`decoded: ${testCase.name}`, async () => checkPfx(await testCase.build()));
  for (const testCase of failureCases) test(`failed: ${testCase.name}`, async () => checkPfx(await testCase.build()));

  const pemCases = [
    { name: 'PEM pair, PKCS#1 key', form: 'traditional', password: undefined },
    { name: 'PEM pair, encrypted key', form: { encrypted: 'pbes2', prf: 'hmacWithSHA256' }, password: FIXTURE_PASSWORD },
    { name: 'PEM pair, encrypted key, wrong password', form: { encrypted: 'pbes2', prf: 'hmacWithSHA256' }, password: `wrong-${FIXTURE_PASSWORD}` },
    { name: 'PEM pair, Proc-Type encrypted key, wrong password', form: { encrypted: 'traditional-aes256' }, password: `wrong-${FIXTURE_PASSWORD}` },
  ] as const;
  for (const { name, form, password } of pemCases) {
    test(name, async () => {
      const pair = await pemPair({ kind: 'rsa2048', form });
      assertNoSecrets({ password, keyPem: pair.leaf.keyPem }, await outcomeOf(() => decodePem(pair.certPem, pair.keyPem, password)));
    });
  }
});
