import { X509Certificate } from 'node:crypto';
import type { SecretLike } from '../api/meta.ts';
import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import type { ClientCertificateBindingSpec } from '../api/v1alpha1/types.ts';
import { Sensitive } from '../pki/sensitive.ts';
import { secretReferenceProblem, secretReferences, type SecretReference } from './secret-refs.ts';

export type { SecretLike } from '../api/meta.ts';

/** Why a binding's Secrets cannot be used, with the reference it is about when there is one (validate names that field). */
export type InputProblem = { readonly ok: false; readonly ref?: SecretReference } & Problem;

export type CertificateInput =
  | { ok: true; kind: 'pfx'; pfx: Sensitive<Uint8Array>; password: Sensitive<string | Uint8Array> | undefined; version: string }
  | { ok: true; kind: 'pem'; cert: string; key: Sensitive<string>; version: string };

export type SecretLookup = (name: string) => SecretLike | undefined;

function read(ref: SecretReference, lookup: SecretLookup): { ok: true; value: Buffer; secret: SecretLike } | InputProblem {
  const problem = secretReferenceProblem(ref);
  if (problem !== undefined) return { ok: false, ref, reason: reasons.InvalidSpec, message: problem };
  const secret = lookup(ref.name);
  if (!secret) return { ok: false, ref, reason: reasons.SecretNotFound, message: `Secret ${ref.name} (${ref.role}) not found in the binding's namespace` };
  const b64 = secret.data?.[ref.key];
  if (b64 === undefined) {
    const keys =
      Object.keys(secret.data ?? {})
        .sort()
        .join(', ') || 'none';
    return { ok: false, ref, reason: reasons.SecretKeyNotFound, message: `Secret ${ref.name} has no key "${ref.key}" (${ref.role}); its keys are: ${keys}` };
  }
  return { ok: true, value: Buffer.from(b64, 'base64'), secret };
}

/** Which bytes these are: a Secret's uid and resourceVersion in a cluster; its namespace and name in a manifest set, which has neither. */
function version(secret: SecretLike, key: string): string {
  const id = secret.metadata.uid ?? `${secret.metadata.namespace ?? ''}/${secret.metadata.name}`;
  return `${id}@${secret.metadata.resourceVersion ?? ''}/${key}`;
}

/**
 * Gathers the certificate's bytes from the binding's Secrets, or the first reason they
 * cannot be had. `version` changes exactly when the inputs do, so the decoded identity
 * can be cached across resyncs and only a real rotation pays for a decode.
 */
export function resolveCertificateInput(spec: ClientCertificateBindingSpec, lookup: SecretLookup): CertificateInput | InputProblem {
  const refs = secretReferences(spec);
  const pfxRef = refs.find((r) => r.role === 'pfx');
  if (pfxRef) {
    const pfx = read(pfxRef, lookup);
    if (!pfx.ok) return pfx;
    const passwordRef = refs.find((r) => r.role === 'password');
    if (!passwordRef)
      return { ok: true, kind: 'pfx', pfx: new Sensitive(new Uint8Array(pfx.value)), password: undefined, version: version(pfx.secret, pfxRef.key) };
    const password = read(passwordRef, lookup);
    if (!password.ok) return password;
    return {
      ok: true,
      kind: 'pfx',
      pfx: new Sensitive(new Uint8Array(pfx.value)),
      password: new Sensitive(passwordFromBytes(password.value)),
      version: `${version(pfx.secret, pfxRef.key)}+${version(password.secret, passwordRef.key)}`,
    };
  }
  const tlsRef = refs.find((r) => r.role === 'tls');
  if (!tlsRef) return { ok: false, reason: reasons.InvalidSpec, message: 'spec.certificate names neither secretRef nor tlsSecretRef' };
  const cert = read({ ...tlsRef, key: 'tls.crt' }, lookup);
  if (!cert.ok) return cert;
  const key = read({ ...tlsRef, key: 'tls.key' }, lookup);
  if (!key.ok) return key;
  return { ok: true, kind: 'pem', cert: cert.value.toString('utf8'), key: new Sensitive(key.value.toString('utf8')), version: version(cert.secret, 'tls') };
}

/**
 * CA certificates' subjects, remembered by their PEM block: every render reads every
 * binding's CA bundle, and parsing the same certificates again was a tenth of the
 * controller's time under churn. Bounded; a parse that throws is not remembered. Owned by
 * whoever translates again and again (the gatherer); a one-off translation takes a fresh one.
 */
export class CaSubjects {
  readonly #subjects = new Map<string, string>();
  readonly #max: number;

  constructor(max = 4096) {
    this.#max = max;
  }

  subjectOf(block: string): string {
    const known = this.#subjects.get(block);
    if (known !== undefined) return known;
    const subject = new X509Certificate(block).subject.replace(/\n/g, ',');
    if (this.#subjects.size >= this.#max) this.#subjects.delete(this.#subjects.keys().next().value!);
    this.#subjects.set(block, subject);
    return subject;
  }
}

export interface ServerCA {
  pem: string;
  subjects: string[];
}

/** The partner's CA bundle, or why it is unusable. Absent serverCA means the system trust store. */
export function resolveServerCA(
  spec: ClientCertificateBindingSpec,
  lookup: SecretLookup,
  caSubjects: CaSubjects = new CaSubjects(),
): { ok: true; ca: ServerCA | undefined } | InputProblem {
  const ref = secretReferences(spec).find((r) => r.role === 'serverCA');
  if (!ref) return { ok: true, ca: undefined };
  const value = read(ref, lookup);
  if (!value.ok) return value;
  const blocks = pemCertificateBlocks(value.value.toString('utf8'));
  if (blocks.length > maxServerCACertificates) {
    return {
      ok: false,
      ref,
      reason: reasons.ServerCAInvalid,
      message: `Secret ${ref.name} key "${ref.key}" holds more than ${maxServerCACertificates} certificates`,
    };
  }
  const subjects: string[] = [];
  try {
    for (const block of blocks) subjects.push(caSubjects.subjectOf(block));
  } catch {
    return {
      ok: false,
      ref,
      reason: reasons.ServerCAInvalid,
      message: `Secret ${ref.name} key "${ref.key}" holds a PEM block that is not a valid certificate`,
    };
  }
  if (subjects.length === 0)
    return { ok: false, ref, reason: reasons.ServerCAInvalid, message: `Secret ${ref.name} key "${ref.key}" holds no PEM certificate` };
  return { ok: true, ca: { pem: `${blocks.join('\n')}\n`, subjects } };
}

/** A partner's CA bundle holds a few certificates; a whole system bundle has about 150. */
export const maxServerCACertificates = 512;

const beginCertificate = '-----BEGIN CERTIFICATE-----';
const endCertificate = '-----END CERTIFICATE-----';

/**
 * The CERTIFICATE blocks of a PEM text, in one pass: a lazy regular expression would
 * rescan the rest of the text from every BEGIN line that has no END, which a hostile
 * Secret of BEGIN lines turns quadratic. Stops one past the limit.
 */
function pemCertificateBlocks(text: string): string[] {
  const blocks: string[] = [];
  for (let start = text.indexOf(beginCertificate); start !== -1 && blocks.length <= maxServerCACertificates;) {
    const end = text.indexOf(endCertificate, start + beginCertificate.length);
    if (end === -1) break;
    const block = text.slice(start, end + endCertificate.length);
    // A BEGIN before this block's END starts a block of its own: keep the last one.
    const inner = block.lastIndexOf(beginCertificate);
    blocks.push(inner > 0 ? block.slice(inner) : block);
    start = text.indexOf(beginCertificate, end + endCertificate.length);
  }
  return blocks;
}

/**
 * A password as stored in a Secret: one trailing newline dropped (`echo secret > file;
 * kubectl create secret --from-file` leaves one no partner meant), and kept as text when
 * it is UTF-8, else as its bytes: an ISO-8859-1 password (Java's JSafe wrote some) must
 * reach the decoder as the bytes it is, not as replacement characters.
 */
export function passwordFromBytes(bytes: Uint8Array): string | Uint8Array {
  let end = bytes.length;
  if (bytes[end - 1] === 0x0a) end -= bytes[end - 2] === 0x0d ? 2 : 1;
  const trimmed = bytes.subarray(0, end);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(trimmed);
  } catch {
    return new Uint8Array(trimmed);
  }
}
