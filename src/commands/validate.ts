import * as reasons from '../api/v1alpha1/reasons.ts';
import type { Problem } from '../api/v1alpha1/reasons.ts';
import { bindingKey, ConditionCertificateValid, type ClientCertificateBinding } from '../api/v1alpha1/types.ts';
import { parseFlagsOrUsage, parseValidateArgs, validateUsage } from '../config.ts';
import type { CommandIo } from './command.ts';
import {
  bindingFrom,
  InputError,
  isBindingObject,
  isObject,
  isSecretObject,
  namespaceOf,
  readManifestDocuments,
  secretFrom,
  secretLookup,
  type ManifestDocument,
} from '../manifests/read-manifests.ts';
import { printable } from '../printable.ts';
import { translateManifests } from '../manifests/translate-manifests.ts';
import type { SecretLike } from '../api/meta.ts';
import { DestinationPolicy } from '../model/destinations.ts';
import { isIpLiteral } from '../model/egress-routes.ts';
import type { PortRange } from '../model/listener-ports.ts';
import { secretReferenceProblem, secretReferences, secretRefField, type SecretReference } from '../model/secret-refs.ts';
import { bundledCrdDirectory, CustomResourceValidators } from '../schema/custom-resource.ts';
import { findCondition } from '../status/conditions.ts';
import type { BindingTranslation } from '../translate/translate.ts';

// `mtls-egress validate`: the GitOps gate. Checks manifests offline, before Argo CD or Flux
// applies them: every binding against the CRD's schema and CEL rules, as the API server
// would, and the certificates in the Secrets of the same set, as the controller would.
// What it prints never holds key material or passwords: schema findings quote bindings
// only, and certificate findings carry the identity core's messages, written not to.

/** Reasons only `validate` reports; the rest are condition reasons and field error types. */
export const SecretNotInSet = 'SecretNotInSet';
export const DuplicateObject = 'DuplicateObject';
export const VersionNotServed = 'VersionNotServed';

export interface Finding extends Problem {
  severity: 'error' | 'warning';
  file: string;
  kind: string;
  namespace: string;
  name: string;
  /** The field, as the API server names it; "" for the object as a whole. */
  path: string;
}

export interface ValidationSummary {
  files: number;
  bindings: number;
  secrets: number;
  /** Objects of other kinds, which are not checked. */
  ignored: number;
  errors: number;
  warnings: number;
}

export interface ValidationReport {
  findings: Finding[];
  summary: ValidationSummary;
}

export interface ValidateOptions {
  now: Date;
  warnDays: number;
}

const dayMs = 86_400_000;
const refusedEverywhere = new DestinationPolicy({ clusterCidrs: [], allowed: [] });
/** Every port the CRD admits: the controller's actual range is not known offline. */
const anyListenerPort: PortRange = { first: 1024, last: 65535 };

export async function runValidate(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlagsOrUsage('validate', validateUsage, io, () => parseValidateArgs(argv, io.now));
  if (!parsed.ok) return parsed.exitCode;
  const args = parsed.config;
  let documents: ManifestDocument[];
  try {
    documents = await readManifestDocuments(args.files);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    io.stderr.write(`mtls-egress validate: ${err.message}\n`);
    return 2;
  }

  let validators: CustomResourceValidators;
  try {
    validators = await CustomResourceValidators.load();
  } catch (err) {
    // A broken installation, not a finding: the run could not check anything.
    io.stderr.write(`mtls-egress validate: cannot read the CRDs in ${bundledCrdDirectory}: ${(err as Error).message}\n`);
    return 2;
  }
  const report = await validateManifests(documents, validators, args);
  io.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : humanReport(report));
  return failsRun(report.findings, args.strict) ? 1 : 0;
}

/** Every finding fails the run except a Secret that is expected to come from elsewhere, unless --strict. */
export function failsRun(findings: readonly Finding[], strict: boolean): boolean {
  return findings.some((f) => strict || f.reason !== SecretNotInSet);
}

/** A document's identity in findings: kind, namespace (default "default"), name. */
function findingAt(document: ManifestDocument): Pick<Finding, 'file' | 'kind' | 'namespace' | 'name'> {
  const { object } = document;
  const metadata = isObject(object.metadata) ? object.metadata : {};
  return {
    file: document.file,
    kind: typeof object.kind === 'string' ? object.kind : '',
    namespace: namespaceOf(object),
    name: typeof metadata.name === 'string' ? metadata.name : '',
  };
}

interface CheckedBinding {
  binding: ClientCertificateBinding;
  document: ManifestDocument;
}

/**
 * The checks, in the order the API server and then the controller would make them.
 * Bindings the schema rejects go no further: the API server would not store them.
 */
export async function validateManifests(
  documents: readonly ManifestDocument[],
  validators: CustomResourceValidators,
  options: ValidateOptions,
): Promise<ValidationReport> {
  const findings: Finding[] = [];
  const bindings = new Map<string, CheckedBinding>();
  const secrets: SecretLike[] = [];
  let customResources = 0;
  let ignored = 0;

  for (const document of documents) {
    const { object } = document;
    const at = findingAt(document);
    const validator = validators.forType(object.apiVersion, object.kind);
    if (validator) {
      customResources++;
      const { errors, object: stored } = validator.validate(object);
      for (const e of errors) findings.push({ severity: e.severity, ...at, path: e.field, reason: e.type, message: e.message });
      if (errors.some((e) => e.severity === 'error') || !isBindingObject(stored)) continue;
      const binding = bindingFrom(stored);
      if (!binding) continue;
      const key = bindingKey(binding);
      const earlier = bindings.get(key);
      if (earlier) {
        findings.push({
          severity: 'warning',
          ...at,
          path: '',
          reason: DuplicateObject,
          message: `also defined in ${earlier.document.file}; the last definition is the one checked, as kubectl apply would apply it`,
        });
      }
      bindings.set(key, { binding, document });
    } else if (validators.definesKind(object.apiVersion, object.kind)) {
      customResources++;
      findings.push({
        severity: 'error',
        ...at,
        path: 'apiVersion',
        reason: VersionNotServed,
        message: `no matches for kind "${at.kind}" in version "${String(object.apiVersion)}"`,
      });
    } else if (isSecretObject(object)) {
      const secret = secretFrom(object);
      if (secret) secrets.push(secret);
    } else {
      ignored++;
    }
  }

  findings.push(...(await setFindings([...bindings.values()], secrets, options)));
  const sorted = sortFindings(findings, documents);
  return {
    findings: sorted,
    summary: {
      files: new Set(documents.map((d) => d.file)).size,
      bindings: customResources,
      secrets: secrets.length,
      ignored,
      errors: sorted.filter((f) => f.severity === 'error').length,
      warnings: sorted.filter((f) => f.severity === 'warning').length,
    },
  };
}

/** What only the whole set shows: the Secrets each binding reads, and listener ports two bindings both ask for. */
async function setFindings(checked: readonly CheckedBinding[], secretList: readonly SecretLike[], options: ValidateOptions): Promise<Finding[]> {
  const findings: Finding[] = [];
  const secrets = secretLookup(secretList);
  // The controller's own translation, with --warn-days as the warning window.
  const translation = await translateManifests(
    checked.map((c) => c.binding),
    secrets,
    {
      now: options.now,
      listenerPorts: anyListenerPort,
      endpointFor: (port) => `:${port}`,
      expiryWarningMs: () => options.warnDays * dayMs,
      // Offline there is no DNS and no cluster: an IP host is checked against the ranges
      // refused everywhere (loopback, link-local and cloud metadata).
      dataPlane: { hostProblem: (host) => (isIpLiteral(host) ? refusedEverywhere.problem(host, [host]) : undefined) },
    },
  );
  const atBinding = new Map(checked.map((c) => [bindingKey(c.binding), findingAt(c.document)]));
  const add = (key: string, severity: Finding['severity'], path: string, problem: Problem): void => {
    findings.push({ severity, ...atBinding.get(key)!, path, reason: problem.reason, message: problem.message });
  };

  for (const t of translation.bindings) {
    const { binding, checks } = t;
    const reported = new Set<string>();
    for (const ref of secretReferences(binding.spec)) {
      // A name no Secret can have is the certificate check's error, not a Secret to look for.
      if (secretReferenceProblem(ref) !== undefined || secrets(binding.metadata.namespace, ref.name) || reported.has(ref.name)) continue;
      reported.add(ref.name);
      add(t.key, 'warning', `${refPath(ref)}.name`, {
        reason: SecretNotInSet,
        message: `Secret ${ref.name} is not in the set; it will be read from the cluster`,
      });
    }
    // The spec problems that the schema admits but the controller refuses (a bare IP host
    // without serverName): the translation decides, so the verdicts agree.
    if (!checks.spec.ok) add(t.key, 'error', 'spec', checks.spec);
    if (!checks.dataPlane.ok) add(t.key, 'error', 'spec.host', checks.dataPlane);
    for (const problem of certificateProblems(t)) add(t.key, problem.severity, problem.path, problem);
  }

  // Offline there is no creation order to say which binding would hold the port, so
  // every binding of a conflict is told of the others.
  const byPort = new Map<number, ClientCertificateBinding[]>();
  for (const { binding } of checked) {
    const port = binding.spec.listenerPort;
    if (port !== undefined) byPort.set(port, [...(byPort.get(port) ?? []), binding]);
  }
  for (const [port, claimants] of byPort) {
    if (claimants.length < 2) continue;
    for (const binding of claimants) {
      const others = claimants
        .filter((b) => b !== binding)
        .map((b) => `ClientCertificateBinding ${bindingKey(b)}`)
        .join(', ');
      add(bindingKey(binding), 'error', 'spec.listenerPort', {
        reason: reasons.ListenerPortConflict,
        message: `listener port ${port} is also requested by ${others}; only the binding created first gets it, the others are not served`,
      });
    }
  }
  return findings;
}

function refPath(ref: SecretReference): string {
  return secretRefField[ref.role];
}

/** The field a missing Secret key is named in. */
function keyPath(ref: SecretReference): string {
  return ref.role === 'tls' ? `${refPath(ref)}.name` : `${refPath(ref)}.key`;
}

interface LocatedProblem extends Problem {
  severity: Finding['severity'];
  path: string;
}

/**
 * The certificate's verdict as the binding's CertificateValid condition gives it, with
 * --warn-days as the warning window. A Secret not in the set was reported already.
 */
function certificateProblems({ binding, checks, status }: BindingTranslation): LocatedProblem[] {
  const refs = secretReferences(binding.spec);
  const certificateRef = refs.find((ref) => ref.role === 'pfx' || ref.role === 'tls');
  const certificatePath = certificateRef ? refPath(certificateRef) : 'spec.certificate';
  const problems: LocatedProblem[] = [];
  const certificate = checks.certificate;
  if (!certificate.ok) {
    if (certificate.reason !== reasons.SecretNotFound) {
      const passwordRef = refs.find((ref) => ref.role === 'password');
      const ref = 'ref' in certificate ? certificate.ref : undefined;
      const path =
        certificate.reason === reasons.PasswordIncorrect && passwordRef
          ? refPath(passwordRef)
          : certificate.reason === reasons.SecretKeyNotFound && ref
            ? keyPath(ref)
            : certificatePath;
      problems.push({ severity: 'error', path, reason: certificate.reason, message: certificate.message });
    }
  } else {
    const verdict = findCondition(status.status.conditions, ConditionCertificateValid);
    if (verdict && verdict.status !== 'True') problems.push({ severity: 'error', path: certificatePath, reason: verdict.reason, message: verdict.message });
    else if (verdict?.reason === reasons.CertificateExpiringSoon)
      problems.push({ severity: 'warning', path: certificatePath, reason: verdict.reason, message: verdict.message });
  }
  const serverCA = checks.serverCA;
  if (!serverCA.ok && serverCA.reason !== reasons.SecretNotFound) {
    const path = serverCA.reason === reasons.SecretKeyNotFound ? 'spec.serverCA.secretRef.key' : 'spec.serverCA.secretRef';
    problems.push({ severity: 'error', path, reason: serverCA.reason, message: serverCA.message });
  }
  return problems;
}

/** In input order (file, then document), each document's findings by field, those about the whole object last. */
function sortFindings(findings: readonly Finding[], documents: readonly ManifestDocument[]): Finding[] {
  const order = new Map<string, number>();
  documents.forEach((d, i) => {
    const at = findingAt(d);
    const key = `${at.file}\0${at.kind}\0${at.namespace}\0${at.name}`;
    if (!order.has(key)) order.set(key, i);
  });
  const rank = (f: Finding): number => order.get(`${f.file}\0${f.kind}\0${f.namespace}\0${f.name}`) ?? documents.length;
  return findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => rank(a.f) - rank(b.f) || comparePaths(a.f.path, b.f.path) || a.i - b.i)
    .map(({ f }) => f);
}

function comparePaths(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '' || b === '') return a === '' ? 1 : -1;
  return a < b ? -1 : 1;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** One line per finding, `ERROR file: Kind ns/name: path: message`, then a summary line. */
function humanReport({ findings, summary }: ValidationReport): string {
  const lines = findings.map((f) => {
    const object = `${f.kind} ${f.namespace}/${f.name || '(no name)'}`;
    const field = f.path === '' ? '' : `${f.path}: `;
    return `${f.severity === 'error' ? 'ERROR' : 'WARN'} ${printable(`${f.file}: ${object}: ${field}${f.message}`)}\n`;
  });
  const outcome = findings.length === 0 ? 'no findings' : `${plural(summary.errors, 'error')}, ${plural(summary.warnings, 'warning')}`;
  const ignored = summary.ignored > 0 ? `; ${plural(summary.ignored, 'object')} of other kinds not checked` : '';
  const counted = `${plural(summary.bindings, 'binding')} and ${plural(summary.secrets, 'Secret')} in ${plural(summary.files, 'file')}`;
  return `${lines.join('')}${counted}: ${outcome}${ignored}\n`;
}
