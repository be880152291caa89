import type { Sensitive } from './sensitive.ts';

/**
 * One way a password may have been turned into bytes by whoever wrote the file. PKCS#12
 * derives keys from two encodings of the same password: its own key derivation (MAC, legacy
 * pbeWithSHAAnd... ciphers) takes UTF-16BE with a two-byte terminator, and PBKDF2 (PBES2,
 * PBMAC1) takes the UTF-8 bytes.
 */
export interface PasswordForm {
  readonly pkcs12: Uint8Array;
  readonly utf8: Uint8Array;
}

export type PasswordInput = string | Sensitive<string> | undefined;

const EMPTY = new Uint8Array(0);

/** Writers disagree on "no password": zero bytes (.NET, Windows, NULL in OpenSSL) or just the terminator (an empty string). */
const absentPassword: PasswordForm = { pkcs12: EMPTY, utf8: EMPTY };
const emptyPassword: PasswordForm = { pkcs12: new Uint8Array(2), utf8: EMPTY };

export function revealPassword(password: PasswordInput): string | undefined {
  return typeof password === 'object' ? password.reveal() : password;
}

/**
 * Every encoding worth trying for a password, most likely first, as OpenSSL tries them:
 * for no password or an empty one both forms of "empty"; for a non-ASCII password also the
 * byte-per-character form that OpenSSL 1.x wrote before it converted UTF-8 properly.
 */
export function passwordForms(password: string | undefined): readonly PasswordForm[] {
  if (password === undefined || password === '') return [absentPassword, emptyPassword];
  const utf8 = Buffer.from(password, 'utf8');
  const forms: PasswordForm[] = [{ pkcs12: utf16beWithTerminator(password), utf8 }];
  if (/[^\x00-\x7f]/.test(password)) forms.push({ pkcs12: utf16beWithTerminator(utf8.toString('latin1')), utf8 });
  return forms;
}

function utf16beWithTerminator(text: string): Uint8Array {
  const bytes = Buffer.alloc(text.length * 2 + 2);
  bytes.write(text, 'utf16le');
  // Byte-swap into big-endian; the two terminator bytes stay zero.
  bytes.subarray(0, text.length * 2).swap16();
  return bytes;
}
