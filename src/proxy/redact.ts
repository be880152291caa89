// Text that leaves the process (a log line, a Pod annotation, an error) from a data plane's
// own output passes through here first.

/**
 * Removes what could be key material from text that leaves the process (a log line, a Pod
 * annotation): PEM blocks, and long base64 runs such as a PEM body without its armour.
 * Runs without a capital letter stay: base64 of key bytes has them every few characters,
 * while config hashes in generation paths and lowercase file paths have none.
 * nginx's messages name files and directives, never their contents, but a config that
 * inlines a key (`data:` values) would be echoed back in a parse error.
 */
export function redactKeyMaterial(text: string): string {
  return text
    .replace(/-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)/g, '[redacted PEM]')
    .replace(/[A-Za-z0-9+/]{40,}={0,2}/g, (run) => (/[A-Z]/.test(run) ? '[redacted]' : run));
}
