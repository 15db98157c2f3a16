import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Router, compilePath, type MatchInput, type RouteSpec, type RouterMode } from '../../src/router/index.ts';
import { RadixTree } from '../../src/router/radix.ts';
import { parseHostPattern } from '../../src/router/host.ts';
import { candidateOrder, type Candidate, type RouteEntry } from '../../src/router/types.ts';
import { varsFromObject, type VarValue } from '../../src/expr/vars.ts';

const MODES: RouterMode[] = ['radixtree_host_uri', 'radixtree_uri', 'radixtree_uri_with_parameter'];

function req(path: string, over: Partial<Omit<MatchInput, 'vars'>> & { vars?: Record<string, VarValue> } = {}): MatchInput {
  return {
    path,
    host: over.host ?? 'localhost',
    hostWithPort: over.hostWithPort,
    method: over.method ?? 'GET',
    remoteAddr: over.remoteAddr ?? '127.0.0.1',
    vars: varsFromObject(over.vars ?? {}),
  };
}

function route(id: string, paths: string | string[], extra: Partial<RouteSpec<string>> = {}): RouteSpec<string> {
  return { id, paths: Array.isArray(paths) ? paths : [paths], value: `v-${id}`, ...extra };
}

function build(mode: RouterMode, specs: RouteSpec<string>[]): Router<string> {
  const r = new Router<string>(mode);
  for (const s of specs) r.upsert(s);
  return r;
}

/** Id of the matched route, or undefined. */
function hit(r: Router<string>, path: string, over: Parameters<typeof req>[1] = {}): string | undefined {
  return r.match(req(path, over))?.id;
}

describe('path forms', () => {
  for (const mode of MODES) {
    it(`exact, prefix and mid-path * (${mode})`, () => {
      const r = build(mode, [route('exact', '/a/b'), route('prefix', '/p/b*'), route('mid', '/m/*/c')]);
      assert.equal(hit(r, '/a/b'), 'exact');
      assert.equal(hit(r, '/a/b/'), undefined);
      assert.equal(hit(r, '/a/bc'), undefined);
      assert.equal(hit(r, '/a'), undefined);

      assert.equal(hit(r, '/p/b'), 'prefix');
      assert.equal(hit(r, '/p/bc'), 'prefix', 'no segment boundary');
      assert.equal(hit(r, '/p/b/c/d'), 'prefix');
      assert.equal(hit(r, '/p/'), undefined);

      assert.equal(hit(r, '/m/x/c'), 'mid');
      assert.equal(hit(r, '/m/x/y/z/c'), 'mid', '* spans slashes');
      assert.equal(hit(r, '/m/x/d'), undefined);
      assert.equal(hit(r, '/m/x/c/d'), undefined, 'the full path must match');
      assert.equal(hit(r, '/m/c'), undefined);
    });
  }

  it('records how paths are stored', () => {
    assert.deepEqual(pick(compilePath('/a/b', false)), { kind: 'exact', key: '/a/b' });
    assert.deepEqual(pick(compilePath('/a/b*', false)), { kind: 'prefix', key: '/a/b' });
    assert.deepEqual(pick(compilePath('/a/*', true)), { kind: 'prefix', key: '/a/' });
    assert.deepEqual(pick(compilePath('/a/*/c', false)), { kind: 'pattern', key: '/a/' });
    assert.deepEqual(pick(compilePath('/u/:id', true)), { kind: 'pattern', key: '/u/' });
    assert.deepEqual(pick(compilePath('/u/:id', false)), { kind: 'exact', key: '/u/:id' });
    assert.deepEqual(pick(compilePath('/u/:id/*', false)), { kind: 'prefix', key: '/u/:id/' });
    assert.deepEqual(pick(compilePath('/u/a:b/:c', true)), { kind: 'pattern', key: '/u/a:b/' }, '":" only starts a parameter at a segment start');
    function pick(c: ReturnType<typeof compilePath>) {
      return { kind: c.kind, key: c.key };
    }
  });

  it('captures parameters in radixtree_uri_with_parameter', () => {
    const r = build('radixtree_uri_with_parameter', [
      route('name', '/user/:name'),
      route('action', '/user/:name/*action'),
      route('ext', '/file/:dir/*'),
      route('two', '/org/:org/repo/:repo'),
    ]);
    assert.deepEqual(r.match(req('/user/alice')), { id: 'name', value: 'v-name', path: '/user/:name', params: { name: 'alice' } });
    assert.deepEqual(r.match(req('/user/alice/edit/now'))?.params, { name: 'alice', action: 'edit/now' });
    assert.deepEqual(r.match(req('/user/alice/'))?.params, { name: 'alice', action: '' });
    assert.deepEqual(r.match(req('/file/img/a/b.png'))?.params, { dir: 'img', ':ext': 'a/b.png' });
    assert.deepEqual(r.match(req('/org/apache/repo/apisix'))?.params, { org: 'apache', repo: 'apisix' });
    assert.equal(hit(r, '/user/'), undefined, 'a parameter needs at least one character');
    assert.equal(hit(r, '/org/apache/repo'), undefined);
    assert.equal(hit(r, '/org/a/b/repo/c'), undefined, 'a parameter spans one segment only');
  });

  for (const mode of ['radixtree_uri', 'radixtree_host_uri'] as const) {
    it(`treats ":" literally in ${mode}`, () => {
      const r = build(mode, [route('lit', '/user/:name')]);
      assert.equal(hit(r, '/user/alice'), undefined);
      const m = r.match(req('/user/:name'));
      assert.equal(m?.id, 'lit');
      assert.equal(m?.params, undefined);
    });
  }

  it('reports no params for exact or plain prefix matches', () => {
    const r = build('radixtree_uri_with_parameter', [route('e', '/x'), route('p', '/y/*')]);
    assert.deepEqual(r.match(req('/x')), { id: 'e', value: 'v-e', path: '/x' });
    assert.deepEqual(r.match(req('/y/z')), { id: 'p', value: 'v-p', path: '/y/*' });
  });
});

describe('match order', () => {
  it('exact beats prefix, whatever the priority', () => {
    const r = build('radixtree_uri', [route('prefix', '/a*', { priority: 100 }), route('exact', '/a')]);
    assert.equal(hit(r, '/a'), 'exact');
    assert.equal(hit(r, '/ab'), 'prefix');
  });

  it('falls back from exact to prefix when the exact route fails its conditions', () => {
    const r = build('radixtree_uri', [route('exact', '/a', { methods: ['POST'] }), route('prefix', '/a*')]);
    assert.equal(hit(r, '/a', { method: 'POST' }), 'exact');
    assert.equal(hit(r, '/a', { method: 'GET' }), 'prefix');
  });

  it('longer prefix beats shorter prefix, whatever the priority', () => {
    const r = build('radixtree_uri', [route('blog', '/blog/*', { priority: 10 }), route('foo', '/blog/foo/*')]);
    assert.equal(hit(r, '/blog/foo/bar'), 'foo');
    assert.equal(hit(r, '/blog/bar'), 'blog');
    assert.equal(hit(r, '/blog/foo'), 'blog', '/blog/foo is not under the prefix /blog/foo/');
  });

  it('walks up to shorter prefixes when a longer one has no passing candidate', () => {
    const r = build('radixtree_uri', [
      route('root', '/*'),
      route('api', '/api/*', { methods: ['POST'] }),
      route('v1', '/api/v1/*', { vars: (v) => v.get('arg_ok') === '1' }),
    ]);
    assert.equal(hit(r, '/api/v1/x', { vars: { arg_ok: '1' } }), 'v1');
    assert.equal(hit(r, '/api/v1/x', { method: 'POST' }), 'api');
    assert.equal(hit(r, '/api/v1/x'), 'root');
    assert.equal(hit(r, '/other'), 'root');
  });

  it("follows APISIX's priority example", () => {
    const r = build('radixtree_host_uri', [
      route('A', '/server_port*', { priority: 2 }),
      route('B', '/server_port*', { priority: 1 }),
    ]);
    assert.equal(hit(r, '/server_port/aa'), 'A');
    r.upsert(route('B', '/server_port*', { priority: 3 }));
    assert.equal(hit(r, '/server_port/aa'), 'B');
  });

  it('within one node, equal priorities go by the longer original path', () => {
    const r = build('radixtree_uri_with_parameter', [route('star', '/user/*'), route('param', '/user/:id')]);
    assert.equal(hit(r, '/user/7'), 'param', 'both live under /user/; /user/:id is longer');
    assert.equal(hit(r, '/user/7/x'), 'star', 'the parameter route fails its path check');
    r.upsert(route('star', '/user/*', { priority: 1 }));
    assert.equal(hit(r, '/user/7'), 'star');

    const u = build('radixtree_uri', [route('short', '/a/*'), route('long', '/a/*/c')]);
    assert.equal(hit(u, '/a/b/c'), 'long');
    assert.equal(hit(u, '/a/b/d'), 'short');
  });

  it('ties go to the first inserted route; an update keeps its rank, a re-add does not', () => {
    const r = build('radixtree_uri', [route('first', '/t'), route('second', '/t')]);
    assert.equal(hit(r, '/t'), 'first');
    r.upsert(route('first', '/t', { methods: ['GET'] }));
    assert.equal(hit(r, '/t'), 'first', 'replacing a route keeps its insertion rank');
    r.remove('first');
    r.upsert(route('first', '/t'));
    assert.equal(hit(r, '/t'), 'second');
  });

  it('checks method before remote_addrs, hosts and vars', () => {
    const calls: string[] = [];
    const r = build('radixtree_uri', [
      route('x', '/x', { methods: ['POST'], vars: () => (calls.push('x'), true) }),
      route('y', '/x', { remoteAddrs: ['10.0.0.0/8'], vars: () => (calls.push('y'), true) }),
      route('z', '/x', { hosts: ['z.com'], vars: () => (calls.push('z'), true) }),
      route('w', '/x', { vars: () => (calls.push('w'), false) }),
    ]);
    assert.equal(hit(r, '/x'), undefined);
    assert.deepEqual(calls, ['w'], 'vars only run once method, remote address and host passed');
  });
});

describe('conditions', () => {
  it('methods: absent means any', () => {
    const r = build('radixtree_uri', [route('get', '/m', { methods: ['GET', 'head'] }), route('any', '/m')]);
    assert.equal(hit(r, '/m', { method: 'GET' }), 'get');
    assert.equal(hit(r, '/m', { method: 'HEAD' }), 'get', 'methods are upper-cased');
    assert.equal(hit(r, '/m', { method: 'DELETE' }), 'any');
    const only = build('radixtree_uri', [route('post', '/m', { methods: ['POST'] })]);
    assert.equal(hit(only, '/m', { method: 'GET' }), undefined);
  });

  it('remote_addrs: IPv4 and IPv6 addresses and CIDRs', () => {
    const r = build('radixtree_uri', [
      route('v4', '/ip', { remoteAddrs: ['192.168.1.0/24', '10.0.0.1'] }),
      route('v6', '/ip', { remoteAddrs: ['2001:db8::/32'] }),
    ]);
    assert.equal(hit(r, '/ip', { remoteAddr: '192.168.1.77' }), 'v4');
    assert.equal(hit(r, '/ip', { remoteAddr: '10.0.0.1' }), 'v4');
    assert.equal(hit(r, '/ip', { remoteAddr: '10.0.0.2' }), undefined);
    assert.equal(hit(r, '/ip', { remoteAddr: '192.168.2.1' }), undefined);
    assert.equal(hit(r, '/ip', { remoteAddr: '2001:db8:1::5' }), 'v6');
    assert.equal(hit(r, '/ip', { remoteAddr: '2001:db9::1' }), undefined);
  });

  it('vars: the compiled predicate decides', () => {
    const r = build('radixtree_uri', [
      route('beta', '/v', { vars: (v) => v.get('http_x_env') === 'beta' }),
      route('default', '/v'),
    ]);
    assert.equal(hit(r, '/v', { vars: { http_x_env: 'beta' } }), 'beta');
    assert.equal(hit(r, '/v', { vars: { http_x_env: 'prod' } }), 'default');
    const throwing = build('radixtree_uri', [
      route('boom', '/v', { vars: () => { throw new Error('bad operand'); } }),
      route('next', '/v'),
    ]);
    assert.equal(hit(throwing, '/v'), 'next', 'a predicate that throws counts as not matching');
  });

  it('hosts as a per-route condition in the uri modes', () => {
    const r = build('radixtree_uri', [
      route('exact', '/h', { hosts: ['API.Example.com'] }),
      route('wild', '/h', { hosts: ['*.example.com'] }),
      route('port', '/h', { hosts: ['ported.test:8080'] }),
      route('any', '/any', { hosts: ['*'] }),
    ]);
    assert.equal(hit(r, '/h', { host: 'api.example.com' }), 'exact', 'host patterns are case-insensitive');
    assert.equal(hit(r, '/h', { host: 'a.example.com' }), 'wild');
    assert.equal(hit(r, '/h', { host: 'a.b.example.com' }), 'wild');
    assert.equal(hit(r, '/h', { host: 'example.com' }), undefined, '*.example.com does not match example.com');
    assert.equal(hit(r, '/h', { host: 'badexample.com' }), undefined);
    assert.equal(hit(r, '/h', { host: 'ported.test', hostWithPort: 'ported.test:8080' }), 'port');
    assert.equal(hit(r, '/h', { host: 'ported.test', hostWithPort: 'Ported.Test:8080' }), 'port');
    assert.equal(hit(r, '/h', { host: 'ported.test', hostWithPort: 'ported.test:9090' }), undefined);
    assert.equal(hit(r, '/h', { host: 'ported.test' }), undefined);
    assert.equal(hit(r, '/any', { host: 'whatever.org' }), 'any');
  });

  it('many host-specific routes on one path (uri mode) still pick by host, priority and order', () => {
    const specs: RouteSpec<string>[] = [];
    for (let i = 0; i < 500; i++) specs.push(route(`h${i}`, '/api/*', { hosts: [`t${i}.example.com`] }));
    specs.push(route('wild', '/api/*', { hosts: ['*.example.com'], priority: 1, methods: ['PUT'] }));
    specs.push(route('open', '/api/*'));
    const r = build('radixtree_uri', specs);
    assert.equal(hit(r, '/api/x', { host: 't321.example.com' }), 'h321');
    assert.equal(hit(r, '/api/x', { host: 't321.example.com', method: 'PUT' }), 'wild', 'higher priority first');
    assert.equal(hit(r, '/api/x', { host: 'nobody.example.com' }), 'open');
    r.upsert(route('h321', '/api/*', { hosts: ['*.t321.example.com'] }));
    assert.equal(hit(r, '/api/x', { host: 't321.example.com' }), 'open', 'old host gone after the update');
    assert.equal(hit(r, '/api/x', { host: 'a.t321.example.com' }), 'h321');
    r.upsert(route('h321', '/api/*', { hosts: ['t321.example.com', 'alias.org'] }));
    assert.equal(hit(r, '/api/x', { host: 'alias.org' }), 'h321');
    assert.equal(hit(r, '/api/x', { host: 't321.example.com' }), 'h321');
    assert.ok(r.remove('h321'));
    assert.equal(hit(r, '/api/x', { host: 'alias.org' }), 'open');
  });

  it('in the uri modes a host-less route can win over a host route', () => {
    const r = build('radixtree_uri', [route('hostless', '/x'), route('hosted', '/x*', { hosts: ['a.com'], priority: 9 })]);
    assert.equal(hit(r, '/x', { host: 'a.com' }), 'hostless', 'exact path beats prefix, hosts are only a condition');
  });
});

describe('radixtree_host_uri buckets', () => {
  it('applies the host wildcard rules', () => {
    const r = build('radixtree_host_uri', [
      route('exact', '/h', { hosts: ['API.example.com'] }),
      route('wild', '/h', { hosts: ['*.example.com'] }),
      route('bracket', '/h', { hosts: ['[::1]'] }),
    ]);
    assert.equal(hit(r, '/h', { host: 'api.example.com' }), 'exact');
    assert.equal(hit(r, '/h', { host: 'a.example.com' }), 'wild');
    assert.equal(hit(r, '/h', { host: 'a.b.example.com' }), 'wild');
    assert.equal(hit(r, '/h', { host: 'example.com' }), undefined);
    assert.equal(hit(r, '/h', { host: '[::1]' }), 'bracket');
  });

  it('tries the exact host, then wildcards from the longest suffix, then "*"', () => {
    const r = build('radixtree_host_uri', [
      route('star', '/x', { hosts: ['*'], priority: 30 }),
      route('short', '/x', { hosts: ['*.com'], priority: 20 }),
      route('long', '/x', { hosts: ['*.example.com'], priority: 10 }),
      route('exact', '/x', { hosts: ['a.example.com'] }),
    ]);
    assert.equal(hit(r, '/x', { host: 'a.example.com' }), 'exact');
    assert.equal(hit(r, '/x', { host: 'b.example.com' }), 'long');
    assert.equal(hit(r, '/x', { host: 'b.com' }), 'short');
    assert.equal(hit(r, '/x', { host: 'b.org' }), 'star');
    r.remove('exact');
    assert.equal(hit(r, '/x', { host: 'a.example.com' }), 'long');
  });

  it('falls through to the next bucket when a bucket has no match', () => {
    const r = build('radixtree_host_uri', [
      route('exact-a', '/a', { hosts: ['api.example.com'] }),
      route('exact-post', '/c', { hosts: ['api.example.com'], methods: ['POST'] }),
      route('wild-b', '/b', { hosts: ['*.example.com'] }),
      route('wild-c', '/c', { hosts: ['*.example.com'] }),
      route('star-d', '/d', { hosts: ['*'] }),
      route('hostless-e', '/e'),
    ]);
    const host = 'api.example.com';
    assert.equal(hit(r, '/a', { host }), 'exact-a');
    assert.equal(hit(r, '/b', { host }), 'wild-b', 'no /b in the exact bucket');
    assert.equal(hit(r, '/c', { host, method: 'POST' }), 'exact-post');
    assert.equal(hit(r, '/c', { host, method: 'GET' }), 'wild-c', 'conditions failing in a bucket fall through too');
    assert.equal(hit(r, '/d', { host }), 'star-d');
    assert.equal(hit(r, '/e', { host }), 'hostless-e', 'host-less routes come last');
    assert.equal(hit(r, '/a', { host: 'other.org' }), undefined);
  });

  it('a host match beats any host-less route, whatever the priority or path form', () => {
    const r = build('radixtree_host_uri', [
      route('hostless', '/x', { priority: 100 }),
      route('hosted', '/*', { hosts: ['a.com'] }),
    ]);
    assert.equal(hit(r, '/x', { host: 'a.com' }), 'hosted');
    assert.equal(hit(r, '/x', { host: 'b.com' }), 'hostless', 'host-less fallback');
  });

  it('treats a route with several hosts as a member of each bucket', () => {
    const r = build('radixtree_host_uri', [route('multi', ['/p', '/q*'], { hosts: ['a.com', '*.b.com'] })]);
    assert.equal(hit(r, '/p', { host: 'a.com' }), 'multi');
    assert.equal(hit(r, '/qq', { host: 'x.b.com' }), 'multi');
    assert.equal(hit(r, '/p', { host: 'b.com' }), undefined);
    assert.ok(r.remove('multi'));
    assert.equal(hit(r, '/p', { host: 'a.com' }), undefined);
    assert.equal(hit(r, '/qq', { host: 'x.b.com' }), undefined);
  });

  it('compares a host with a port against the raw Host header', () => {
    const r = build('radixtree_host_uri', [
      route('port', '/p', { hosts: ['a.com:8080'] }),
      route('wildport', '/p', { hosts: ['*.b.com:8443'] }),
      route('plain', '/p', { hosts: ['a.com'] }),
    ]);
    assert.equal(hit(r, '/p', { host: 'a.com', hostWithPort: 'a.com:8080' }), 'port');
    assert.equal(hit(r, '/p', { host: 'a.com', hostWithPort: 'a.com:9090' }), 'plain');
    assert.equal(hit(r, '/p', { host: 'a.com' }), 'plain');
    assert.equal(hit(r, '/p', { host: 'x.b.com', hostWithPort: 'X.B.COM:8443' }), 'wildport');
    assert.equal(hit(r, '/p', { host: 'x.b.com', hostWithPort: 'x.b.com' }), undefined);
  });

  it('ignores hosts: [] (host-less)', () => {
    const r = build('radixtree_host_uri', [route('r', '/x', { hosts: [] })]);
    assert.equal(hit(r, '/x', { host: 'any.org' }), 'r');
  });
});

describe('upsert and remove', () => {
  for (const mode of MODES) {
    it(`replacing a route drops its old paths and hosts (${mode})`, () => {
      const r = build(mode, [route('r', ['/old', '/old-prefix/*', '/old/*/x'], { hosts: ['old.com'] }), route('other', '/keep')]);
      assert.equal(hit(r, '/old', { host: 'old.com' }), 'r');
      r.upsert(route('r', '/new', { hosts: ['new.com'] }));
      assert.equal(r.size, 2);
      assert.equal(hit(r, '/old', { host: 'old.com' }), undefined);
      assert.equal(hit(r, '/old-prefix/a', { host: 'old.com' }), undefined);
      assert.equal(hit(r, '/old/a/x', { host: 'old.com' }), undefined);
      assert.equal(hit(r, '/new', { host: 'old.com' }), undefined);
      assert.equal(hit(r, '/new', { host: 'new.com' }), 'r');
      assert.equal(r.match(req('/new', { host: 'new.com' }))?.value, 'v-r');
      assert.equal(hit(r, '/keep'), 'other');
    });

    it(`remove (${mode})`, () => {
      const r = build(mode, [route('a', '/a'), route('b', '/a*'), route('c', '/c/*/d')]);
      assert.equal(r.size, 3);
      assert.equal(r.remove('a'), true);
      assert.equal(r.remove('a'), false);
      assert.equal(r.remove('missing'), false);
      assert.equal(r.size, 2);
      assert.equal(hit(r, '/a'), 'b');
      assert.equal(r.remove('b'), true);
      assert.equal(hit(r, '/a'), undefined);
      assert.equal(hit(r, '/c/x/d'), 'c');
      r.remove('c');
      assert.equal(hit(r, '/c/x/d'), undefined);
      assert.equal(r.size, 0);
    });
  }

  it('updates the payload in place', () => {
    const r = build('radixtree_uri', [route('r', '/x')]);
    r.upsert({ id: 'r', paths: ['/x'], value: 'new' });
    assert.equal(r.match(req('/x'))?.value, 'new');
    assert.equal(r.size, 1);
  });
});

describe('invalid input', () => {
  const cases: Array<[string, Partial<RouteSpec<string>>, RegExp]> = [
    ['path without a leading slash', { paths: ['foo'] }, /route "bad": invalid uri "foo": must start with "\/"/],
    ['empty path', { paths: [''] }, /invalid uri "": must not be empty/],
    ['non-string path', { paths: [42 as unknown as string] }, /invalid uri 42: must be a string/],
    ['no paths', { paths: [] }, /paths must be a non-empty array/],
    ['host with a * inside', { hosts: ['a.*.com'] }, /invalid host "a\.\*\.com": "\*" is only allowed as the first character/],
    ['host with a space', { hosts: ['a b.com'] }, /invalid host "a b\.com"/],
    ['host with a bad port', { hosts: ['a.com:99999'] }, /invalid host "a\.com:99999": invalid port/],
    ['empty host', { hosts: [''] }, /invalid host "": must not be empty/],
    ['bad remote addr', { remoteAddrs: ['1.2.3.4/33'] }, /route "bad": invalid ip address: 1\.2\.3\.4\/33/],
    ['garbage remote addr', { remoteAddrs: ['nope'] }, /invalid ip address: nope/],
    ['bad priority', { priority: Number.NaN }, /priority must be a finite number/],
    ['unknown method', { methods: ['FETCH'] }, /invalid method "FETCH": expected one of GET, POST/],
  ];
  for (const [name, extra, message] of cases) {
    it(`rejects ${name}`, () => {
      const r = new Router<string>();
      assert.throws(() => r.upsert(route('bad', '/ok', extra)), message);
      assert.equal(r.size, 0);
    });
  }

  it('rejects a parameter without a name in parameter mode only', () => {
    assert.throws(() => new Router<string>('radixtree_uri_with_parameter').upsert(route('p', '/user/:')), /invalid uri "\/user\/:": parameter without a name/);
    const r = new Router<string>('radixtree_uri');
    r.upsert(route('p', '/user/:'));
    assert.equal(hit(r, '/user/:'), 'p');
  });

  it('rejects a missing id and an unknown mode', () => {
    assert.throws(() => new Router<string>().upsert(route('', '/x')), /id must be a non-empty string/);
    assert.throws(() => new Router<string>('radixtree_nope' as RouterMode), /invalid router mode "radixtree_nope"/);
  });

  it('a rejected update keeps the previous version of the route', () => {
    const r = build('radixtree_host_uri', [route('r', '/x', { hosts: ['a.com'] })]);
    assert.throws(() => r.upsert(route('r', '/y', { remoteAddrs: ['bogus'] })), /invalid ip address/);
    assert.equal(hit(r, '/x', { host: 'a.com' }), 'r');
    assert.equal(hit(r, '/y', { host: 'a.com' }), undefined);
  });

  it('parses host patterns', () => {
    assert.deepEqual(parseHostPattern('*.Example.COM'), { source: '*.example.com', wildcard: true, host: '.example.com', port: null });
    assert.deepEqual(parseHostPattern('*'), { source: '*', wildcard: true, host: '', port: null });
    assert.deepEqual(parseHostPattern('[::1]:8080'), { source: '[::1]:8080', wildcard: false, host: '[::1]', port: '8080' });
    assert.throws(() => parseHostPattern('::1'), /must be written in brackets/);
  });
});

describe('data structures', () => {
  it('the radix tree prunes and re-merges nodes on removal', () => {
    const t = new RadixTree<number>();
    const keys = ['/api/', '/api/v1/', '/api/v2/', '/apx', '/b'];
    const base = t.countNodes();
    keys.forEach((k, i) => (t.ensure(k).value = i));
    for (const [i, k] of keys.entries()) assert.equal(t.find(k)?.value, i);
    assert.equal(t.find('/api/v')?.value ?? null, null, 'an inner node holds no value');
    assert.equal(t.find('/api/v3/'), undefined);
    for (const k of keys) {
      const node = t.find(k)!;
      node.value = null;
      t.prune(node);
    }
    assert.equal(t.countNodes(), base);
    t.ensure('/api/v1/').value = 1;
    t.ensure('/api/v2/').value = 2;
    const v1 = t.find('/api/v1/')!;
    v1.value = null;
    t.prune(v1);
    assert.equal(t.countNodes(), 2, 'root plus one merged leaf');
    assert.equal(t.find('/api/v2/')?.value, 2);
  });

  it('a node with many parameter routes (segment trie) keeps the scan order', () => {
    const specs: RouteSpec<string>[] = [];
    for (let i = 0; i < 200; i++) specs.push(route(`r${i}`, `/users/:id/r${i}`));
    specs.push(route('deep', '/users/:id/r5/*rest'));
    specs.push(route('prefix', '/users/*', { priority: 1, methods: ['DELETE'] }));
    specs.push(route('mid', '/users/*/tail'));
    const r = build('radixtree_uri_with_parameter', specs);
    assert.deepEqual(r.match(req('/users/42/r150')), { id: 'r150', value: 'v-r150', path: '/users/:id/r150', params: { id: '42' } });
    assert.deepEqual(r.match(req('/users/42/r5/a/b'))?.params, { id: '42', rest: 'a/b' });
    assert.equal(hit(r, '/users/42/r150', { method: 'DELETE' }), 'prefix');
    assert.equal(hit(r, '/users/1/2/tail'), 'mid');
    assert.equal(hit(r, '/users/42/r999'), undefined);
    for (let i = 0; i < 200; i++) r.remove(`r${i}`);
    assert.equal(hit(r, '/users/42/r150'), undefined);
    assert.equal(hit(r, '/users/42/r5/x')!, 'deep');
  });
});

// ---------------------------------------------------------------------------------------------
// Randomized comparison against a brute-force reading of the rules (full scan, no indexes).

interface RefRoute { spec: RouteSpec<string>; seq: number }

function refMatch(mode: RouterMode, routes: Map<string, RefRoute>, input: MatchInput): { id: string; params?: Record<string, string> } | undefined {
  const withParams = mode === 'radixtree_uri_with_parameter';
  const hostPass = (hosts: string[] | undefined) =>
    !hosts || hosts.length === 0 || hosts.some((h) => hostFits(h.toLowerCase(), input.host));
  const condPass = (s: RouteSpec<string>, checkHosts: boolean) =>
    (!s.methods || s.methods.length === 0 || s.methods.includes(input.method)) && (!checkHosts || hostPass(s.hosts)) && (!s.vars || s.vars(input.vars));

  type C = Candidate<string>;
  const scan = (members: RefRoute[], checkHosts: boolean) => {
    const cands: C[] = [];
    for (const m of members) {
      for (const [nth, p] of [...new Set(m.spec.paths)].entries()) {
        const path = compilePath(p, withParams);
        const entry = { id: m.spec.id, priority: m.spec.priority ?? 0, seq: m.seq } as RouteEntry<string>;
        cands.push({ ...entry, path, length: p.length, nth });
      }
    }
    const byId = new Map([...members].map((m) => [m.spec.id, m.spec]));
    const tryList = (list: C[]) => {
      list.sort(candidateOrder);
      for (const c of list) {
        if (!condPass(byId.get(c.id)!, checkHosts)) continue;
        if (c.path.kind !== 'pattern') return { id: c.id };
        const m = c.path.regex!.exec(input.path);
        if (!m) continue;
        if (!c.path.names) return { id: c.id };
        const params: Record<string, string> = {};
        c.path.names.forEach((n, i) => (params[n] = m[i + 1]));
        return { id: c.id, params };
      }
      return undefined;
    };
    const exact = tryList(cands.filter((c) => c.path.kind === 'exact' && c.path.key === input.path));
    if (exact) return exact;
    const keys = [...new Set(cands.filter((c) => c.path.kind !== 'exact' && input.path.startsWith(c.path.key)).map((c) => c.path.key))];
    keys.sort((a, b) => b.length - a.length);
    for (const k of keys) {
      const r = tryList(cands.filter((c) => c.path.kind !== 'exact' && c.path.key === k));
      if (r) return r;
    }
    return undefined;
  };

  const all = [...routes.values()];
  if (mode !== 'radixtree_host_uri') return scan(all, true);
  // Host buckets: exact, wildcards by suffix length desc, '*'.
  const patterns = new Set<string>();
  for (const r of all) for (const h of r.spec.hosts ?? []) patterns.add(h.toLowerCase());
  const fitting = [...patterns].filter((p) => hostFits(p, input.host));
  fitting.sort((a, b) => (a.startsWith('*') ? 1 : 0) - (b.startsWith('*') ? 1 : 0) || b.length - a.length);
  for (const p of fitting) {
    const r = scan(all.filter((x) => (x.spec.hosts ?? []).some((h) => h.toLowerCase() === p)), false);
    if (r) return r;
  }
  return scan(all.filter((x) => !x.spec.hosts || x.spec.hosts.length === 0), false);
}

function hostFits(pattern: string, host: string): boolean {
  if (pattern.startsWith('*')) return host.endsWith(pattern.slice(1));
  return pattern === host;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('randomized against a brute-force reference', () => {
  for (const mode of MODES) {
    it(`agrees over random upserts, removes and requests (${mode})`, () => {
      const rand = rng(mode.length * 7919);
      const withParams = mode === 'radixtree_uri_with_parameter';
      const pick = <X,>(xs: readonly X[]): X => xs[Math.floor(rand() * xs.length)];
      const segs = ['a', 'b', 'ab', ':p', ':q'];
      const randomPath = () => {
        let p = '';
        const n = 1 + Math.floor(rand() * 3);
        for (let i = 0; i < n; i++) p += '/' + pick(segs);
        let tail = pick(['', '', '*', '/*', '/*rest', 'b*', '/*/b']);
        // `/:p*` is rejected in parameter mode (a parameter name cannot hold "*").
        const lastIsParam = p.lastIndexOf('/:') === p.lastIndexOf('/');
        if (withParams && lastIsParam && tail !== '' && !tail.startsWith('/')) tail = '/' + tail;
        return p + tail;
      };
      const reqSegs = ['a', 'b', 'ab', ':p', 'x'];
      const randomReq = () => {
        let p = '';
        const n = 1 + Math.floor(rand() * 4);
        for (let i = 0; i < n; i++) p += '/' + pick(reqSegs);
        return p + pick(['', '', '/', 'b']);
      };
      const hostSets = [undefined, undefined, ['a.com'], ['x.a.com'], ['*.a.com'], ['*'], ['*.com', 'b.org']];
      const hostsReq = ['a.com', 'x.a.com', 'y.x.a.com', 'b.org', 'c.net'];
      const router = new Router<string>(mode);
      const ref = new Map<string, RefRoute>();
      let seq = 0;
      let checked = 0;
      let matched = 0;
      for (let step = 0; step < 1500; step++) {
        const id = `r${Math.floor(rand() * 60)}`;
        if (rand() < 0.25) {
          assert.equal(router.remove(id), ref.delete(id));
        } else {
          const paths = Array.from({ length: 1 + Math.floor(rand() * 2) }, randomPath);
          const spec: RouteSpec<string> = {
            id,
            paths,
            hosts: pick(hostSets),
            methods: pick([undefined, ['GET'], ['POST']]),
            priority: pick([0, 0, 1, 2]),
            value: id,
          };
          if (rand() < 0.1) spec.vars = (v) => v.get('flag') === 'on';
          router.upsert(spec);
          const prev = ref.get(id);
          ref.set(id, { spec, seq: prev ? prev.seq : seq++ });
        }
        assert.equal(router.size, ref.size);
        for (let k = 0; k < 4; k++) {
          const input = req(randomReq(), { host: pick(hostsReq), method: pick(['GET', 'POST']), vars: { flag: pick(['on', 'off']) } });
          const want = refMatch(mode, ref, input);
          const got = router.match(input);
          checked++;
          if (want) matched++;
          assert.deepEqual(got && (got.params ? { id: got.id, params: got.params } : { id: got.id }), want, `step ${step}: ${input.method} ${input.host}${input.path}`);
        }
      }
      assert.ok(matched > checked / 10, `enough hits to be meaningful (${matched}/${checked})`);
    });
  }
});
