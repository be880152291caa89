import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runsInCi, sharedCorpusAt } from '../support/shared-corpus.ts';

describe('a corpus beside the repository: run when present, skip outside CI, fail in CI', () => {
  const present = mkdtempSync(join(tmpdir(), 'mtls-egress-corpus-present-'));
  writeFileSync(join(present, 'manifest.tsv'), 'id\tfile\n');
  const absent = join(present, 'no-such-corpus');
  after(() => rmSync(present, { recursive: true, force: true }));

  const cases: Array<{ name: string; path: string; env: NodeJS.ProcessEnv; expect: 'run' | 'skip' | 'fail' }> = [
    { name: 'present, CI unset', path: present, env: {}, expect: 'run' },
    { name: 'present, CI=true', path: present, env: { CI: 'true' }, expect: 'run' },
    { name: 'absent, CI unset', path: absent, env: {}, expect: 'skip' },
    { name: 'absent, CI empty', path: absent, env: { CI: '' }, expect: 'skip' },
    { name: 'absent, CI=false', path: absent, env: { CI: 'false' }, expect: 'skip' },
    { name: 'absent, CI=true', path: absent, env: { CI: 'true' }, expect: 'fail' },
    { name: 'absent, CI=1', path: absent, env: { CI: '1' }, expect: 'fail' },
  ];
  for (const { name, path, env, expect } of cases) {
    test(name, () => {
      if (expect === 'fail') {
        assert.throws(
          () => sharedCorpusAt(path, 'manifest.tsv', env),
          (error: Error) => error.message.includes(path) && error.message.includes('CI'),
        );
        return;
      }
      const corpus = sharedCorpusAt(path, 'manifest.tsv', env);
      assert.equal(corpus.path, path);
      if (expect === 'run') assert.equal(corpus.skip, false);
      else assert.match(String(corpus.skip), /not at .*no manifest\.tsv.*beside the repository/);
    });
  }

  test('a directory without the marker file is missing', () => {
    assert.notEqual(sharedCorpusAt(present, 'pw', {}).skip, false);
  });

  test('CI is what CI services set', () => {
    assert.deepEqual(
      ['', ' ', 'false', 'FALSE', '0', 'true', '1', 'yes', undefined].map((value) => runsInCi(value === undefined ? {} : { CI: value })),
      [false, false, false, false, false, true, true, true, false],
    );
  });
});
