import type { ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import { decodeCertificateInput } from '../inputs/identity-decoder.ts';
import { resolveCertificateInput } from '../model/certificate-input.ts';
import type { IdentityOutcome } from '../model/egress-routes.ts';
import { translate, type SecretLookup, type TranslateOptions, type Translation } from '../translate/translate.ts';

/**
 * The one translation over a manifest set, for the offline commands: every certificate
 * the bindings name is decoded once, then translated exactly as the controllers do.
 */
export async function translateManifests(
  bindings: readonly ClientCertificateBinding[],
  secrets: SecretLookup,
  options: TranslateOptions,
): Promise<Translation> {
  const identities = new Map<string, IdentityOutcome>();
  for (const binding of bindings) {
    const input = resolveCertificateInput(binding.spec, (name) => secrets(binding.metadata.namespace, name));
    if (input.ok && !identities.has(input.version)) identities.set(input.version, await decodeCertificateInput(input));
  }
  return translate(bindings, secrets, (input) => identities.get(input.version), options);
}
