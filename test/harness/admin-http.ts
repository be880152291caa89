import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { ControlPlanePki } from './pki.ts';

export interface AdminResponse {
  status: number;
  body: string;
}

export interface AdminRequest {
  method: 'GET' | 'PATCH' | 'POST';
  path: string;
  body?: string;
  contentType?: string;
}

/**
 * Raw HTTPS to the apiserver as the system:masters admin. The harness uses this rather
 * than @kubernetes/client-node because it must send CRD YAML byte for byte (the client's
 * typed models silently drop fields they do not know, which would hide a broken CRD),
 * and because it probes /readyz before any client is worth building.
 */
export type AdminHttp = (request: AdminRequest) => Promise<AdminResponse>;

export function createAdminHttp(apiServerUrl: string, pki: ControlPlanePki): AdminHttp {
  const tls = { ca: readFileSync(pki.caCert), cert: readFileSync(pki.adminCert), key: readFileSync(pki.adminKey) };
  return (adminRequest) =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (adminRequest.contentType !== undefined) headers['content-type'] = adminRequest.contentType;
      const outgoing = request(
        new URL(adminRequest.path, apiServerUrl),
        // No keep-alive: an idle pooled socket would outlive a stopped apiserver and keep the event loop busy.
        { method: adminRequest.method, headers, ...tls, agent: false, timeout: 10_000 },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          response.on('error', reject);
        },
      );
      outgoing.on('timeout', () => outgoing.destroy(new Error(`${adminRequest.method} ${adminRequest.path} timed out`)));
      outgoing.on('error', reject);
      outgoing.end(adminRequest.body);
    });
}
