import type { SecretLike } from '../api/meta.ts';
import type { ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import { BindingInputs, type GatheredInputs, type SecretSource } from '../inputs/binding-inputs.ts';
import { decodeCertificateInput } from '../inputs/identity-decoder.ts';
import { translate, type SecretLookup, type TranslateOptions, type Translation } from '../translate/translate.ts';

/**
 * The one translation over a manifest set, for the offline commands: each binding's
 * inputs come from the BindingInputs the controllers read, over the set's Secrets, with
 * the decode awaited (a manifest set has no later event to wake a binding, and no DNS),
 * so every certificate is decoded once, then translated exactly as the controllers do.
 */
export async function translateManifests(
  bindings: readonly ClientCertificateBinding[],
  secrets: SecretLookup,
  options: TranslateOptions,
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
    return translate(bindings, secrets, (input, binding) => gathered.get(binding)?.identities(input, binding), options);
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
