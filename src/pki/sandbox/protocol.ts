import type { IdentityReason } from '../../api/v1alpha1/reasons.ts';
import type { BudgetUse, DecodeLimits } from '../budget.ts';
import type { CertificateFacts } from '../certificate-facts.ts';
import type { CertificatePem } from '../identity.ts';

// The messages between the decode pool (main thread) and its workers. Plain data only:
// structured clone drops the private field a Sensitive keeps its value in, so secrets cross
// as bare strings or bytes, and each side wraps them in a Sensitive again on arrival.

export interface WorkerSettings {
  readonly limits: Partial<DecodeLimits>;
}

export type DecodeTask =
  | { readonly id: number; readonly kind: 'pfx'; readonly pfx: Uint8Array; readonly password: string | Uint8Array | undefined }
  | {
      readonly id: number;
      readonly kind: 'pem';
      readonly cert: string | Uint8Array;
      readonly key: string | Uint8Array;
      readonly password: string | Uint8Array | undefined;
    };

/** A DecodedIdentity with its key as a bare string, for the crossing. */
export interface WireIdentity {
  readonly leaf: CertificatePem;
  readonly chain: readonly CertificatePem[];
  readonly privateKeyPem: string;
  readonly facts: CertificateFacts;
}

export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'result'; readonly id: number; readonly ok: true; readonly identity: WireIdentity; readonly use: BudgetUse | undefined }
  | {
      readonly type: 'result';
      readonly id: number;
      readonly ok: false;
      readonly reason: IdentityReason;
      readonly message: string;
      readonly use: BudgetUse | undefined;
    };
