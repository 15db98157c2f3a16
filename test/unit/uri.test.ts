import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalisePath, parseCookies, parseQuery, splitTarget } from '../../src/proxy/uri.ts';

describe('request-target handling', () => {
  it('splits path and query', () => {
    assert.deepEqual(splitTarget('/a/b?x=1&y'), { path: '/a/b', query: 'x=1&y' });
    assert.deepEqual(splitTarget('/a'), { path: '/a', query: '' });
  });

  it('normalises like nginx $uri', () => {
    assert.equal(normalisePath('/a/b'), '/a/b');
    assert.equal(normalisePath('/a//b///c'), '/a/b/c');
    assert.equal(normalisePath('/a/./b/../c'), '/a/c');
    assert.equal(normalisePath('/a/b/..'), '/a/');
    assert.equal(normalisePath('/a/%62c'), '/a/bc');
    assert.equal(normalisePath('/x/%2e%2e/y'), '/y');
    assert.equal(normalisePath('http://example.com/p/q'), '/p/q');
  });

  it('keeps %2F encoded when asked (match_uri_encoded_slash)', () => {
    assert.equal(normalisePath('/a/b%2Fc/%64', true), '/a/b%2Fc/d');
    assert.equal(normalisePath('/a/b%2fc', true), '/a/b%2Fc');
    assert.equal(normalisePath('/a/b%2Fc'), '/a/b/c');
    assert.equal(normalisePath('/a/%2F%00', true), undefined);
  });

  it('refuses paths above the root or badly encoded', () => {
    assert.equal(normalisePath('/../etc/passwd'), undefined);
    assert.equal(normalisePath('/a/%zz'), undefined);
    assert.equal(normalisePath('*'), undefined);
  });

  it('parses query args with repeats and encoding', () => {
    const q = parseQuery('a=1&b=x%20y&a=2&c&d=a+b');
    assert.deepEqual(q.get('a'), ['1', '2']);
    assert.equal(q.get('b'), 'x y');
    assert.equal(q.get('c'), '');
    assert.equal(q.get('d'), 'a b');
  });

  it('parses cookies, first occurrence wins', () => {
    const c = parseCookies('sid=abc; theme=dark; sid=zzz');
    assert.equal(c.get('sid'), 'abc');
    assert.equal(c.get('theme'), 'dark');
  });
});
