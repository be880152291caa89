import { castSboxes } from './cast5-sboxes.ts';

// The ciphers of old PKCS#12 files that node:crypto cannot run: OpenSSL 3 moved RC2, RC4
// and CAST5 into its legacy provider, which Node loads only with a process-wide flag.
// RC2-40 is what `openssl pkcs12 -legacy`, Java 8 keytool and older Windows and macOS
// exports use for certificates, so it must work; CAST5 is what Bouncy Castle writes when
// asked for it, and OpenSSL and pyca/cryptography read it.
//
// Each is written from its RFC on Uint8Array and 32-bit integers: linear in the data,
// about 20 MB/s, and checked against the RFCs' test vectors and OpenSSL's legacy provider.
// (node-forge's RC2, used before, copied its string buffer as it went: 1 MB took 46 s.)
// They run in the decode sandbox's worker; the input size limit bounds how much data they see.

/** Which block cipher, for cbcDecrypt: key schedule done, one function per 8-byte block. */
interface BlockDecryptor {
  /** Decrypts in[inOffset..+8] into out[outOffset..+8]. */
  decryptBlock(input: Uint8Array, inOffset: number, output: Uint8Array, outOffset: number): void;
}

/** CBC decryption without removing the padding. Undefined when the data is not whole blocks. */
function cbcDecrypt(cipher: BlockDecryptor, iv: Uint8Array, data: Uint8Array): Uint8Array | undefined {
  if (iv.length !== 8 || data.length === 0 || data.length % 8 !== 0) return undefined;
  const out = new Uint8Array(data.length);
  for (let offset = 0; offset < data.length; offset += 8) {
    cipher.decryptBlock(data, offset, out, offset);
    const previous = offset === 0 ? iv : data.subarray(offset - 8, offset);
    for (let i = 0; i < 8; i++) out[offset + i]! ^= previous[i]!;
  }
  return out;
}

// --- RC2 (RFC 2268).

// PITABLE, RFC 2268 section 2: a permutation of 0..255 from the digits of pi.
const PITABLE = Buffer.from(
  [
    'd978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2',
    '179a59f587b34f1361456d8d09817d32bd8f40eb86b77b0bf09521225c6b4e82',
    '54d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626',
    '6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed7',
    '08e8eade8052eef784aa72ac354d6a2a961ad2715a1549744b9fd05e0418a4ec',
    'c2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731',
    '2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a9',
    '0d38341bab33ffb0bb480c5fb9b1cd2ec5f3db47e5a59c770aa62068fe7fc1ad',
  ].join(''),
  'hex',
);

class Rc2 implements BlockDecryptor {
  readonly #k = new Uint16Array(64);

  constructor(key: Uint8Array, effectiveBits: number) {
    // Key expansion, RFC 2268 section 2: L[T..127] from the key, then reduced to the
    // effective key bits T1, which is what makes "RC2-40" 40 bits whatever the key length.
    const l = new Uint8Array(128);
    const t = Math.min(key.length, 128);
    l.set(key.subarray(0, t));
    for (let i = t; i < 128; i++) l[i] = PITABLE[(l[i - 1]! + l[i - t]!) & 0xff]!;
    const t8 = Math.ceil(effectiveBits / 8);
    const tm = 0xff >> (8 * t8 - effectiveBits);
    l[128 - t8] = PITABLE[l[128 - t8]! & tm]!;
    for (let i = 127 - t8; i >= 0; i--) l[i] = PITABLE[l[i + 1]! ^ l[i + t8]!]!;
    for (let i = 0; i < 64; i++) this.#k[i] = l[2 * i]! | (l[2 * i + 1]! << 8);
  }

  decryptBlock(input: Uint8Array, inOffset: number, output: Uint8Array, outOffset: number): void {
    const k = this.#k;
    let r0 = input[inOffset]! | (input[inOffset + 1]! << 8);
    let r1 = input[inOffset + 2]! | (input[inOffset + 3]! << 8);
    let r2 = input[inOffset + 4]! | (input[inOffset + 5]! << 8);
    let r3 = input[inOffset + 6]! | (input[inOffset + 7]! << 8);
    let j = 63;
    // Decryption undoes encryption's 5 mixing rounds, a mash, 6 mixing rounds, a mash and 5
    // mixing rounds, in reverse (section 4). Rotations are on 16-bit words.
    const mix = () => {
      r3 = (((r3 >>> 5) | (r3 << 11)) & 0xffff) - k[j--]! - (r2 & r1) - (~r2 & r0);
      r3 &= 0xffff;
      r2 = (((r2 >>> 3) | (r2 << 13)) & 0xffff) - k[j--]! - (r1 & r0) - (~r1 & r3);
      r2 &= 0xffff;
      r1 = (((r1 >>> 2) | (r1 << 14)) & 0xffff) - k[j--]! - (r0 & r3) - (~r0 & r2);
      r1 &= 0xffff;
      r0 = (((r0 >>> 1) | (r0 << 15)) & 0xffff) - k[j--]! - (r3 & r2) - (~r3 & r1);
      r0 &= 0xffff;
    };
    const mash = () => {
      r3 = (r3 - k[r2 & 63]!) & 0xffff;
      r2 = (r2 - k[r1 & 63]!) & 0xffff;
      r1 = (r1 - k[r0 & 63]!) & 0xffff;
      r0 = (r0 - k[r3 & 63]!) & 0xffff;
    };
    for (let i = 0; i < 5; i++) mix();
    mash();
    for (let i = 0; i < 6; i++) mix();
    mash();
    for (let i = 0; i < 5; i++) mix();
    output[outOffset] = r0 & 0xff;
    output[outOffset + 1] = r0 >>> 8;
    output[outOffset + 2] = r1 & 0xff;
    output[outOffset + 3] = r1 >>> 8;
    output[outOffset + 4] = r2 & 0xff;
    output[outOffset + 5] = r2 >>> 8;
    output[outOffset + 6] = r3 & 0xff;
    output[outOffset + 7] = r3 >>> 8;
  }
}

/** RC2 in CBC mode with `effectiveBits` (RFC 2268), without removing padding. Undefined when the data is not whole blocks. */
export function rc2CbcDecrypt(key: Uint8Array, effectiveBits: number, iv: Uint8Array, data: Uint8Array): Uint8Array | undefined {
  if (key.length === 0 || effectiveBits < 1 || effectiveBits > 1024) return undefined;
  return cbcDecrypt(new Rc2(key, effectiveBits), iv, data);
}

// --- RC4.

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

// --- CAST-128, also called CAST5 (RFC 2144).

function rotl(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}

class Cast5 implements BlockDecryptor {
  readonly #masking = new Uint32Array(16);
  readonly #rotation = new Uint8Array(16);
  readonly #rounds: number;

  constructor(key: Uint8Array) {
    // Keys of 40 to 80 bits run 12 rounds, longer ones 16; shorter keys are zero-padded to 128 bits.
    this.#rounds = key.length <= 10 ? 12 : 16;
    const [, , , , s5, s6, s7, s8] = castSboxes() as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
    const x = new Uint8Array(16);
    x.set(key.subarray(0, 16));
    const z = new Uint8Array(16);
    const word = (bytes: Uint8Array, at: number) => ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
    const put = (bytes: Uint8Array, at: number, value: number) => {
      bytes[at] = value >>> 24;
      bytes[at + 1] = (value >>> 16) & 0xff;
      bytes[at + 2] = (value >>> 8) & 0xff;
      bytes[at + 3] = value & 0xff;
    };
    // Section 2.4: 32 subkeys from two passes; each pass alternates z from x and x from z,
    // and after each step takes four subkeys, by a pattern that differs every time.
    const zFromX = () => {
      put(z, 0, word(x, 0) ^ s5[x[13]!]! ^ s6[x[15]!]! ^ s7[x[12]!]! ^ s8[x[14]!]! ^ s7[x[8]!]!);
      put(z, 4, word(x, 8) ^ s5[z[0]!]! ^ s6[z[2]!]! ^ s7[z[1]!]! ^ s8[z[3]!]! ^ s8[x[10]!]!);
      put(z, 8, word(x, 12) ^ s5[z[7]!]! ^ s6[z[6]!]! ^ s7[z[5]!]! ^ s8[z[4]!]! ^ s5[x[9]!]!);
      put(z, 12, word(x, 4) ^ s5[z[10]!]! ^ s6[z[9]!]! ^ s7[z[11]!]! ^ s8[z[8]!]! ^ s6[x[11]!]!);
    };
    const xFromZ = () => {
      put(x, 0, word(z, 8) ^ s5[z[5]!]! ^ s6[z[7]!]! ^ s7[z[4]!]! ^ s8[z[6]!]! ^ s7[z[0]!]!);
      put(x, 4, word(z, 0) ^ s5[x[0]!]! ^ s6[x[2]!]! ^ s7[x[1]!]! ^ s8[x[3]!]! ^ s8[z[2]!]!);
      put(x, 8, word(z, 4) ^ s5[x[7]!]! ^ s6[x[6]!]! ^ s7[x[5]!]! ^ s8[x[4]!]! ^ s5[z[1]!]!);
      put(x, 12, word(z, 12) ^ s5[x[10]!]! ^ s6[x[9]!]! ^ s7[x[11]!]! ^ s8[x[8]!]! ^ s6[z[3]!]!);
    };
    /** Four subkeys from `b`: for each, S5 to S8 at four indices, XORed with one more S-box entry. */
    const take = (b: Uint8Array, indices: readonly (readonly [number, number, number, number, number])[]) => {
      for (const [i5, i6, i7, i8, extra] of indices) {
        const sbox = [s5, s6, s7, s8][subkeys.length % 4]!;
        subkeys.push(s5[b[i5]!]! ^ s6[b[i6]!]! ^ s7[b[i7]!]! ^ s8[b[i8]!]! ^ sbox[b[extra]!]!);
      }
    };
    const subkeys: number[] = [];
    for (let pass = 0; pass < 2; pass++) {
      zFromX();
      take(z, [
        [8, 9, 7, 6, 2],
        [10, 11, 5, 4, 6],
        [12, 13, 3, 2, 9],
        [14, 15, 1, 0, 12],
      ]);
      xFromZ();
      take(x, [
        [3, 2, 12, 13, 8],
        [1, 0, 14, 15, 13],
        [7, 6, 8, 9, 3],
        [5, 4, 10, 11, 7],
      ]);
      zFromX();
      take(z, [
        [3, 2, 12, 13, 9],
        [1, 0, 14, 15, 12],
        [7, 6, 8, 9, 2],
        [5, 4, 10, 11, 6],
      ]);
      xFromZ();
      take(x, [
        [8, 9, 7, 6, 3],
        [10, 11, 5, 4, 7],
        [12, 13, 3, 2, 8],
        [14, 15, 1, 0, 13],
      ]);
    }
    for (let i = 0; i < 16; i++) {
      this.#masking[i] = subkeys[i]! >>> 0;
      this.#rotation[i] = subkeys[16 + i]! & 0x1f;
    }
  }

  decryptBlock(input: Uint8Array, inOffset: number, output: Uint8Array, outOffset: number): void {
    const [s1, s2, s3, s4] = castSboxes() as [Uint32Array, Uint32Array, Uint32Array, Uint32Array];
    const read = (at: number) => ((input[at]! << 24) | (input[at + 1]! << 16) | (input[at + 2]! << 8) | input[at + 3]!) >>> 0;
    // The ciphertext is R_n || L_n; each step back computes L_{i-1} = R_i ^ f_i(L_i).
    let right = read(inOffset);
    let left = read(inOffset + 4);
    for (let round = this.#rounds - 1; round >= 0; round--) {
      const km = this.#masking[round]!;
      const kr = this.#rotation[round]!;
      let f: number;
      // Section 2.2: three round functions, in turn from round 1.
      switch (round % 3) {
        case 0: {
          const i = rotl((km + left) >>> 0, kr);
          f = ((s1[i >>> 24]! ^ s2[(i >>> 16) & 0xff]!) - s3[(i >>> 8) & 0xff]! + s4[i & 0xff]!) >>> 0;
          break;
        }
        case 1: {
          const i = rotl((km ^ left) >>> 0, kr);
          f = (((s1[i >>> 24]! - s2[(i >>> 16) & 0xff]!) >>> 0) + s3[(i >>> 8) & 0xff]!) ^ s4[i & 0xff]!;
          break;
        }
        default: {
          const i = rotl((km - left) >>> 0, kr);
          f = ((((s1[i >>> 24]! + s2[(i >>> 16) & 0xff]!) >>> 0) ^ s3[(i >>> 8) & 0xff]!) - s4[i & 0xff]!) >>> 0;
        }
      }
      const previous = (right ^ f) >>> 0;
      right = left;
      left = previous;
    }
    // After round 1 the pair is (R_0, L_0), and the plaintext is L_0 || R_0.
    for (const [value, at] of [
      [left, outOffset],
      [right, outOffset + 4],
    ] as const) {
      output[at] = value >>> 24;
      output[at + 1] = (value >>> 16) & 0xff;
      output[at + 2] = (value >>> 8) & 0xff;
      output[at + 3] = value & 0xff;
    }
  }
}

/** CAST5 in CBC mode (RFC 2144, keys of 5 to 16 bytes), without removing padding. Undefined when the key or data does not fit. */
export function cast5CbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array | undefined {
  if (key.length < 5 || key.length > 16) return undefined;
  return cbcDecrypt(new Cast5(key), iv, data);
}
