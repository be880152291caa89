// The egress proxy's cost, measured on loopback in one run:
//   1. throughput and p50/p99 latency through nginx (plain HTTP in, mTLS out) versus a
//      direct keepalive mTLS Node client, same partner, same concurrency;
//      goals: proxy ≥ 0.8× direct throughput, < 1 ms added at p50;
//   2. renderNginx for 10,000 bindings; goal < 500 ms.
// Rotation-to-partner time needs the in-cluster agent (file sync + reload) and is not
// measured here. Bounded: fixed request counts with a time cap per round; exits by itself.
//
//   node test/bench/proxy.bench.ts        (npm run bench:proxy)
//   BENCH_REQUESTS=20000 BENCH_NGINX_WORKERS=2 node test/bench/proxy.bench.ts

import { fork } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EgressRoute } from '../../src/model/egress-routes.ts';
import { Sensitive } from '../../src/pki/sensitive.ts';
import { renderNginx } from '../../src/dataplane/nginx/render.ts';
import { startControlPlane } from '../harness/control-plane.ts';
import { pollUntil } from '../harness/poll.ts';
import { startEgressStack } from '../support/egress-stack.ts';
import { startMtlsPartner, type PartnerSeen } from '../support/mtls-partner.ts';
import { callProxy, startNginx } from '../support/nginx-process.ts';
import { PartnerPki, type Issued } from '../support/partner-pki.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';

const concurrency = 16;
const requestsPerRound = Number(process.env.BENCH_REQUESTS ?? 20_000);
const rounds = 2;
const roundCapMs = 15_000;
const nginxWorkers = Number(process.env.BENCH_NGINX_WORKERS ?? 1);
const listenerPort = 10300;
const renderBindings = 10_000;

interface PartnerCredentials {
  cert: string;
  key: string;
  clientCA: string;
}

// The partner runs in its own process, so that neither client loop shares an event loop with it.
if (process.argv[2] === '--partner') {
  process.once('message', (message) => {
    void startMtlsPartner({ ...(message as PartnerCredentials), record: false }).then((partner) => process.send!({ port: partner.port }));
  });
} else {
  await main();
}

interface RoundResult {
  requests: number;
  ms: number;
  latenciesMs: number[];
}

/** `concurrency` loops, each one request at a time, until `requestsPerRound` are done or the cap passes. */
async function round(send: () => Promise<void>): Promise<RoundResult> {
  const latenciesMs: number[] = [];
  const start = performance.now();
  let issued = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < requestsPerRound && performance.now() - start < roundCapMs) {
        issued++;
        const t = performance.now();
        await send();
        latenciesMs.push(performance.now() - t);
      }
    }),
  );
  return { requests: latenciesMs.length, ms: performance.now() - start, latenciesMs };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function summarise(results: RoundResult[]): { rps: number; p50: number; p99: number; requests: number } {
  const requests = results.reduce((n, r) => n + r.requests, 0);
  const ms = results.reduce((n, r) => n + r.ms, 0);
  const sorted = results.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  return { rps: (requests / ms) * 1000, p50: percentile(sorted, 50), p99: percentile(sorted, 99), requests };
}

function drain(expectStatus: number, resolve: () => void, reject: (e: Error) => void) {
  return (res: IncomingMessage): void => {
    if (res.statusCode !== expectStatus) reject(new Error(`status ${res.statusCode}`));
    res.resume();
    res.on('end', resolve);
    res.on('error', reject);
  };
}

function route(client: Issued, ca: string, port: number): EgressRoute {
  return {
    key: 'bench/partner',
    namespace: 'bench',
    name: 'partner',
    listenerPort,
    host: 'localhost',
    addresses: ['127.0.0.1'],
    port,
    serverName: 'localhost',
    clientCertificate: { chainPem: client.certPem, privateKey: new Sensitive(client.keyPem), serialNumber: client.serial, fingerprintSha256: '00' },
    serverCA: { pem: ca },
  };
}

function syntheticRoutes(count: number): EgressRoute[] {
  const pem = (label: string, i: number): string =>
    `-----BEGIN ${label}-----\n${Buffer.from(`${label} ${i}`.repeat(40))
      .toString('base64')
      .replace(/(.{64})/g, '$1\n')}\n-----END ${label}-----\n`;
  return Array.from({ length: count }, (_, i) => ({
    key: `ns-${i % 100}/binding-${i}`,
    namespace: `ns-${i % 100}`,
    name: `binding-${i}`,
    listenerPort: 10000 + i,
    host: `partner-${i % 500}.example.com`,
    addresses: [`198.51.100.${i % 250}`],
    port: i % 7 === 0 ? 8443 : 443,
    serverName: `partner-${i % 500}.example.com`,
    clientCertificate: {
      chainPem: pem('CERTIFICATE', i),
      privateKey: new Sensitive(pem('PRIVATE KEY', i)),
      serialNumber: i.toString(16),
      fingerprintSha256: 'AB:CD',
    },
    ...(i % 3 === 0 ? { serverCA: { pem: pem('CERTIFICATE', -i) } } : {}),
  }));
}

async function main(): Promise<void> {
  const pki = new PartnerPki('Bench Partner CA');
  const server = pki.issueServer({ cn: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const client = pki.issueClient({ cn: 'bench-client' });

  const partnerProcess = fork(fileURLToPath(import.meta.url), ['--partner'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const partnerPort = await new Promise<number>((resolve, reject) => {
    partnerProcess.once('message', (m) => resolve((m as { port: number }).port));
    partnerProcess.once('exit', (code) => reject(new Error(`partner exited with ${code}`)));
    partnerProcess.send({ cert: server.certPem, key: server.keyPem, clientCA: pki.ca.certPem } satisfies PartnerCredentials);
  });

  const prefix = join(temporaryDirectory('bench'), 'proxy');
  const rendered = renderNginx([route(client, pki.ca.certPem, partnerPort)], { listenAddress: '127.0.0.1', workerProcesses: nginxWorkers });
  for (const file of rendered.files) {
    mkdirSync(dirname(join(prefix, file.path)), { recursive: true });
    writeFileSync(join(prefix, file.path), file.content, { mode: file.mode });
  }
  const nginx = await startNginx(prefix);

  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: concurrency, cert: client.certPem, key: client.keyPem, ca: pki.ca.certPem });
  const viaProxy = (): Promise<void> =>
    new Promise((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port: listenerPort, path: '/bench', agent: httpAgent }, drain(200, resolve, reject))
        .on('error', reject)
        .end();
    });
  const direct = (): Promise<void> =>
    new Promise((resolve, reject) => {
      httpsRequest({ host: 'localhost', port: partnerPort, path: '/bench', agent: httpsAgent, servername: 'localhost' }, drain(200, resolve, reject))
        .on('error', reject)
        .end();
    });

  try {
    console.log(
      `proxy vs direct: ${concurrency} in flight, ${rounds} rounds of ${requestsPerRound} requests each, alternating; ` +
        `nginx worker_processes ${nginxWorkers}; ${availableParallelism()} cores shared by client, partner and nginx`,
    );
    // Warm up: handshakes, keepalive pools, JIT.
    await round(direct);
    await round(viaProxy);
    const results = { direct: [] as RoundResult[], proxy: [] as RoundResult[] };
    for (let i = 0; i < rounds; i++) {
      results.direct.push(await round(direct));
      results.proxy.push(await round(viaProxy));
    }
    const d = summarise(results.direct);
    const p = summarise(results.proxy);
    const row = (name: string, s: typeof d): string =>
      `${name.padEnd(8)} ${s.rps.toFixed(0).padStart(8)} req/s   p50 ${s.p50.toFixed(3)} ms   p99 ${s.p99.toFixed(3)} ms   (${s.requests} requests)`;
    console.log(row('direct', d));
    console.log(row('proxy', p));
    const ratio = p.rps / d.rps;
    const added = p.p50 - d.p50;
    console.log(`throughput ratio proxy/direct: ${ratio.toFixed(2)} (goal ≥ 0.80: ${ratio >= 0.8 ? 'met' : 'MISSED'})`);
    console.log(`added latency at p50: ${added.toFixed(3)} ms (goal < 1 ms: ${added < 1 ? 'met' : 'MISSED'}); at p99: ${(p.p99 - d.p99).toFixed(3)} ms`);
  } finally {
    httpAgent.destroy();
    httpsAgent.destroy();
    await nginx.stop();
    partnerProcess.kill();
  }

  const routes = syntheticRoutes(renderBindings);
  renderNginx(routes.slice(0, 100), { listenAddress: '0.0.0.0' }); // warm up
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const out = renderNginx(routes, { listenAddress: '0.0.0.0' });
    times.push(performance.now() - t);
    bytes = out.files.reduce((n, f) => n + f.content.length, 0);
  }
  times.sort((a, b) => a - b);
  const median = times[2]!;
  console.log(
    `renderNginx, ${renderBindings} bindings: median ${median.toFixed(0)} ms of 5 (min ${times[0]!.toFixed(0)}, max ${times[4]!.toFixed(0)}), ` +
      `${(bytes / 1e6).toFixed(1)} MB in files incl. hash (goal < 500 ms: ${median < 500 ? 'met' : 'MISSED'})`,
  );
  await rotationThroughTheProduct();
}

/**
 * A PFX Secret rotated the way a user does it (kubectl apply of the Secret), timed until
 * the partner sees the new serial on a request through the proxy: controller, proxy
 * objects, agent, nginx -t and reload, all real, on a real control plane.
 */
async function rotationThroughTheProduct(): Promise<void> {
  const rotations = Number(process.env.BENCH_ROTATIONS ?? 10);
  const cluster = await startControlPlane();
  // nginx: this times nginx -t and a reload (HAProxy's rotation is bench:churn's and bench:rotation's).
  const stack = await startEgressStack({ kubeconfig: cluster.kubeconfig, kubeConfigPath: cluster.kubeConfigPath, dataPlane: 'nginx' });
  try {
    const key = stack.partnerPki.issueClient({ cn: 'key' }).keyPem;
    for (let i = 0; i < 20; i++) await stack.putBinding(`b-${i}`, stack.partnerPki.issueClient({ cn: `b-${i}.client`, keyPem: key }));
    const port = (
      await stack.kube.waitForBinding(
        stack.namespace,
        'b-0',
        'Ready',
        (b: { status?: { conditions?: Array<{ reason: string }> } }) => b.status?.conditions?.[0]?.reason === 'Ready',
        60_000,
      )
    ).status!.listenerPort!;
    const seenSerial = async (): Promise<string | undefined> => {
      const res = await callProxy(port).catch(() => undefined);
      return res?.status === 200 ? (JSON.parse(res.body) as PartnerSeen).serialNumber : undefined;
    };
    const times: number[] = [];
    for (let r = 0; r < rotations; r++) {
      const next = stack.partnerPki.issueClient({ cn: 'b-0.client', keyPem: key });
      const t = performance.now();
      await stack.rotate('b-0', next);
      await pollUntil(async () => ((await seenSerial()) === next.serial ? true : undefined), {
        what: 'the new serial at the partner',
        timeoutMs: 30_000,
        intervalMs: 10,
      });
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const p50 = times[Math.floor(times.length / 2)]!;
    console.log(
      `rotation, Secret write → partner sees the new serial (whole product, 20 bindings, ${rotations} rotations): ` +
        `p50 ${p50.toFixed(0)} ms, max ${times[times.length - 1]!.toFixed(0)} ms (goal < 3 s: ${times[times.length - 1]! < 3000 ? 'met' : 'MISSED'})`,
    );
  } finally {
    await stack.stop();
    await cluster.stop();
  }
}
