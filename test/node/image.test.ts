// What `npm run image` builds (test/harness/build-images.sh): the repo's Dockerfile on a
// node:24-trixie-slim made here. The build machine's CA bundle goes in only as a build
// secret for `npm ci`; none of it may ship. The archive's layers are uncompressed tars,
// so a certificate that shipped would be in its bytes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { test } from 'node:test';
import { findImages, requireImage } from '../harness/node-cluster.ts';

const image = requireImage(await findImages(), 'project', 'npm run image');
const archive = readFileSync(image.archive);

interface DockerArchiveManifest {
  Config: string;
  RepoTags: string[];
}

/** The certificates of a PEM bundle, each as its base64 body on one line. */
function pemBodies(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((match) => (match[1] ?? '').replace(/\s+/g, ''));
}

/** One file of the docker-archive, read with tar. */
function archiveFile(name: string): string {
  return execFileSync('tar', ['-xOf', image.archive, name], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
}

test('the image is named as deploy/ names it, and runs as uid 65532', () => {
  const [manifest] = JSON.parse(archiveFile('manifest.json')) as DockerArchiveManifest[];
  assert.deepEqual(manifest?.RepoTags, [image.reference]);
  assert.match(image.reference, /^docker\.io\/library\/mtls-egress:\d+\.\d+\.\d+$/);
  const config = JSON.parse(archiveFile(manifest?.Config ?? '')) as { config: { User: string; Entrypoint: string[] } };
  assert.equal(config.config.User, '65532:65532');
  // prlimit turns core dumps off (RLIMIT_CORE 0, soft and hard) and execs node.
  assert.deepEqual(config.config.Entrypoint, ['prlimit', '--core=0', '--', 'node', '/app/dist/cli.js']);
});

test("no certificate of the build machine's own CA bundle is in the image, nor the secret's file", () => {
  const bundlePath = process.env.MTLS_EGRESS_BUILD_CA_BUNDLE ?? process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
  // Public CAs ship on purpose: Node's own list, and the image's Debian ca-certificates
  // package (HAProxy's @system-ca and nginx's trust bundle), whose certificates Debian
  // keeps in /usr/share/ca-certificates/mozilla on the build machine too.
  const debianDir = '/usr/share/ca-certificates/mozilla';
  const debianShips = existsSync(debianDir) ? readdirSync(debianDir).flatMap((f) => pemBodies(readFileSync(`${debianDir}/${f}`, 'utf8'))) : [];
  const publicCas = new Set([...rootCertificates.flatMap(pemBodies), ...debianShips]);
  // The machine's own additions (a TLS-intercepting proxy's CA) are what must not ship.
  const machineOnly = pemBodies(readFileSync(bundlePath, 'utf8')).filter((body) => !publicCas.has(body));
  for (const body of machineOnly) {
    const der = Buffer.from(body, 'base64');
    assert.equal(archive.includes(der), false, 'a machine CA certificate (DER) is in the image');
    assert.equal(archive.includes(body.slice(0, 64)), false, 'a machine CA certificate (PEM) is in the image');
  }
  assert.equal(archive.includes('run/secrets/npm-ca'), false, "the build secret's mount point is in a layer");
});
