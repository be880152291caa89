// Every error the operator raises carries a stable code from this one registry, in the
// style of fastify's lib/errors.js and undici's lib/core/errors.js. Callers branch on
// `code` (or on the class), never on message text, and the retry policy follows from the
// code: a transient error is retried with backoff, a terminal one is reported (as status,
// an exit code or a log line) and waits for its input to change (controller-runtime's
// TerminalError, kopf's PermanentError).

interface CodeInfo {
  /** Whether trying again, unchanged, may succeed. */
  readonly transient: boolean;
  readonly description: string;
}

export const errorCodes = {
  // --- Command line and input files.
  ERR_USAGE: { transient: false, description: 'a flag or argument is wrong; the command prints its usage and exits 2' },
  ERR_INPUT: { transient: false, description: 'an input file cannot be read or parsed; the command exits 2' },

  // --- The identity core (src/pki). One code per condition reason; see pkiErrorCodes.
  ERR_PFX_PASSWORD_INCORRECT: { transient: false, description: 'the password is wrong or missing (PasswordIncorrect)' },
  ERR_PFX_MALFORMED: { transient: false, description: 'the bytes are not PKCS#12 (PfxMalformed)' },
  ERR_PFX_UNSUPPORTED_ALGORITHM: { transient: false, description: 'an algorithm the operator cannot read (UnsupportedAlgorithm)' },
  ERR_PFX_NO_CERTIFICATE: { transient: false, description: 'a key but no certificate (NoCertificate)' },
  ERR_PFX_NO_PRIVATE_KEY: { transient: false, description: 'certificates but no key (NoPrivateKey)' },
  ERR_PFX_KEY_MISMATCH: { transient: false, description: 'no certificate belongs to the key (KeyMismatch)' },
  ERR_CERTIFICATE_EXPIRED: { transient: false, description: 'notAfter has passed (CertificateExpired)' },
  ERR_CERTIFICATE_NOT_YET_VALID: { transient: false, description: 'notBefore is in the future (CertificateNotYetValid)' },
  ERR_PFX_DECODE_BUDGET_EXCEEDED: { transient: false, description: 'decoding would exceed a limit the operator sets per file (DecodeBudgetExceeded)' },
  ERR_DECODER_CLOSED: { transient: true, description: 'the decode sandbox was closed while a decode waited or ran; the process is shutting down' },
  ERR_DECODER_UNAVAILABLE: { transient: true, description: 'the decode sandbox could not start a worker thread (a broken install, or no memory for a thread)' },
  ERR_DER: { transient: false, description: 'inside the identity core: bytes are not the DER structure expected; surfaces as ERR_PFX_MALFORMED' },
  ERR_DECRYPTION_FAILED: {
    transient: false,
    description: 'inside the identity core: data did not decrypt with one password form; surfaces as ERR_PFX_PASSWORD_INCORRECT',
  },

  // --- The Kubernetes API.
  ERR_KUBE_API: { transient: true, description: 'an API request failed; transient for connection failures, 409, 429 and 5xx' },
  ERR_WATCH_GONE: { transient: true, description: 'a watch resourceVersion expired (410 Gone); the informer relists' },
  ERR_NAMESPACE_NOT_FOUND: {
    transient: false,
    description:
      "the controller's own namespace (--namespace) does not exist, so it cannot hold its leader Lease there; the controller says so once and exits 1",
  },

  // --- The proxy agent's data plane.
  ERR_NGINX_NOT_RUNNING: { transient: true, description: 'no nginx master runs (yet)' },
  ERR_NGINX_START_FAILED: { transient: true, description: 'nginx did not start' },
  ERR_NGINX_RELOAD_UNCONFIRMED: { transient: true, description: 'nginx showed no new workers after a reload' },
  ERR_NGINX_TEST_DID_NOT_RUN: { transient: true, description: 'nginx -t could not run (no binary, a timeout); not a verdict on the config' },
  ERR_HAPROXY_NOT_RUNNING: { transient: true, description: 'HAProxy does not run (yet), or its runtime API socket does not answer' },
  ERR_HAPROXY_START_FAILED: { transient: true, description: 'HAProxy did not start' },
  ERR_HAPROXY_RELOAD_FAILED: { transient: true, description: 'the HAProxy master did not load a new worker after a reload' },
  ERR_HAPROXY_TEST_DID_NOT_RUN: { transient: true, description: 'haproxy -c could not run (no binary, a timeout); not a verdict on the config' },
  ERR_HAPROXY_CONFIG_INVALID: {
    transient: false,
    description: 'HAProxy did not start on a config, and haproxy -c says why: reported, and not tried again until the objects change',
  },
  ERR_HAPROXY_COMMAND_FAILED: { transient: true, description: 'a runtime API command did not do what it was asked; the next pass reads the live state again' },
  ERR_HAPROXY_NOT_CONVERGED: {
    transient: true,
    description: 'read back after a change, HAProxy does not serve what the manifest says; the next pass corrects it',
  },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof errorCodes;

/**
 * The base of every error the operator raises on purpose. The message is for humans and
 * never holds key material, passwords or input bytes; underlying library errors are not
 * attached as `cause` where they could quote the data they failed on.
 */
export class CodedError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;

  constructor(code: C, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }

  /** Whether trying again, unchanged, may succeed. Subclasses refine it (an API error by its HTTP status). */
  get transient(): boolean {
    return errorCodes[this.code].transient;
  }
}

export function isCodedError(value: unknown, code?: ErrorCode): value is CodedError {
  return value instanceof CodedError && (code === undefined || value.code === code);
}

/**
 * Whether a failed attempt is worth retrying. An error we did not raise on purpose is a
 * surprise, and a surprise is retried with backoff rather than given up on: the next
 * attempt reads fresh state, and the backoff keeps a persistent bug from spinning.
 */
export function isTransient(err: unknown): boolean {
  return err instanceof CodedError ? err.transient : true;
}

/** What a log line may say about an error: its message and code, never a stack or a cause that could quote data. */
export function errorSummary(err: unknown): { message: string; code?: string; status?: number } {
  if (err instanceof CodedError) {
    const status = (err as { status?: unknown }).status;
    return { message: err.message, code: err.code, ...(typeof status === 'number' ? { status } : {}) };
  }
  if (err instanceof Error) return { message: err.message, ...('code' in err ? { code: String(err.code) } : {}) };
  return { message: String(err) };
}
