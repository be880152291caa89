import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { nginxErrorReason, redactKeyMaterial, reloadObserved, testNginxConfig } from '../../src/dataplane/nginx/control.ts';
import { nginxBinary } from '../support/nginx-process.ts';

const keyPem =
  '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nS3CR3TS3CR3TS3CR3TS3CR3TS3CR3TS3CR3TS3CR3T=\n-----END PRIVATE KEY-----';

describe('redactKeyMaterial', () => {
  test('PEM blocks, whole or cut off, and long base64 runs', () => {
    assert.equal(redactKeyMaterial(`before ${keyPem} after`), 'before [redacted PEM] after');
    assert.equal(redactKeyMaterial('x -----BEGIN PRIVATE KEY-----\nMIIEvQ'), 'x [redacted PEM]');
    assert.equal(redactKeyMaterial('value "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" is bad'), 'value "[redacted]" is bad');
  });

  test('ordinary nginx messages, config hashes and digests pass unchanged', () => {
    for (const line of ['unknown directive "no_such_directive" in nginx.conf:12', `open() "/etc/mtls-egress/gen-${'0a'.repeat(32)}/nginx.conf" failed`]) {
      assert.equal(redactKeyMaterial(line), line);
    }
  });
});

describe('nginxErrorReason', () => {
  const directory = `/etc/mtls-egress/gen-${'a'.repeat(64)}`;
  const table: Array<{ name: string; output: string; reason: string }> = [
    {
      name: 'nginx -t with -e stderr: the [emerg] line, without time, pid or generation directory',
      output: `2026/11/26 11:25:46 [emerg] 8203#8203: unknown directive "bogus" in ${directory}/nginx.conf:5\nnginx: configuration file ${directory}/nginx.conf test failed\n`,
      reason: 'unknown directive "bogus" in nginx.conf:5',
    },
    {
      name: "nginx's own prefix form",
      output: 'nginx: [emerg] bind() to 127.0.0.1:10001 failed (98: Address already in use)\n',
      reason: 'bind() to 127.0.0.1:10001 failed (98: Address already in use)',
    },
    {
      name: 'a certificate that does not load names the file, never its content',
      output: `2026/11/26 11:28:54 [emerg] 9286#9286: cannot load certificate "${directory}/certs/a.crt": PEM_read_bio_X509_AUX() failed\n`,
      reason: 'cannot load certificate "certs/a.crt": PEM_read_bio_X509_AUX() failed',
    },
    { name: 'key material echoed back is redacted', output: `nginx: [emerg] invalid value "${keyPem}"\n`, reason: 'invalid value "[redacted PEM]"' },
    { name: 'no [emerg]: the first line', output: '\nsomething odd\nmore\n', reason: 'something odd' },
    { name: 'nothing at all', output: '', reason: 'nginx gave no reason' },
  ];
  for (const { name, output, reason } of table) test(name, () => assert.equal(nginxErrorReason(output, { directory }), reason));

  test('short enough for an annotation', () => {
    assert.ok(nginxErrorReason(`nginx: [emerg] ${'x '.repeat(1000)}`).length <= 300);
  });
});

describe('reloadObserved', () => {
  const titles = (entries: Array<[number, string]>): Map<number, string> => new Map(entries);
  const worker = 'nginx: worker process';
  const shuttingDown = 'nginx: worker process is shutting down';
  const before = titles([
    [10, worker],
    [11, worker],
  ]);
  const table: Array<{ name: string; now: Map<number, string>; observed: boolean }> = [
    { name: 'nothing happened yet', now: before, observed: false },
    {
      name: 'new workers started, old ones not yet told to quit',
      now: titles([
        [10, worker],
        [11, worker],
        [20, worker],
        [21, worker],
      ]),
      observed: false,
    },
    {
      name: 'new workers, old ones shutting down',
      now: titles([
        [10, shuttingDown],
        [11, shuttingDown],
        [20, worker],
        [21, worker],
      ]),
      observed: true,
    },
    {
      name: 'new workers, old ones gone',
      now: titles([
        [20, worker],
        [21, worker],
      ]),
      observed: true,
    },
    {
      name: 'one worker crashed and was respawned, no reload',
      now: titles([
        [10, worker],
        [22, worker],
      ]),
      observed: false,
    },
    {
      name: 'the config was refused: the same workers',
      now: titles([
        [10, worker],
        [11, worker],
      ]),
      observed: false,
    },
    { name: 'the master lost every worker and started none', now: titles([]), observed: false },
  ];
  for (const { name, now, observed } of table) test(name, () => assert.equal(reloadObserved(before, now), observed));

  test('workers still shutting down from an earlier reload do not count as active', () => {
    const earlier = titles([
      [5, shuttingDown],
      [10, worker],
    ]);
    assert.equal(
      reloadObserved(
        earlier,
        titles([
          [5, shuttingDown],
          [10, shuttingDown],
          [20, worker],
        ]),
      ),
      true,
    );
  });
});

describe('testNginxConfig against the real nginx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mtls-egress-nginx-t-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const conf = (body: string): string => {
    const path = join(dir, `nginx-${Math.random().toString(16).slice(2)}.conf`);
    writeFileSync(
      path,
      `pid nginx.pid;\nerror_log error.log;\nevents {}\nhttp {\n  client_body_temp_path t1; proxy_temp_path t2; fastcgi_temp_path t3; uwsgi_temp_path t4; scgi_temp_path t5;\n${body}\n}\n`,
    );
    return path;
  };
  const paths = { binary: nginxBinary(), prefix: dir };

  test('a valid config passes', async () => {
    assert.deepEqual(await testNginxConfig(paths, conf('server { listen 127.0.0.1:1; }')), { ok: true });
  });

  test("a refused config gives nginx's reason, with the file named relative to its directory", async () => {
    const result = await testNginxConfig(paths, conf('no_such_directive on;'));
    assert.ok(!result.ok);
    assert.match(result.reason, /^unknown directive "no_such_directive" in nginx-[0-9a-f]+\.conf:6$/);
  });

  test('a missing binary is no verdict on the config: it throws, to be retried', async () => {
    await assert.rejects(testNginxConfig({ ...paths, binary: join(dir, 'no-nginx') }, conf('')), { code: 'ERR_NGINX_TEST_DID_NOT_RUN' });
  });
});
