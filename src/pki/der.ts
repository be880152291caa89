import { DecodeBudgetExceeded } from '../api/v1alpha1/reasons.ts';
import { CodedError } from '../errors.ts';
import { PkiError } from './errors.ts';

// A small reader for the DER (and the BER that PKCS#12 writers emit) this package parses:
// PKCS#12, PKCS#8 and the few certificate fields node:crypto does not expose. It returns
// offsets into the caller's bytes rather than copies, so reading a PFX allocates almost
// nothing, and it is many times faster than node-forge's string-based asn1.fromDer.
//
// BER is accepted where real writers use it: indefinite lengths (older Windows and macOS
// exports, some Java versions) and constructed OCTET STRINGs, read as their concatenation.
//
// The input may be hostile, so every cost is linear in its length: no element is read
// twice per nesting level beyond MAX_DER_DEPTH, OIDs are capped before they are decoded,
// and constructed OCTET STRINGs are walked without recursion.

/** Identifier octets this package reads. Context tags are written inline as 0xa0 (constructed [0]) and 0x80 (primitive [0]). */
export const Tag = {
  Boolean: 0x01,
  Integer: 0x02,
  BitString: 0x03,
  OctetString: 0x04,
  Null: 0x05,
  Oid: 0x06,
  Utf8String: 0x0c,
  Sequence: 0x30,
  Set: 0x31,
  BmpString: 0x1e,
  ConstructedOctetString: 0x24,
  Context0: 0xa0,
  Context0Primitive: 0x80,
} as const;

/** A tag-length-value element: where it sits in `data`. Nothing is copied. */
export interface DerElement {
  readonly data: Uint8Array;
  /** The identifier octet: class, constructed bit and a tag number below 31. */
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  /** Exclusive. For an indefinite length, where the end-of-contents octets begin. */
  readonly contentEnd: number;
  /** Exclusive: the byte after this element (after the end-of-contents octets, if any). */
  readonly end: number;
}

/**
 * The bytes are not the structure the caller expects. Callers turn it into a PkiError with
 * context. The message says what was expected where, in the caller's words, and never
 * anything read from the input: no byte values, tags, lengths or offsets, since the input
 * may be some other Secret (a password, a token) that a binding names by mistake.
 */
export class DerError extends CodedError<'ERR_DER'> {
  constructor(message: string) {
    super('ERR_DER', message);
  }
}

/**
 * How deeply elements may nest, counting indefinite-length elements and constructed (BER)
 * OCTET STRINGs, the two places this reader descends on its own. Windows and Java exports
 * use indefinite lengths on the outer four levels and constructed OCTET STRINGs one level
 * deep; anything deeper than 32 is refused rather than risk the stack or the time.
 */
export const MAX_DER_DEPTH = 32;

/**
 * The longest OBJECT IDENTIFIER content read, in bytes. The longest real OIDs are UUID
 * OIDs under 2.25 (about 20 bytes) and Microsoft's private arcs (about 12); the corpus's
 * longest is 12. 64 leaves room, and keeps both the decoding and any message that names
 * an OID short.
 */
export const MAX_OID_BYTES = 64;

const tagNames: Readonly<Record<number, string>> = {
  [Tag.Boolean]: 'a BOOLEAN',
  [Tag.Integer]: 'an INTEGER',
  [Tag.BitString]: 'a BIT STRING',
  [Tag.OctetString]: 'an OCTET STRING',
  [Tag.Null]: 'a NULL',
  [Tag.Oid]: 'an OBJECT IDENTIFIER',
  [Tag.Utf8String]: 'a UTF8String',
  [Tag.BmpString]: 'a BMPString',
  [Tag.Sequence]: 'a SEQUENCE',
  [Tag.Set]: 'a SET',
  [Tag.Context0]: 'a [0] element',
};

function isConstructed(tag: number): boolean {
  return (tag & 0x20) !== 0;
}

function tooDeep(): PkiError {
  return new PkiError(DecodeBudgetExceeded, `the data nests DER structures more than ${MAX_DER_DEPTH} levels deep, the most this decoder reads`);
}

/** Reads the element starting at `offset`, which must end by `limit`. */
export function readElement(data: Uint8Array, offset: number, limit: number = data.length, depth = 0): DerElement {
  if (depth > MAX_DER_DEPTH) throw tooDeep();
  if (offset + 2 > limit) throw new DerError('the data ends inside an element header (truncated?)');
  const tag = data[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('an element has a high-number tag, which this structure never uses');
  const lengthByte = data[offset + 1]!;
  let contentStart = offset + 2;

  if (lengthByte === 0x80) {
    if (!isConstructed(tag)) throw new DerError('a primitive element has an indefinite length');
    let position = contentStart;
    for (;;) {
      if (position + 2 > limit) throw new DerError('the data ends before an indefinite-length element does (truncated?)');
      if (data[position] === 0 && data[position + 1] === 0) {
        return { data, tag, start: offset, contentStart, contentEnd: position, end: position + 2 };
      }
      position = readElement(data, position, limit, depth + 1).end;
    }
  }

  let length = lengthByte;
  if (lengthByte > 0x80) {
    const lengthOctets = lengthByte & 0x7f;
    if (lengthOctets > 4) throw new DerError('an element has a length field longer than 4 bytes');
    if (contentStart + lengthOctets > limit) throw new DerError('the data ends inside an element header (truncated?)');
    length = 0;
    for (let i = 0; i < lengthOctets; i++) length = length * 256 + data[contentStart + i]!;
    contentStart += lengthOctets;
  }
  const contentEnd = contentStart + length;
  if (contentEnd > limit) throw new DerError('an element claims more bytes than remain (truncated?)');
  return { data, tag, start: offset, contentStart, contentEnd, end: contentEnd };
}

/** Reads one element that must span all of `data`. */
export function readWhole(data: Uint8Array): DerElement {
  const element = readElement(data, 0, data.length);
  if (element.end !== data.length) throw new DerError('unexpected bytes after the end of the structure');
  return element;
}

export function childrenOf(element: DerElement): DerElement[] {
  if (!isConstructed(element.tag)) throw new DerError('a primitive element where a constructed one belongs');
  const children: DerElement[] = [];
  let position = element.contentStart;
  while (position < element.contentEnd) {
    const child = readElement(element.data, position, element.contentEnd);
    children.push(child);
    position = child.end;
  }
  return children;
}

export function contentOf(element: DerElement): Uint8Array {
  return element.data.subarray(element.contentStart, element.contentEnd);
}

/** The element's bytes, header included: what a nested DER structure is handed on as. */
export function encodingOf(element: DerElement): Uint8Array {
  return element.data.subarray(element.start, element.end);
}

export function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined) throw new DerError(`${what}: missing`);
  if (element.tag !== tag) throw new DerError(`${what}: not ${tagNames[tag] ?? 'the expected element'}`);
  return element;
}

/** The children of a SEQUENCE, after checking that it is one. */
export function sequenceOf(element: DerElement | undefined, what: string): DerElement[] {
  return childrenOf(expectTag(element, Tag.Sequence, what));
}

/** The single element inside an EXPLICIT [0] wrapper. */
export function explicitContent(element: DerElement | undefined, what: string): DerElement {
  const [inner] = childrenOf(expectTag(element, Tag.Context0, what));
  if (inner === undefined) throw new DerError(`${what}: empty [0]`);
  return inner;
}

/**
 * The value of an OCTET STRING, or of an IMPLICIT tag standing in for one: the content of a
 * primitive encoding, or the concatenation of the pieces of a constructed (BER) one. Walks
 * the pieces with its own stack, so nesting costs no call depth, and copies each byte once.
 */
export function octetStringValue(element: DerElement): Uint8Array {
  if (!isConstructed(element.tag)) return contentOf(element);
  const pieces: Uint8Array[] = [];
  const pending: { readonly element: DerElement; readonly depth: number }[] = [{ element, depth: 0 }];
  while (pending.length > 0) {
    const { element: current, depth } = pending.pop()!;
    if (!isConstructed(current.tag)) {
      pieces.push(contentOf(current));
      continue;
    }
    if (depth >= MAX_DER_DEPTH) throw tooDeep();
    const children = childrenOf(current);
    for (let i = children.length - 1; i >= 0; i--) pending.push({ element: children[i]!, depth: depth + 1 });
  }
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
}

export function readOctetString(element: DerElement | undefined, what: string): Uint8Array {
  if (element === undefined) throw new DerError(`${what}: missing`);
  if (element.tag !== Tag.OctetString && element.tag !== Tag.ConstructedOctetString) throw new DerError(`${what}: not an OCTET STRING`);
  return octetStringValue(element);
}

/** The dotted form of an OBJECT IDENTIFIER. Longer than MAX_OID_BYTES is refused before it is decoded. */
export function readOid(element: DerElement | undefined, what: string): string {
  const content = contentOf(expectTag(element, Tag.Oid, what));
  if (content.length === 0) throw new DerError(`${what}: empty OBJECT IDENTIFIER`);
  if (content.length > MAX_OID_BYTES) {
    throw new PkiError(DecodeBudgetExceeded, `${what}: an OBJECT IDENTIFIER longer than ${MAX_OID_BYTES} bytes, the longest this decoder reads`);
  }
  const arcs: string[] = [];
  // Plain numbers while exact (below 2^46 before the next 7-bit shift), BigInt beyond: UUID
  // OIDs under 2.25 have 128-bit arcs. The length cap bounds the BigInt work.
  let value: number | bigint = 0;
  let pending = false;
  for (const byte of content) {
    const bits = byte & 0x7f;
    if (typeof value === 'number' && value >= 2 ** 46) value = BigInt(value);
    value = typeof value === 'number' ? value * 128 + bits : (value << 7n) | BigInt(bits);
    pending = (byte & 0x80) !== 0;
    if (pending) continue;
    if (arcs.length === 0) {
      // The first subidentifier packs two arcs: 40·X + Y, X being 0, 1 or 2.
      const first = value < 80 ? Math.floor(Number(value) / 40) : 2;
      arcs.push(String(first), String(typeof value === 'number' ? value - first * 40 : value - BigInt(first * 40)));
    } else {
      arcs.push(String(value));
    }
    value = 0;
  }
  if (pending) throw new DerError(`${what}: OBJECT IDENTIFIER ends inside an arc`);
  return arcs.join('.');
}

/** A non-negative INTEGER small enough for a JavaScript number (iteration counts, lengths, versions). */
export function readSmallInteger(element: DerElement | undefined, what: string): number {
  const content = contentOf(expectTag(element, Tag.Integer, what));
  if (content.length === 0) throw new DerError(`${what}: empty INTEGER`);
  if ((content[0]! & 0x80) !== 0) throw new DerError(`${what}: negative INTEGER`);
  if (content.length > 7) throw new DerError(`${what}: INTEGER too large`);
  let value = 0;
  for (const byte of content) value = value * 256 + byte;
  return value;
}

/** An AlgorithmIdentifier: its OID and its parameters element, if any (absent and NULL both give undefined). */
export interface AlgorithmIdentifier {
  readonly oid: string;
  readonly parameters: DerElement | undefined;
}

export function readAlgorithmIdentifier(element: DerElement | undefined, what: string): AlgorithmIdentifier {
  const [oid, parameters] = sequenceOf(element, what);
  return {
    oid: readOid(oid, `${what} algorithm`),
    parameters: parameters === undefined || parameters.tag === Tag.Null ? undefined : parameters,
  };
}
