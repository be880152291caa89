import { Sensitive } from './sensitive.ts';

/**
 * A password as callers hold it: text, or the raw bytes of a password Secret or file. Bytes
 * that are not UTF-8 are read as ISO-8859-1, one character a byte, as OpenSSL reads a
 * password it cannot convert (so a Secret holding "M\xf6tley" works as it does with
 * `openssl pkcs12 -passin file:`).
 */
export type PasswordInput = string | Uint8Array | Sensitive<string | Uint8Array> | undefined;

/**
 * The encodings of one password that a file's writer may have fed its key derivations,
 * most likely first. PKCS#12 derives keys from two kinds:
 * - `pkcs12`: its own KDF (the classic MAC, and the pbeWithSHAAnd... ciphers) takes
 *   UTF-16BE with a two-byte terminator;
 * - `pbkdf2`: PBKDF2 and scrypt (PBES2, PBMAC1) take bytes, which RFC 9579 says are UTF-8.
 *
 * Writers disagree, so for some passwords there is more than one form of a kind:
 * - no password or an empty one: zero bytes (.NET, Windows, NULL in OpenSSL) or just the
 *   terminator (an empty string), for `pkcs12`;
 * - non-ASCII: also the byte-per-character UTF-16 of the UTF-8 bytes, which OpenSSL 1.x
 *   wrote before it converted properly, for `pkcs12`; and the ISO-8859-1 bytes, which RSA
 *   JSafe (and Bouncy Castle's setUseISO8859d1ForDecryption) feed PBKDF2, for `pbkdf2`.
 *
 * Each extra form costs another derivation where it is tried: the decode budget counts them.
 */
export interface PasswordForms {
  readonly pkcs12: readonly Uint8Array[];
  readonly pbkdf2: readonly Uint8Array[];
}

export type PasswordKind = keyof PasswordForms;

const EMPTY = new Uint8Array(0);

export function revealPassword(password: PasswordInput): string | undefined {
  const value = password instanceof Sensitive ? password.reveal() : password;
  if (value === undefined || typeof value === 'string') return value;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(value);
  } catch {
    return Buffer.from(value.buffer, value.byteOffset, value.length).toString('latin1');
  }
}

export function passwordForms(password: string | undefined): PasswordForms {
  if (password === undefined || password === '') return { pkcs12: [EMPTY, new Uint8Array(2)], pbkdf2: [EMPTY] };
  const utf8 = Buffer.from(password, 'utf8');
  if (fitsIn(password, 0x7f)) return { pkcs12: [utf16beWithTerminator(password)], pbkdf2: [utf8] };
  return {
    pkcs12: [utf16beWithTerminator(password), utf16beWithTerminator(utf8.toString('latin1'))],
    // ISO-8859-1 only represents U+0000 to U+00FF; beyond that there is no such form.
    pbkdf2: !fitsIn(password, 0xff) ? [utf8] : [utf8, Buffer.from(password, 'latin1')],
  };
}

function utf16beWithTerminator(text: string): Uint8Array {
  const bytes = Buffer.alloc(text.length * 2 + 2);
  bytes.write(text, 'utf16le');
  // Byte-swap into big-endian; the two terminator bytes stay zero.
  bytes.subarray(0, text.length * 2).swap16();
  return bytes;
}

/** The forms of one kind, with the one that worked last (for the MAC, or an earlier bag) first. */
export class PasswordChooser {
  readonly #forms: { -readonly [K in PasswordKind]: Uint8Array[] };

  constructor(forms: PasswordForms) {
    this.#forms = { pkcs12: [...forms.pkcs12], pbkdf2: [...forms.pbkdf2] };
  }

  count(kind: PasswordKind): number {
    return this.#forms[kind].length;
  }

  candidates(kind: PasswordKind): readonly Uint8Array[] {
    return this.#forms[kind];
  }

  /** Tries `attempt` with each form of `kind` in turn; the first one that does not return undefined wins and is tried first next time. */
  first<T>(kind: PasswordKind, attempt: (password: Uint8Array) => T | undefined): T | undefined {
    const forms = this.#forms[kind];
    for (let i = 0; i < forms.length; i++) {
      const result = attempt(forms[i]!);
      if (result === undefined) continue;
      if (i > 0) forms.unshift(...forms.splice(i, 1));
      return result;
    }
    return undefined;
  }
}

/** Whether every UTF-16 code unit of `text` is at most `max` (0x7f: ASCII; 0xff: ISO-8859-1). */
function fitsIn(text: string, max: number): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > max) return false;
  return true;
}
