import { decodeIdentity, PkiError } from '../pki/index.ts';
import * as reasons from '../api/v1alpha1/reasons.ts';
import { CodedError, isTransient } from '../errors.ts';
import type { CertificateInput } from '../model/certificate-input.ts';
import { clientIdentity, type IdentityOutcome } from '../model/egress-routes.ts';

/**
 * The identity core behind the controller's decoder seam: decoding runs in the decode
 * sandbox (worker threads, under a budget), never on this event loop. A PkiError becomes
 * its stable reason; anything else is reported as malformed input with a fixed message,
 * because an unexpected error's text could quote the bytes it choked on.
 */
export async function decodeCertificateInput(input: CertificateInput): Promise<IdentityOutcome> {
  try {
    const identity = await decodeIdentity(
      input.kind === 'pfx' ? { kind: 'pfx', pfx: input.pfx, password: input.password } : { kind: 'pem', cert: input.cert, key: input.key },
    );
    return { ok: true, identity: clientIdentity(identity) };
  } catch (err) {
    if (err instanceof PkiError) return { ok: false, reason: err.reason, message: err.message, ...(err.transient ? { transient: true } : {}) };
    // The sandbox could not decode at all (closed, no thread): not a verdict on the file.
    if (isTransient(err) && err instanceof CodedError) throw err;
    return { ok: false, reason: reasons.PfxMalformed, message: 'the certificate could not be decoded' };
  }
}
