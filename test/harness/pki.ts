import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** PEM file paths of everything the control plane needs to speak TLS and sign tokens. */
export interface ControlPlanePki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  /** Signs service-account tokens. */
  serviceAccountKey: string;
  /** Verifies them; the apiserver does not derive it from a PKCS#8 private key. */
  serviceAccountPublicKey: string;
}

// Long enough for a local `cluster:up` left running for weeks; nothing here is a secret
// worth rotating, the CA is thrown away with the state directory.
const validityDays = '365';

// EC P-256 throughout: key generation takes milliseconds, where RSA-2048 takes a good
// fraction of a second per key, and kube-apiserver accepts ECDSA for every one of these.
const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(error)}`, { cause: error });
  }
}

async function issueLeaf(pki: ControlPlanePki, cert: string, key: string, subject: string, extensions: string[]): Promise<void> {
  const addext = extensions.flatMap((extension) => ['-addext', extension]);
  await openssl([
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    key,
    '-out',
    cert,
    '-subj',
    subject,
    '-days',
    validityDays,
    '-CA',
    pki.caCert,
    '-CAkey',
    pki.caKey,
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    ...addext,
  ]);
}

export interface IssuedCertificate {
  cert: string;
  key: string;
}

/**
 * A certificate from the control plane's CA, written as `<name>.crt`/`<name>.key` beside
 * it: a client identity (`/O=group/CN=user`, as the apiserver reads it) and, with
 * `servingIps`, a serving certificate for those addresses too.
 */
export async function issueCertificate(
  pki: ControlPlanePki,
  name: string,
  subject: string,
  options: { servingIps?: readonly string[] } = {},
): Promise<IssuedCertificate> {
  const directory = dirname(pki.caCert);
  const issued = { cert: join(directory, `${name}.crt`), key: join(directory, `${name}.key`) };
  const serving = options.servingIps ?? [];
  const extensions =
    serving.length === 0
      ? ['extendedKeyUsage=clientAuth']
      : ['extendedKeyUsage=serverAuth,clientAuth', `subjectAltName=${serving.map((ip) => `IP:${ip}`).join(',')}`];
  await issueLeaf(pki, issued.cert, issued.key, subject, extensions);
  return issued;
}

/**
 * Creates a throwaway CA, the apiserver's serving certificate, an admin client
 * certificate in system:masters (so RBAC never gets in the harness's way, while tests can
 * still impersonate or mint less privileged identities), and a service-account signing key.
 */
export async function createControlPlanePki(directory: string, options: { extraServingIps?: readonly string[] } = {}): Promise<ControlPlanePki> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const file = (name: string): string => join(directory, name);
  const pki: ControlPlanePki = {
    caCert: file('ca.crt'),
    caKey: file('ca.key'),
    servingCert: file('apiserver.crt'),
    servingKey: file('apiserver.key'),
    adminCert: file('admin.crt'),
    adminKey: file('admin.key'),
    serviceAccountKey: file('service-account.key'),
    serviceAccountPublicKey: file('service-account.pub'),
  };
  await openssl([
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    pki.caKey,
    '-out',
    pki.caCert,
    '-subj',
    '/CN=mtls-egress-test-ca',
    '-days',
    validityDays,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await Promise.all([
    issueLeaf(pki, pki.servingCert, pki.servingKey, '/CN=kube-apiserver', [
      // kubernetes.default.svc names let in-cluster style clients verify the certificate too;
      // a control plane that serves a node adds the node's address and the Service IP.
      `subjectAltName=IP:127.0.0.1,${(options.extraServingIps ?? []).map((ip) => `IP:${ip},`).join('')}DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`,
      'extendedKeyUsage=serverAuth',
    ]),
    issueLeaf(pki, pki.adminCert, pki.adminKey, '/O=system:masters/CN=mtls-egress-test-admin', ['extendedKeyUsage=clientAuth']),
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', pki.serviceAccountKey]).then(() =>
      openssl(['pkey', '-in', pki.serviceAccountKey, '-pubout', '-out', pki.serviceAccountPublicKey]),
    ),
  ]);
  return pki;
}
