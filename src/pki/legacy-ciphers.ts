// The two ciphers of old PKCS#12 files that node:crypto cannot run: OpenSSL 3 moved RC2 and
// RC4 into its legacy provider, which Node does not load. RC2-40 is what `openssl pkcs12
// -legacy`, Java 8 keytool and older Windows and macOS exports use for certificates, so it
// must work; node-forge has the only maintained JavaScript RC2, and it is loaded on first use.
// RC4 is a dozen lines and forge has none.

type Forge = typeof import('node-forge');

let forgeLoading: Promise<Forge> | undefined;

function loadForge(): Promise<Forge> {
  forgeLoading ??= import('node-forge').then((module) => module.default);
  return forgeLoading;
}

/** RC2 in CBC mode with `effectiveBits` (RFC 2268), without removing padding. Undefined when the data is not whole blocks. */
export async function rc2CbcDecrypt(
  key: Uint8Array,
  effectiveBits: number,
  iv: Uint8Array,
  data: Uint8Array,
): Promise<Uint8Array | undefined> {
  const forge = await loadForge();
  const binary = (bytes: Uint8Array) => forge.util.createBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('binary'));
  const cipher = forge.rc2.createDecryptionCipher(binary(key), effectiveBits);
  cipher.start(binary(iv));
  cipher.update(binary(data));
  // The no-op pad function leaves padding to the caller, which checks it strictly (forge
  // only checks the last byte); finish still reports data that is not whole blocks.
  if (!cipher.finish(() => true)) return undefined;
  return Buffer.from(cipher.output.getBytes(), 'binary');
}

export function rc4(key: Uint8Array, data: Uint8Array): Uint8Array {
  const s = new Uint8Array(256);
  for (let i = 0; i < 256; i++) s[i] = i;
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) & 0xff;
    [s[i], s[j]] = [s[j]!, s[i]!];
  }
  const out = new Uint8Array(data.length);
  for (let n = 0, i = 0, j = 0; n < data.length; n++) {
    i = (i + 1) & 0xff;
    j = (j + s[i]!) & 0xff;
    [s[i], s[j]] = [s[j]!, s[i]!];
    out[n] = data[n]! ^ s[(s[i]! + s[j]!) & 0xff]!;
  }
  return out;
}
