import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BundleReferences } from '../../src/controller/bundle-references.ts';

// The controller's bookkeeping of which binding objects reference which bundle objects:
// a bundle is used from before its first reference is written until after its last one
// is gone, and only then offered for removal.

describe('BundleReferences', () => {
  type Step = ['use' | 'settle', string, string[]];
  const cases: Array<{ name: string; steps: Step[]; released: string[][]; referenced: string[] }> = [
    {
      name: 'two bindings share a bundle: it goes only with the last of them',
      steps: [
        ['use', 'a', ['X']],
        ['settle', 'a', ['X']],
        ['use', 'b', ['X']],
        ['settle', 'b', ['X']],
        ['settle', 'a', []],
        ['settle', 'b', []],
      ],
      released: [[], [], [], [], [], ['X']],
      referenced: [],
    },
    {
      name: 'a binding moves from one bundle to another: the old one is used until its object is written',
      steps: [
        ['use', 'a', ['X']],
        ['settle', 'a', ['X']],
        ['use', 'a', ['Y']],
        ['settle', 'a', ['Y']],
      ],
      released: [[], [], [], ['X']],
      referenced: ['Y'],
    },
    {
      name: 'a write that failed (no settle): both stay used',
      steps: [
        ['use', 'a', ['X']],
        ['settle', 'a', ['X']],
        ['use', 'a', ['Y']],
      ],
      released: [[], [], []],
      referenced: ['X', 'Y'],
    },
    {
      name: 'a bundle used by a reconcile under way is not released by another binding leaving',
      steps: [
        ['use', 'a', ['X']],
        ['settle', 'a', ['X']],
        ['use', 'b', ['X']],
        ['settle', 'a', []],
      ],
      released: [[], [], [], []],
      referenced: ['X'],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const refs = new BundleReferences();
      const released = c.steps.map(([op, binding, names]) => (op === 'use' ? (refs.use(binding, names), []) : refs.settle(binding, names)));
      assert.deepEqual(released, c.released);
      assert.deepEqual(
        ['X', 'Y'].filter((n) => refs.isReferenced(n)),
        c.referenced,
      );
    });
  }

  test('the users of a bundle are the bindings to wake when someone else changes it', () => {
    const refs = new BundleReferences();
    refs.settle('a', ['X']);
    refs.settle('b', ['X', 'Y']);
    assert.deepEqual([...refs.users('X')].sort(), ['a', 'b']);
    assert.deepEqual([...refs.users('Z')], []);
    refs.clear();
    assert.ok(!refs.isReferenced('X'));
  });
});
