// The hash functions PKCS#12 names by OID: as a MAC digest (MacData, and the PKCS#12 key
// derivation behind it) and as a PBKDF2 pseudo-random function (PBES2, PBMAC1).

export interface Digest {
  /** The node:crypto name. */
  readonly name: string;
  /** Bytes of output: u in RFC 7292 Appendix B. */
  readonly outputLength: number;
  /** Bytes per input block: v in RFC 7292 Appendix B. */
  readonly blockLength: number;
}

const md5: Digest = { name: 'md5', outputLength: 16, blockLength: 64 };
/** PKCS#12's own PBE ciphers (pbeWithSHAAnd...) always derive with SHA-1. */
export const sha1: Digest = { name: 'sha1', outputLength: 20, blockLength: 64 };
const sha224: Digest = { name: 'sha224', outputLength: 28, blockLength: 64 };
const sha256: Digest = { name: 'sha256', outputLength: 32, blockLength: 64 };
const sha384: Digest = { name: 'sha384', outputLength: 48, blockLength: 128 };
const sha512: Digest = { name: 'sha512', outputLength: 64, blockLength: 128 };
const sha512t224: Digest = { name: 'sha512-224', outputLength: 28, blockLength: 128 };
const sha512t256: Digest = { name: 'sha512-256', outputLength: 32, blockLength: 128 };
const sha3t224: Digest = { name: 'sha3-224', outputLength: 28, blockLength: 144 };
const sha3t256: Digest = { name: 'sha3-256', outputLength: 32, blockLength: 136 };
const sha3t384: Digest = { name: 'sha3-384', outputLength: 48, blockLength: 104 };
const sha3t512: Digest = { name: 'sha3-512', outputLength: 64, blockLength: 72 };

/** DigestAlgorithm OIDs, as in MacData. */
export const digestsByOid: ReadonlyMap<string, Digest> = new Map([
  ['1.2.840.113549.2.5', md5],
  ['1.3.14.3.2.26', sha1],
  ['2.16.840.1.101.3.4.2.4', sha224],
  ['2.16.840.1.101.3.4.2.1', sha256],
  ['2.16.840.1.101.3.4.2.2', sha384],
  ['2.16.840.1.101.3.4.2.3', sha512],
  ['2.16.840.1.101.3.4.2.5', sha512t224],
  ['2.16.840.1.101.3.4.2.6', sha512t256],
  ['2.16.840.1.101.3.4.2.7', sha3t224],
  ['2.16.840.1.101.3.4.2.8', sha3t256],
  ['2.16.840.1.101.3.4.2.9', sha3t384],
  ['2.16.840.1.101.3.4.2.10', sha3t512],
]);

/** HMAC OIDs, as PBKDF2's prf and PBMAC1's messageAuthScheme (RFC 8018 B.1.2, RFC 9579). */
export const hmacDigestsByOid: ReadonlyMap<string, Digest> = new Map([
  ['1.2.840.113549.2.7', sha1],
  ['1.2.840.113549.2.8', sha224],
  ['1.2.840.113549.2.9', sha256],
  ['1.2.840.113549.2.10', sha384],
  ['1.2.840.113549.2.11', sha512],
  ['1.2.840.113549.2.12', sha512t224],
  ['1.2.840.113549.2.13', sha512t256],
  ['2.16.840.1.101.3.4.2.13', sha3t224],
  ['2.16.840.1.101.3.4.2.14', sha3t256],
  ['2.16.840.1.101.3.4.2.15', sha3t384],
  ['2.16.840.1.101.3.4.2.16', sha3t512],
]);

/** PBKDF2's prf when the parameters leave it out (RFC 8018 A.2). */
export const defaultPbkdf2Prf: Digest = sha1;
