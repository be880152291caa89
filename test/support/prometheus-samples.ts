// What a bench reads of Prometheus text: one metric's samples, and the API server's
// request counter by verb and resource (where a control plane's CPU goes).
import type { AdminHttp } from '../harness/admin-http.ts';

/** Every sample of one metric in Prometheus text: its labels and value. */
export function samples(text: string, metric: string): Array<{ labels: Record<string, string>; value: number }> {
  const found = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of line.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    found.push({ labels, value: Number(line.slice(line.lastIndexOf(' ') + 1)) });
  }
  return found;
}

/** The apiserver's request counter by "VERB resource[/subresource]". Long-running requests (watches) count when they end. */
export async function apiRequests(admin: AdminHttp): Promise<Map<string, number>> {
  const response = await admin({ method: 'GET', path: '/metrics' });
  if (response.status !== 200) throw new Error(`apiserver /metrics: HTTP ${response.status}`);
  const byRequest = new Map<string, number>();
  for (const { labels, value } of samples(response.body, 'apiserver_request_total')) {
    const what = `${labels.verb} ${labels.resource || '(non-resource)'}${labels.subresource ? `/${labels.subresource}` : ''}`;
    byRequest.set(what, (byRequest.get(what) ?? 0) + value);
  }
  return byRequest;
}

/** The requests between two apiRequests() readings, most first. */
export function requestsBetween(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): Array<[string, number]> {
  return [...after]
    .map(([what, n]): [string, number] => [what, n - (before.get(what) ?? 0)])
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
}
