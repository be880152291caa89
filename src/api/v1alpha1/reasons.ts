// Every condition reason the operator can set, in one place. Reasons are API: tests,
// alerts and runbooks match on them, so they never change once released. Each one is
// documented in the README's troubleshooting table.

/**
 * Why something cannot be used or served: a reason from this file (API: conditions,
 * alerts and runbooks match on it) and a message for humans. The one shape every check,
 * finding and condition carries.
 */
export interface Problem {
  readonly reason: string;
  readonly message: string;
}

/** What one check found: ok (with what it produced), or the problem. */
export type Outcome<T extends object = object> = ({ readonly ok: true } & T) | ({ readonly ok: false } & Problem);

// --- Identity core: why a PFX or PEM pair could not be used. Also what `inspect` prints.

/** The password is wrong, or missing for a protected file. */
export const PasswordIncorrect = 'PasswordIncorrect';
/** The bytes are not PKCS#12 (not DER, truncated, garbage, or the wrong Secret key). */
export const PfxMalformed = 'PfxMalformed';
/** The file uses an encryption, MAC or key algorithm the operator cannot read; the message names it. */
export const UnsupportedAlgorithm = 'UnsupportedAlgorithm';
/** The file holds a private key but no certificate. */
export const NoCertificate = 'NoCertificate';
/** The file holds certificates but no private key. */
export const NoPrivateKey = 'NoPrivateKey';
/** No certificate in the file belongs to the private key. */
export const KeyMismatch = 'KeyMismatch';
/** The leaf certificate's notAfter has passed. */
export const CertificateExpired = 'CertificateExpired';
/** The leaf certificate's notBefore is still in the future. */
export const CertificateNotYetValid = 'CertificateNotYetValid';
/**
 * Decoding the file would cost more than the operator allows one file: too large, too many
 * bags, certificates or keys, too many key-derivation iterations or too much scrypt memory
 * (refused before the work starts), or more time or memory than the decode sandbox gives a
 * file (stopped). The message names the limit; the README says how to raise it.
 */
export const DecodeBudgetExceeded = 'DecodeBudgetExceeded';

// --- Controller: why a binding's inputs could not be read or served.

/** A Secret the binding references does not exist in the binding's namespace. */
export const SecretNotFound = 'SecretNotFound';
/** The Secret exists but lacks the key the binding names. */
export const SecretKeyNotFound = 'SecretKeyNotFound';
/** The certificate works but expires within spec.expiryWarning. The binding stays Ready. */
export const CertificateExpiringSoon = 'CertificateExpiringSoon';
/** Another, older binding already holds the requested spec.listenerPort. */
export const ListenerPortConflict = 'ListenerPortConflict';
/** The spec passed schema validation but cannot be served (see the message). */
export const InvalidSpec = 'InvalidSpec';
/** No listener port is free in the configured range. */
export const ListenerPortsExhausted = 'ListenerPortsExhausted';
/**
 * The port the binding asks for (or every free one) was freed by a binding in another
 * namespace less than --port-quarantine ago: that namespace's callers may still call it.
 * The message says when it frees; the binding is looked at again then.
 */
export const ListenerPortQuarantined = 'ListenerPortQuarantined';
/**
 * The binding's namespace already holds its share of the listener range
 * (--namespace-port-share, or the Namespace's mtls-egress.io/max-listener-ports). No
 * other namespace is affected, and no port held is taken away.
 */
export const NamespacePortQuotaExceeded = 'NamespacePortQuotaExceeded';
/**
 * AllowedNamespaces=False: spec.allowedNamespaces selects namespaces that do not consent
 * (they lack the label caller-of.mtls-egress.io/<binding namespace>: "true"); the message
 * names them. The NetworkPolicy admits only consenting namespaces; Ready is not affected.
 */
export const NamespaceConsentMissing = 'NamespaceConsentMissing';
/**
 * AllowedNamespaces=Unknown: the controller cannot read Namespaces (RBAC), so it cannot
 * say which selected namespaces consent. The NetworkPolicy still admits only those with
 * the consent label: it fails closed.
 */
export const NamespaceConsentUnverified = 'NamespaceConsentUnverified';

// --- Positive and progress reasons.

/** CertificateValid=True: the certificate decoded, matches its key and is in its validity window. */
export const CertificateReady = 'CertificateReady';
/** Ready=True: every check passed. */
export const BindingReady = 'Ready';
/** Programmed=True: every ready proxy replica serves this binding's current certificate. */
export const Programmed = 'Programmed';
/** Programmed=False: the proxy has not yet applied a config with this certificate. */
export const ProgrammingPending = 'Pending';
/** AllowedNamespaces=True: every namespace spec.allowedNamespaces selects consents to calls from the binding's namespace. */
export const NamespacesConsent = 'NamespacesConsent';

/** The reasons a certificate decode can fail with, in the order the identity core checks them. */
export const identityReasons = [
  PasswordIncorrect,
  PfxMalformed,
  UnsupportedAlgorithm,
  NoCertificate,
  NoPrivateKey,
  KeyMismatch,
  CertificateExpired,
  CertificateNotYetValid,
  DecodeBudgetExceeded,
] as const;
export type IdentityReason = (typeof identityReasons)[number];

/** The serverCA Secret holds no PEM certificate. */
export const ServerCAInvalid = 'ServerCAInvalid';

/** Programmed=False: a ready proxy replica refused the newest configuration (nginx -t failed); it keeps serving the last good one. */
export const ProxyConfigRejected = 'ProxyConfigRejected';

/** Programmed=False: the proxy cannot resolve spec.host; the binding is left out so the others' config still loads. */
export const HostUnresolvable = 'HostUnresolvable';

/**
 * Programmed=False: spec.host is, or resolves to, an address the proxy may not reach
 * (loopback, link-local and cloud metadata, the cluster's pod and Service ranges) unless
 * the controller's --allowed-destinations opens it. The binding is left out.
 */
export const DestinationNotAllowed = 'DestinationNotAllowed';

/**
 * DestinationPolicyComplete=False (never gates Ready): the controller does not know the
 * cluster's pod range (no Node has spec.podCIDRs, as with AWS VPC CNI or Calico IPAM, and
 * --cluster-cidrs does not name it), so a binding aimed at a pod address is not refused.
 * Shown on every binding until the range is known.
 */
export const PodRangeUnknown = 'PodRangeUnknown';
