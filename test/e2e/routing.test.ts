// End-to-end routing tests: the built gateway as a real process, real upstreams, real HTTP.
// Contract: Apache APISIX's router (lua-resty-radixtree + lua-resty-expr) fed by the standalone apisix.yaml.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, startUpstream, type Gateway, type Upstream } from '../helpers/gateway.ts';
import { apply, assertNotFound, assertRoutedTo, NOT_FOUND_BODY, send, upstreamOf } from '../helpers/routing.ts';


describe('routing: default mode (radixtree_host_uri)', () => {
  let gw: Gateway;
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;

  before(async () => {
    [a, b, c] = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
  });

  it('answers 404 with the APISIX JSON body when nothing matches', async () => {
    await apply(gw, a, { routes: [] });
    const hit = await send(gw, '/nothing/here');
    assert.equal(hit.status, 404);
    assert.equal(hit.body, NOT_FOUND_BODY);
    assert.equal(hit.headers['content-type'], 'text/plain; charset=utf-8');
  });

  it('exact path beats prefix; prefix has no segment boundary', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'prefix', uri: '/ex*', priority: 100, upstream: upstreamOf(b) },
        { id: 'exact', uri: '/ex', upstream: upstreamOf(a) },
      ],
    });
    await assertRoutedTo(gw, '/ex', a);
    await assertRoutedTo(gw, '/ex/more', b);
    await assertRoutedTo(gw, '/exx', b);
    await assertNotFound(gw, '/e');
    // an exact route does not match longer paths
    await apply(gw, a, { routes: [{ id: 'exact', uri: '/only', upstream: upstreamOf(a) }] });
    await assertRoutedTo(gw, '/only', a);
    await assertNotFound(gw, '/only/');
    await assertNotFound(gw, '/onlyx');
  });

  it('a longer prefix wins over a shorter one whatever the priorities', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'short', uri: '/blog/*', priority: 100, upstream: upstreamOf(a) },
        { id: 'long', uri: '/blog/foo/*', priority: 0, upstream: upstreamOf(b) },
      ],
    });
    await assertRoutedTo(gw, '/blog/foo/bar', b);
    await assertRoutedTo(gw, '/blog/other', a);
    await assertRoutedTo(gw, '/blog/foo', a); // `/blog/foo/*` needs the slash
  });

  it('priority orders routes with the same path (t/router/radixtree-uri-priority.t)', async () => {
    const routes = (p2: number) => [
      { id: '1', uri: '/server_port*', priority: 2, upstream: upstreamOf(a) },
      { id: '2', uri: '/server_port*', priority: p2, upstream: upstreamOf(b) },
    ];
    await apply(gw, a, { routes: routes(1) });
    await assertRoutedTo(gw, '/server_port/aa', a);
    await apply(gw, a, { routes: routes(3) });
    await assertRoutedTo(gw, '/server_port/aa', b);
  });

  it('`*` in the middle of a path spans any characters including `/`', async () => {
    await apply(gw, a, { routes: [{ id: 'mid', uri: '/mid/*/end', upstream: upstreamOf(a) }] });
    await assertRoutedTo(gw, '/mid/x/end', a);
    await assertRoutedTo(gw, '/mid/x/y/z/end', a);
    await assertNotFound(gw, '/mid/x/other');
    await assertNotFound(gw, '/mid/x/end/more');
  });

  it('uris: any of the listed paths matches', async () => {
    await apply(gw, a, { routes: [{ id: 'multi', uris: ['/one', '/two*'], upstream: upstreamOf(b) }] });
    await assertRoutedTo(gw, '/one', b);
    await assertRoutedTo(gw, '/two', b);
    await assertRoutedTo(gw, '/two/deeper', b);
    await assertNotFound(gw, '/one/x');
    await assertNotFound(gw, '/three');
  });

  it('`:` is literal outside the parameter mode', async () => {
    await apply(gw, a, { routes: [{ id: 'lit', uri: '/user/:name', upstream: upstreamOf(a) }] });
    await assertNotFound(gw, '/user/bob');
    await assertRoutedTo(gw, '/user/:name', a);
  });

  it('hosts: exact (case-insensitive) and leading wildcard', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'exact', uri: '/h', host: 'foo.com', upstream: upstreamOf(a) },
        { id: 'wild', uri: '/h', hosts: ['*.example.com'], upstream: upstreamOf(b) },
      ],
    });
    await assertRoutedTo(gw, '/h', a, { headers: { host: 'foo.com' } });
    await assertRoutedTo(gw, '/h', a, { headers: { host: 'FOO.com' } });
    await assertRoutedTo(gw, '/h', a, { headers: { host: 'foo.com:1234' } }); // $host has no port
    await assertRoutedTo(gw, '/h', b, { headers: { host: 'a.example.com' } });
    await assertRoutedTo(gw, '/h', b, { headers: { host: 'a.b.example.com' } });
    await assertNotFound(gw, '/h', { headers: { host: 'example.com' } });
    await assertNotFound(gw, '/h', { headers: { host: 'bar.com' } });
    await assertNotFound(gw, '/h', { headers: { host: 'aexample.com' } });
  });

  it('a host-specific route beats a host-less one regardless of priority', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'any', uri: '/p', priority: 100, upstream: upstreamOf(a) },
        { id: 'host', uri: '/p', host: 'foo.com', priority: 0, upstream: upstreamOf(b) },
        { id: 'wild', uri: '/p', host: '*.bar.com', priority: -5, upstream: upstreamOf(c) },
      ],
    });
    await assertRoutedTo(gw, '/p', b, { headers: { host: 'foo.com' } });
    await assertRoutedTo(gw, '/p', c, { headers: { host: 'x.bar.com' } });
    await assertRoutedTo(gw, '/p', a, { headers: { host: 'other.com' } });
  });

  it('a host bucket with no matching path falls through to host-less routes', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'any', uri: '/q/*', upstream: upstreamOf(a) },
        { id: 'host', uri: '/q/special', host: 'foo.com', upstream: upstreamOf(b) },
      ],
    });
    await assertRoutedTo(gw, '/q/special', b, { headers: { host: 'foo.com' } });
    await assertRoutedTo(gw, '/q/other', a, { headers: { host: 'foo.com' } });
  });

  it('a route host with a port is compared with the Host header, port included', async () => {
    await apply(gw, a, { routes: [{ id: 'hp', uri: '/hp', host: 'foo.com:8080', upstream: upstreamOf(a) }] });
    await assertRoutedTo(gw, '/hp', a, { headers: { host: 'foo.com:8080' } });
    await assertNotFound(gw, '/hp', { headers: { host: 'foo.com:9090' } });
    await assertNotFound(gw, '/hp', { headers: { host: 'foo.com' } });
  });

  it('methods', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'm', uri: '/m', methods: ['GET', 'POST'], upstream: upstreamOf(a) },
        { id: 'm2-put', uri: '/m2', methods: ['PUT'], upstream: upstreamOf(b) },
        { id: 'm2-any', uri: '/m2', upstream: upstreamOf(a) },
      ],
    });
    await assertRoutedTo(gw, '/m', a);
    const post = await assertRoutedTo(gw, '/m', a, { method: 'POST' });
    assert.equal(JSON.parse(post.body).method, 'POST');
    await assertNotFound(gw, '/m', { method: 'PUT' });
    await assertNotFound(gw, '/m', { method: 'DELETE' });
    await assertRoutedTo(gw, '/m2', b, { method: 'PUT' });
    await assertRoutedTo(gw, '/m2', a, { method: 'GET' });
  });

  it('remote_addr / remote_addrs with IPs and CIDRs', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'r1', uri: '/r1', remote_addrs: ['127.0.0.0/8'], upstream: upstreamOf(a) },
        { id: 'r2', uri: '/r2', remote_addrs: ['10.0.0.0/8'], upstream: upstreamOf(a) },
        { id: 'r3', uri: '/r3', remote_addr: '127.0.0.1', upstream: upstreamOf(a) },
        { id: 'r4', uri: '/r4', remote_addrs: ['192.168.1.1', '127.0.0.1/32'], upstream: upstreamOf(a) },
        { id: 'r5', uri: '/r5', remote_addr: '10.1.2.3', upstream: upstreamOf(a) },
      ],
    });
    await assertRoutedTo(gw, '/r1', a);
    await assertNotFound(gw, '/r2');
    await assertRoutedTo(gw, '/r3', a);
    await assertRoutedTo(gw, '/r4', a);
    await assertNotFound(gw, '/r5');
  });

  it('vars: arg_ equality, exact 404 body on mismatch', async () => {
    await apply(gw, a, { routes: [{ id: 'v', uri: '/v', vars: [['arg_k', '==', 'v']], upstream: upstreamOf(a) }] });
    await assertRoutedTo(gw, '/v?k=v', a);
    await assertNotFound(gw, '/v?k=x');
    await assertNotFound(gw, '/v');
  });

  it('vars: several operators, negation, compatibility form, ANDed items', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'in', uri: '/op/in', vars: [['arg_c', 'in', ['a', 'b']], ['arg_d', '!', '~~', '^x']], upstream: upstreamOf(a) },
        { id: 'gt', uri: '/op/gt', vars: [['arg_n', '>', 10], ['arg_n', '<=', 20]], upstream: upstreamOf(a) },
        { id: 'ne', uri: '/op/ne', vars: [['arg_n', '~=', 5]], upstream: upstreamOf(a) },
        { id: 'eqnum', uri: '/op/eqnum', vars: [['arg_n', '==', 5]], upstream: upstreamOf(a) },
        { id: 'regex', uri: '/op/re', vars: [['arg_s', '~~', '[0-9]+']], upstream: upstreamOf(a) },
        { id: 'regexi', uri: '/op/rei', vars: [['arg_s', '~*', '^ALICE$']], upstream: upstreamOf(a) },
        { id: 'compat', uri: '/op/compat', vars: [['arg_x', 'y']], upstream: upstreamOf(a) },
        { id: 'ip', uri: '/op/ip', vars: [['remote_addr', 'ipmatch', ['127.0.0.0/8']]], upstream: upstreamOf(a) },
        { id: 'noip', uri: '/op/noip', vars: [['remote_addr', 'ipmatch', '10.0.0.0/8']], upstream: upstreamOf(a) },
        { id: 'upper', uri: '/op/upper', vars: [['arg_c', 'IN', ['a']]], upstream: upstreamOf(a) },
      ],
    });
    await assertRoutedTo(gw, '/op/in?c=a&d=y', a);
    await assertRoutedTo(gw, '/op/in?c=b', a); // `! ~~` on a missing value: ~~ is false, negated true
    await assertNotFound(gw, '/op/in?c=a&d=xyz');
    await assertNotFound(gw, '/op/in?c=z&d=y');

    await assertRoutedTo(gw, '/op/gt?n=11', a);
    await assertRoutedTo(gw, '/op/gt?n=20', a);
    await assertNotFound(gw, '/op/gt?n=10');
    await assertNotFound(gw, '/op/gt?n=21');
    await assertNotFound(gw, '/op/gt?n=abc');
    await assertNotFound(gw, '/op/gt');

    await assertRoutedTo(gw, '/op/ne?n=6', a);
    await assertRoutedTo(gw, '/op/ne?n=abc', a); // numeric RHS, non-numeric LHS: ~= is true
    await assertNotFound(gw, '/op/ne?n=5');
    await assertNotFound(gw, '/op/ne?n=5.0');

    await assertRoutedTo(gw, '/op/eqnum?n=5', a);
    await assertRoutedTo(gw, '/op/eqnum?n=5.0', a); // tonumber on the left side
    await assertNotFound(gw, '/op/eqnum?n=abc');

    await assertRoutedTo(gw, '/op/re?s=abc123def', a); // unanchored search
    await assertNotFound(gw, '/op/re?s=abc');
    await assertRoutedTo(gw, '/op/rei?s=alice', a);
    await assertNotFound(gw, '/op/rei?s=alice2');

    await assertRoutedTo(gw, '/op/compat?x=y', a);
    await assertNotFound(gw, '/op/compat?x=z');

    await assertRoutedTo(gw, '/op/ip', a);
    await assertNotFound(gw, '/op/noip');
    await assertRoutedTo(gw, '/op/upper?c=a', a);
  });

  it('vars: nested OR / AND / !OR', async () => {
    await apply(gw, a, {
      routes: [
        {
          id: 'or',
          uri: '/or',
          vars: [['OR', ['arg_a', '==', '1'], ['AND', ['http_x_t', '~~', '^v'], ['arg_n', '>', 10]]]],
          upstream: upstreamOf(a),
        },
        { id: 'nor', uri: '/nor', vars: [['!OR', ['arg_a', '==', '1'], ['arg_b', '==', '1']]], upstream: upstreamOf(a) },
        { id: 'nand', uri: '/nand', vars: [['!AND', ['arg_a', '==', '1'], ['arg_b', '==', '1']]], upstream: upstreamOf(a) },
      ],
    });
    await assertRoutedTo(gw, '/or?a=1', a);
    await assertRoutedTo(gw, '/or?n=11', a, { headers: { 'x-t': 'v1' } });
    await assertNotFound(gw, '/or?n=5', { headers: { 'x-t': 'v1' } });
    await assertNotFound(gw, '/or?n=11', { headers: { 'x-t': 'w1' } });
    await assertNotFound(gw, '/or?a=2');

    await assertRoutedTo(gw, '/nor', a);
    await assertRoutedTo(gw, '/nor?a=2&b=2', a);
    await assertNotFound(gw, '/nor?a=1');
    await assertNotFound(gw, '/nor?b=1');

    await assertRoutedTo(gw, '/nand?a=1', a);
    await assertNotFound(gw, '/nand?a=1&b=1');
  });

  it('vars: http_ header and cookie_ variables', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'hdr', uri: '/hdr', vars: [['http_x_api_key', '==', 'secret']], upstream: upstreamOf(a) },
        { id: 'cookie', uri: '/cookie', vars: [['cookie_session', '==', 'abc']], upstream: upstreamOf(b) },
      ],
    });
    await assertRoutedTo(gw, '/hdr', a, { headers: { 'X-Api-Key': 'secret' } });
    await assertNotFound(gw, '/hdr', { headers: { 'X-Api-Key': 'other' } });
    await assertNotFound(gw, '/hdr');
    await assertRoutedTo(gw, '/cookie', b, { headers: { cookie: 'a=1; session=abc; z=2' } });
    await assertNotFound(gw, '/cookie', { headers: { cookie: 'a=1; session=abcd' } });
    await assertNotFound(gw, '/cookie');
  });

  it('vars: a failing route lets the next candidate of the same path match', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'vip', uri: '/tier', priority: 10, vars: [['http_x_tier', '==', 'gold']], upstream: upstreamOf(b) },
        { id: 'rest', uri: '/tier', upstream: upstreamOf(a) },
      ],
    });
    await assertRoutedTo(gw, '/tier', b, { headers: { 'x-tier': 'gold' } });
    await assertRoutedTo(gw, '/tier', a, { headers: { 'x-tier': 'silver' } });
  });

  it('status 0 removes a route from the router', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'off', uri: '/st', status: 0, upstream: upstreamOf(a) },
        { id: 'off2', uri: '/st2', status: 0, upstream: upstreamOf(a) },
        { id: 'fallback', uri: '/st2*', upstream: upstreamOf(b) },
      ],
    });
    await assertNotFound(gw, '/st');
    await assertRoutedTo(gw, '/st2', b);
    await apply(gw, a, {
      routes: [
        { id: 'off', uri: '/st', status: 1, upstream: upstreamOf(a) },
        { id: 'off2', uri: '/st2', upstream: upstreamOf(a) },
        { id: 'fallback', uri: '/st2*', upstream: upstreamOf(b) },
      ],
    });
    await assertRoutedTo(gw, '/st', a);
    await assertRoutedTo(gw, '/st2', a);
  });

  it('service: hosts are inherited, upstream is used, route fields override', async () => {
    await apply(gw, a, {
      services: [
        { id: 's1', hosts: ['svc.com'], upstream: upstreamOf(b) },
        { id: 's2', upstream_id: 'u-c' },
      ],
      upstreams: [{ id: 'u-c', ...upstreamOf(c) }],
      routes: [
        { id: 'inherit', uri: '/svc', service_id: 's1' },
        { id: 'own-up', uri: '/svc-own-up', service_id: 's1', upstream: upstreamOf(a) },
        { id: 'own-host', uri: '/svc-own-host', host: 'own.com', service_id: 's1' },
        { id: 'via-id', uri: '/svc-upid', service_id: 's2' },
      ],
    });
    await assertRoutedTo(gw, '/svc', b, { headers: { host: 'svc.com' } });
    await assertNotFound(gw, '/svc', { headers: { host: 'other.com' } });
    await assertRoutedTo(gw, '/svc-own-up', a, { headers: { host: 'svc.com' } });
    await assertRoutedTo(gw, '/svc-own-host', b, { headers: { host: 'own.com' } });
    await assertNotFound(gw, '/svc-own-host', { headers: { host: 'svc.com' } });
    await assertRoutedTo(gw, '/svc-upid', c);
  });

  it('upstream_id resolution, numeric ids, and the 404 / 502 / 503 cases', async () => {
    await apply(gw, a, {
      upstreams: [{ id: 2, ...upstreamOf(b) }, { id: 'named', ...upstreamOf(c) }],
      services: [{ id: 'empty-svc', hosts: ['empty.com'] }],
      routes: [
        { id: 1, uri: '/by-num', upstream_id: 2 },
        { id: 'by-name', uri: '/by-name', upstream_id: 'named' },
        { id: 'no-svc', uri: '/no-svc', service_id: 'missing' },
        { id: 'no-up', uri: '/no-up', upstream_id: 'missing' },
        { id: 'svc-no-up', uri: '/svc-no-up', service_id: 'empty-svc' },
      ],
    });
    await assertRoutedTo(gw, '/by-num', b);
    await assertRoutedTo(gw, '/by-name', c);
    assert.equal((await send(gw, '/no-svc')).status, 404);
    assert.equal((await send(gw, '/no-up')).status, 502);
    assert.equal((await send(gw, '/svc-no-up', { headers: { host: 'empty.com' } })).status, 503);
  });

  it('routes on the normalised path; the upstream receives the original request target', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'enc', uri: '/enc/ab', upstream: upstreamOf(a) },
        { id: 'space', uri: '/enc/a b', upstream: upstreamOf(b) },
      ],
    });
    let hit = await assertRoutedTo(gw, '/enc/%61b', a);
    assert.equal(hit.url, '/enc/%61b');
    hit = await assertRoutedTo(gw, '/enc/a%20b', b);
    assert.equal(hit.url, '/enc/a%20b');
    hit = await assertRoutedTo(gw, '/zz/../enc/ab?q=1', a);
    assert.equal(hit.url, '/zz/../enc/ab?q=1');
    hit = await assertRoutedTo(gw, '/enc/./ab', a);
    assert.equal(hit.url, '/enc/./ab');
    hit = await assertRoutedTo(gw, '/enc//ab', a); // merge_slashes
    assert.equal(hit.url, '/enc//ab');
    hit = await assertRoutedTo(gw, '/enc/ab?x=%2F&y', a);
    assert.equal(hit.url, '/enc/ab?x=%2F&y');
    await assertNotFound(gw, '/enc/ab/');
  });

  it('a trailing slash is significant without delete_uri_tail_slash', async () => {
    await apply(gw, a, { routes: [{ id: 'ts', uri: '/ts', upstream: upstreamOf(a) }] });
    await assertRoutedTo(gw, '/ts', a);
    await assertNotFound(gw, '/ts/');
  });
});

describe('routing: radixtree_uri mode', () => {
  let gw: Gateway;
  let a: Upstream;
  let b: Upstream;

  before(async () => {
    [a, b] = await Promise.all([startUpstream(), startUpstream()]);
    gw = await startGateway({ config: { apisix: { router: { http: 'radixtree_uri' } } } });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  it('hosts are a per-route condition; priority decides between host and host-less routes', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'any', uri: '/p', priority: 100, upstream: upstreamOf(a) },
        { id: 'host', uri: '/p', host: 'foo.com', priority: 0, upstream: upstreamOf(b) },
        { id: 'w', uri: '/w', host: '*.example.com', upstream: upstreamOf(b) },
      ],
    });
    await assertRoutedTo(gw, '/p', a, { headers: { host: 'foo.com' } });
    await assertRoutedTo(gw, '/w', b, { headers: { host: 'x.y.example.com' } });
    await assertNotFound(gw, '/w', { headers: { host: 'example.com' } });
  });

  it('a route host with a port is compared with the Host header, port included', async () => {
    await apply(gw, a, { routes: [{ id: 'hp', uri: '/hp', host: 'foo.com:8080', upstream: upstreamOf(b) }] });
    await assertRoutedTo(gw, '/hp', b, { headers: { host: 'foo.com:8080' } });
    await assertNotFound(gw, '/hp', { headers: { host: 'foo.com:9090' } });
    await assertNotFound(gw, '/hp', { headers: { host: 'foo.com' } });
  });
});

describe('routing: radixtree_uri_with_parameter mode', () => {
  let gw: Gateway;
  let a: Upstream;
  let b: Upstream;

  before(async () => {
    [a, b] = await Promise.all([startUpstream(), startUpstream()]);
    gw = await startGateway({ config: { apisix: { router: { http: 'radixtree_uri_with_parameter' } } } });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  it('`:name` matches exactly one segment', async () => {
    await apply(gw, a, { routes: [{ id: 'user', uri: '/user/:name', upstream: upstreamOf(a) }] });
    await assertRoutedTo(gw, '/user/bob', a);
    await assertRoutedTo(gw, '/user/alice', a);
    await assertNotFound(gw, '/user/bob/x');
    await assertNotFound(gw, '/user/');
    await assertNotFound(gw, '/user');
  });

  it('`*name` catches the rest of the path', async () => {
    await apply(gw, a, { routes: [{ id: 'files', uri: '/files/:bucket/*path', upstream: upstreamOf(a) }] });
    await assertRoutedTo(gw, '/files/pub/a/b.txt', a);
    await assertRoutedTo(gw, '/files/priv/x', a);
  });

  it('uri_param_name is usable in route vars', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'bob', uri: '/user/:name', priority: 1, vars: [['uri_param_name', '==', 'bob']], upstream: upstreamOf(b) },
        { id: 'any', uri: '/user/:name', upstream: upstreamOf(a) },
        { id: 'only-bob', uri: '/people/:name', vars: [['uri_param_name', '==', 'bob']], upstream: upstreamOf(b) },
      ],
    });
    await assertRoutedTo(gw, '/user/bob', b);
    await assertRoutedTo(gw, '/user/alice', a);
    await assertRoutedTo(gw, '/people/bob', b);
    await assertNotFound(gw, '/people/carol');
  });

  it('`*name` and `:name` captures are usable in route vars', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'files', uri: '/files/:bucket/*path', vars: [['uri_param_path', '==', 'a/b.txt'], ['uri_param_bucket', '==', 'pub']], upstream: upstreamOf(a) },
      ],
    });
    await assertRoutedTo(gw, '/files/pub/a/b.txt', a);
    await assertNotFound(gw, '/files/pub/a/c.txt');
    await assertNotFound(gw, '/files/priv/a/b.txt');
  });

  it('exact and prefix paths still work', async () => {
    await apply(gw, a, {
      routes: [
        { id: 'ex', uri: '/plain', upstream: upstreamOf(a) },
        { id: 'pre', uri: '/pre/*', upstream: upstreamOf(b) },
      ],
    });
    await assertRoutedTo(gw, '/plain', a);
    await assertRoutedTo(gw, '/pre/x/y', b);
  });
});

describe('routing: delete_uri_tail_slash', () => {
  let gw: Gateway;
  let a: Upstream;

  before(async () => {
    a = await startUpstream();
    gw = await startGateway({ config: { apisix: { delete_uri_tail_slash: true } } });
  });
  after(async () => {
    await gw?.stop();
    await a?.close();
  });

  it('strips one trailing slash before matching', async () => {
    await apply(gw, a, { routes: [{ id: 'ts', uri: '/ts', upstream: upstreamOf(a) }] });
    await assertRoutedTo(gw, '/ts', a);
    await assertRoutedTo(gw, '/ts/', a);
    await assertRoutedTo(gw, '/ts/?x=1', a);
    await assertNotFound(gw, '/ts/x');
  });
});
