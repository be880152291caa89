import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * Holds key material or a password so that no accidental path prints it: string
 * coercion, JSON.stringify, util.inspect, console.log and pino all see "[redacted]".
 * The value is reachable only through reveal(), which makes every use greppable.
 */
export class Sensitive<T extends string | Uint8Array = string | Uint8Array> {
  readonly #value: T;

  constructor(value: T) {
    this.#value = value;
  }

  reveal(): T {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

export function sensitive<T extends string | Uint8Array>(value: T): Sensitive<T> {
  return new Sensitive(value);
}
