import { parentPort, workerData } from 'node:worker_threads';
import type { BudgetUse } from '../budget.ts';
import { asPkiError } from '../errors.ts';
import type { DecodedIdentity } from '../identity.ts';
import { decodePem } from '../pem.ts';
import { decodePfx } from '../pfx.ts';
import { Sensitive } from '../sensitive.ts';
import type { DecodeTask, WorkerMessage, WorkerSettings } from './protocol.ts';

// The decode pool's worker: one task at a time, synchronously (see pfx.ts), with the heap
// limit the pool gave it. Every outcome goes back as a message; a PkiError's reason and
// message cross as data, the identity's key as a bare string that the pool wraps again.
// This file is the worker's entry point, loaded from src/ (TypeScript, type stripping) or
// from dist/ (compiled); it imports only relative modules, which both layouts have.

const port = parentPort;
if (port === null) throw new Error('decode-worker.ts runs as a worker thread of the decode pool');
const settings = workerData as WorkerSettings;

function reply(message: WorkerMessage): void {
  port!.postMessage(message);
}

async function run(task: DecodeTask): Promise<void> {
  let use: BudgetUse | undefined;
  const options = { limits: settings.limits, onBudgetUse: (spent: BudgetUse) => (use = spent) };
  // Secrets are wrapped again on arrival, so nothing below can print them by accident.
  const password = task.password === undefined ? undefined : new Sensitive(task.password);
  try {
    const identity: DecodedIdentity =
      task.kind === 'pfx'
        ? await decodePfx(new Sensitive(task.pfx), password, options)
        : await decodePem(task.cert, new Sensitive(task.key), password, options);
    reply({
      type: 'result',
      id: task.id,
      ok: true,
      identity: { leaf: identity.leaf, chain: identity.chain, privateKeyPem: identity.privateKey.reveal(), facts: identity.facts },
      use,
    });
  } catch (error) {
    const failure = asPkiError(
      error,
      task.kind === 'pfx' ? 'the PFX' : 'the PEM pair',
      () => `${task.kind === 'pfx' ? 'the PFX' : 'the PEM pair'} could not be decoded`,
    );
    reply({ type: 'result', id: task.id, ok: false, reason: failure.reason, message: failure.message, use });
  }
}

port.on('message', (task: DecodeTask) => void run(task));
reply({ type: 'ready' });
