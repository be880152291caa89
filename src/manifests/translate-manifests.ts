import type { SecretLike } from '../api/meta.ts';
import type { ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import * as reasons from '../api/v1alpha1/reasons.ts';
import { BindingInputs, type GatheredInputs, type SecretSource } from '../inputs/binding-inputs.ts';
import { HostResolver, type Resolve } from '../inputs/host-resolution.ts';
import { isDnsName } from '../model/egress-routes.ts';
import { decodeCertificateInput } from '../inputs/identity-decoder.ts';
import { translate, type SecretLookup, type TranslateOptions, type Translation } from '../translate/translate.ts';

/**
 * The one translation over a manifest set, for the offline commands: each binding's
 * inputs come from the BindingInputs the controllers read, over the set's Secrets, with
 * the decode awaited (a manifest set has no later event to wake a binding), so every
 * certificate is decoded once, then translated exactly as the controllers do.
 *
 * `resolveHosts` (render): every host is resolved here, as the controller resolves it,
 * and the routes carry its addresses, because a renderer is never given a name; a host
 * that does not resolve is left out. No destination policy applies offline: a render
 * runs on a workstation, against partners its user chose. Without it (validate), no DNS
 * is asked and routes carry no addresses.
 */
export async function translateManifests(
  bindings: readonly ClientCertificateBinding[],
  secrets: SecretLookup,
  options: TranslateOptions & { resolveHosts?: Resolve },
): Promise<Translation> {
  const inputs = new BindingInputs({
    bindings: { list: () => bindings },
    secrets: manifestSecrets(secrets),
    listenerPorts: options.listenerPorts,
    decode: decodeCertificateInput,
  });
  try {
    const gathered = new Map<ClientCertificateBinding, GatheredInputs>();
    // One binding at a time: a hostile set's files take their turns in the sandbox.
    for (const binding of bindings) gathered.set(binding, await inputs.gatherSettled(binding));
    const { resolveHosts, ...translateOptions } = options;
    if (resolveHosts) {
      const resolver = new HostResolver({ resolve: resolveHosts });
      const answers = new Map<string, string[]>();
      for (const host of new Set(bindings.map((b) => b.spec.host))) if (isDnsName(host)) answers.set(host, await resolver.addresses(host));
      translateOptions.dataPlane = {
        hostProblem: (host) =>
          answers.get(host)?.length === 0
            ? { reason: reasons.HostUnresolvable, message: `host ${host} does not resolve; the render leaves this binding out` }
            : undefined,
        hostAddresses: (host) => answers.get(host),
      };
    }
    return translate(bindings, secrets, (input, binding) => gathered.get(binding)?.identities(input, binding), translateOptions);
  } finally {
    inputs.close();
  }
}

/** A manifest set's Secrets as the gatherer reads them. */
function manifestSecrets(secrets: SecretLookup): SecretSource {
  return {
    getAll: async (namespace, names) => {
      const found = new Map<string, SecretLike>();
      for (const name of names) {
        const secret = secrets(namespace, name);
        if (secret) found.set(name, secret);
      }
      return found;
    },
  };
}
