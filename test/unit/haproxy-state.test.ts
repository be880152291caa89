import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { haproxyErrorReason, loadTimeoutMs } from '../../src/dataplane/haproxy/process.ts';
import { splitAnswers } from '../../src/dataplane/haproxy/runtime.ts';
import {
  isEnabled,
  parseCertificateDetail,
  parseCertificateDetails,
  parseDroppedLogs,
  parseMapEntries,
  parseServersConn,
  parseServersState,
  parseShowProc,
  parseStoreList,
} from '../../src/dataplane/haproxy/state.ts';

// The runtime API's answers as Debian's HAProxy prints them (copied from real sessions):
// 2.6.12 (bookworm) first, then 3.0.11 (trixie, the image's), whose formats are the same
// for every command the agent reads.

describe('HAProxy runtime API answers', () => {
  test('show info: DroppedLogs, or nothing when the answer has none', () => {
    const text = ['Name: HAProxy', 'Version: 2.6.12-1+deb12u4', 'Pid: 4242', 'DroppedLogs: 17', 'BusyPolling: 0', ''].join('\n');
    assert.equal(parseDroppedLogs(text), 17);
    assert.equal(parseDroppedLogs('Name: HAProxy\nPid: 4242\n'), undefined);
    assert.equal(parseDroppedLogs('Unknown command.\n'), undefined);
  });

  test('show servers state: columns found by name; the version line and blank lines skipped', () => {
    const text = [
      '1',
      '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
      '4 p20000 1 sa 127.0.0.1 2 0 1 1 1 1 0 2 0 0 0 0 - 9443 - 1 0 - - 0',
      '5 p20001 4 s8 - 0 1 1 1 0 1 0 0 0 0 0 0 nosuch.example 443 - 0 0 - - 0',
      '',
    ].join('\n');
    assert.deepEqual(parseServersState(text), [
      { backend: 'p20000', name: 'sa', address: '127.0.0.1', port: 9443, adminState: 0, fqdn: '-' },
      { backend: 'p20001', name: 's8', address: '-', port: 443, adminState: 1, fqdn: 'nosuch.example' },
    ]);
    assert.deepEqual(parseServersState('1\n'), []);
  });

  test('admin states: maintenance set by the API, the config or a drain takes a server out; a failed resolution does not count as ours', () => {
    const cases: Array<[number, boolean]> = [
      [0, true],
      [0x01, false],
      [0x04, false],
      [0x08, false],
      [0x20, true],
      [0x21, false],
    ];
    for (const [adminState, enabled] of cases) assert.equal(isEnabled({ adminState }), enabled, `0x${adminState.toString(16)}`);
  });

  test('show servers conn', () => {
    const text = [
      '# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[2]',
      'p20001/se 5/1 127.0.0.1 9443 - 0 0 0 0 0 0 0 0',
      'p20001/sb2 5/2 127.0.0.1 9443 - 0 1 4 4 0 0 0 3 2 1',
      '',
    ].join('\n');
    assert.deepEqual(
      [...parseServersConn(text)],
      [
        ['p20001/se', { used: 0, idle: 0 }],
        ['p20001/sb2', { used: 1, idle: 3 }],
      ],
    );
  });

  test('show ssl cert and show ssl ca-file: names, and open transactions marked with *', () => {
    assert.deepEqual(parseStoreList('# filename\n/etc/m/current/certs/a.pem\n*/etc/m/current/certs/b.pem\n'), {
      loaded: new Set(['/etc/m/current/certs/a.pem']),
      transactions: ['/etc/m/current/certs/b.pem'],
    });
    const cas = parseStoreList('# filename\n/etc/m/current/ca/a.pem - 1 certificate(s)\n@system-ca - 145 certificate(s)\n');
    assert.deepEqual([...cas!.loaded], ['/etc/m/current/ca/a.pem', '@system-ca']);
  });

  test('a listing refused while another session holds the certificate lock is no listing, not an empty store', () => {
    // HAProxy 2.6.12's words when `show ssl ca-file` runs beside a `show ssl cert` of a few hundred names.
    assert.equal(parseStoreList("Can't display the CA file entries: Operations on certificates are currently locked!\n"), undefined);
    assert.equal(parseStoreList("Can't show!\nOperations on certificates are currently locked!\n"), undefined);
    assert.deepEqual(parseStoreList('# filename\n'), { loaded: new Set(), transactions: [] });
  });

  test('show ssl cert NAME: serial and SHA-1', () => {
    const text = [
      'Filename: /tmp/hx/certs/b.pem',
      'Status: Used',
      'Serial: 09F9D3DC31ED0321318028B6166C11C95465C378',
      'notBefore: Nov 26 16:28:35 2026 GMT',
      'Subject Alternative Name: ',
      'SHA1 FingerPrint: 2958018144CF5058084D591A394A2619E1D7CABC',
      'Subject: /CN=client-b',
    ].join('\n');
    assert.deepEqual(parseCertificateDetail(text), { serial: '09F9D3DC31ED0321318028B6166C11C95465C378', sha1: '2958018144CF5058084D591A394A2619E1D7CABC' });
    assert.equal(parseCertificateDetail("Can't display the certificate: Not found or the certificate is a bundle!\n"), undefined);
  });

  test('several show ssl cert NAME on one line: each answer by its name; a name HAProxy does not hold is absent', () => {
    const answer = (name: string, serial: string, sha1: string): string =>
      [`Filename: ${name}`, 'Status: Used', `Serial: ${serial}`, 'Subject Alternative Name: ', `SHA1 FingerPrint: ${sha1}`, 'OCSP Response Key: ', '', ''].join(
        '\n',
      );
    const text = [
      answer('/tmp/hx/certs/a.pem', '01', 'aaaa'),
      "Can't display the certificate: Not found or the certificate is a bundle!\n",
      answer('/tmp/hx/certs/c.pem', '03', 'CCCC'),
    ].join('');
    assert.deepEqual(
      parseCertificateDetails(text),
      new Map([
        ['/tmp/hx/certs/a.pem', { serial: '01', sha1: 'AAAA' }],
        ['/tmp/hx/certs/c.pem', { serial: '03', sha1: 'CCCC' }],
      ]),
    );
    assert.deepEqual(parseCertificateDetails(''), new Map());
  });

  test('show map FILE', () => {
    assert.deepEqual(
      [...parseMapEntries('0x558a7b375d80 20000 p20000\n0x558a7b375e00 20001 p20001\n\n')],
      [
        ['20000', 'p20000'],
        ['20001', 'p20001'],
      ],
    );
  });

  test('show proc: reload counters and the current workers, not the old ones', () => {
    const text = [
      '#<PID>          <type>          <reloads>       <uptime>        <version>      ',
      '20048           master          2 [failed: 1]   0d00h00m28s     2.6.12-1+deb12u4',
      '# workers',
      '20735           worker          0               0d00h00m01s     2.6.12-1+deb12u4',
      '# old workers',
      '20052           worker          1               0d00h00m27s     2.6.12-1+deb12u4',
      '# programs',
      '',
    ].join('\n');
    assert.deepEqual(parseShowProc(text), { reloads: 2, failedReloads: 1, workers: [20735] });
    assert.equal(parseShowProc('Unknown command.\n'), undefined);
  });

  test("HAProxy's reason: the first ALERT, without its pid and the generation directory, redacted", () => {
    const output = [
      '[NOTICE]   (19817) : haproxy version is 2.6.12-1+deb12u4',
      "[ALERT]    (19817) : config : parsing [/etc/m/gen-abc/haproxy.cfg:14] : unknown keyword 'bogus'",
      '[ALERT]    (19817) : config : Fatal errors found in configuration.',
    ].join('\n');
    assert.equal(haproxyErrorReason(output, { directory: '/etc/m/gen-abc' }), "config : parsing [haproxy.cfg:14] : unknown keyword 'bogus'");
    const leaked = `[ALERT] (1) : -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----`;
    assert.doesNotMatch(haproxyErrorReason(leaked), /MIIE/);
  });
});

describe("HAProxy 3.0.11's answers (Debian trixie, two threads), from a real session", () => {
  test('show servers state: a config server, and one from `add server` before and after `enable server`', () => {
    const header =
      '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port';
    assert.deepEqual(parseServersState(`1\n${header}\n4 p20500 1 s6884f793acbb 127.0.0.1 2 0 1 1 2 1 0 2 0 0 0 0 - 46735 - 1 0 - - 0\n\n`), [
      { backend: 'p20500', name: 's6884f793acbb', address: '127.0.0.1', port: 46735, adminState: 0, fqdn: '-' },
    ]);
    const added = parseServersState(`1\n${header}\n5 p20501 1 sdyn 127.0.0.1 0 1 1 1 0 1 0 0 0 0 0 0 - 40361 - 1 0 - - 0\n\n`);
    assert.deepEqual(added, [{ backend: 'p20501', name: 'sdyn', address: '127.0.0.1', port: 40361, adminState: 1, fqdn: '-' }]);
    assert.equal(isEnabled(added[0]!), false, 'a server `add server` makes starts in forced maintenance');
    const enabled = parseServersState(`1\n${header}\n5 p20501 1 sdyn 127.0.0.1 2 0 1 1 0 1 0 0 0 0 0 0 - 40361 - 1 0 - - 0\n\n`);
    assert.equal(isEnabled(enabled[0]!), true);
  });

  test('show servers conn: one idle_per_thr column per thread; a server added at run time pools idle connections', () => {
    const text = [
      '# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[2]',
      'p20500/s6884f793acbb 4/1 127.0.0.1 46735 - 5000 0 1 1 1 0 -1 1 1 0',
      'p20501/sdyn 5/1 127.0.0.1 40361 - 5000 0 0 0 0 0 -1 0 0 0',
      '',
      '',
    ].join('\n');
    assert.deepEqual(
      [...parseServersConn(text)],
      [
        ['p20500/s6884f793acbb', { used: 0, idle: 1 }],
        ['p20501/sdyn', { used: 0, idle: 0 }],
      ],
    );
  });

  test('show ssl cert, show ssl ca-file, show ssl cert NAME', () => {
    assert.deepEqual(parseStoreList('# filename\n/tmp/cap/run/certs/team-a_alpha.333eae50dc5743ec.pem\n\n'), {
      loaded: new Set(['/tmp/cap/run/certs/team-a_alpha.333eae50dc5743ec.pem']),
      transactions: [],
    });
    const cas = parseStoreList(
      '# filename\n/tmp/cap/run/ca/6c862acdc421ec667af6773a2530859bda75c48d0c55a806f7609fb3a8972c6d.pem - 1 certificate(s)\n@system-ca - 145 certificate(s)\n\n',
    );
    assert.deepEqual([...cas!.loaded], ['/tmp/cap/run/ca/6c862acdc421ec667af6773a2530859bda75c48d0c55a806f7609fb3a8972c6d.pem', '@system-ca']);
    const detail = [
      'Filename: /tmp/cap/run/certs/team-a_alpha.333eae50dc5743ec.pem',
      'Status: Used',
      'Serial: 015AE7802D53D11546',
      'notBefore: Dec  7 20:08:38 2026 GMT',
      'notAfter: Dec  7 21:08:38 2027 GMT',
      'Subject Alternative Name: ',
      'Algorithm: RSA2048',
      'SHA1 FingerPrint: 2AAF3FB36A5E96B03729F0EA8EBB27BA6691D431',
      'Subject: /CN=alpha.client/O=Acme',
      'Issuer: /CN=Partner CA/O=Partner',
      'OCSP Response Key: ',
      '',
      '',
    ].join('\n');
    assert.deepEqual(parseCertificateDetail(detail), { serial: '015AE7802D53D11546', sha1: '2AAF3FB36A5E96B03729F0EA8EBB27BA6691D431' });
  });

  test("show map, show info, and the master CLI's show proc", () => {
    assert.deepEqual([...parseMapEntries('0x7fbb54b62f10 20500 p20500\n\n')], [['20500', 'p20500']]);
    const info = [
      'Name: HAProxy',
      'Version: 3.0.11-1+deb13u5',
      'Release_date: 2026/11/18',
      'Nbthread: 2',
      'Pid: 4456',
      'DroppedLogs: 0',
      'BusyPolling: 0',
      '',
    ].join('\n');
    assert.equal(parseDroppedLogs(info), 0);
    const proc = [
      '#<PID>          <type>          <reloads>       <uptime>        <version>      ',
      '4454            master          0 [failed: 0]   0d00h00m02s     3.0.11-1+deb13u5',
      '# workers',
      '4456            worker          0               0d00h00m02s     3.0.11-1+deb13u5',
      '# programs',
      '',
      '',
    ].join('\n');
    assert.deepEqual(parseShowProc(proc), { reloads: 0, failedReloads: 0, workers: [4456] });
  });
});

describe('splitAnswers: the runtime API answers of chained commands, each ended by an empty line', () => {
  const cases: Array<{ name: string; reply: string; want: string[] | undefined }> = [
    { name: 'a server added, then enabled (an empty answer)', reply: 'New server registered.\n\n\n', want: ['New server registered.', ''] },
    { name: 'a server taken out, then deleted', reply: '\nServer deleted.\n\n', want: ['', 'Server deleted.'] },
    {
      name: 'a store that existed, then its transaction',
      reply: "Certificate '/c.pem' already exists!\n\nTransaction created for certificate /c.pem!\n\n",
      want: ["Certificate '/c.pem' already exists!", 'Transaction created for certificate /c.pem!'],
    },
    { name: 'a multi-line answer', reply: 'Committing /c.pem\nSuccess!\n\n', want: ['Committing /c.pem\nSuccess!'] },
    { name: 'a reply cut short: no answer ends', reply: 'New server registered.\n', want: undefined },
    { name: 'nothing', reply: '', want: undefined },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(splitAnswers(c.reply), c.want));
});

describe('loadTimeoutMs: a start or reload may take the flag plus 10 ms per certificate', () => {
  const cases: Array<[base: number, certificates: number, want: number]> = [
    [30_000, 0, 30_000],
    [30_000, 50, 30_500],
    [30_000, 10_000, 130_000],
    [5_000, -1, 5_000],
  ];
  for (const [base, certificates, want] of cases)
    test(`${base} ms, ${certificates} certificates: ${want} ms`, () => assert.equal(loadTimeoutMs(base, certificates), want));
});
