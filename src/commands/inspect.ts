import { X509Certificate } from 'node:crypto';
import { parseArgs } from 'node:util';
import { parseRfc3339 } from '../api/time.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import type { CommandIo } from '../cli.ts';
import { UsageError } from '../config.ts';
import { passwordFromBytes } from '../model/certificate-input.ts';
import { printable } from '../printable.ts';
import { PkiError, decodeIdentity, evaluateValidity, rfc3339, rfc4514Name, type CertificateFacts, type DecodedIdentity } from '../pki/index.ts';

// `mtls-egress inspect`: what the operator would make of a partner's file, before it goes
// into a Secret. Prints the certificate facts, never the key or the password; exits 1 with
// the same reason a binding's status would show.

const USAGE = `Usage: mtls-egress inspect FILE [--password-file F | --password-env VAR] [--json] [--now RFC3339]
       mtls-egress inspect --cert CERT.pem --key KEY.pem [--password-file F | --password-env VAR] [--json] [--now RFC3339]

Decodes a PFX/PKCS#12 file (DER, or base64 text of one as Azure Key Vault delivers it), or a
PEM certificate chain and private key as in a kubernetes.io/tls Secret, and prints the leaf
certificate's facts. Never prints the private key or the password.

Options:
  --password-file F    read the password from file F. The file's content is the password,
                       minus one trailing newline ("\\n" or "\\r\\n"), so \`echo pw > F\` works.
  --password-env VAR   read the password from environment variable VAR
                       (there is no --password: arguments end up in shell history and ps)
  --cert F --key F     a PEM certificate (chain) and private key, instead of FILE; the
                       password is only needed for an encrypted key
  --json               print JSON on stdout
  --now RFC3339        judge validity at this time (e.g. 2030-01-01T00:00:00Z), not the clock

Exit status:
  0  the identity decodes and is valid now
  1  it is not usable: "Reason: message" on stderr, or {"reason", "message"} on stdout with
     --json; the reasons are those a ClientCertificateBinding's status shows
  2  usage error
`;

interface InspectRequest {
  readonly source: { readonly kind: 'pfx'; readonly file: string } | { readonly kind: 'pem'; readonly cert: string; readonly key: string };
  readonly passwordFile: string | undefined;
  readonly passwordEnv: string | undefined;
  readonly json: boolean;
  readonly now: Date | undefined;
}

export async function runInspect(argv: readonly string[], io: CommandIo): Promise<number> {
  let request: InspectRequest;
  let password: string | Uint8Array | undefined;
  try {
    const parsed = parseInspectArgs(argv);
    if (parsed === 'help') {
      io.stdout.write(USAGE);
      return 0;
    }
    request = parsed;
    password = await readPassword(request, io);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`mtls-egress inspect: ${error.message}\n\n${USAGE}`);
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

function parseInspectArgs(argv: readonly string[]): InspectRequest | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        'password-file': { type: 'string' },
        'password-env': { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        json: { type: 'boolean', default: false },
        now: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length > 1) throw new UsageError(`one FILE at a time (got ${positionals.length})`);
  const [file] = positionals;
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
  if (file !== undefined && values.cert !== undefined) throw new UsageError('give either FILE or --cert/--key, not both');
  if (file === undefined && values.cert === undefined) throw new UsageError('missing FILE (or --cert and --key)');
  if (values['password-file'] !== undefined && values['password-env'] !== undefined) {
    throw new UsageError('give either --password-file or --password-env, not both');
  }
  return {
    source: file !== undefined ? { kind: 'pfx', file } : { kind: 'pem', cert: values.cert!, key: values.key! },
    passwordFile: values['password-file'],
    passwordEnv: values['password-env'],
    json: values.json,
    now: values.now === undefined ? undefined : parseNow(values.now),
  };
}

function parseNow(text: string): Date {
  const date = parseRfc3339(text);
  if (date === undefined) throw new UsageError(`--now wants an RFC 3339 time such as 2030-01-01T00:00:00Z, got "${text}"`);
  return date;
}

async function readPassword(request: InspectRequest, io: CommandIo): Promise<string | Uint8Array | undefined> {
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

async function decode(request: InspectRequest, password: string | Uint8Array | undefined, io: CommandIo): Promise<DecodedIdentity> {
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
