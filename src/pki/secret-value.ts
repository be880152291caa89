// Secrets do not always hold the PFX as raw bytes. Azure Key Vault returns certificates as
// base64 text, and External Secrets and the Secrets Store CSI driver copy that text into
// the Secret as is; some pipelines also wrap it as a "PKCS12" PEM block. Partners should not
// have to convert, so the decoder accepts those forms when they are unambiguous.

const DER_SEQUENCE = 0x30;
// Standard and URL-safe alphabets and padding, once whitespace is gone; nothing else. Tested
// on the text without whitespace, so no pattern can backtrack over long runs of it: an
// earlier form, with whitespace inside the pattern, took quadratic time on a value of
// spaces ending in a stray character (8 KB: 90 ms; 256 KB: about a minute and a half).
const BASE64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/;
const PKCS12_PEM_BEGIN = '-----BEGIN PKCS12-----';
const PKCS12_PEM_END = '-----END PKCS12-----';

/**
 * The PFX bytes in a Secret value: the value itself when it is binary DER, or the decoded
 * bytes when it is base64 text (optionally PEM-armored) of a DER structure. Anything else
 * is returned unchanged, for the decoder to report.
 *
 * Unambiguous because DER PKCS#12 starts 0x30 followed by a long-form length byte (0x80 or
 * above), which is never base64 text; and base64 of a PFX always decodes to 0x30.
 */
export function pfxBytesFromSecretValue(value: Uint8Array): Uint8Array {
  if (value.length === 0 || value[0] === DER_SEQUENCE) return value;
  const text = Buffer.from(value.buffer, value.byteOffset, value.length).toString('latin1').trim();
  const armored = text.startsWith(PKCS12_PEM_BEGIN) && text.endsWith(PKCS12_PEM_END);
  const body = (armored ? text.slice(PKCS12_PEM_BEGIN.length, text.length - PKCS12_PEM_END.length) : text).replace(/\s+/g, '');
  if (body.length < 4 || !BASE64_TEXT.test(body)) return value;
  const decoded = Buffer.from(body, 'base64');
  return decoded[0] === DER_SEQUENCE ? decoded : value;
}
