import { DecodeBudgetExceeded } from '../api/v1alpha1/reasons.ts';
import { PkiError } from './errors.ts';

// What one file may cost to decode, and the ledger that charges a decode against it.
//
// Anyone who can write a Secret chooses the bytes the controller decodes, and with them the
// iteration counts, key lengths and scrypt parameters, the number of bags and how deeply
// things nest. So every cost a file can choose is charged here *before* the work it pays
// for starts: a hostile file is refused in microseconds, not stopped after seconds. The
// decode sandbox (sandbox/decode-pool.ts) adds what a ledger cannot promise: a wall-clock
// limit and a heap limit per file.
//
// Each limit is several times what the largest legitimate file we know needs: the runs
// over the real-world corpus in ../shared/pfx-corpus (Windows, Java, .NET, OpenSSL, Bouncy
// Castle, Go, Python, forge; test/unit/pki-corpus.test.ts checks the margins), and our own
// fixtures of every format partners send, of which the 600,000-iteration PFX is the most
// expensive. `npm run bench:hostile-pfx` prints what the corpus uses. To raise a limit, pass it to `new DecodePool({ limits })`
// (or `decodePfx(…, { limits })`); the README's troubleshooting table says the same.

export interface DecodeLimits {
  /**
   * Bytes of one Secret value: the PFX, base64 text of one, or a PEM file. The largest file
   * in the corpus is 11 KB (a chain of four certificates is 6 KB); 256 KiB is 23 times that,
   * and a Kubernetes Secret holds at most 1 MiB in all.
   */
  readonly maxInputBytes: number;
  /**
   * Key-derivation work over the whole file, in iteration blocks: for each derivation its
   * iterations times the output blocks it needs (PBKDF2: ceil(key length / PRF output), the
   * PKCS#12 KDF: the same per key, IV and MAC key), summed over the MAC and every encrypted
   * bag, for every encoding of the password that may be tried. One block costs 0.1 to
   * 0.25 µs, so the limit is about 1 to 2.5 s of one core. The corpus needs at most
   * 120,001 (pyca's name-1-pwd); OpenSSL 3's default file 6,144; our 600,000-iteration
   * fixture 1,800,000, or 3,600,000 with a non-ASCII password (two encodings each). The
   * limit is 10,000,000, which was the former cap per derivation and is now per file: a
   * file with one 10,000,000-iteration bag is refused.
   */
  readonly maxKdfWork: number;
  /**
   * scrypt memory, summed over every scrypt derivation of the file (each needs 128·N·r
   * bytes, and time in proportion). OpenSSL's default, N=16384 r=8, needs 16 MiB; 64 MiB
   * allows that four times (twice for a non-ASCII password, which may be tried in two
   * encodings). scrypt allocates outside the JavaScript heap, so the sandbox's heap limit
   * does not bound it: this does.
   */
  readonly maxScryptMemoryBytes: number;
  /** SafeBags of any kind, nested ones included. The corpus has at most 8; Java keystores a few per entry. */
  readonly maxBags: number;
  /** Certificates in the file (or the PEM). The corpus has at most 7 (a truststore); a chain is rarely more than 5. */
  readonly maxCertificates: number;
  /** Private keys. The corpus has at most 2; a Java keystore may hold a few entries. */
  readonly maxKeys: number;
}

export const defaultDecodeLimits: DecodeLimits = Object.freeze({
  maxInputBytes: 256 * 1024,
  maxKdfWork: 10_000_000,
  maxScryptMemoryBytes: 64 * 1024 * 1024,
  maxBags: 128,
  maxCertificates: 64,
  maxKeys: 16,
});

/** What one key derivation costs; decryptors and MAC checks state it before they run. */
export interface KdfCost {
  /** Iteration blocks (see DecodeLimits.maxKdfWork). */
  readonly work: number;
  /** Bytes scrypt allocates; 0 for the other derivations. */
  readonly scryptMemory: number;
}

export function kdfCost(iterations: number, outputLength: number, blockLength: number, scryptMemory = 0): KdfCost {
  return { work: iterations * Math.ceil(outputLength / blockLength), scryptMemory };
}

/** What a decode has been charged so far: for benches and the corpus test, which report it. */
export interface BudgetUse {
  readonly inputBytes: number;
  readonly kdfWork: number;
  readonly scryptMemoryBytes: number;
  readonly bags: number;
  readonly certificates: number;
  readonly keys: number;
}

/**
 * The ledger of one decode. Every `charge…` and `count…` either records the cost or throws
 * a PkiError(DecodeBudgetExceeded) whose message names the limit, never the file's own
 * numbers: those come from the input and are not repeated back.
 */
export class DecodeBudget {
  readonly limits: DecodeLimits;
  #use: { -readonly [K in keyof BudgetUse]: number } = { inputBytes: 0, kdfWork: 0, scryptMemoryBytes: 0, bags: 0, certificates: 0, keys: 0 };

  constructor(limits: Partial<DecodeLimits> = {}) {
    this.limits = { ...defaultDecodeLimits, ...limits };
  }

  get use(): BudgetUse {
    return { ...this.#use };
  }

  checkInput(bytes: number, what: string): void {
    this.#use.inputBytes = Math.max(this.#use.inputBytes, bytes);
    if (bytes > this.limits.maxInputBytes) {
      throw exceeded(`${what} is larger than ${kib(this.limits.maxInputBytes)}, the most one file may be`);
    }
  }

  /** Charges derivations that are about to run (or may run: every password encoding a decode might try). */
  chargeKdf(costs: readonly KdfCost[], source: string): void {
    let work = this.#use.kdfWork;
    let memory = this.#use.scryptMemoryBytes;
    for (const cost of costs) {
      work += cost.work;
      memory += cost.scryptMemory;
    }
    // Memory first: for scrypt it is the cost that matters, and the one to name.
    if (!(memory <= this.limits.maxScryptMemoryBytes)) {
      throw exceeded(
        `the scrypt key derivations in ${source} need more than ${mib(this.limits.maxScryptMemoryBytes)} of memory in all, the most one file may use`,
      );
    }
    if (!(work <= this.limits.maxKdfWork)) {
      throw exceeded(
        `the key derivations in ${source} need more than ${count(this.limits.maxKdfWork)} iteration blocks in all ` +
          '(iterations times output blocks, summed over every derivation and password encoding), the most one file may use',
      );
    }
    this.#use.kdfWork = work;
    this.#use.scryptMemoryBytes = memory;
  }

  countBags(added: number, source: string): void {
    this.#use.bags += added;
    if (this.#use.bags > this.limits.maxBags) throw exceeded(`${source} holds more than ${count(this.limits.maxBags)} bags, the most one file may hold`);
  }

  countCertificate(source: string): void {
    this.#use.certificates += 1;
    if (this.#use.certificates > this.limits.maxCertificates) {
      throw exceeded(`${source} holds more than ${count(this.limits.maxCertificates)} certificates, the most one file may hold`);
    }
  }

  countKey(source: string): void {
    this.#use.keys += 1;
    if (this.#use.keys > this.limits.maxKeys)
      throw exceeded(`${source} holds more than ${count(this.limits.maxKeys)} private keys, the most one file may hold`);
  }
}

export function exceeded(message: string, options: { transient?: boolean } = {}): PkiError {
  return new PkiError(DecodeBudgetExceeded, message, options);
}

/**
 * 10000000 → "10,000,000". Not toLocaleString: its first call loads ICU's number data,
 * which held the controller's event loop for ~100 ms the first time a file was refused.
 */
export function count(value: number): string {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function kib(bytes: number): string {
  return `${count(Math.floor(bytes / 1024))} KiB`;
}

function mib(bytes: number): string {
  return `${count(Math.floor(bytes / (1024 * 1024)))} MiB`;
}
