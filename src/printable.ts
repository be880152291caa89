// Text from a manifest (a name, a namespace, a message that quotes a value, a file name)
// printed on a terminal: a control character in it could move the cursor, erase a line
// or draw a fake "no findings". Every human-readable line the offline commands print
// goes through this; JSON output needs none, JSON escapes them itself.

// C0 controls and DEL, C1 controls, and the invisible characters that reorder or hide
// text (bidirectional overrides and isolates, zero-width marks).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const unprintable = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/gu;

/** The text with every control or invisible character written as an escape, e.g. "\u001b". */
export function printable(text: string): string {
  return text.replace(unprintable, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}
