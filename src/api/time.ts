// The time formats of the Kubernetes API, read and written in one place: Go durations
// (spec.expiryWarning, flags), RFC 3339 times (flags, date-time fields), and metav1.Time.

const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go duration ("720h", "1h30m", "90s"), the format Kubernetes users already write. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (unitMs[m[2]!] ?? NaN);
    consumed = re.lastIndex;
  }
  return consumed === text.length && consumed > 0 && Number.isFinite(total) ? total : undefined;
}

// RFC 3339 section 5.6, as the API server's date-time format takes it: "T" or "t" or a
// space between date and time, "Z" or "z" or a numeric offset.
const rfc3339Pattern = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** The instant an RFC 3339 time names, or undefined when the text is not one. */
export function parseRfc3339(text: string): Date | undefined {
  if (!rfc3339Pattern.test(text)) return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * RFC 3339 at seconds precision, as metav1.Time serialises: comparing with stored status
 * must not see a difference in milliseconds.
 */
export function metaV1Time(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** RFC 3339 in UTC, keeping milliseconds only when there are any ("2026-01-31T12:00:00Z"); X.509 times have none. */
export function rfc3339(date: Date): string {
  const iso = date.toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}
