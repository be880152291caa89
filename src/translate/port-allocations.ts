import { bindingKey, type ClientCertificateBinding, type ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import type { PortOutcome, PortRange } from '../model/listener-ports.ts';
import { allocatePorts } from './translate.ts';

/**
 * Listener ports over every binding, recomputed only when some binding's port inputs
 * changed. A controller's own status write of the port it was given changes nothing: at
 * ten thousand bindings, recomputing after each of a cold start's writes would cost
 * O(n² log n). A recompute that moves another binding's port (a freed port settles a
 * conflict) reports the bindings whose outcome changed, so their owner looks again.
 */
export class PortAllocations {
  readonly #bindings: () => readonly ClientCertificateBinding[];
  readonly #listenerPorts: PortRange;
  readonly #previousStatus: ((b: ClientCertificateBinding) => ClientCertificateBindingStatus | undefined) | undefined;
  readonly #onMoved: ((keys: string[]) => void) | undefined;
  #version = 0;
  #computed: { version: number; result: Map<string, PortOutcome> } | undefined;

  constructor(options: {
    bindings: () => readonly ClientCertificateBinding[];
    listenerPorts: PortRange;
    /** What holds a port besides the cache: a status written but not yet seen. */
    previousStatus?: (b: ClientCertificateBinding) => ClientCertificateBindingStatus | undefined;
    /** Bindings whose outcome a recompute changed, other than the one that caused it. */
    onMoved?: (keys: string[]) => void;
  }) {
    this.#bindings = options.bindings;
    this.#listenerPorts = options.listenerPorts;
    this.#previousStatus = options.previousStatus;
    this.#onMoved = options.onMoved;
  }

  added(): void {
    this.#version++;
  }

  deleted(): void {
    this.#version++;
  }

  updated(b: ClientCertificateBinding, old: ClientCertificateBinding): void {
    if (portInputs(b) !== portInputs(old) && !this.#confirms(b, old)) this.#version++;
  }

  /** Every binding's outcome, as of the last change. */
  get(): Map<string, PortOutcome> {
    if (this.#computed?.version !== this.#version) {
      const previous = this.#computed?.result;
      const result = allocatePorts(this.#bindings(), {
        listenerPorts: this.#listenerPorts,
        ...(this.#previousStatus ? { previousStatus: this.#previousStatus } : {}),
      });
      this.#computed = { version: this.#version, result };
      if (previous && this.#onMoved) {
        const moved = [...result].filter(([key, outcome]) => {
          const before = previous.get(key);
          return before !== undefined && !samePort(before, outcome);
        });
        if (moved.length > 0) this.#onMoved(moved.map(([key]) => key));
      }
    }
    return this.#computed.result;
  }

  /** The status now shows the port the last allocation gave: an echo of a write, not a change. */
  #confirms(b: ClientCertificateBinding, old: ClientCertificateBinding): boolean {
    if (b.spec.listenerPort !== old.spec.listenerPort || b.metadata.creationTimestamp !== old.metadata.creationTimestamp) return false;
    const allocated = this.#computed?.version === this.#version ? this.#computed.result.get(bindingKey(b)) : undefined;
    return allocated?.ok === true && allocated.port === b.status?.listenerPort;
  }
}

/** What port allocation reads of a binding; a change re-runs the allocation. */
function portInputs(b: ClientCertificateBinding): string {
  return `${b.spec.listenerPort ?? ''}|${b.status?.listenerPort ?? ''}|${b.metadata.creationTimestamp ?? ''}`;
}

function samePort(a: PortOutcome, b: PortOutcome): boolean {
  return a.ok && b.ok ? a.port === b.port : a.ok === b.ok && !a.ok && !b.ok && a.reason === b.reason;
}
