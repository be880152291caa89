import { Agent } from 'node:http';
import type { ProxyResponse } from './nginx-process.ts';
import type { PartnerSeen } from './mtls-partner.ts';
import { callProxy } from './nginx-process.ts';

export interface LoadFailure {
  port: number;
  method: string;
  /** An HTTP status other than 200, or the socket error's code. */
  what: string;
  at: number;
}

export interface SteadyLoad {
  requests: number;
  failures: LoadFailure[];
  /** The last serial the partner saw on each port, with when it was first seen, and when the request that first saw it was sent. */
  lastSerial: Map<number, { serial: string; since: number; sentAt: number }>;
  /** The longest time no request completed, and when it ended (wall-clock ms): a stall of the whole load shows here. */
  longestQuiet: { ms: number; endedAt: number };
  /** Stops the clients after their request in flight; resolves when they have. */
  stop(): Promise<void>;
}

/**
 * Clients as a payments application runs them: keep-alive connections, GETs and POSTs
 * with a body, and no retries. A request a proxy drops (a connection closed under it,
 * a 502) is a failure here, because for a POST it would be one in production.
 */
export function steadyLoad(options: {
  ports: () => readonly number[];
  clients: number;
  post?: boolean;
  /** Called with every answer the partner gave: which serial it saw, when the request was sent and when the answer came. */
  onAnswer?: (port: number, serial: string, sentAt: number, receivedAt: number) => void;
  /** How to send one request (default: plain HTTP to 127.0.0.1:port through a keep-alive agent, as to the proxy). */
  send?: (port: number, request: { method: string; body?: string; headers?: Record<string, string> }) => Promise<ProxyResponse>;
}): SteadyLoad {
  const agent = new Agent({ keepAlive: true, maxSockets: options.clients });
  const send = options.send ?? ((port, request) => callProxy(port, { agent, ...request }));
  const failures: LoadFailure[] = [];
  const lastSerial = new Map<number, { serial: string; since: number; sentAt: number }>();
  let requests = 0;
  let stopped = false;
  let lastCompletion = Date.now();
  const longestQuiet = { ms: 0, endedAt: 0 };
  const completed = (): void => {
    const now = Date.now();
    if (now - lastCompletion > longestQuiet.ms) Object.assign(longestQuiet, { ms: now - lastCompletion, endedAt: now });
    lastCompletion = now;
  };
  const client = async (index: number): Promise<void> => {
    for (let i = index; !stopped; i += options.clients) {
      const ports = options.ports();
      if (ports.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      const port = ports[i % ports.length]!;
      const method = options.post !== false && i % 2 === 1 ? 'POST' : 'GET';
      const body = method === 'POST' ? JSON.stringify({ amount: i, currency: 'EUR' }) : undefined;
      requests++;
      const sentAt = Date.now();
      try {
        const res = await send(port, { method, ...(body ? { body, headers: { 'content-type': 'application/json' } } : {}) });
        if (res.status !== 200) failures.push({ port, method, what: `HTTP ${res.status}`, at: Date.now() });
        else {
          const serial = (JSON.parse(res.body) as PartnerSeen).serialNumber;
          const receivedAt = Date.now();
          if (lastSerial.get(port)?.serial !== serial) lastSerial.set(port, { serial, since: receivedAt, sentAt });
          options.onAnswer?.(port, serial, sentAt, receivedAt);
        }
      } catch (err) {
        failures.push({ port, method, what: (err as NodeJS.ErrnoException).code ?? (err as Error).message, at: Date.now() });
      }
      completed();
    }
  };
  const running = Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
  return {
    get requests() {
      return requests;
    },
    failures,
    lastSerial,
    longestQuiet,
    async stop() {
      stopped = true;
      await running;
      agent.destroy();
    },
  };
}
