import { X509Certificate } from 'node:crypto';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import { inspectUsage, parseFlagsOrUsage, parseInspectArgs, UsageError, type InspectArgs } from '../config.ts';
import type { CommandIo } from './command.ts';
import { passwordFromBytes } from '../model/certificate-input.ts';
import { printable } from '../printable.ts';
import { PkiError, decodeIdentity, evaluateValidity, rfc3339, rfc4514Name, type CertificateFacts, type DecodedIdentity } from '../pki/index.ts';

// `mtls-egress inspect`: what the operator would make of a partner's file, before it goes
// into a Secret. Prints the certificate facts, never the key or the password; exits 1 with
// the same reason a binding's status would show.

export async function runInspect(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlagsOrUsage('inspect', inspectUsage, io, () => parseInspectArgs(argv));
  if (!parsed.ok) return parsed.exitCode;
  const request = parsed.config;
  let password: string | Uint8Array | undefined;
  try {
    password = await readPassword(request, io);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`mtls-egress inspect: ${error.message}\n\n${inspectUsage}`);
    return 2;
  }

  let identity: DecodedIdentity;
  try {
    identity = await decode(request, password, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`mtls-egress inspect: ${error.message}\n`);
      return 2;
    }
    if (!(error instanceof PkiError)) throw error;
    return reportFailure(error, request.json, io);
  }

  const now = request.now ?? io.now();
  const violation = evaluateValidity(identity.facts, now);
  if (violation !== undefined) return reportFailure(violation, request.json, io);
  io.stdout.write(request.json ? `${JSON.stringify(inspectJson(identity), null, 2)}\n` : humanReport(identity, now));
  return 0;
}

async function readPassword(request: InspectArgs, io: CommandIo): Promise<string | Uint8Array | undefined> {
  if (request.passwordEnv !== undefined) {
    const value = io.env[request.passwordEnv];
    if (value === undefined) throw new UsageError(`environment variable ${request.passwordEnv} is not set`);
    return value;
  }
  if (request.passwordFile === undefined) return undefined;
  // One trailing newline is what `echo` and editors add; it is never part of the password.
  return passwordFromBytes(await readInput(request.passwordFile, 'password file', io));
}

async function readInput(path: string, what: string, io: CommandIo): Promise<Uint8Array> {
  try {
    return await io.readFile(path);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new UsageError(`cannot read ${what} ${path}${typeof code === 'string' ? ` (${code})` : ''}`);
  }
}

async function decode(request: InspectArgs, password: string | Uint8Array | undefined, io: CommandIo): Promise<DecodedIdentity> {
  if (request.source.kind === 'pfx') return decodeIdentity({ kind: 'pfx', pfx: await readInput(request.source.file, 'file', io), password });
  const [cert, key] = await Promise.all([readInput(request.source.cert, 'certificate', io), readInput(request.source.key, 'key', io)]);
  return decodeIdentity({ kind: 'pem', cert, key, password });
}

function reportFailure(violation: Problem, json: boolean, io: CommandIo): number {
  const { reason, message } = violation;
  if (json) io.stdout.write(`${JSON.stringify({ reason, message })}\n`);
  else io.stderr.write(`${reason}: ${printable(message)}\n`);
  return 1;
}

interface ChainEntry {
  readonly subject: string;
  readonly issuer: string;
  readonly notAfter: string;
}

type InspectJson = Omit<CertificateFacts, 'notBefore' | 'notAfter'> & {
  readonly notBefore: string;
  readonly notAfter: string;
  readonly chain: readonly ChainEntry[];
};

function inspectJson({ facts, chain }: DecodedIdentity): InspectJson {
  return {
    subject: facts.subject,
    issuer: facts.issuer,
    serialNumber: facts.serialNumber,
    notBefore: rfc3339(facts.notBefore),
    notAfter: rfc3339(facts.notAfter),
    fingerprintSha256: facts.fingerprintSha256,
    keyAlgorithm: facts.keyAlgorithm,
    keySize: facts.keySize,
    ...(facts.curve === undefined ? {} : { curve: facts.curve }),
    dnsNames: facts.dnsNames,
    uris: facts.uris,
    chainLength: facts.chainLength,
    chain: chain.map(({ pem }) => {
      const certificate = new X509Certificate(pem);
      return { subject: rfc4514Name(certificate.subject), issuer: rfc4514Name(certificate.issuer), notAfter: rfc3339(certificate.validToDate) };
    }),
  };
}

const DAY_MS = 24 * 60 * 60 * 1000;

function humanReport(identity: DecodedIdentity, now: Date): string {
  const json = inspectJson(identity);
  const daysLeft = Math.floor((identity.facts.notAfter.getTime() - now.getTime()) / DAY_MS);
  const key = json.curve === undefined ? `${json.keyAlgorithm} ${json.keySize} bits` : `${json.keyAlgorithm} ${json.curve}`;
  const rows: [string, string][] = [
    ['Subject', json.subject],
    ['Issuer', json.issuer],
    ['Serial number', json.serialNumber],
    ['Not before', json.notBefore],
    ['Not after', `${json.notAfter} (valid, ${daysLeft === 1 ? '1 day' : `${daysLeft} days`} left)`],
    ['SHA-256 fingerprint', json.fingerprintSha256],
    ['Key', key],
    ['DNS names', json.dnsNames.join(', ') || '(none)'],
    ['URIs', json.uris.join(', ') || '(none)'],
    ['Chain length', `${json.chainLength} (leaf + ${json.chain.length})`],
    ...json.chain.map((entry, index): [string, string] => [`  ${index + 1}.`, `${entry.subject} (until ${entry.notAfter})`]),
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${printable(value)}\n`).join('');
}
