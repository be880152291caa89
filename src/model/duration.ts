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
