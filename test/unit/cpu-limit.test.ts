import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cgroupPaths, cpusOfCfsQuota, cpusOfCpuMax, readCpuLimit } from '../../src/server/cpu-limit.ts';
import { temporaryDirectory } from '../harness/temporary-directories.ts';

describe('the CPUs a container may use, from its cgroup', () => {
  test('cgroup v2 cpu.max: quota over period, rounded up; "max" and anything else is no limit', () => {
    const cases: Array<[string, number | undefined]> = [
      ['200000 100000\n', 2],
      ['150000 100000\n', 2],
      ['50000 100000\n', 1],
      ['1000 100000', 1],
      ['6400000 100000\n', 64],
      ['max 100000\n', undefined],
      ['0 100000\n', undefined],
      ['200000 0\n', undefined],
      ['-1 100000\n', undefined],
      ['', undefined],
      ['200000\n', undefined],
      ['2e5 100000\n', undefined],
      ['99999999999999999999 1\n', undefined],
    ];
    for (const [text, cpus] of cases) assert.equal(cpusOfCpuMax(text), cpus, JSON.stringify(text));
  });

  test('cgroup v1 cfs quota and period; -1 is no limit', () => {
    const cases: Array<[string, string, number | undefined]> = [
      ['300000\n', '100000\n', 3],
      ['25000\n', '100000\n', 1],
      ['-1\n', '100000\n', undefined],
      ['100000\n', 'x\n', undefined],
      ['\n', '100000\n', undefined],
    ];
    for (const [quota, period, cpus] of cases) assert.equal(cpusOfCfsQuota(quota, period), cpus, `${quota.trim()}/${period.trim()}`);
  });

  test('/proc/self/cgroup: the v2 path, and v1 cpu controller path', () => {
    assert.deepEqual(cgroupPaths('0::/\n'), { v2: '/' });
    assert.deepEqual(cgroupPaths('0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope\n'), {
      v2: '/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope',
    });
    // What this machine (cgroup v1) prints.
    const v1 = ['12:pids:/user.slice', '4:cpu,cpuacct:/mtls-egress-node/pod1/c1', '3:memory:/mtls-egress-node/pod1/c1', '1:name=systemd:/init.scope', ''].join(
      '\n',
    );
    assert.deepEqual(cgroupPaths(v1), { v1Cpu: '/mtls-egress-node/pod1/c1' });
    assert.deepEqual(cgroupPaths('garbage\n\n'), {});
  });

  test("readCpuLimit: the lowest limit on the way up from the process's cgroup (v2)", async () => {
    const root = temporaryDirectory('cgroup-v2');
    const pod = join(root, 'kubepods', 'pod1');
    const container = join(pod, 'c1');
    mkdirSync(container, { recursive: true });
    writeFileSync(join(root, 'kubepods', 'cpu.max'), 'max 100000\n');
    writeFileSync(join(pod, 'cpu.max'), '300000 100000\n');
    writeFileSync(join(container, 'cpu.max'), 'max 100000\n');
    const procSelfCgroup = join(root, 'self-cgroup');
    writeFileSync(procSelfCgroup, '0::/kubepods/pod1/c1\n');
    assert.equal(await readCpuLimit({ root, procSelfCgroup }), 3, "the pod's limit binds the container");
    writeFileSync(join(container, 'cpu.max'), '120000 100000\n');
    assert.equal(await readCpuLimit({ root, procSelfCgroup }), 2, "the container's own, lower, rounded up");
    // A cgroup namespace: the container's cgroup is the root.
    writeFileSync(join(root, 'cpu.max'), '100000 100000\n');
    writeFileSync(procSelfCgroup, '0::/\n');
    assert.equal(await readCpuLimit({ root, procSelfCgroup }), 1);
  });

  test("readCpuLimit: cgroup v1, where the path is the host's and the mount is the container's own", async () => {
    const root = temporaryDirectory('cgroup-v1');
    mkdirSync(join(root, 'cpu'), { recursive: true });
    writeFileSync(join(root, 'cpu', 'cpu.cfs_quota_us'), '250000\n');
    writeFileSync(join(root, 'cpu', 'cpu.cfs_period_us'), '100000\n');
    const procSelfCgroup = join(root, 'self-cgroup');
    writeFileSync(procSelfCgroup, '4:cpu,cpuacct:/kubepods/pod1/c1\n');
    assert.equal(await readCpuLimit({ root, procSelfCgroup }), 3);
    writeFileSync(join(root, 'cpu', 'cpu.cfs_quota_us'), '-1\n');
    assert.equal(await readCpuLimit({ root, procSelfCgroup }), undefined);
  });

  test('readCpuLimit: no cgroup to read is no limit', async () => {
    const root = temporaryDirectory('cgroup-none');
    assert.equal(await readCpuLimit({ root, procSelfCgroup: join(root, 'missing') }), undefined);
  });
});
