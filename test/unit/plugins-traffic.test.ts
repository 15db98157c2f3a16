// Pure logic of the traffic plugins: traffic-split's weighted round robin, redirect's uri template
// and URI escaping, mocking's example generation and XML layout, proxy-mirror's nginx time values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WeightedRoundRobin } from '../../src/plugins/builtin/traffic-split/round-robin.ts';
import { escapeUri, UriTemplate } from '../../src/plugins/builtin/redirect/uri-template.ts';
import { generateObject, toJson, toXml } from '../../src/plugins/builtin/mocking/generate.ts';
import { parseNginxTime } from '../../src/plugins/builtin/proxy-mirror/nginx-time.ts';

const vars = (values: Record<string, string>) => ({ get: (name: string) => values[name] });

function counts<T>(picks: T[]): Map<T, number> {
  const out = new Map<T, number>();
  for (const p of picks) out.set(p, (out.get(p) ?? 0) + 1);
  return out;
}

describe('traffic-split weighted round robin', () => {
  it('gives every target exactly its share over each window of sum(weights)/gcd picks', () => {
    for (let run = 0; run < 20; run++) {
      const rr = new WeightedRoundRobin([{ target: 'a', weight: 2 }, { target: 'b', weight: 2 }, { target: 'route', weight: 1 }]);
      const picks = Array.from({ length: 50 }, () => rr.pick());
      for (let start = 0; start + 5 <= picks.length; start++) {
        assert.deepEqual(Object.fromEntries(counts(picks.slice(start, start + 5))), { a: 2, b: 2, route: 1 }, picks.join(','));
      }
    }
  });

  it('uses the gcd of the weights', () => {
    const rr = new WeightedRoundRobin([{ target: 'a', weight: 20 }, { target: 'b', weight: 10 }]);
    const picks = Array.from({ length: 6 }, () => rr.pick());
    assert.deepEqual(Object.fromEntries(counts(picks)), { a: 4, b: 2 });
  });

  it('never picks weight 0 beside others; a lone target is always picked; all-zero rotates', () => {
    const rr = new WeightedRoundRobin([{ target: 'a', weight: 0 }, { target: 'b', weight: 3 }]);
    assert.ok(Array.from({ length: 10 }, () => rr.pick()).every((p) => p === 'b'));
    const lone = new WeightedRoundRobin([{ target: 'only', weight: 0 }]);
    assert.equal(lone.pick(), 'only');
    const zeros = new WeightedRoundRobin([{ target: 'x', weight: 0 }, { target: 'y', weight: 0 }]);
    assert.deepEqual(Object.fromEntries(counts(Array.from({ length: 4 }, () => zeros.pick()))), { x: 2, y: 2 });
  });

  it('refuses an empty list', () => {
    assert.throws(() => new WeightedRoundRobin([]), /empty nodes/);
  });
});

describe('redirect uri templates', () => {
  const ctx = vars({ uri: '/hello', host: 'foo.com', request_uri: '/hello?a=1', arg_name: 'json' });
  const cases: Array<[string, string]> = [
    ['/test/add', '/test/add'],
    ['$uri/test/add', '/hello/test/add'],
    ['$uri/test/a${arg_name}c', '/hello/test/ajsonc'],
    ['/foo$$uri', '/foo$/hello'],
    ['\\$uri/foo$uri\\$uri/bar', '\\$uri/foo/hello\\$uri/bar'],
    ['$uri/$bad_var/bar', '/hello//bar'],
    ['https://$host$request_uri', 'https://foo.com/hello?a=1'],
    // names stop at characters other than letters, digits and `_`
    ['$uri.html', '/hello.html'],
    // `${` without a name is literal; a backslash before anything but `$name` is dropped
    ['/a${ uri }', '/a${ uri }'],
    ['/a\\b', '/ab'],
    ['/end$', '/end$'],
  ];
  for (const [source, expected] of cases) {
    it(`${source} → ${expected}`, () => assert.equal(new UriTemplate(source).render(ctx), expected));
  }

  it('escapes as ngx_escape_uri does (NGX_ESCAPE_URI)', () => {
    assert.equal(escapeUri('/with space'), '/with%20space');
    assert.equal(escapeUri('http://test.com/a#b%c"d<e>f\\g^h`i{j|k}l'), 'http://test.com/a%23b%25c%22d%3Ce%3Ef%5Cg%5Eh%60i%7Bj%7Ck%7Dl');
    assert.equal(escapeUri('/é\x01\x7f'), '/%C3%A9%01%7F');
    assert.equal(escapeUri("/keep-._~!$&'()*+,;=:@/"), "/keep-._~!$&'()*+,;=:@/");
  });
});

describe('mocking example generation', () => {
  it('uses examples of the right type and random values otherwise', () => {
    const value = generateObject({
      type: 'object',
      properties: {
        s: { type: 'string', example: 'abcd' },
        n: { type: 'number', example: 123.12 },
        i: { type: 'integer', example: 155.55 },
        b: { type: 'boolean', example: false },
        wrong: { type: 'string', example: 5 },
        r: { type: 'integer' },
        upper: { type: 'STRING', example: 'x' },
        none: { example: 'no type' },
        noitems: { type: 'array' },
      },
    });
    assert.equal(value.s, 'abcd');
    assert.equal(value.n, 123.12);
    assert.equal(value.i, 155);
    assert.equal(value.b, false);
    assert.match(value.wrong as string, /^[a-z]{1,10}$/);
    assert.ok(Number.isInteger(value.r) && (value.r as number) >= 1 && (value.r as number) <= 10000);
    assert.equal(value.upper, 'x');
    assert.ok(!('none' in value) && !('noitems' in value));
  });

  it('writes JSON as cjson does (an empty array is {})', () => {
    assert.equal(toJson({ a: 'x/y', b: [1, 2], c: {}, d: [] }), '{"a":"x/y","b":[1,2],"c":{},"d":{}}');
  });

  it('writes XML as xml2lua 1.5 lays it out', () => {
    assert.equal(toXml({ field1: 'hello' }), '<data>\n  <field1>hello</field1>\n</data>\n');
    assert.equal(toXml({ arr: ['a', 'b'], n: 1 }), '<data>\n    <arr>a</arr>\n    <arr>b</arr>\n  <n>1</n>\n</data>\n');
    assert.equal(toXml({ obj: { k: true } }), '<data>\n  <obj>\n      <k>true</k>\n  </obj>\n</data>\n');
    assert.equal(toXml({ list: [{ k: 'v' }] }), '<data>\n    <list>\n      <k>v</k>\n    </list>\n</data>\n');
  });
});

describe('proxy-mirror nginx time values', () => {
  it('reads seconds, units and runs of units', () => {
    assert.equal(parseNginxTime('60s'), 60_000);
    assert.equal(parseNginxTime('500ms'), 500);
    assert.equal(parseNginxTime('1m30s'), 90_000);
    assert.equal(parseNginxTime('2'), 2000);
    assert.equal(parseNginxTime(3), 3000);
    assert.equal(parseNginxTime('1h'), 3_600_000);
  });

  it('refuses what is not a time', () => {
    assert.equal(parseNginxTime('soon'), undefined);
    assert.equal(parseNginxTime(''), undefined);
    assert.equal(parseNginxTime(undefined), undefined);
    assert.equal(parseNginxTime(-1), undefined);
  });
});
