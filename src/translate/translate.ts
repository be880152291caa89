import type { SecretLike } from '../api/meta.ts';
import { parseDuration } from '../api/time.ts';
import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Outcome, Problem } from '../api/v1alpha1/reasons.ts';
import { bindingKey, defaultExpiryWarning, defaultPort, type ClientCertificateBinding, type ClientCertificateBindingStatus } from '../api/v1alpha1/types.ts';
import { CaSubjects, resolveCertificateInput, resolveServerCA, type CertificateInput, type InputProblem, type ServerCA } from '../model/certificate-input.ts';
import {
  byKey,
  isIpLiteral,
  isPortNumber,
  routeValueProblem,
  type ClientIdentity,
  type EgressRoute,
  type IdentityOutcome,
  type LeftOut,
} from '../model/egress-routes.ts';
import { allocateListenerPorts, type AllocationPolicy, type PortOutcome, type PortRange } from '../model/listener-ports.ts';
import { certificateCondition, evaluateBinding, type CheckOutcome, type Evaluation } from '../status/evaluate.ts';

// The one translation, as in Envoy Gateway's Translate: bindings, their Secrets and the
// decoded certificates in; the routes the proxy serves, every binding's status, and why
// each binding left out is left out, from the same walk. Both controllers, `render` and
// `validate` take their half of this result, so a verdict is computed in one place and
// cannot drift between them. Pure: decoding, DNS and the API happen before, in the callers.

/** A binding's Secret by namespace and name: a cache, or the Secrets of a manifest set. */
export type SecretLookup = (namespace: string, name: string) => SecretLike | undefined;

/**
 * The decoded identity of a binding's certificate input, decoded beforehand (off the event
 * loop, in the sandbox); undefined while it is still being decoded.
 */
export type IdentityLookup = (input: CertificateInput, binding: ClientCertificateBinding) => IdentityOutcome | undefined;

/** What a data plane adds to the verdicts; absent when the controller only reports status (--data-plane none) and offline. */
export interface DataPlaneView {
  /** Why the proxy cannot load this host (it does not resolve, or leads somewhere refused), from lookups made before translating. */
  hostProblem(host: string): Problem | undefined;
  /**
   * The host's addresses, each checked against the destination policy: the route carries
   * them, and the proxy connects to these alone, never resolving the name itself. Absent
   * where nothing is rendered (validate); an IP host is its own address.
   */
  hostAddresses?(host: string): readonly string[] | undefined;
  /** What the destination policy cannot refuse (the pod range unknown), said on the binding's status. */
  destinationPolicyGap?: Problem;
  /** Whether every ready proxy replica serves this certificate for this binding; absent when the caller writes no status. */
  programmed?(key: string, fingerprintSha256: string | undefined): CheckOutcome;
}

export interface TranslateOptions {
  now: Date;
  listenerPorts: PortRange;
  endpointFor: (port: number) => string;
  /** The expiry warning window; default spec.expiryWarning. `validate --warn-days` overrides it. */
  expiryWarningMs?: (binding: ClientCertificateBinding) => number | undefined;
  /** The status last written, when the caller knows a newer one than the binding carries; default binding.status. */
  previousStatus?: (binding: ClientCertificateBinding) => ClientCertificateBindingStatus | undefined;
  dataPlane?: DataPlaneView;
  /** CA subjects parsed before, for a caller that translates again and again; a fresh memo per call without it. */
  caSubjects?: CaSubjects;
  /** Whether the namespaces spec.allowedNamespaces selects consent (model/namespace-consent.ts); absent offline, where no Namespace is known. */
  consent?: (binding: ClientCertificateBinding) => Outcome | undefined;
}

/** Every check of one binding, in the order Ready names the first failure. */
export interface BindingChecks {
  spec: Outcome<{ host: string; port: number; serverName: string }>;
  certificate: Outcome<{ identity: ClientIdentity }> | InputProblem;
  serverCA: Outcome<{ ca: ServerCA | undefined }> | InputProblem;
  port: PortOutcome;
  /** The data plane's own problem with the binding (its host does not resolve); ok without a data plane. */
  dataPlane: CheckOutcome;
}

export interface BindingTranslation {
  key: string;
  binding: ClientCertificateBinding;
  checks: BindingChecks;
  /** The route the proxy serves, or undefined with `leftOut` saying why. */
  route: EgressRoute | undefined;
  leftOut: Problem | undefined;
  status: Evaluation;
}

export interface Translation {
  /** Sorted by key. */
  bindings: BindingTranslation[];
  /** Sorted by key. */
  routes: EgressRoute[];
  /** Sorted by key; each binding the proxy does not serve, with the first reason. */
  leftOut: LeftOut[];
  /** When time alone will change some verdict (a certificate crossing a validity threshold). */
  requeueAfterMs: number | undefined;
}

/**
 * Translates every binding. Ports are allocated over all of them, served or not, so a
 * binding left out keeps its port and fixing it later moves nobody.
 */
export function translate(
  bindings: readonly ClientCertificateBinding[],
  secrets: SecretLookup,
  identities: IdentityLookup,
  options: TranslateOptions,
): Translation {
  const ports = allocatePorts(bindings, options);
  // Bindings share CA bundles: one memo for the whole set.
  const each = options.caSubjects ? options : { ...options, caSubjects: new CaSubjects() };
  const translated = bindings.map((binding) => translateBinding(binding, secrets, identities, ports, each)).sort(byKey);
  const routes: EgressRoute[] = [];
  const leftOut: LeftOut[] = [];
  let requeueAfterMs: number | undefined;
  for (const t of translated) {
    if (t.route) routes.push(t.route);
    if (t.leftOut) leftOut.push({ key: t.key, reason: t.leftOut.reason, message: t.leftOut.message });
    const next = t.status.requeueAfterMs;
    if (next !== undefined && (requeueAfterMs === undefined || next < requeueAfterMs)) requeueAfterMs = next;
  }
  return { bindings: translated, routes, leftOut, requeueAfterMs };
}

/**
 * Listener ports for every binding: the ports held stay, fixed requests are honoured
 * oldest first, the rest get the lowest free ones (see allocateListenerPorts). A port read
 * from status is only reported, never held: anyone who may write status can write it.
 * A caller translating one binding at a time computes this once per change of the set.
 */
export function allocatePorts(
  bindings: readonly ClientCertificateBinding[],
  options: Pick<TranslateOptions, 'listenerPorts' | 'previousStatus'> & {
    /** The port the controller itself gave the binding (its record, or a status it wrote and has not seen come back). */
    held?: (binding: ClientCertificateBinding) => number | undefined;
    /** Whether the binding may take a new port ('any'), only keep the one it holds ('keep'), or hold none ('none'); default 'any'. */
    eligibility?: (binding: ClientCertificateBinding) => PortEligibility;
    policy?: AllocationPolicy;
  },
): Map<string, PortOutcome> {
  return allocateListenerPorts(
    bindings.map((binding) => {
      const held = options.held?.(binding);
      const reported = (options.previousStatus?.(binding) ?? binding.status)?.listenerPort;
      return {
        key: bindingKey(binding),
        namespace: binding.metadata.namespace,
        creationTimestamp: binding.metadata.creationTimestamp ?? '',
        // Offline YAML can hold anything here; a value that is not a port claims nothing.
        ...(isPortNumber(binding.spec.listenerPort) ? { requested: binding.spec.listenerPort } : {}),
        ...(isPortNumber(held) ? { held } : {}),
        ...(isPortNumber(reported) ? { reported } : {}),
        ...eligibilityOf(options.eligibility?.(binding) ?? 'any'),
      };
    }),
    options.listenerPorts,
    options.policy,
  );
}

/** Whether a binding may take a port: any, keep only what it holds (it cannot be served), or none (broken past the grace). */
export type PortEligibility = 'any' | 'keep' | 'none';

function eligibilityOf(e: PortEligibility): { mayTakeNew?: false; mayHold?: false } {
  return e === 'any' ? {} : e === 'keep' ? { mayTakeNew: false } : { mayTakeNew: false, mayHold: false };
}

/** One binding's verdicts, given the ports allocated over all bindings. */
export function translateBinding(
  binding: ClientCertificateBinding,
  secrets: SecretLookup,
  identities: IdentityLookup,
  ports: ReadonlyMap<string, PortOutcome>,
  options: TranslateOptions,
): BindingTranslation {
  const key = bindingKey(binding);
  const { namespace } = binding.metadata;
  const lookup = (name: string): SecretLike | undefined => secrets(namespace, name);
  const specExpiryWarningMs = parseDuration(binding.spec.expiryWarning ?? defaultExpiryWarning);
  const expiryWarningMs = options.expiryWarningMs?.(binding) ?? specExpiryWarningMs;

  const checks: BindingChecks = {
    spec: specCheck(binding, specExpiryWarningMs, options.listenerPorts),
    certificate: certificateCheck(binding, lookup, identities),
    serverCA: resolveServerCA(binding.spec, lookup, options.caSubjects),
    port: ports.get(key) ?? { ok: false, reason: reasons.ListenerPortsExhausted, message: 'no listener port allocated yet' },
    dataPlane: { ok: true },
  };
  const hostProblem = checks.spec.ok ? options.dataPlane?.hostProblem(checks.spec.host) : undefined;
  if (hostProblem) checks.dataPlane = { ok: false, ...hostProblem };

  const certificate = checks.certificate.ok ? { ok: true as const, facts: checks.certificate.identity.facts } : checks.certificate;
  const fingerprint = certificate.ok ? certificate.facts.fingerprintSha256 : undefined;
  const status = evaluateBinding({
    generation: binding.metadata.generation,
    previous: options.previousStatus?.(binding) ?? binding.status,
    spec: checks.spec,
    certificate,
    serverCA: checks.serverCA,
    port: checks.port,
    ...(options.dataPlane?.destinationPolicyGap ? { destinationPolicyGap: options.dataPlane.destinationPolicyGap } : {}),
    ...(options.dataPlane?.programmed ? { programmed: checks.dataPlane.ok ? options.dataPlane.programmed(key, fingerprint) : checks.dataPlane } : {}),
    ...consentOf(binding, options),
    expiryWarningMs: expiryWarningMs ?? 0,
    endpointFor: options.endpointFor,
    now: options.now,
  });

  const served = servedRoute(binding, checks, options.now, options.dataPlane);
  return {
    key,
    binding,
    checks,
    route: served.ok ? served.route : undefined,
    leftOut: served.ok ? undefined : { reason: served.reason, message: served.message },
    status,
  };
}

function consentOf(binding: ClientCertificateBinding, options: TranslateOptions): { consent?: CheckOutcome } {
  const consent = options.consent?.(binding);
  return consent ? { consent } : {};
}

/**
 * Whether the proxy serves the binding, checked in the order of the status's Ready chain:
 * spec, certificate, server CA, port, the data plane. A certificate that expires soon is
 * served; an expired or not yet valid one only makes the partner refuse every handshake,
 * so it is not.
 */
function servedRoute(
  binding: ClientCertificateBinding,
  checks: BindingChecks,
  now: Date,
  dataPlane: DataPlaneView | undefined,
): Outcome<{ route: EgressRoute }> {
  const { spec, certificate, serverCA, port } = checks;
  if (!spec.ok) return spec;
  if (!certificate.ok) return certificate;
  const validity = certificateCondition({ certificate: { ok: true, facts: certificate.identity.facts }, expiryWarningMs: 0, now });
  if (validity.status !== 'True') return { ok: false, reason: validity.reason, message: validity.message };
  if (!serverCA.ok) return serverCA;
  if (!port.ok) return port;
  if (!checks.dataPlane.ok) return checks.dataPlane;
  const addresses = isIpLiteral(spec.host) ? [spec.host] : (dataPlane?.hostAddresses?.(spec.host) ?? []);
  // A data plane that renders is never handed a name to resolve: no checked address, no route.
  if (dataPlane?.hostAddresses && addresses.length === 0) {
    return { ok: false, reason: reasons.HostUnresolvable, message: `host ${spec.host} has no checked address yet; the proxy leaves this binding out` };
  }
  const { identity } = certificate;
  return {
    ok: true,
    route: {
      key: bindingKey(binding),
      namespace: binding.metadata.namespace,
      name: binding.metadata.name,
      listenerPort: port.port,
      host: spec.host,
      addresses: [...addresses],
      port: spec.port,
      serverName: spec.serverName,
      clientCertificate: {
        chainPem: identity.chainPem,
        privateKey: identity.privateKey,
        serialNumber: identity.facts.serialNumber,
        fingerprintSha256: identity.facts.fingerprintSha256,
      },
      ...(serverCA.ca ? { serverCA: { pem: serverCA.ca.pem } } : {}),
    },
  };
}

function certificateCheck(
  binding: ClientCertificateBinding,
  lookup: (name: string) => SecretLike | undefined,
  identities: IdentityLookup,
): BindingChecks['certificate'] {
  const input = resolveCertificateInput(binding.spec, lookup);
  if (!input.ok) return input;
  // Still being decoded: nothing to serve yet, and nothing wrong with it yet either.
  return identities(input, binding) ?? { ok: false, reason: reasons.ProgrammingPending, message: 'the certificate is still being decoded' };
}

/**
 * What the spec says that the API server's schema cannot judge: an expiryWarning that is
 * not a duration, an IP host without serverName, a fixed port outside the controller's
 * range, and (for offline YAML, which no schema checked) values the renderer must never
 * see. host, port and serverName come back with their defaults applied.
 */
function specCheck(binding: ClientCertificateBinding, expiryWarningMs: number | undefined, listenerPorts: PortRange): BindingChecks['spec'] {
  const { spec } = binding;
  if (expiryWarningMs === undefined) {
    return { ok: false, reason: reasons.InvalidSpec, message: `spec.expiryWarning "${spec.expiryWarning}" is not a duration such as 720h` };
  }
  const host = spec.host;
  const port = spec.port ?? defaultPort;
  if (isIpLiteral(host) && spec.serverName === undefined) return { ok: false, reason: reasons.InvalidSpec, message: ipHostProblem(host) };
  const serverName = spec.serverName ?? host;
  const fixed = spec.listenerPort;
  const problem = routeValueProblem({
    namespace: binding.metadata.namespace,
    name: binding.metadata.name,
    host,
    port,
    serverName,
    // Not allocated yet; only a fixed request can be wrong at this point.
    listenerPort: fixed ?? listenerPorts.first,
  });
  if (problem) return { ok: false, reason: reasons.InvalidSpec, message: problem };
  if (fixed !== undefined && (fixed < listenerPorts.first || fixed > listenerPorts.last)) {
    return {
      ok: false,
      reason: reasons.InvalidSpec,
      message: `spec.listenerPort ${fixed} is outside the proxy's listener range ${listenerPorts.first}-${listenerPorts.last}`,
    };
  }
  return { ok: true, host, port, serverName };
}

/**
 * nginx 1.22 checks the partner's certificate with X509_check_host only, which never
 * matches an IP subjectAltName: a binding to a bare IP would fail every request with
 * "upstream SSL certificate does not match". Turning verification off for it is not an
 * option, so it is refused, with the way out in the message.
 */
function ipHostProblem(host: string): string {
  return (
    `spec.host ${host} is an IP address and spec.serverName is empty: the egress proxy verifies the partner's certificate by DNS name only; ` +
    "set spec.serverName to a DNS name in the partner's certificate"
  );
}
