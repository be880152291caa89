import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SecretVersions } from '../../src/k8s/secret-cache.ts';
import { secret } from '../fixtures/bindings.ts';

// The bookkeeping behind the metadata-only Secret watch: which GET to trust, and when what
// is held is current. The cache itself runs against the API server in
// test/integration/controller.test.ts.

const key = 'team-a/partner-pfx';
const version = (rv: string) => secret('partner-pfx', { password: `pw-${rv}` }, { resourceVersion: rv });

describe('SecretVersions', () => {
  test('a key never read is not current; a GET with no event since is', () => {
    const v = new SecretVersions();
    assert.equal(v.current(key), false);
    assert.equal(v.finished(key, v.begin(key), version('5')), 'changed');
    assert.equal(v.current(key), true);
    assert.equal(v.secret(key)?.metadata.resourceVersion, '5');
    assert.equal(v.size, 1);
  });

  test('a watch event with a new resourceVersion makes what is held stale; one with the same version does not', () => {
    const v = new SecretVersions();
    v.changed(key, '5');
    v.finished(key, v.begin(key), version('5'));
    v.changed(key, '5');
    assert.equal(v.current(key), true, 'the event for the version already read');
    v.changed(key, '6');
    assert.equal(v.current(key), false);
    assert.equal(v.secret(key)?.metadata.resourceVersion, '5', 'the old version is still served until the new one is read');
  });

  test('a GET that a newer event overtook is not trusted: it returned the older version', () => {
    const v = new SecretVersions();
    v.changed(key, '5');
    const asOf = v.begin(key);
    v.changed(key, '6');
    assert.equal(v.finished(key, asOf, version('5')), 'stale');
    assert.equal(v.secret(key), undefined, 'nothing stored');
    assert.equal(v.finished(key, v.begin(key), version('6')), 'changed');
    assert.equal(v.current(key), true);
  });

  test('a GET that already returned the version of the event that overtook it is trusted', () => {
    const v = new SecretVersions();
    const asOf = v.begin(key);
    v.changed(key, '6');
    assert.equal(v.finished(key, asOf, version('6')), 'changed');
    assert.equal(v.current(key), true);
  });

  test('a GET returning a version the watch has not shown yet is current until the watch shows another', () => {
    const v = new SecretVersions();
    v.changed(key, '5');
    v.finished(key, v.begin(key), version('7'));
    assert.equal(v.current(key), true);
    v.changed(key, '7');
    assert.equal(v.current(key), true, 'the watch catching up changes nothing');
  });

  test('a delete while a GET is out: the GET (which found the Secret) is not trusted', () => {
    const v = new SecretVersions();
    v.changed(key, '5');
    v.finished(key, v.begin(key), version('5'));
    const asOf = v.begin(key);
    v.deleted(key, true);
    assert.equal(v.secret(key), undefined);
    assert.equal(v.finished(key, asOf, version('5')), 'stale');
    assert.equal(v.finished(key, v.begin(key), undefined), 'same', 'read again: not found, as when nothing was held');
    assert.equal(v.current(key), true);
    assert.equal(v.secret(key), undefined);
  });

  test('missing is remembered until the watch says otherwise', () => {
    const v = new SecretVersions();
    assert.equal(v.finished(key, v.begin(key), undefined), 'same');
    assert.equal(v.current(key), true, 'a binding waiting for its Secret costs no request');
    assert.equal(v.size, 0);
    v.changed(key, '1');
    assert.equal(v.current(key), false, 'created: read it');
    assert.equal(v.finished(key, v.begin(key), version('1')), 'changed');
  });

  test('deleted with no GET out: the key is forgotten, and the next ask reads it once', () => {
    const v = new SecretVersions();
    v.changed(key, '5');
    v.finished(key, v.begin(key), version('5'));
    v.deleted(key, false);
    assert.equal(v.current(key), false);
    assert.equal(v.size, 0);
    assert.equal(v.finished(key, v.begin(key), undefined), 'same', 'not announced again: the cache announced the deletion when the watch said it');
  });

  test('the version a GET may ask for: the one the watch last showed, none after a delete or before any event', () => {
    const v = new SecretVersions();
    assert.equal(v.seenVersion(key), undefined, 'never seen: a quorum read');
    v.changed(key, '5');
    v.changed(key, '6');
    assert.equal(v.seenVersion(key), '6');
    v.deleted(key, true);
    assert.equal(v.seenVersion(key), undefined, 'deleted while a GET was out: nothing a GET could be no older than');
  });
});
