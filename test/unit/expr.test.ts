import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileExpr,
  validateExpr,
  ExprError,
  varsFromObject,
  parseLuaNumber,
  type VarLookup,
  type VarValue,
} from '../../src/expr/index.ts';
import { translatePcre } from '../../src/expr/regex.ts';

function vars(values: Record<string, VarValue>): VarLookup {
  return varsFromObject(values);
}

/** Compiles `rule` and evaluates it against `values`. */
function run(rule: unknown, values: Record<string, VarValue>): boolean {
  return compileExpr(rule)(vars(values));
}

/** Evaluates the single expression `expr` (wrapped as a rule) against `values`. */
function one(expr: unknown[], values: Record<string, VarValue>): boolean {
  return run([expr], values);
}

function compileError(rule: unknown): string {
  let caught: unknown;
  try {
    compileExpr(rule);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ExprError, `expected an ExprError, got ${String(caught)}`);
  assert.equal(caught.name, 'ExprError');
  return caught.message;
}

describe('Lua tonumber conversion', () => {
  it('accepts decimal, hex, binary and special forms with surrounding whitespace', () => {
    const cases: Array<[string, number]> = [
      ['12', 12], [' 12 ', 12], ['\t7\n', 7], ['-3', -3], ['+5', 5], ['1.5', 1.5], ['.5', 0.5],
      ['5.', 5], ['1e3', 1000], ['1.5E-2', 0.015], ['007', 7], ['0x10', 16], ['0X1f', 31],
      ['-0x10', -16], ['0x1.8', 1.5], ['0x1p4', 16], ['0b101', 5], ['inf', Infinity],
      ['-Infinity', -Infinity],
    ];
    for (const [text, expected] of cases) assert.equal(parseLuaNumber(text), expected, JSON.stringify(text));
  });

  it('rejects everything else', () => {
    for (const text of ['', ' ', '.', 'abc', '1e', 'e5', '12a', '1_000', '0x', '0b', '0b12', '1.2.3', '- 5', 'nan', '0x1e+']) {
      assert.ok(Number.isNaN(parseLuaNumber(text)), JSON.stringify(text));
    }
  });
});

describe('rule shape', () => {
  it('empty rule is always true', () => {
    assert.equal(run([], {}), true);
    assert.equal(run([], { arg_a: 'x' }), true);
  });

  it('items of a plain rule are ANDed', () => {
    const rule = [['arg_a', '==', '1'], ['arg_b', '==', '2']];
    assert.equal(run(rule, { arg_a: '1', arg_b: '2' }), true);
    assert.equal(run(rule, { arg_a: '1', arg_b: '3' }), false);
    assert.equal(run(rule, { arg_a: '0', arg_b: '2' }), false);
    assert.equal(run(rule, {}), false);
  });

  it('ANDs more than two items', () => {
    const rule = [['a', '==', '1'], ['b', '==', '2'], ['c', '==', '3']];
    assert.equal(run(rule, { a: '1', b: '2', c: '3' }), true);
    assert.equal(run(rule, { a: '1', b: '2', c: '4' }), false);
  });

  it('OR needs one true operand', () => {
    const rule = ['OR', ['a', '==', '1'], ['b', '==', '2'], ['c', '==', '3']];
    assert.equal(run(rule, { c: '3' }), true);
    assert.equal(run(rule, { a: '1' }), true);
    assert.equal(run(rule, { a: '2', b: '1', c: '2' }), false);
    assert.equal(run(['OR', ['a', '==', '1'], ['b', '==', '2']], { b: '2' }), true);
    assert.equal(run(['OR', ['a', '==', '1'], ['b', '==', '2']], {}), false);
  });

  it('AND / !AND / !OR', () => {
    const ops = (op: string, values: Record<string, VarValue>) => run([op, ['a', '==', '1'], ['b', '==', '2']], values);
    assert.equal(ops('AND', { a: '1', b: '2' }), true);
    assert.equal(ops('AND', { a: '1' }), false);
    assert.equal(ops('!AND', { a: '1', b: '2' }), false);
    assert.equal(ops('!AND', { a: '1' }), true);
    assert.equal(ops('!AND', {}), true);
    assert.equal(ops('!OR', {}), true);
    assert.equal(ops('!OR', { b: '2' }), false);
    assert.equal(ops('!OR', { a: '1', b: '2' }), false);
  });

  it('logical operators are case-insensitive', () => {
    assert.equal(run(['or', ['a', '==', '1'], ['b', '==', '2']], { b: '2' }), true);
    assert.equal(run(['!and', ['a', '==', '1'], ['b', '==', '2']], { a: '1', b: '2' }), false);
    assert.equal(run(['!Or', ['a', '==', '1'], ['b', '==', '2']], {}), true);
  });

  it('nests to any depth', () => {
    const rule = [
      'OR',
      ['arg_a', '==', '1'],
      ['AND', ['http_x', '~~', '^v'], ['remote_addr', 'ipmatch', ['10.0.0.0/8']]],
    ];
    assert.equal(run(rule, { arg_a: '1' }), true);
    assert.equal(run(rule, { http_x: 'v2', remote_addr: '10.9.8.7' }), true);
    assert.equal(run(rule, { http_x: 'v2', remote_addr: '11.9.8.7' }), false);
    assert.equal(run(rule, { http_x: 'x-v2', remote_addr: '10.9.8.7' }), false);

    const deep = ['!AND', ['a', '==', '1'], ['OR', ['b', '>', 10], ['c', '!', '>', 15], ['!OR', ['d', '==', 'x'], ['e', '==', 'y']]]];
    // not (a == 1 and (b > 10 or not c > 15 or not (d == x or e == y)))
    assert.equal(run(deep, { a: '1', b: '11', c: '20', d: 'x' }), false);
    assert.equal(run(deep, { a: '1', b: '5', c: '20', d: 'x' }), true);
    assert.equal(run(deep, { a: '1', b: '5', c: '20' }), false); // !OR of two false -> true
    assert.equal(run(deep, { a: '2', b: '11' }), true);
  });

  it('a nested plain array of expressions is an AND group', () => {
    const rule = ['OR', [['a', '==', '1'], ['b', '==', '2']], ['c', '==', '3']];
    assert.equal(run(rule, { a: '1', b: '2' }), true);
    assert.equal(run(rule, { a: '1' }), false);
    assert.equal(run(rule, { c: '3' }), true);
  });

  it('top level may mix expressions and groups', () => {
    const rule = [['a', '==', '1'], ['OR', ['b', '==', '1'], ['b', '==', '2']]];
    assert.equal(run(rule, { a: '1', b: '2' }), true);
    assert.equal(run(rule, { a: '1', b: '3' }), false);
  });

  it('short-circuits AND and OR', () => {
    const seen: string[] = [];
    const lookup: VarLookup = {
      get(name) {
        seen.push(name);
        return name === 'a' ? '1' : undefined;
      },
    };
    assert.equal(compileExpr(['OR', ['a', '==', '1'], ['b', '==', '2'], ['c', '==', '3']])(lookup), true);
    assert.deepEqual(seen, ['a']);
    seen.length = 0;
    assert.equal(compileExpr([['b', '==', '2'], ['a', '==', '1'], ['c', '==', '3']])(lookup), false);
    assert.deepEqual(seen, ['b']);
  });

  it('the compiled predicate is reusable and independent of later config mutation', () => {
    const list = ['a', 'b'];
    const pred = compileExpr([['x', 'in', list]]);
    list.push('c');
    assert.equal(pred(vars({ x: 'c' })), false);
    assert.equal(pred(vars({ x: 'a' })), true);
    assert.equal(pred(vars({ x: 'a' })), true);
  });
});

describe('== and ~=', () => {
  it('compares strings exactly', () => {
    assert.equal(one(['arg_name', '==', 'json'], { arg_name: 'json' }), true);
    assert.equal(one(['arg_name', '==', 'json'], { arg_name: 'JSON' }), false);
    assert.equal(one(['arg_name', '==', 'json'], {}), false);
    assert.equal(one(['arg_name', '==', ''], { arg_name: '' }), true);
    assert.equal(one(['arg_name', '~=', 'json'], { arg_name: 'xml' }), true);
    assert.equal(one(['arg_name', '~=', 'json'], { arg_name: 'json' }), false);
    assert.equal(one(['arg_name', '~=', 'json'], {}), true);
  });

  it('string right side does not convert numbers in strings', () => {
    assert.equal(one(['arg_n', '==', '10'], { arg_n: '10.0' }), false);
    assert.equal(one(['arg_n', '==', '10'], { arg_n: '10' }), true);
  });

  it('number right side converts the variable with tonumber', () => {
    assert.equal(one(['arg_n', '==', 16], { arg_n: '0x10' }), true);
    assert.equal(one(['arg_n', '==', 12], { arg_n: ' 12 ' }), true);
    assert.equal(one(['arg_n', '==', 1000], { arg_n: '1e3' }), true);
    assert.equal(one(['arg_n', '==', 10], { arg_n: '10.0' }), true);
    assert.equal(one(['arg_n', '==', 10], { arg_n: '11' }), false);
    assert.equal(one(['arg_n', '==', 10], { arg_n: 'ten' }), false);
    assert.equal(one(['arg_n', '==', 10], {}), false);
    assert.equal(one(['arg_n', '~=', 10], { arg_n: 'ten' }), true);
    assert.equal(one(['arg_n', '~=', 10], {}), true);
    assert.equal(one(['arg_n', '~=', 10], { arg_n: '10' }), false);
    assert.equal(one(['arg_n', '~=', 10], { arg_n: '9' }), true);
  });

  it('null right side means the variable is absent', () => {
    assert.equal(one(['arg_x', '==', null], {}), true);
    assert.equal(one(['arg_x', '==', null], { arg_x: null }), true);
    assert.equal(one(['arg_x', '==', null], { arg_x: '' }), false);
    assert.equal(one(['arg_x', '~=', null], { arg_x: 'v' }), true);
    assert.equal(one(['arg_x', '~=', null], {}), false);
  });

  it('numbers and booleans from the lookup compare naturally', () => {
    assert.equal(one(['status', '==', 200], { status: 200 }), true);
    assert.equal(one(['status', '==', '200'], { status: 200 }), true);
    assert.equal(one(['status', '==', '201'], { status: 200 }), false);
    assert.equal(one(['status', '~=', 200], { status: 404 }), true);
    assert.equal(one(['flag', '==', true], { flag: true }), true);
    assert.equal(one(['flag', '==', true], { flag: false }), false);
    assert.equal(one(['flag', '==', 'true'], { flag: true }), true);
    assert.equal(one(['flag', '==', true], { flag: 'true' }), false);
  });

  it('a repeated arg (array) compares by its first value', () => {
    assert.equal(one(['arg_a', '==', '1'], { arg_a: ['1', '2'] }), true);
    assert.equal(one(['arg_a', '==', '2'], { arg_a: ['1', '2'] }), false);
    assert.equal(one(['arg_a', '==', 1], { arg_a: ['1', '2'] }), true);
    assert.equal(one(['arg_a', '~=', '1'], { arg_a: ['1', '2'] }), false);
  });

  it('the 2-item form means ==', () => {
    assert.equal(one(['arg_k', 'v'], { arg_k: 'v' }), true);
    assert.equal(one(['arg_k', 'v'], { arg_k: 'w' }), false);
    assert.equal(one(['arg_k', 5], { arg_k: '5.0' }), true);
    assert.equal(one(['arg_k', null], {}), true);
    assert.equal(one(['arg_k', '!'], { arg_k: '!' }), true);
    assert.equal(run([['a', '1'], ['b', '2']], { a: '1', b: '2' }), true);
  });

  it('[var, op] reads the value as nil', () => {
    assert.equal(one(['arg_k', '=='], {}), true);
    assert.equal(one(['arg_k', '=='], { arg_k: 'x' }), false);
    assert.equal(one(['arg_k', '~='], { arg_k: 'x' }), true);
  });
});

describe('numeric comparisons', () => {
  it('compare after converting both sides', () => {
    assert.equal(one(['arg_w', '>', 10], { arg_w: '11' }), true);
    assert.equal(one(['arg_w', '>', 10], { arg_w: '10' }), false);
    assert.equal(one(['arg_w', '>=', 10], { arg_w: '10' }), true);
    assert.equal(one(['arg_w', '>=', 10], { arg_w: '9.99' }), false);
    assert.equal(one(['arg_w', '<', 10], { arg_w: '9' }), true);
    assert.equal(one(['arg_w', '<', 10], { arg_w: '10' }), false);
    assert.equal(one(['arg_w', '<=', 10], { arg_w: '10' }), true);
    assert.equal(one(['arg_w', '<=', 10], { arg_w: '10.5' }), false);
  });

  it('compare numerically, not lexically', () => {
    assert.equal(one(['arg_w', '>', 9], { arg_w: '10' }), true);
    assert.equal(one(['arg_w', '<', '9'], { arg_w: '10' }), false);
    assert.equal(one(['arg_w', '>', '0x0f'], { arg_w: '16' }), true);
    assert.equal(one(['arg_w', '>', 15], { arg_w: '0x10' }), true);
    assert.equal(one(['arg_w', '<', 0], { arg_w: '-1e2' }), true);
    assert.equal(one(['arg_w', '>', 1e300], { arg_w: 'inf' }), true);
  });

  it('a string right side is converted too', () => {
    assert.equal(one(['arg_w', '>', '10'], { arg_w: '11' }), true);
    assert.equal(one(['arg_w', '<=', ' 10 '], { arg_w: '10' }), true);
  });

  it('non-numeric sides are false', () => {
    assert.equal(one(['arg_w', '>', 10], { arg_w: 'abc' }), false);
    assert.equal(one(['arg_w', '<', 10], { arg_w: 'abc' }), false);
    assert.equal(one(['arg_w', '>=', 10], {}), false);
    assert.equal(one(['arg_w', '<=', 10], { arg_w: '' }), false);
    assert.equal(one(['arg_w', '<', 10], { arg_w: 'nan' }), false);
    assert.equal(one(['arg_w', '>', 'abc'], { arg_w: '11' }), false);
    assert.equal(one(['arg_w', '<', 'abc'], { arg_w: '11' }), false);
    assert.equal(one(['flag', '>', 0], { flag: true }), false);
  });

  it('negated comparisons with non-numeric sides are true', () => {
    assert.equal(one(['arg_w', '!', '>', 10], { arg_w: 'abc' }), true);
    assert.equal(one(['arg_w', '!', '>', 'abc'], { arg_w: '11' }), true);
    assert.equal(one(['arg_w', '!', '>', 15], { arg_w: '12' }), true);
    assert.equal(one(['arg_w', '!', '>', 15], { arg_w: '16' }), false);
  });

  it('numbers from the lookup and repeated args', () => {
    assert.equal(one(['status', '>=', 500], { status: 503 }), true);
    assert.equal(one(['status', '<', 500], { status: 503 }), false);
    assert.equal(one(['arg_w', '>', 10], { arg_w: ['20', '1'] }), true);
    assert.equal(one(['arg_w', '>', 10], { arg_w: ['1', '20'] }), false);
    assert.equal(one(['arg_w', '>', 10], { arg_w: [] }), false);
  });
});

describe('~~ and ~*', () => {
  it('~~ is an unanchored, case-sensitive search', () => {
    assert.equal(one(['uri', '~~', '/api/v[0-9]+'], { uri: '/x/api/v2/users' }), true);
    assert.equal(one(['uri', '~~', '^/api/v[0-9]+$'], { uri: '/x/api/v2' }), false);
    // PCRE's `$` also matches before a final newline (not elsewhere); `\$` and `[$]` stay literal.
    assert.equal(one(['http_x', '~~', '^abc$'], { http_x: 'abc\n' }), true);
    assert.equal(one(['http_x', '~~', '^abc$'], { http_x: 'abc\nd' }), false);
    assert.equal(one(['http_x', '~~', '^a\\$[$]$'], { http_x: 'a$$' }), true);
    assert.equal(one(['http_x', '~~', '[a-z]+'], { http_x: '123' }), false);
    assert.equal(one(['http_x', '~~', 'abc'], { http_x: 'ABC' }), false);
    assert.equal(one(['http_x', '~~', ''], { http_x: '' }), true);
  });

  it('~* ignores case', () => {
    assert.equal(one(['http_x', '~*', 'abc'], { http_x: 'xABCx' }), true);
    assert.equal(one(['http_x', '~*', '^abc$'], { http_x: 'AbC' }), true);
    assert.equal(one(['http_x', '~*', '^abc$'], { http_x: 'AbCd' }), false);
  });

  it('absent variable never matches; negation then holds', () => {
    assert.equal(one(['http_x', '~~', '.*'], {}), false);
    assert.equal(one(['http_x', '~*', '.*'], { http_x: null }), false);
    assert.equal(one(['http_x', '!', '~~', '.*'], {}), true);
    assert.equal(one(['arg_name', '!', '~~', '[a-z]+'], { arg_name: '123' }), true);
    assert.equal(one(['arg_name', '!', '~~', '[a-z]+'], { arg_name: 'abc' }), false);
  });

  it('matches numbers as text and repeated args by the first value', () => {
    assert.equal(one(['status', '~~', '^5\\d\\d$'], { status: 503 }), true);
    assert.equal(one(['arg_a', '~~', '^x'], { arg_a: ['xy', 'z'] }), true);
    assert.equal(one(['arg_a', '~~', '^z'], { arg_a: ['xy', 'z'] }), false);
  });

  it('is stable across repeated evaluations', () => {
    const pred = compileExpr([['h', '~~', 'a']]);
    for (let i = 0; i < 5; i++) assert.equal(pred(vars({ h: 'banana' })), true);
  });

  it('translates common PCRE-only constructs', () => {
    assert.equal(one(['h', '~~', '(?i)^abc'], { h: 'ABCD' }), true);
    assert.equal(one(['h', '~~', '\\Aab\\z'], { h: 'ab' }), true);
    assert.equal(one(['h', '~~', '\\Aab\\z'], { h: 'ab\n' }), false);
    assert.equal(one(['h', '~~', 'ab\\Z'], { h: 'ab\n' }), true);
    assert.equal(one(['h', '~~', '\\Q1.5*\\E'], { h: 'v1.5*' }), true);
    assert.equal(one(['h', '~~', '\\Q1.5*\\E'], { h: 'v125' }), false);
    assert.equal(one(['h', '~~', '(?P<w>ab)-(?P=w)'], { h: 'ab-ab' }), true);
    assert.equal(one(['h', '~~', '^[]a]+$'], { h: ']a]' }), true);
    assert.equal(translatePcre('[\\A]\\\\A', '').source, '[\\A]\\\\A');
  });
});

describe('in', () => {
  it('matches one element of the array', () => {
    assert.equal(one(['arg_name', 'in', ['1', '2']], { arg_name: '2' }), true);
    assert.equal(one(['arg_name', 'in', ['1', '2']], { arg_name: '3' }), false);
    assert.equal(one(['arg_name', 'in', ['1', '2']], {}), false);
    assert.equal(one(['arg_name', 'in', []], { arg_name: '1' }), false);
    assert.equal(one(['arg_name', '!', 'in', ['1', '2']], { arg_name: '3' }), true);
    assert.equal(one(['arg_name', '!', 'in', ['1', '2']], { arg_name: '1' }), false);
  });

  it('compares like Lua: a string variable never equals a number element', () => {
    assert.equal(one(['arg_id', 'in', [1, 2]], { arg_id: '1' }), false);
    assert.equal(one(['id', 'in', [1, 2]], { id: 2 }), true);
    assert.equal(one(['id', 'in', ['1', '2']], { id: 2 }), true);
    assert.equal(one(['x', 'in', [null]], {}), false);
    assert.equal(one(['flag', 'in', [true]], { flag: true }), true);
  });

  it('uses the first value of a repeated arg', () => {
    assert.equal(one(['arg_a', 'in', ['x']], { arg_a: ['x', 'y'] }), true);
    assert.equal(one(['arg_a', 'in', ['y']], { arg_a: ['x', 'y'] }), false);
  });
});

describe('has', () => {
  it('array variable contains the value', () => {
    assert.equal(one(['graphql_root_fields', 'has', 'repo'], { graphql_root_fields: ['owner', 'repo'] }), true);
    assert.equal(one(['graphql_root_fields', 'has', 'user'], { graphql_root_fields: ['owner', 'repo'] }), false);
    assert.equal(one(['graphql_root_fields', 'has', 'repo'], { graphql_root_fields: [] }), false);
    assert.equal(one(['graphql_root_fields', '!', 'has', 'user'], { graphql_root_fields: ['repo'] }), true);
  });

  it('is false for string and absent variables', () => {
    assert.equal(one(['x', 'has', 'repo'], { x: 'repo' }), false);
    assert.equal(one(['x', 'has', 'e'], { x: 'repo' }), false);
    assert.equal(one(['x', 'has', 'repo'], {}), false);
  });

  it('compares numbers', () => {
    assert.equal(one(['ids', 'has', 3], { ids: [1, 2, 3] }), true);
    assert.equal(one(['ids', 'has', '3'], { ids: [1, 2, 3] }), true);
    assert.equal(one(['ids', 'has', 3], { ids: ['3'] }), false);
  });
});

describe('ipmatch', () => {
  it('single IPv4 address as a string or list', () => {
    assert.equal(one(['remote_addr', 'ipmatch', '127.0.0.1'], { remote_addr: '127.0.0.1' }), true);
    assert.equal(one(['remote_addr', 'ipmatch', '127.0.0.1'], { remote_addr: '127.0.0.2' }), false);
    assert.equal(one(['remote_addr', 'ipmatch', ['127.0.0.1']], { remote_addr: '127.0.0.1' }), true);
  });

  it('IPv4 CIDR and multiple entries', () => {
    assert.equal(one(['remote_addr', 'ipmatch', '127.0.0.0/16'], { remote_addr: '127.0.200.1' }), true);
    assert.equal(one(['remote_addr', 'ipmatch', '127.0.0.0/16'], { remote_addr: '127.1.0.1' }), false);
    const list = ['127.0.0.1', '192.168.0.0/16', '10.0.0.0/8'];
    assert.equal(one(['remote_addr', 'ipmatch', list], { remote_addr: '192.168.44.5' }), true);
    assert.equal(one(['remote_addr', 'ipmatch', list], { remote_addr: '10.255.255.255' }), true);
    assert.equal(one(['remote_addr', 'ipmatch', list], { remote_addr: '11.0.0.1' }), false);
    assert.equal(one(['remote_addr', 'ipmatch', ['127.0.0.2', '127.0.0.3']], { remote_addr: '127.0.0.1' }), false);
  });

  it('IPv6 addresses and CIDRs', () => {
    assert.equal(one(['remote_addr', 'ipmatch', '::1'], { remote_addr: '::1' }), true);
    assert.equal(one(['remote_addr', 'ipmatch', '::1'], { remote_addr: '::2' }), false);
    assert.equal(one(['remote_addr', 'ipmatch', ['2001:db8::/32']], { remote_addr: '2001:db8:1:2::5' }), true);
    assert.equal(one(['remote_addr', 'ipmatch', ['2001:db8::/32']], { remote_addr: '2001:db9::5' }), false);
    assert.equal(one(['remote_addr', 'ipmatch', ['fe80::/10', '10.0.0.0/8']], { remote_addr: 'fe80::1' }), true);
    assert.equal(one(['remote_addr', 'ipmatch', ['2001:db8::/32']], { remote_addr: '10.0.0.1' }), false);
  });

  it('IP taken from another variable; non-IP and absent values never match', () => {
    assert.equal(one(['arg_real_ip', 'ipmatch', ['127.0.0.1']], { arg_real_ip: '127.0.0.1' }), true);
    assert.equal(one(['http_x_real_ip', 'ipmatch', ['10.0.0.0/8']], { http_x_real_ip: 'not-an-ip' }), false);
    assert.equal(one(['remote_addr', 'ipmatch', ['10.0.0.0/8']], {}), false);
    assert.equal(one(['remote_addr', '!', 'ipmatch', ['10.0.0.0/8']], { remote_addr: '192.0.2.1' }), true);
    assert.equal(one(['remote_addr', '!', 'ipmatch', ['10.0.0.0/8']], { remote_addr: '10.0.0.1' }), false);
  });

  it('combines with other operators', () => {
    const rule = [['remote_addr', 'ipmatch', ['127.0.0.1']], ['arg_k', '==', 'v']];
    assert.equal(run(rule, { remote_addr: '127.0.0.1', arg_k: 'v' }), true);
    assert.equal(run(rule, { remote_addr: '127.0.0.2', arg_k: 'v' }), false);
  });
});

describe('negation and operator case', () => {
  it('"!" negates every operator', () => {
    const v = { a: 'x', n: '5', list: ['q'], ip: '10.0.0.1' };
    const pairs: Array<[unknown[], boolean]> = [
      [['a', '==', 'x'], true], [['a', '~=', 'x'], false], [['n', '>', 4], true], [['n', '>=', 6], false],
      [['n', '<', 6], true], [['n', '<=', 4], false], [['a', '~~', 'x'], true], [['a', '~*', 'X'], true],
      [['a', 'in', ['x']], true], [['list', 'has', 'q'], true], [['ip', 'ipmatch', '10.0.0.0/8'], true],
    ];
    for (const [[name, op, value], expected] of pairs) {
      assert.equal(one([name, op, value], v), expected, `${op}`);
      assert.equal(one([name, '!', op, value], v), !expected, `! ${op}`);
    }
  });

  it('operators are case-insensitive', () => {
    assert.equal(one(['arg_name', 'IN', ['1', '2']], { arg_name: '1' }), true);
    assert.equal(one(['arg_name', '!', 'In', ['1', '2']], { arg_name: '1' }), false);
    assert.equal(one(['list', 'HAS', 'q'], { list: ['q'] }), true);
    assert.equal(one(['ip', 'IPMatch', '10.0.0.0/8'], { ip: '10.1.1.1' }), true);
  });
});

describe('compile errors', () => {
  const cases: Array<[unknown, string | RegExp]> = [
    [undefined, 'missing argument rule'],
    [null, 'missing argument rule'],
    ['arg_a', 'rule must be an array, got string'],
    [{ a: 1 }, 'rule must be an array, got object'],
    [['arg_k', '==', 'v'], 'rule should be wrapped inside brackets'],
    [[5, ['a', '==', '1']], 'rule should be wrapped inside brackets'],
    [[[]], 'rule too short'],
    [['OR', ['arg_weight', '>', 10]], 'rule too short'],
    [['OR'], 'rule too short'],
    [['OR', ['arg_weight', '>', 10], ['AND']], 'rule too short'],
    [['OR', ['a', '==', '1'], 'b'], 'invalid expression: expected an array, got string'],
    [[['a', '==', '1'], 5], 'invalid expression: expected an array, got number'],
    [[['arg_k']], /^invalid expression: expected \[var, operator, value\]/],
    [[['a', '==', '1', 'x', 'y']], 'invalid expression: too many elements (5), at most 4 are allowed'],
    [[[1, '==', '1']], 'invalid expression: first element must be a string (variable name), got number'],
    [[[null, '==', '1']], 'invalid expression: first element must be a string (variable name), got null'],
    [[['', '==', '1']], 'invalid expression: variable name must not be empty'],
    [[['!', 'arg_k', '==', '1']], "bad 'not' expression"],
    [[['arg_k', 'not', '==', '1']], "bad 'not' expression"],
    [[['arg_k', '=', 'v']], "invalid operator '='"],
    [[['arg_k', '!', '=', 'v']], "invalid operator '='"],
    [[['arg_k', 'LIKE', 'v']], "invalid operator 'like'"],
    [[['arg_k', '!', 'v']], "invalid operator '!'"],
    [[['arg_k', 5, 'v']], "invalid operator '5'"],
    [[['arg_k', null, 'v']], "invalid operator 'null'"],
    [[['arg_k', '==', ['v']]], "invalid value for operator '==': expected a string, number, boolean or null, got array"],
    [[['arg_k', '~=', { a: 1 }]], "invalid value for operator '~=': expected a string, number, boolean or null, got object"],
    [[['arg_k', '>', null]], "invalid value for operator '>': expected a number or a numeric string, got null"],
    [[['arg_k', '<=', [1]]], "invalid value for operator '<=': expected a number or a numeric string, got array"],
    [[['arg_k', 'in', 'a']], "invalid value for operator 'in': expected an array, got string"],
    [[['arg_k', 'in']], "invalid value for operator 'in': expected an array, got null"],
    [[['arg_k', 'has', ['a']]], "invalid value for operator 'has': expected a string, number or boolean, got array"],
    [[['arg_k', 'has', null]], "invalid value for operator 'has': expected a string, number or boolean, got null"],
    [[['arg_k', '~~', 5]], "invalid value for operator '~~': expected a regex string, got number"],
    [[['arg_k', '~~', '(abc']], /^invalid regex '\(abc' for operator '~~': .*Unterminated group/],
    [[['arg_k', '~*', '[a-']], /^invalid regex '\[a-' for operator '~\*': /],
    [[['arg_k', '~~', '(?x) a b']], /^invalid regex '\(\?x\) a b'/],
    [[['remote_addr', 'ipmatch', null]], 'invalid ip address'],
    [[['remote_addr', 'ipmatch']], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', '']], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', []]], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', 5]], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', ['']]], 'invalid ip address: '],
    [[['remote_addr', 'ipmatch', ['10.0.0.0/8', '300.1.1.1']]], 'invalid ip address: 300.1.1.1'],
    [[['remote_addr', 'ipmatch', ['10.0.0.0/33']]], 'invalid ip address: 10.0.0.0/33'],
    [[['remote_addr', 'ipmatch', [42]]], 'invalid ip address: 42'],
  ];

  for (const [rule, expected] of cases) {
    it(`rejects ${JSON.stringify(rule)}`, () => {
      const message = compileError(rule);
      if (typeof expected === 'string') assert.equal(message, expected);
      else assert.match(message, expected);
      assert.equal(validateExpr(rule), message);
    });
  }

  it('errors deep inside nested rules surface', () => {
    const rule = ['OR', ['a', '==', '1'], ['AND', ['b', '==', '2'], ['!OR', ['c', '==', '3'], ['d', 'like', 'x']]]];
    assert.equal(compileError(rule), "invalid operator 'like'");
  });

  it('rejects absurd nesting without overflowing the stack', () => {
    let rule: unknown = ['a', '==', '1'];
    for (let i = 0; i < 10000; i++) rule = [rule];
    assert.match(compileError(rule), /^rule nested too deeply/);
  });

  it('validateExpr returns undefined for valid rules', () => {
    assert.equal(validateExpr([]), undefined);
    assert.equal(validateExpr([['arg_a', '==', '1']]), undefined);
    assert.equal(validateExpr(['AND', ['a', '>', 1], ['b', '!', 'in', ['x']]]), undefined);
    assert.equal(validateExpr([['a', '>', 'not-a-number']]), undefined);
  });
});
