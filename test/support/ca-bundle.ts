import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A partner's CA bundle of about `bytes` of PEM: `first` (the CA the partner's server
 * certificate chains to, so the bundle verifies it) and as many distinct self-signed
 * RSA-4096 CA certificates as it takes (about 1.9 KiB each; one key signs them all, so
 * making 240 takes half a minute on a busy machine, so the filler is kept in the temporary
 * directory for the next run). Real certificates: the controller parses every block of a
 * serverCA, and HAProxy and nginx load them.
 */
export function caBundle(bytes: number, first: string): string {
  // As the controller keeps a bundle (one "\n" between blocks and after the last), so its digest is the bundle object's name.
  const normalized = first.replace(/\r\n/g, '\n').trim();
  const head = normalized === '' ? '' : `${normalized}\n`;
  return `${head}${filler(bytes - head.length)}`;
}

function filler(bytes: number): string {
  if (bytes <= 0) return '';
  const cached = join(tmpdir(), `mtls-egress-ca-filler-${bytes}.pem`);
  if (existsSync(cached)) return readFileSync(cached, 'utf8');
  const dir = mkdtempSync(join(tmpdir(), 'ca-bundle-'));
  try {
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4096', '-out', key], { stdio: 'ignore' });
    const blocks: string[] = [];
    let size = 0;
    for (let i = 0; size < bytes; i++) {
      const out = join(dir, `ca-${i}.pem`);
      execFileSync('openssl', ['req', '-x509', '-new', '-key', key, '-subj', `/O=mtls-egress bench/CN=Filler CA ${i}`, '-days', '30', '-out', out], {
        stdio: 'ignore',
      });
      const pem = readFileSync(out, 'utf8');
      blocks.push(pem);
      size += pem.length;
    }
    writeFileSync(`${cached}.tmp`, blocks.join(''));
    renameSync(`${cached}.tmp`, cached);
    return blocks.join('');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
