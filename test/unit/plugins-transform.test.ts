// Pure logic of the transform plugins: templates, ngx.re options and replacement templates, URI
// escaping, Accept-Encoding, address parsing, id generators and serverless function loading.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import gzip, { acceptsGzip, GzipEncoder } from '../../src/plugins/builtin/gzip/index.ts';
import { parseAddress } from '../../src/plugins/builtin/real-ip/index.ts';
import { ksuid, nanoid, rangeId } from '../../src/plugins/builtin/request-id/index.ts';
import { compileTemplate } from '../../src/plugins/lib/interpolate.ts';
import { compileNgxRegex, compileReplacement, substituteAll, substituteFirst } from '../../src/plugins/lib/pcre.ts';
import { loadFunction } from '../../src/plugins/lib/serverless.ts';
import { escapeUri } from '../../src/plugins/lib/uri-escape.ts';

const vars = (values: Record<string, string>) => ({ get: (name: string) => values[name] });

describe('interpolation ($var, ${var}, ${var ?? fallback})', () => {
  it('substitutes request variables and drops absent ones', () => {
    const t = compileTemplate('/$arg_a/${http_x}/$missing/end');
    assert.equal(t.render(vars({ arg_a: 'A', http_x: 'X' })), '/A/X//end');
  });

  it('keeps a constant template as is', () => {
    const t = compileTemplate('/plain/path?q=1');
    assert.equal(t.constant, '/plain/path?q=1');
    assert.equal(t.render(vars({})), '/plain/path?q=1');
  });

  it('uses the fallback only when the variable is absent', () => {
    const t = compileTemplate('${ arg_v ?? none }-${arg_w??x}');
    assert.equal(t.render(vars({ arg_v: 'set' })), 'set-x');
  });

  it('leaves an escaped dollar (with its backslash) and a lone dollar alone', () => {
    assert.equal(compileTemplate('\\$host $ $-').render(vars({ host: 'h' })), '\\$host $ $-');
  });

  it('reads dots as part of the name, as resolve_var does', () => {
    assert.equal(compileTemplate('$host.x|$host').render(vars({ host: 'h' })), '|h');
  });

  it('reads $1 and ${1} as captures when asked, before variables', () => {
    const t = compileTemplate('$1-${2}-$3-$remote_addr', { captures: true });
    assert.equal(t.render(vars({ remote_addr: '127.0.0.1' }), ['all', 'a', 'b']), 'a-b--127.0.0.1');
    assert.equal(compileTemplate('$1').render(vars({ 1: 'var' })), 'var');
  });

  it('escapes substituted values only', () => {
    const t = compileTemplate('/a?b=$arg_x');
    assert.equal(t.render(vars({ arg_x: 'p?q?' }), undefined, (v) => v.replace('?', '%3F')), '/a?b=p%3Fq?');
  });
});

describe('ngx.re patterns and templates', () => {
  it('maps options to flags and refuses unknown ones with lua-resty-core wording', () => {
    assert.equal(compileNgxRegex('a', 'jo').once.flags, '');
    assert.equal(compileNgxRegex('a', 'ijos').once.flags, 'is');
    assert.throws(() => compileNgxRegex('hello', 'h'), { message: 'unknown flag "h" (flags "h")' });
  });

  it('supports extended mode', () => {
    const re = compileNgxRegex('h e l # comment\n l o', 'x');
    assert.equal(substituteFirst('say hello', re, compileReplacement('X')), 'say X');
  });

  it('anchors with "a"', () => {
    const re = compileNgxRegex('l', 'a');
    assert.equal(substituteFirst('hello', re, compileReplacement('L')), 'hello');
    assert.equal(substituteFirst('llama', re, compileReplacement('L')), 'Llama');
  });

  it('reads the PCRE spellings JavaScript reads differently as PCRE does', () => {
    const star = compileReplacement('*');
    // without `m`, `$` also matches before a final newline
    assert.equal(substituteFirst('hello world\n', compileNgxRegex('\\w\\S+$', 'jo'), star), 'hello *\n');
    assert.equal(substituteFirst('a\nb\n', compileNgxRegex('a$', 'jo'), star), 'a\nb\n');
    assert.equal(substituteFirst('a\nb\n', compileNgxRegex('a$', 'm'), star), '*\nb\n');
    assert.equal(substituteFirst('ab\n', compileNgxRegex('b\\z'), star), 'ab\n');
    assert.equal(substituteFirst('ab\n', compileNgxRegex('b\\Z'), star), 'a*\n');
    assert.equal(substituteFirst('xab', compileNgxRegex('\\Aa'), star), 'xab');
    assert.equal(substituteFirst('a]b', compileNgxRegex('[]]'), star), 'a*b');
    assert.equal(substituteFirst('a$b', compileNgxRegex('[$]'), star), 'a*b');
    assert.equal(substituteFirst('HELLO', compileNgxRegex('(?i)hel'), star), '*LO');
    assert.equal(compileReplacement('<$1>')(compileNgxRegex('(?P<w>l+)(?P=w)?').once.exec('hello')!), '<ll>');
  });

  it('compiles replacement templates', () => {
    const m = ['/test/a/b', 'a', 'b'];
    assert.equal(compileReplacement('/$1_${2}/$0$$')(m), '/a_b//test/a/b$');
    assert.equal(compileReplacement('$7')(m), '');
    assert.throws(() => compileReplacement('$a'), { message: 'bad template for substitution: "$a"' });
    assert.throws(() => compileReplacement('${1'), { message: 'bad template for substitution: "${1"' });
  });

  it('substitutes once or globally, including empty matches', () => {
    const l = compileNgxRegex('l', 'jo');
    assert.equal(substituteFirst('hello world', l, compileReplacement('t')), 'hetlo world');
    assert.equal(substituteAll('hello world', l, compileReplacement('t')), 'hetto wortd');
    assert.equal(substituteAll('abc', compileNgxRegex('x*'), compileReplacement('-')), '-a-b-c-');
  });
});

describe('escapeUri (ngx_escape_uri)', () => {
  it('escapes what nginx escapes in a URI and nothing else', () => {
    assert.equal(escapeUri('/a b"#%<>?\\^`{|}~é'), '/a%20b%22%23%25%3C%3E%3F%5C%5E%60%7B%7C%7D~%C3%A9');
    const plain = '/api/v1/items-1_2.json;x=y&z@:+$,!*\'()';
    assert.equal(escapeUri(plain), plain);
  });
});

describe('gzip', () => {
  it('accepts gzip unless its q-value is zero', () => {
    assert.equal(acceptsGzip('gzip'), true);
    assert.equal(acceptsGzip('deflate, GZIP;q=0.5'), true);
    assert.equal(acceptsGzip('br, gzip;q=0'), false);
    assert.equal(acceptsGzip('gzip ; q=0.000'), false);
    assert.equal(acceptsGzip('identity'), false);
    assert.equal(acceptsGzip('x-gzipped'), false);
    assert.equal(acceptsGzip(undefined), false);
  });

  it('encodes chunk by chunk into one gzip stream, whatever the chunk sizes', () => {
    const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `<li>item ${i} of the list</li>\n`).join(''));
    for (const size of [1, 100, 5000, 40_000, text.length]) {
      const encoder = new GzipEncoder(1);
      const parts: Buffer[] = [];
      for (let i = 0; i < text.length; i += size) parts.push(encoder.encode(text.subarray(i, i + size), false));
      parts.push(encoder.encode(Buffer.alloc(0), true));
      assert.ok(gunzipSync(Buffer.concat(parts)).equals(text), `chunks of ${size}`);
    }
    // the last chunk may carry data, and an empty body is a valid stream too
    assert.equal(gunzipSync(new GzipEncoder(9).encode(Buffer.from('only'), true)).toString(), 'only');
    assert.equal(gunzipSync(new GzipEncoder(1).encode(Buffer.alloc(0), true)).length, 0);
  });

  it('declares APISIX priority 995', () => {
    assert.equal(gzip.priority, 995);
  });
});

describe('real-ip address parsing (core.utils.parse_addr)', () => {
  it('splits host and port', () => {
    assert.deepEqual(parseAddress('1.2.3.4'), { host: '1.2.3.4', port: undefined });
    assert.deepEqual(parseAddress('1.2.3.4:8080'), { host: '1.2.3.4', port: 8080 });
    assert.deepEqual(parseAddress('[::1]'), { host: '[::1]', port: undefined });
    assert.deepEqual(parseAddress('[::1]:80'), { host: '[::1]', port: 80 });
    assert.deepEqual(parseAddress('2001:db8::68'), { host: '2001:db8::68', port: undefined });
    assert.deepEqual(parseAddress('::ffff:1.2.3.4'), { host: '::ffff:1.2.3.4', port: undefined });
    assert.deepEqual(parseAddress('1.2.3.4:x'), { host: '1.2.3.4', port: undefined });
  });
});

describe('request ids', () => {
  it('nanoid: 21 URL-safe characters', () => {
    for (let i = 0; i < 50; i++) assert.match(nanoid(), /^[A-Za-z0-9_-]{21}$/);
  });

  it('range_id: the length and characters asked for', () => {
    assert.match(rangeId(8, 'abcdef'), /^[a-f]{8}$/);
  });

  it('ksuid: 27 base62 characters, ordered by second', () => {
    const a = ksuid(1_700_000_000);
    const b = ksuid(1_700_000_001);
    assert.match(a, /^[0-9A-Za-z]{27}$/);
    assert.ok(a < b);
    assert.equal(ksuid(1_400_000_000).length, 27);
  });
});

describe('serverless function loading', () => {
  it('accepts expressions and Lua-style `return` bodies', () => {
    assert.equal(typeof loadFunction('(conf, ctx) => 1'), 'function');
    assert.equal(typeof loadFunction('function (conf, ctx) { return 1 }'), 'function');
    assert.equal(typeof loadFunction('async (conf, ctx) => ({ status: 403 });'), 'function');
    assert.equal(typeof loadFunction('return function (conf, ctx) { return 1 }'), 'function');
    assert.equal(loadFunction('(conf, ctx) => 2 // trailing comment')({} as never, {} as never), 2);
  });

  it('refuses what does not compile or is not a function', () => {
    assert.throws(() => loadFunction('(conf, ctx) => {'), /^Error: failed to compile: /);
    assert.throws(() => loadFunction('42'), { message: 'only accept JavaScript function, the input code type is number' });
    assert.throws(() => loadFunction('(() => { throw new Error("boom") })()'), { message: 'failed to evaluate: boom' });
  });
});
