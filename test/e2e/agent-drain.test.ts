// The agent's drain on SIGTERM, with the real API server, controller, agent, Debian's
// HAProxy and an mTLS partner: what a proxy pod does when a rollout or a drain stops it.
// The node suite (test/node/rollout.test.ts) measures the same under the kubelet, with
// endpoints and DNS; here the steps are watched one by one, with nothing else around.
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import * as reasons from '../../src/api/v1alpha1/reasons.ts';
import { pollUntil } from '../harness/poll.ts';
import { connectionRefused } from '../harness/ports.ts';
import { useControlPlane } from '../harness/use-control-plane.ts';
import { httpGet } from '../support/controller-process.ts';
import { startEgressStack, type EgressStack } from '../support/egress-stack.ts';
import { hasReason } from '../support/kube.ts';

const cluster = await useControlPlane();
let stack: EgressStack;
let port: number;

interface Answer {
  status: number;
  /** The response said "Connection: close": the client must not reuse the connection. */
  close: boolean;
}

/** One request on a keep-alive agent of its own: the connection the caller keeps. */
function get(agent: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, close: res.headers.connection === 'close' }));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  // A drain long enough to watch, and a stop timeout that lets the idle connection below
  // wait for its request.
  stack = await startEgressStack({
    kubeconfig: cluster.kubeconfig,
    kubeConfigPath: cluster.kubeConfigPath,
    dataPlane: 'haproxy',
    recordPartner: false,
    agentArgs: ['--drain-delay', '4s', '--stop-timeout', '20s'],
  });
  await stack.putBinding('payments', stack.partnerPki.issueClient({ cn: 'payments.client' }));
  const b = await stack.kube.waitForBinding(stack.namespace, 'payments', 'Ready', hasReason(reasons.BindingReady), 30_000);
  port = Number(new URL(b.status!.endpoint!).port);
});

after(() => stack?.stop());

describe('agent drain on SIGTERM (HAProxy)', () => {
  test('not ready at once, still accepting through the delay, then each keep-alive connection is told Connection: close; nothing fails', async () => {
    assert.equal((await httpGet(stack.agent.healthPort, '/readyz')).status, 200);
    // Busy clients, one keep-alive connection each, and one that goes idle: as pooled
    // connections are. A client stops once its connection is closed: in a cluster its next
    // connection goes to another replica, which there is none of here.
    const busy = Array.from({ length: 4 }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    const idle = new Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await get(idle)).status, 200);
    const answers: Answer[] = [];
    const failures: string[] = [];
    const loops = busy.map(async (agent) => {
      for (;;) {
        const answer = await get(agent).catch((err: NodeJS.ErrnoException) => {
          failures.push(err.code ?? err.message);
          return undefined;
        });
        if (!answer) return;
        answers.push(answer);
        if (answer.close) return;
      }
    });

    const exited = stack.agent.stop();
    await pollUntil(async () => ((await httpGet(stack.agent.healthPort, '/readyz')).status === 503 ? true : undefined), {
      what: '/readyz to fail after SIGTERM',
      timeoutMs: 2_000,
      intervalMs: 20,
    });
    // Draining and still accepting: a client that resolved this replica a moment ago connects.
    const late = new Agent({ keepAlive: true, maxSockets: 1 });
    assert.deepEqual(await get(late), { status: 200, close: false }, 'a new connection while /readyz fails is served as before');
    assert.equal((await httpGet(stack.agent.healthPort, '/healthz')).status, 200, 'live while draining');
    late.destroy();

    // The delay over, the listeners close; the busy clients are told on their next response.
    await pollUntil(async () => ((await connectionRefused(port)) ? true : undefined), { what: 'the listeners to close', timeoutMs: 30_000, intervalMs: 50 });
    await Promise.all(loops);
    // The idle connection was kept open (option idle-close-on-response): its next request
    // is answered, with Connection: close, rather than meeting a closed socket.
    assert.deepEqual(await get(idle), { status: 200, close: true });
    idle.destroy();
    for (const agent of busy) agent.destroy();

    assert.deepEqual(failures, [], 'no request failed');
    assert.ok(answers.every((a) => a.status === 200));
    assert.equal(answers.filter((a) => a.close).length, busy.length, 'every busy connection ended with Connection: close');
    assert.equal(await exited, 0);
    assert.equal(stack.agent.logged('draining: not ready; serving until clients have moved on').length, 1);
  });
});
