import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAgentConfig } from '../../src/config.ts';

describe('parseAgentConfig', () => {
  test('defaults: HAProxy (managed, threads following the CPU limit); the prefix is the config dir, the pid file is where the rendered config puts it', () => {
    const config = parseAgentConfig(['--namespace', 'proxy', '--config-dir', '/etc/mtls-egress'], { POD_NAME: 'proxy-0' });
    assert.deepEqual(config, {
      kubeconfig: undefined,
      namespace: 'proxy',
      podName: 'proxy-0',
      configDir: '/etc/mtls-egress',
      nginxPrefix: '/etc/mtls-egress',
      nginxBinary: '/usr/sbin/nginx',
      nginxPidFile: '/etc/mtls-egress/nginx.pid',
      dataPlane: 'haproxy',
      manage: true,
      haproxyBinary: '/usr/sbin/haproxy',
      haproxyThreads: 'auto',
      runDir: '/etc/mtls-egress/run',
      reloadTimeoutMs: 30_000,
      stopTimeoutMs: 25_000,
      drainDelayMs: 0,
      persistDelayMs: 1000,
      healthAddress: { host: '0.0.0.0', port: 8081 },
      logLevel: 'info',
    });
  });

  test('--persist-delay: a duration, 0 for a generation per change', () => {
    const parse = (value: string) =>
      parseAgentConfig(['--namespace', 'n', '--config-dir', '/etc/m', '--persist-delay', value], { POD_NAME: 'p' }).persistDelayMs;
    assert.equal(parse('0'), 0);
    assert.equal(parse('1h'), 3_600_000);
    assert.throws(() => parse('soon'), /--persist-delay/);
  });

  test('HAProxy is always managed: the agent holds its sockets', () => {
    const config = parseAgentConfig(['--namespace', 'n', '--config-dir', '/etc/mtls-egress', '--data-plane', 'haproxy', '--run-dir', '/run/haproxy'], {
      POD_NAME: 'p',
    });
    assert.equal(config.dataPlane, 'haproxy');
    assert.equal(config.manage, true);
    assert.equal(config.runDir, '/run/haproxy');
  });

  test('flags win over the environment; relative directories become absolute', () => {
    const config = parseAgentConfig(
      [
        '--namespace',
        'a',
        '--pod-name',
        'p',
        '--config-dir',
        'conf',
        '--nginx-prefix',
        '/run/nginx',
        '--nginx-pid-file',
        '/run/x.pid',
        '--manage-nginx',
        '--reload-timeout',
        '2s',
        '--health-addr',
        '127.0.0.1:0',
      ],
      { POD_NAMESPACE: 'b', POD_NAME: 'q' },
    );
    assert.equal(config.namespace, 'a');
    assert.equal(config.podName, 'p');
    assert.equal(config.configDir, `${process.cwd()}/conf`);
    assert.equal(config.nginxPrefix, '/run/nginx');
    assert.equal(config.nginxPidFile, '/run/x.pid');
    assert.equal(config.manage, true);
    assert.equal(config.reloadTimeoutMs, 2000);
    assert.deepEqual(config.healthAddress, { host: '127.0.0.1', port: 0 });
  });

  test('--haproxy-threads: a number of threads, or auto (0 too)', () => {
    const threads = (value: string) =>
      parseAgentConfig(['--namespace', 'n', '--config-dir', '/d', '--haproxy-threads', value], { POD_NAME: 'p' }).haproxyThreads;
    assert.equal(threads('4'), 4);
    assert.equal(threads('64'), 64);
    assert.equal(threads('auto'), 'auto');
    assert.equal(threads('0'), 'auto');
  });

  test('nginx when asked: not managed unless told', () => {
    const config = parseAgentConfig(['--namespace', 'n', '--config-dir', '/d', '--data-plane', 'nginx'], { POD_NAME: 'p' });
    assert.equal(config.dataPlane, 'nginx');
    assert.equal(config.manage, false);
  });

  test('--drain-delay: a duration, 0 for none (outside a cluster no endpoints need to drop the replica)', () => {
    const base = ['--namespace', 'n', '--config-dir', '/d'];
    for (const [flag, ms] of [
      ['0', 0],
      ['10s', 10_000],
      ['5m', 300_000],
    ] as const) {
      assert.equal(parseAgentConfig([...base, '--drain-delay', flag], { POD_NAME: 'p' }).drainDelayMs, ms, flag);
    }
  });

  const usageErrors: Array<[string, string[], Record<string, string>, RegExp]> = [
    ['no namespace', ['--config-dir', '/d'], { POD_NAME: 'p' }, /--namespace/],
    ['no pod name', ['--namespace', 'n', '--config-dir', '/d'], {}, /--pod-name/],
    ['no config dir', ['--namespace', 'n'], { POD_NAME: 'p' }, /--config-dir/],
    ['a bad duration', ['--namespace', 'n', '--config-dir', '/d', '--stop-timeout', 'soon'], { POD_NAME: 'p' }, /--stop-timeout/],
    ['a bad drain delay', ['--namespace', 'n', '--config-dir', '/d', '--drain-delay', 'later'], { POD_NAME: 'p' }, /--drain-delay/],
    ['a drain delay past any grace period', ['--namespace', 'n', '--config-dir', '/d', '--drain-delay', '6m'], { POD_NAME: 'p' }, /--drain-delay/],
    ['a bad address', ['--namespace', 'n', '--config-dir', '/d', '--health-addr', '8081'], { POD_NAME: 'p' }, /--health-addr/],
    ...['65', '-1', '1.5', 'two', '', '1e1'].map((value): [string, string[], Record<string, string>, RegExp] => [
      `--haproxy-threads ${JSON.stringify(value)}`,
      ['--namespace', 'n', '--config-dir', '/d', `--haproxy-threads=${value}`],
      { POD_NAME: 'p' },
      /--haproxy-threads/,
    ]),
    ['an unknown data plane', ['--namespace', 'n', '--config-dir', '/d', '--data-plane', 'envoy'], { POD_NAME: 'p' }, /--data-plane/],
    [
      'HAProxy with a config dir its runtime API cannot name',
      ['--namespace', 'n', '--config-dir', '/d d', '--data-plane', 'haproxy'],
      { POD_NAME: 'p' },
      /--config-dir/,
    ],
  ];
  for (const [name, argv, env, message] of usageErrors) {
    test(`usage error: ${name}`, () =>
      assert.throws(
        () => parseAgentConfig(argv, env),
        (err: Error & { code?: string }) => err.code === 'ERR_USAGE' && message.test(err.message),
      ));
  }
});
