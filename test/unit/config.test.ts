import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  asksForHelp,
  parseAgentConfig,
  parseControllerConfig,
  parseFlagsOrUsage,
  parseInspectArgs,
  parseRenderArgs,
  parseValidateArgs,
  UsageError,
} from '../../src/config.ts';
import { captureIo } from '../support/captured-io.ts';

// The flag parsers of every command, and the prologue they share. What each command then
// prints is tested end to end in test/e2e/*-cli.test.ts and test/unit/cli*.test.ts.

const clock = () => new Date('2026-06-01T00:00:00Z');
const usage = 'Usage: mtls-egress example [options]\n';

describe('parseFlagsOrUsage', () => {
  const outcomes: Array<[string, () => unknown, { ok: boolean; exitCode?: number; stdout: string; stderr: string | RegExp }]> = [
    ['settings', () => 42, { ok: true, stdout: '', stderr: '' }],
    ['help: the usage on stdout, exit 0', () => 'help', { ok: false, exitCode: 0, stdout: usage, stderr: '' }],
    [
      'a UsageError: the reason and the usage on stderr, exit 2',
      () => {
        throw new UsageError('--x: no');
      },
      { ok: false, exitCode: 2, stdout: '', stderr: `mtls-egress example: --x: no\n\n${usage}` },
    ],
    [
      "parseArgs's own errors count as usage errors",
      () => parseControllerConfig(['--frobnicate'], {}),
      { ok: false, exitCode: 2, stdout: '', stderr: /^mtls-egress example: Unknown option '--frobnicate'.*\n\nUsage: mtls-egress example/s },
    ],
  ];
  for (const [name, parse, want] of outcomes) {
    test(name, () => {
      const run = captureIo();
      const result = parseFlagsOrUsage('example', usage, run.io, parse);
      assert.equal(result.ok, want.ok);
      if (!result.ok) assert.equal(result.exitCode, want.exitCode);
      else assert.equal(result.config, 42);
      assert.equal(run.stdout, want.stdout);
      if (typeof want.stderr === 'string') assert.equal(run.stderr, want.stderr);
      else assert.match(run.stderr, want.stderr);
    });
  }

  test('any other error is a bug: it is thrown, and nothing is printed', () => {
    const run = captureIo();
    assert.throws(
      () =>
        parseFlagsOrUsage('example', usage, run.io, () => {
          throw new RangeError('bug');
        }),
      RangeError,
    );
    assert.equal(run.stdout + run.stderr, '');
  });

  test('asksForHelp: --help or -h anywhere, for the long-running commands', () => {
    assert.equal(asksForHelp(['--namespace', 'x', '-h']), true);
    assert.equal(asksForHelp(['--bogus', '--help']), true);
    assert.equal(asksForHelp(['--namespace', 'help']), false);
  });
});

describe('parseControllerConfig', () => {
  test('the environment fills what the flags leave out', () => {
    const config = parseControllerConfig([], { POD_NAMESPACE: 'ops', POD_NAME: 'controller-0', LOG_LEVEL: 'debug' });
    assert.equal(config.namespace, 'ops');
    assert.equal(config.identity, 'controller-0');
    assert.equal(config.logLevel, 'debug');
  });
});

describe('--dns-server', () => {
  const cases: Array<{ argv: string[]; expect: string[] | 'usage' }> = [
    { argv: [], expect: [] },
    { argv: ['--dns-server', '10.96.0.10'], expect: ['10.96.0.10'] },
    { argv: ['--dns-server', '127.0.0.1:5353,10.96.0.10'], expect: ['127.0.0.1:5353', '10.96.0.10'] },
    { argv: ['--dns-server', '127.0.0.1:5353', '--dns-server', 'fd00::a'], expect: ['127.0.0.1:5353', 'fd00::a'] },
    { argv: ['--dns-server', '[fd00::a]:53'], expect: ['[fd00::a]:53'] },
    { argv: ['--dns-server', 'kube-dns.kube-system'], expect: 'usage' },
    { argv: ['--dns-server', '127.0.0.1:99999'], expect: 'usage' },
  ];
  for (const c of cases) {
    test(`${c.argv.join(' ') || '(none)'} → ${JSON.stringify(c.expect)}`, () => {
      if (c.expect === 'usage') assert.throws(() => parseControllerConfig(c.argv, {}), /--dns-server/);
      else assert.deepEqual(parseControllerConfig(c.argv, {}).dnsServers, c.expect);
    });
  }
});

describe('parseControllerConfig: listener ports belong to namespaces', () => {
  test('defaults: a 10m quarantine, a tenth of the range per namespace', () => {
    const config = parseControllerConfig([], {});
    assert.equal(config.portQuarantineMs, 10 * 60_000);
    assert.equal(config.namespacePortShare, 100);
    assert.equal(config.brokenPortGraceMs, 24 * 60 * 60_000);
    assert.equal(parseControllerConfig(['--broken-port-grace', '0'], {}).brokenPortGraceMs, 0);
  });

  test('--port-quarantine 0 turns it off; --namespace-port-share takes a share or a count', () => {
    const config = parseControllerConfig(['--port-quarantine', '0', '--namespace-port-share', '25%'], {});
    assert.equal(config.portQuarantineMs, 0);
    assert.equal(config.namespacePortShare, 250);
    assert.equal(parseControllerConfig(['--namespace-port-share', '7'], {}).namespacePortShare, 7);
  });

  for (const [argv, message] of [
    [['--port-quarantine', 'soon'], /--port-quarantine/],
    [['--namespace-port-share', '0%'], /--namespace-port-share/],
    [['--namespace-port-share', 'half'], /--namespace-port-share/],
  ] as const) {
    test(`usage error: ${argv.join(' ')}`, () => assert.throws(() => parseControllerConfig(argv, {}), message));
  }
});

describe('parseRenderArgs', () => {
  test('defaults: HAProxy; the clock is the time when there is no --now', () => {
    assert.deepEqual(parseRenderArgs(['-f', 'a.yaml', '-f', 'dir', '--out', 'out'], clock), {
      files: ['a.yaml', 'dir'],
      out: 'out',
      dataPlane: 'haproxy',
      listenAddress: '127.0.0.1',
      listenerPorts: { first: 10000, last: 10999 },
      now: clock(),
      systemTrustBundle: '/etc/ssl/certs/ca-certificates.crt',
    });
  });

  test('-h asks for the usage before anything is required', () => assert.equal(parseRenderArgs(['-h'], clock), 'help'));

  const usageErrors: Array<[string, string[], RegExp]> = [
    ['no -f', ['--out', 'o'], /-f FILE\|DIR is required/],
    ['no --out', ['-f', 'a'], /--out DIR is required/],
    ['an unknown data plane', ['-f', 'a', '--out', 'o', '--data-plane', 'envoy'], /--data-plane/],
    ['HAProxy with an --out its config cannot name', ['-f', 'a', '--out', '/tmp/a b', '--data-plane', 'haproxy'], /--out: HAProxy/],
    ['a listen address that is not an IP', ['-f', 'a', '--out', 'o', '--listen-address', 'localhost'], /--listen-address/],
    ['a bad --now', ['-f', 'a', '--out', 'o', '--now', 'yesterday'], /--now/],
  ];
  for (const [name, argv, message] of usageErrors) {
    test(`usage error: ${name}`, () =>
      assert.throws(
        () => parseRenderArgs(argv, clock),
        (err: Error & { code?: string }) => err.code === 'ERR_USAGE' && message.test(err.message),
      ));
  }
});

describe('every parser', () => {
  // parseFlagsOrUsage reports these as usage errors, with parseArgs' own message.
  const parsers: Array<[string, (argv: string[]) => unknown]> = [
    ['controller', (argv) => parseControllerConfig(argv, {})],
    ['agent', (argv) => parseAgentConfig(argv, {})],
    ['render', (argv) => parseRenderArgs(argv, clock)],
    ['validate', (argv) => parseValidateArgs(argv, clock)],
    ['inspect', (argv) => parseInspectArgs(argv)],
  ];
  for (const [name, parse] of parsers) {
    test(`${name}: an unknown flag is parseArgs' error`, () => assert.throws(() => parse(['--frobnicate']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' }));
  }
});

describe('parseValidateArgs', () => {
  test('defaults', () => {
    assert.deepEqual(parseValidateArgs(['-f', 'a.yaml'], clock), { files: ['a.yaml'], warnDays: 30, now: clock(), json: false, strict: false });
  });

  test('--now wins over the clock', () => {
    const args = parseValidateArgs(['-f', 'a', '--now', '2030-01-01T00:00:00Z', '--strict', '--json', '--warn-days', '7'], clock);
    assert.deepEqual(args, { files: ['a'], warnDays: 7, now: new Date('2030-01-01T00:00:00Z'), json: true, strict: true });
  });

  for (const [name, argv, message] of [
    ['no -f', [], /-f FILE\|DIR is required/],
    ['days that are not whole', ['-f', 'a', '--warn-days', '1.5'], /--warn-days/],
  ] as Array<[string, string[], RegExp]>) {
    test(`usage error: ${name}`, () => assert.throws(() => parseValidateArgs(argv, clock), message));
  }
});

describe('parseInspectArgs', () => {
  test('a PFX file; no --now leaves the time to the clock', () => {
    assert.deepEqual(parseInspectArgs(['id.p12', '--password-env', 'PW']), {
      source: { kind: 'pfx', file: 'id.p12' },
      passwordFile: undefined,
      passwordEnv: 'PW',
      json: false,
      now: undefined,
    });
  });

  test('a PEM pair', () => {
    const args = parseInspectArgs(['--cert', 'c.pem', '--key', 'k.pem', '--json']);
    assert.notEqual(args, 'help');
    if (args !== 'help') assert.deepEqual(args.source, { kind: 'pem', cert: 'c.pem', key: 'k.pem' });
  });

  test('--help', () => assert.equal(parseInspectArgs(['--help']), 'help'));
});
