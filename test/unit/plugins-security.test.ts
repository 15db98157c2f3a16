// Pure logic of the security plugins: pattern lists, the csrf token format, request-validation's
// error wording and form decoding. Behaviour through the gateway is in test/e2e/plugins-security.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkPcreList, compileHostMatcher, compileRegexList, pcreError } from '../../src/plugins/lib/matchers.ts';
import { compileUserSchema } from '../../src/plugins/lib/json-schema.ts';
import { cookieTime, issueToken, luaNumberText, verifyToken } from '../../src/plugins/builtin/csrf/index.ts';
import { cjsonDecodeError } from '../../src/plugins/builtin/request-validation/cjson-error.ts';
import { decodeForm } from '../../src/plugins/builtin/request-validation/index.ts';

describe('pattern lists', () => {
  it('words regex errors as pcre2_compile does (t/plugin/uri-blocker.t)', () => {
    assert.equal(pcreError('.+('), 'pcre2_compile() failed: missing closing parenthesis in ".+("');
    assert.equal(pcreError('a)'), 'pcre2_compile() failed: unmatched closing parenthesis in "a)"');
    assert.equal(pcreError('*a'), 'pcre2_compile() failed: quantifier does not follow a repeatable item in "*a"');
    assert.equal(pcreError('[a'), 'pcre2_compile() failed: missing terminating ] for character class in "[a"');
    assert.equal(pcreError('^a'), undefined);
    assert.equal(checkPcreList(['^a', '^b(']), 'pcre2_compile() failed: missing closing parenthesis in "^b("');
    assert.equal(checkPcreList(undefined), undefined);
  });

  it('a regex list is unanchored, case-sensitive unless asked, and honours a leading (?i) per pattern', () => {
    const test = compileRegexList(['aa', 'c\\d+']);
    assert.equal(test('/hello?aa=1'), true);
    assert.equal(test('/hello?c1=2'), true);
    assert.equal(test('/hello?cc=2'), false);
    assert.equal(test('/hello?AA=1'), false);
    assert.equal(compileRegexList(['AA'], true)('/hello?aa=1'), true);
    const mixed = compileRegexList(['(?i)bot', 'Spider']);
    assert.equal(mixed('BOT/1.0'), true);
    assert.equal(mixed('spider'), false);
  });

  it('a host list matches exact names and `*` suffixes', () => {
    const match = compileHostMatcher(['xx.com', '*.xx.com', '*yy.org']);
    assert.equal(match('xx.com'), true);
    assert.equal(match('a.xx.com'), true);
    assert.equal(match('b.a.xx.com'), true);
    assert.equal(match('axx.com'), false);
    assert.equal(match('XX.com'), false);
    assert.equal(match('zyy.org'), true); // APISIX only strips the `*`
  });
});

describe('csrf token', () => {
  it('writes numbers as Lua does (%.14g)', () => {
    assert.equal(luaNumberText(7200), '7200');
    assert.equal(luaNumberText(1700000000), '1700000000');
    assert.equal(luaNumberText(0.36714864262143), '0.36714864262143');
    assert.equal(luaNumberText(1 / 3), '0.33333333333333');
    assert.equal(luaNumberText(0.5), '0.5');
    assert.equal(luaNumberText(0.0000123), '1.23e-05');
    assert.equal(luaNumberText(1e14), '1e+14');
    assert.equal(luaNumberText(123456789012346), '1.2345678901235e+14');
  });

  it('accepts a token APISIX signed (t/plugin/csrf.t TEST 9) and refuses a forged one', () => {
    const token = 'eyJzaWduIjoiZTlhNWVkOTBmZDc2YjRhMTYyMzg1ZDU2Y2ZhZDI1N2MxNmI0MWY1MjFjZWUwODczNzExM2NlYzZkZDQwMWJmNyIsInJhbmRvbSI6MC4zNjcxNDg2NDI2MjE0MywiZXhwaXJlcyI6NzIwMH0=';
    assert.equal(verifyToken(token, 'userkey', 0, 1_700_000_000), true);
    assert.equal(verifyToken(token, 'otherkey', 0, 1_700_000_000), false);
    // its `expires` field is an issue time of 7200 s after the epoch: long expired
    assert.equal(verifyToken(token, 'userkey', 7200, 1_700_000_000), false);
    const forged = 'eyJleHBpcmVzIjo3MjAwLCJyYW5kb20iOjAuMjE2ODAxOTYyNTEwNDEsInNpZ24iOiJqZnhDckk1TVwvMHI3VjdyWWRBSXNCeEg3emljY3VnV0dySGtYQkZ0QT0ifQ==';
    assert.equal(verifyToken(forged, 'userkey', 0, 1_700_000_000), false);
    assert.equal(verifyToken('not base64 json', 'userkey', 0, 1_700_000_000), false);
  });

  it('issues tokens that verify until they are older than `expires`', () => {
    const now = 1_700_000_000;
    const token = issueToken('k', now);
    const fields = JSON.parse(Buffer.from(token, 'base64').toString());
    assert.deepEqual(Object.keys(fields), ['sign', 'random', 'expires']);
    assert.equal(fields.expires, now);
    // as Lua writes it: at most 14 significant digits (read from the token's text, not the parsed number)
    const randomText = /"random":([^,]+),/.exec(Buffer.from(token, 'base64').toString())![1];
    assert.match(randomText, /^(0\.0*[1-9]\d{0,13}|\d(\.\d{1,13})?e-\d\d)$/);
    assert.equal(verifyToken(token, 'k', 7200, now + 7200), true);
    assert.equal(verifyToken(token, 'k', 7200, now + 7201), false);
    assert.equal(verifyToken(token, 'k', 0, now + 10 ** 6), true);
    assert.notEqual(issueToken('k', now), token);
  });

  it('dates the cookie as nginx cookie_time does', () => {
    assert.equal(cookieTime(Date.UTC(2010, 10, 18, 11, 27, 35) / 1000), 'Thu, 18-Nov-10 11:27:35 GMT');
    assert.equal(cookieTime(Date.UTC(2038, 0, 2, 3, 4, 5) / 1000), 'Sat, 02-Jan-2038 03:04:05 GMT');
  });
});

describe('request-validation wording', () => {
  const schema = {
    type: 'object',
    required: ['required_payload'],
    properties: {
      required_payload: { type: 'string' },
      boolean_payload: { type: 'boolean' },
      timeouts: { type: 'integer', minimum: 1, maximum: 254, default: 3 },
      req_headers: { type: 'array', minItems: 1, items: { type: 'string' } },
    },
  };

  it('reports one error in lua-resty-jsonschema words', () => {
    const validate = compileUserSchema(schema);
    assert.equal(validate({ 'boolean-payload': true }), 'property "required_payload" is required');
    assert.equal(validate({ required_payload: 1 }), 'property "required_payload" validation failed: wrong type: expected string, got number');
    assert.equal(validate({ required_payload: 'x', timeouts: 300 }), 'property "timeouts" validation failed: expected 300 to be at most 254');
    assert.equal(validate({ required_payload: 'x', req_headers: ['a', 2] }), 'property "req_headers" validation failed: failed to validate item 2: wrong type: expected string, got number');
    assert.equal(validate([]), 'wrong type: expected object, got table');
    // a property's own schema is checked before `required`
    assert.equal(validate({ boolean_payload: 'no' }), 'property "boolean_payload" validation failed: wrong type: expected boolean, got string');
  });

  it('fills in defaults, as APISIX forwards them', () => {
    const value: Record<string, unknown> = { required_payload: 'x' };
    assert.equal(compileUserSchema(schema)(value), undefined);
    assert.equal(value.timeouts, 3);
  });

  it('words schema mistakes as APISIX does (t/plugin/request-validation.t)', () => {
    assert.throws(() => compileUserSchema({ type: 'test' }), { message: 'invalid JSON type: test' });
    assert.throws(() => compileUserSchema({ type: 'string', properties: { test: { type: 'string', enum: 'test-enum' } } }), { message: 'table expected, got string' });
    assert.throws(() => compileUserSchema({ type: 'object', required: 'test-required' }), { message: 'table expected, got string' });
  });

  it('words JSON syntax errors as lua-cjson does', () => {
    assert.equal(cjsonDecodeError('abc'), 'Expected value but found invalid token at character 1');
    assert.equal(cjsonDecodeError('{'), 'Expected object key string but found T_END at character 2');
    assert.equal(cjsonDecodeError('{a:1}'), 'Expected object key string but found invalid token at character 2');
    assert.equal(cjsonDecodeError('{"a" 1}'), 'Expected colon but found T_NUMBER at character 6');
    assert.equal(cjsonDecodeError('{"a":1 "b"}'), 'Expected comma or object end but found T_STRING at character 8');
    assert.equal(cjsonDecodeError('[1 2]'), 'Expected comma or array end but found T_NUMBER at character 4');
    assert.equal(cjsonDecodeError('[1,]'), 'Expected value but found T_ARR_END at character 4');
    assert.equal(cjsonDecodeError('{"a":1} x'), 'Expected the end but found invalid token at character 9');
    assert.equal(cjsonDecodeError('{"a":"x'), 'Expected value but found unexpected end of string at character 8');
    assert.equal(cjsonDecodeError('   '), 'Expected value but found T_END at character 4');
  });

  it('decodes form bodies as ngx.decode_args does', () => {
    assert.deepEqual(decodeForm(Buffer.from('a=b&a=c&flag&x=%41+b%zz&&e=')), { a: ['b', 'c'], flag: true, x: 'A b%zz', e: '' });
    assert.deepEqual(decodeForm(Buffer.from('')), {});
  });
});
