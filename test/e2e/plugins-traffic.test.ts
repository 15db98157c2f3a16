// Black-box tests of the traffic plugins (traffic-split, proxy-mirror, fault-injection, mocking,
// redirect) through the built gateway: one gateway on a standalone apisix.yaml for behaviour, one in
// the traditional role for Admin API refusals. Cases follow apache/apisix t/plugin/traffic-split*.t,
// proxy-mirror.t, fault-injection.t, mocking.t and redirect.t.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adminCall, startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { freePort, REPO, request, serverTracker, startGateway, startRawUpstream, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';
import { apply, send, upstreamOf } from '../helpers/routing.ts';

const VERSION = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string;

/** Ports of the echo upstreams that answered `count` requests to `path`, sorted. */
async function portsOf(gw: Gateway, path: string, count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const hit = await send(gw, path);
    assert.equal(hit.status, 200, `${path}: ${hit.status} ${hit.body}`);
    ports.push(hit.port!);
  }
  return ports.sort((x, y) => x - y);
}

async function waitForLog(gw: Gateway, from: number, re: RegExp, timeoutMs = 5_000): Promise<string> {
  await waitFor(() => re.test(gw.output().slice(from)), timeoutMs, `log line matching ${re}`);
  return gw.output().slice(from);
}

describe('traffic plugins on a standalone gateway', () => {
  const servers = serverTracker();
  let gw: Gateway;
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let mirror: Upstream;

  before(async () => {
    a = servers.keep(await startUpstream());
    b = servers.keep(await startUpstream());
    c = servers.keep(await startUpstream());
    mirror = servers.keep(await startUpstream());
    gw = await startGateway({
      config: { plugin_attr: { 'proxy-mirror': { timeout: { connect: '2s', send: '2s', read: '1s' } } } },
    });
  });

  after(async () => {
    await gw?.stop();
    await servers.closeAll();
  });

  describe('traffic-split', () => {
    const inline = (up: Upstream) => ({ type: 'roundrobin', nodes: { [up.node]: 1 } });

    it('without rules, or with a weight-only entry, the route upstream serves (TEST 4-7)', async () => {
      await apply(gw, a, {
        routes: [
          { id: 'ts-none', uri: '/ts/none', plugins: { 'traffic-split': {} }, upstream: upstreamOf(a) },
          { id: 'ts-empty', uri: '/ts/empty', plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{}] }] } }, upstream: upstreamOf(a) },
        ],
      });
      assert.deepEqual(await portsOf(gw, '/ts/none', 4), Array(4).fill(a.port));
      assert.deepEqual(await portsOf(gw, '/ts/empty', 4), Array(4).fill(a.port));
    });

    it('a matching rule splits 2:1 between an inline upstream and the route upstream (TEST 8-10)', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'ts-split',
          uri: '/ts/split',
          plugins: {
            'traffic-split': {
              rules: [{
                match: [{ vars: [['arg_name', '==', 'jack'], ['arg_age', '!', '<', '16']] }],
                weighted_upstreams: [{ upstream: { name: 'upstream_A', ...inline(b), timeout: { connect: 15, send: 15, read: 15 } }, weight: 2 }, { weight: 1 }],
              }],
            },
          },
          upstream: upstreamOf(a),
        }],
      });
      // the expression fails: the route upstream
      assert.equal((await send(gw, '/ts/split?name=jack&age=14')).port, a.port);
      assert.deepEqual(await portsOf(gw, '/ts/split?name=jack&age=16', 6), [a.port, a.port, b.port, b.port, b.port, b.port].sort((x, y) => x - y));
    });

    it('any of several match entries selects the rule; weights 2:2:1 over five requests (TEST 11-13)', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'ts-multi',
          uri: '/ts/multi',
          plugins: {
            'traffic-split': {
              rules: [{
                match: [
                  { vars: [['arg_name', '==', 'jack'], ['arg_age', '~~', '^[1-9]{1,2}']] },
                  { vars: [['arg_name2', 'in', ['jack', 'rose']], ['arg_age2', '!', '<', 18]] },
                ],
                weighted_upstreams: [{ upstream: inline(b), weight: 2 }, { upstream: inline(c), weight: 2 }, { weight: 1 }],
              }],
            },
          },
          upstream: upstreamOf(a),
        }],
      });
      assert.equal((await send(gw, '/ts/multi?name=jack&age=0')).port, a.port);
      const expected = [a.port, b.port, b.port, c.port, c.port].sort((x, y) => x - y);
      assert.deepEqual(await portsOf(gw, '/ts/multi?name=jack&age=22', 5), expected);
      assert.deepEqual(await portsOf(gw, '/ts/multi?name2=rose&age2=18', 5), expected);
    });

    it('without the route upstream in the list, all traffic goes to the plugin upstreams (TEST 14-15)', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'ts-noroute',
          uri: '/ts/noroute',
          plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream: inline(b), weight: 2 }, { upstream: inline(c), weight: 2 }] }] } },
          upstream: upstreamOf(a),
        }],
      });
      const ports = await portsOf(gw, '/ts/noroute', 6);
      assert.deepEqual(ports, [b.port, b.port, b.port, c.port, c.port, c.port].sort((x, y) => x - y));
    });

    it('a route without its own upstream is served by the plugin upstream (TEST 16-17)', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'ts-only',
          uri: '/ts/only',
          plugins: {
            'traffic-split': {
              rules: [{
                match: [{ vars: [['arg_name', '==', 'jack']] }],
                weighted_upstreams: [{ upstream: { type: 'roundrobin', nodes: { [a.node]: 1, [b.node]: 2, [c.node]: 2 } }, weight: 1 }],
              }],
            },
          },
        }],
      });
      const ports = await portsOf(gw, '/ts/only?name=jack', 5);
      assert.deepEqual(ports, [a.port, b.port, b.port, c.port, c.port].sort((x, y) => x - y));
    });

    it('rules are tried in order; upstream_id names an upstream object; `!AND` expressions (traffic-split2.t)', async () => {
      await apply(gw, a, {
        upstreams: [{ id: 'ts-up-c', type: 'roundrobin', nodes: { [c.node]: 1 } }],
        routes: [{
          id: 'ts-rules',
          uri: '/ts/rules',
          plugins: {
            'traffic-split': {
              rules: [
                { match: [{ vars: [['arg_id', '==', '1']] }], weighted_upstreams: [{ upstream: inline(b), weight: 1 }] },
                { match: [{ vars: [['arg_id', '==', '2']] }], weighted_upstreams: [{ upstream_id: 'ts-up-c', weight: 1 }] },
                { match: [{ vars: [['!AND', ['arg_name', '==', 'jack'], ['arg_age', '!', '<', '18']]] }], weighted_upstreams: [{ upstream_id: 'ts-up-c' }] },
              ],
            },
          },
          upstream: upstreamOf(a),
        }],
      });
      assert.equal((await send(gw, '/ts/rules')).port, c.port, '!AND of two false expressions holds');
      assert.equal((await send(gw, '/ts/rules?name=jack&age=18')).port, a.port);
      assert.equal((await send(gw, '/ts/rules?name=jack&age=17')).port, c.port);
      assert.equal((await send(gw, '/ts/rules?id=1&name=jack&age=18')).port, b.port);
      assert.equal((await send(gw, '/ts/rules?id=2&name=jack&age=18')).port, c.port);
    });

    it('an inline upstream applies its pass_host (TEST 6-9 of traffic-split2.t)', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'ts-host',
          uri: '/ts/host',
          plugins: {
            'traffic-split': {
              rules: [{
                match: [{ vars: [['arg_name', '==', 'jack']] }],
                weighted_upstreams: [{ upstream: { type: 'roundrobin', pass_host: 'rewrite', upstream_host: 'test.com', nodes: { [b.node]: 1 } } }],
              }],
            },
          },
          upstream: upstreamOf(a),
        }],
      });
      const hit = await send(gw, '/ts/host?name=jack', { headers: { host: '127.0.0.1' } });
      assert.equal(hit.port, b.port);
      assert.equal(JSON.parse(hit.body).headers.host, 'test.com');
      const plain = await send(gw, '/ts/host', { headers: { host: 'example.org' } });
      assert.equal(plain.port, a.port);
      assert.equal(JSON.parse(plain.body).headers.host, 'example.org');
    });

    it('a route with an invalid traffic-split conf in apisix.yaml is refused with the plugin error', async () => {
      const mark = gw.output().length;
      await apply(gw, a, {
        routes: [{
          id: 'ts-bad',
          uri: '/ts/bad',
          plugins: { 'traffic-split': { rules: [{ match: [{ vars: [['arg_name', 123, 'jack']] }], weighted_upstreams: [{ weight: 1 }] }] } },
          upstream: upstreamOf(a),
        }],
      });
      assert.equal((await request(gw.url('/ts/bad'))).status, 404);
      await waitForLog(gw, mark, /ts-bad[^\n]*failed to check the configuration of plugin traffic-split err: failed to validate the 'vars' expression: invalid operator '123'/);
    });
  });

  describe('proxy-mirror', () => {
    it('copies the request line and headers; the client gets the upstream answer (TEST 6-11)', async () => {
      await apply(gw, a, {
        routes: [{ id: 'pm', uri: '/pm/hello', plugins: { 'proxy-mirror': { host: `http://${mirror.node}` } }, upstream: upstreamOf(a) }],
      });
      const seen = mirror.seen.length;
      const hit = await send(gw, '/pm/hello?x=1', { headers: { host: '127.0.0.2', 'api-key': 'hello', name: 'jake' } });
      assert.equal(hit.status, 200);
      assert.equal(hit.port, a.port);
      await waitFor(() => mirror.seen.length > seen, 5_000, 'the mirrored request');
      const copy = mirror.seen[seen];
      assert.equal(copy.method, 'GET');
      assert.equal(copy.url, '/pm/hello?x=1');
      assert.equal(copy.headers.host, '127.0.0.2');
      assert.equal(copy.headers['api-key'], 'hello');
      assert.equal(copy.headers.name, 'jake');
      // what the upstream got is untouched by the mirror
      assert.equal(JSON.parse(hit.body).headers['api-key'], 'hello');
    });

    it('copies the method and the body', async () => {
      const seen = mirror.seen.length;
      const hit = await send(gw, '/pm/hello', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'mirrored body' });
      assert.equal(hit.status, 200);
      assert.equal(JSON.parse(hit.body).body, 'mirrored body', 'the upstream still gets the body');
      await waitFor(() => mirror.seen.length > seen, 5_000, 'the mirrored request');
      const copy = mirror.seen[seen];
      assert.equal(copy.method, 'POST');
      assert.equal(copy.body, 'mirrored body');
      assert.equal(copy.headers['content-type'], 'text/plain');
    });

    it('path replaces the request path, or prefixes it with path_concat_mode prefix (TEST 18-20, 27-29)', async () => {
      await apply(gw, a, {
        routes: [
          { id: 'pm-replace', uri: '/pm/replace', plugins: { 'proxy-mirror': { host: `http://${mirror.node}`, path: '/a' } }, upstream: upstreamOf(a) },
          { id: 'pm-prefix', uri: '/pm/prefix', plugins: { 'proxy-mirror': { host: `http://${mirror.node}`, path: '/a', path_concat_mode: 'prefix' } }, upstream: upstreamOf(a) },
        ],
      });
      const cases: Array<[string, string]> = [
        ['/pm/replace', '/a'],
        ['/pm/replace?a=1', '/a?a=1'],
        ['/pm/prefix', '/a/pm/prefix'],
        ['/pm/prefix?a=1', '/a/pm/prefix?a=1'],
      ];
      for (const [path, expected] of cases) {
        const seen = mirror.seen.length;
        assert.equal((await send(gw, path)).port, a.port);
        await waitFor(() => mirror.seen.length > seen, 5_000, `mirror of ${path}`);
        assert.equal(mirror.seen[seen].url, expected, path);
      }
    });

    it('a mirror that is down or never answers does not change or hold the client response', async () => {
      const silent = await startRawUpstream();
      const closedPort = await freePort();
      try {
        await apply(gw, a, {
          routes: [
            { id: 'pm-down', uri: '/pm/down', plugins: { 'proxy-mirror': { host: `http://127.0.0.1:${closedPort}` } }, upstream: upstreamOf(a) },
            { id: 'pm-silent', uri: '/pm/silent', plugins: { 'proxy-mirror': { host: `http://${silent.node}` } }, upstream: upstreamOf(a) },
          ],
        });
        let mark = gw.output().length;
        const down = await send(gw, '/pm/down');
        assert.equal(down.status, 200);
        assert.equal(down.port, a.port);
        await waitForLog(gw, mark, /proxy-mirror: mirror request to http:\/\/127\.0\.0\.1:\d+\/pm\/down failed/);

        mark = gw.output().length;
        const hit = await send(gw, '/pm/silent');
        assert.equal(hit.status, 200);
        assert.equal(hit.port, a.port);
        // the client already has its answer while the mirror still holds the copy unanswered
        await waitFor(() => silent.requests.length === 1, 5_000, 'the copy to reach the silent mirror');
        // plugin_attr.proxy-mirror.timeout.read is 1s here
        await waitForLog(gw, mark, /proxy-mirror: mirror request to [^\n]*\/pm\/silent failed: timed out/);
      } finally {
        await silent.close();
      }
    });

    it('sample_ratio mirrors about that share of requests (TEST 16-17)', async () => {
      await apply(gw, a, {
        routes: [{ id: 'pm-half', uri: '/pm/half', plugins: { 'proxy-mirror': { host: `http://${mirror.node}`, sample_ratio: 0.5 } }, upstream: upstreamOf(a) }],
      });
      const before = mirror.seen.filter((r) => r.url === '/pm/half').length;
      for (let i = 0; i < 100; i++) assert.equal((await send(gw, '/pm/half')).status, 200);
      // the last copies may still be on their way: wait until the count stops growing
      let last = -1;
      await waitFor(() => {
        const n = mirror.seen.filter((r) => r.url === '/pm/half').length;
        const settled = n === last;
        last = n;
        return settled;
      }, 5_000, 'mirror count to settle');
      const mirrored = last - before;
      assert.ok(mirrored >= 25 && mirrored <= 75, `mirrored ${mirrored} of 100`);
    });

    it('a grpc:// mirror gets the copy over HTTP/2 (h2c)', async () => {
      const seen: Array<{ headers: http2.IncomingHttpHeaders; body: string }> = [];
      const h2 = http2.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          seen.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
          res.end();
        });
      });
      await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
      try {
        const port = (h2.address() as AddressInfo).port;
        await apply(gw, a, {
          routes: [{ id: 'pm-grpc', uri: '/pm/grpc', plugins: { 'proxy-mirror': { host: `grpc://127.0.0.1:${port}` } }, upstream: upstreamOf(a) }],
        });
        const hit = await send(gw, '/pm/grpc?x=1', { method: 'POST', headers: { 'content-type': 'application/grpc', 'x-trace': 't1' }, body: 'frame' });
        assert.equal(hit.port, a.port);
        await waitFor(() => seen.length === 1, 5_000, 'the HTTP/2 copy');
        assert.equal(seen[0].headers[':method'], 'POST');
        assert.equal(seen[0].headers[':path'], '/pm/grpc?x=1');
        assert.equal(seen[0].headers['x-trace'], 't1');
        assert.equal(seen[0].body, 'frame');
      } finally {
        await new Promise<void>((resolve) => h2.close(() => resolve()));
      }
    });

    it('a request a plugin answers itself is not mirrored', async () => {
      await apply(gw, a, {
        routes: [
          { id: 'pm-mocked', uri: '/pm/mocked', plugins: { 'proxy-mirror': { host: `http://${mirror.node}` }, mocking: { response_example: 'mocked' } }, upstream: upstreamOf(a) },
          { id: 'pm-after', uri: '/pm/after', plugins: { 'proxy-mirror': { host: `http://${mirror.node}` } }, upstream: upstreamOf(a) },
        ],
      });
      const seen = mirror.seen.length;
      const mocked = await send(gw, '/pm/mocked');
      assert.equal(mocked.body, 'mocked');
      await send(gw, '/pm/after');
      await waitFor(() => mirror.seen.some((r, i) => i >= seen && r.url === '/pm/after'), 5_000, 'the later mirror');
      assert.ok(!mirror.seen.slice(seen).some((r) => r.url === '/pm/mocked'));
    });
    it('a proxy-mirror host with a path is refused in apisix.yaml (TEST 5)', async () => {
      const mark = gw.output().length;
      await apply(gw, a, {
        routes: [{ id: 'pm-bad', uri: '/pm/bad', plugins: { 'proxy-mirror': { host: `http://${mirror.node}/invalid_uri` } }, upstream: upstreamOf(a) }],
      });
      assert.equal((await request(gw.url('/pm/bad'))).status, 404);
      await waitForLog(gw, mark, /pm-bad[^\n]*failed to check the configuration of plugin proxy-mirror err: property "host" validation failed: failed to match pattern/);
    });
  });

  describe('fault-injection', () => {
    it('abort answers with the status, body and headers; the body reads request variables', async () => {
      await apply(gw, a, {
        routes: [
          { id: 'fi-abort', uri: '/fi/abort', plugins: { 'fault-injection': { abort: { http_status: 403, body: 'Fault Injection!\n' } } }, upstream: upstreamOf(a) },
          {
            id: 'fi-vars',
            uri: '/fi/vars',
            plugins: { 'fault-injection': { abort: { http_status: 200, body: 'client addr: $remote_addr, name: ${arg_name}\n', headers: { 'X-Fault-By': '$arg_name', 'X-Count': 7 } } } },
            upstream: upstreamOf(a),
          },
        ],
      });
      const aborted = await send(gw, '/fi/abort');
      assert.equal(aborted.status, 403);
      assert.equal(aborted.body, 'Fault Injection!\n');
      const resolved = await send(gw, '/fi/vars?name=jack');
      assert.equal(resolved.status, 200);
      assert.equal(resolved.body, 'client addr: 127.0.0.1, name: jack\n');
      assert.equal(resolved.headers['x-fault-by'], 'jack');
      assert.equal(resolved.headers['x-count'], '7');
      assert.equal(a.seen.filter((r) => r.url.startsWith('/fi/')).length, 0, 'the upstream was never asked');
    });

    it('percentage 0 never aborts, 100 always does', async () => {
      await apply(gw, a, {
        routes: [
          { id: 'fi-p0', uri: '/fi/p0', plugins: { 'fault-injection': { abort: { http_status: 403, percentage: 0 } } }, upstream: upstreamOf(a) },
          { id: 'fi-p100', uri: '/fi/p100', plugins: { 'fault-injection': { abort: { http_status: 403, body: 'no', percentage: 100 } } }, upstream: upstreamOf(a) },
        ],
      });
      for (let i = 0; i < 5; i++) {
        assert.equal((await send(gw, '/fi/p0')).port, a.port);
        assert.equal((await send(gw, '/fi/p100')).status, 403);
      }
    });

    it('abort.vars: the fault applies when one of the expressions holds', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'fi-when',
          uri: '/fi/when',
          plugins: { 'fault-injection': { abort: { http_status: 403, body: 'Fault Injection!', vars: [[['arg_name', '==', 'jack'], ['arg_age', '!', '<', 18]], [['http_apikey', '==', 'api-key']]] } } },
          upstream: upstreamOf(a),
        }],
      });
      assert.equal((await send(gw, '/fi/when?name=jack&age=18')).status, 403);
      assert.equal((await send(gw, '/fi/when?name=jack&age=17')).port, a.port);
      assert.equal((await send(gw, '/fi/when', { headers: { apikey: 'api-key' } })).status, 403);
      assert.equal((await send(gw, '/fi/when')).port, a.port);
    });

    it('delay holds the request for `duration` seconds, then it goes on (or is aborted)', async () => {
      await apply(gw, a, {
        routes: [
          { id: 'fi-delay', uri: '/fi/delay', plugins: { 'fault-injection': { delay: { duration: 0.5 } } }, upstream: upstreamOf(a) },
          { id: 'fi-both', uri: '/fi/both', plugins: { 'fault-injection': { delay: { duration: 0.3 }, abort: { http_status: 500, body: 'late failure' } } }, upstream: upstreamOf(a) },
          // the delay would outlast the client's patience: only a non-matching request can pass
          { id: 'fi-delay-vars', uri: '/fi/delay-vars', plugins: { 'fault-injection': { delay: { duration: 60, vars: [[['arg_slow', '==', '1']]] } } }, upstream: upstreamOf(a) },
        ],
      });
      let started = Date.now();
      const delayed = await send(gw, '/fi/delay');
      assert.equal(delayed.port, a.port);
      assert.ok(Date.now() - started >= 450, 'held for the delay');
      started = Date.now();
      const both = await send(gw, '/fi/both');
      assert.equal(both.status, 500);
      assert.equal(both.body, 'late failure');
      assert.ok(Date.now() - started >= 250, 'delayed before the abort');
      assert.equal((await send(gw, '/fi/delay-vars?slow=0')).port, a.port);
    });

    it('a conf with no fault, or a bad vars rule, is refused in apisix.yaml', async () => {
      const mark = gw.output().length;
      await apply(gw, a, {
        routes: [
          { id: 'fi-empty', uri: '/fi/empty', plugins: { 'fault-injection': {} }, upstream: upstreamOf(a) },
          { id: 'fi-badvars', uri: '/fi/badvars', plugins: { 'fault-injection': { abort: { http_status: 403, vars: [[['arg_name', 'equal', 'jack']]] } } }, upstream: upstreamOf(a) },
        ],
      });
      assert.equal((await request(gw.url('/fi/empty'))).status, 404);
      assert.equal((await request(gw.url('/fi/badvars'))).status, 404);
      await waitForLog(gw, mark, /fi-empty[^\n]*failed to check the configuration of plugin fault-injection err: expect object to have at least 1 properties/);
      await waitForLog(gw, mark, /fi-badvars[^\n]*failed to check the configuration of plugin fault-injection err: invalid operator 'equal'/);
    });
  });

  describe('mocking', () => {
    it('answers with response_example, the status and content type, and x-mock-by (TEST 1-2, 13-14)', async () => {
      await apply(gw, a, {
        routes: [
          { id: 'mk-text', uri: '/mk/text', plugins: { mocking: { content_type: 'text/plain', response_status: 200, response_example: 'hello world' } }, upstream: upstreamOf(a) },
          { id: 'mk-json', uri: '/mk/json', plugins: { mocking: { response_status: 201, with_mock_header: false, response_example: '{"a":1,"b":2}' } }, upstream: upstreamOf(a) },
        ],
      });
      const text = await send(gw, '/mk/text');
      assert.equal(text.status, 200);
      assert.equal(text.body, 'hello world');
      assert.equal(text.headers['content-type'], 'text/plain');
      assert.equal(text.headers['x-mock-by'], `Causeway/${VERSION}`);
      const json = await send(gw, '/mk/json');
      assert.equal(json.status, 201);
      assert.equal(json.body, '{"a":1,"b":2}');
      assert.equal(json.headers['content-type'], 'application/json;charset=utf8');
      assert.equal(json.headers['x-mock-by'], undefined);
      assert.equal(a.seen.filter((r) => r.url.startsWith('/mk/')).length, 0, 'the upstream was never asked');
    });

    it('generates a JSON body from response_schema, using the examples (TEST 3-12)', async () => {
      const field = (schema: Record<string, unknown>) => ({ mocking: { content_type: 'text/plain', response_schema: { type: 'object', properties: { field1: schema } } } });
      await apply(gw, a, {
        routes: [
          { id: 'mk-s1', uri: '/mk/string', plugins: field({ type: 'string', example: 'hello' }), upstream: upstreamOf(a) },
          { id: 'mk-s2', uri: '/mk/integer', plugins: field({ type: 'integer', example: 4 }), upstream: upstreamOf(a) },
          { id: 'mk-s3', uri: '/mk/number', plugins: field({ type: 'number', example: 5.5 }), upstream: upstreamOf(a) },
          { id: 'mk-s4', uri: '/mk/boolean', plugins: field({ type: 'boolean', example: true }), upstream: upstreamOf(a) },
          { id: 'mk-s5', uri: '/mk/object', plugins: field({ type: 'object' }), upstream: upstreamOf(a) },
        ],
      });
      assert.equal((await send(gw, '/mk/string')).body, '{"field1":"hello"}');
      assert.equal((await send(gw, '/mk/integer')).body, '{"field1":4}');
      assert.equal((await send(gw, '/mk/number')).body, '{"field1":5.5}');
      assert.equal((await send(gw, '/mk/boolean')).body, '{"field1":true}');
      assert.equal((await send(gw, '/mk/object')).body, '{"field1":{}}');
    });

    it('random values follow the schema types; arrays have one to three items', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'mk-random',
          uri: '/mk/random',
          plugins: {
            mocking: {
              response_schema: {
                type: 'object',
                properties: {
                  id: { type: 'string' },
                  n: { type: 'number' },
                  arr: { type: 'array', items: { type: 'integer', example: 155.55 } },
                  nested: { type: 'object', properties: { flag: { type: 'boolean' }, words: { type: 'array', items: { type: 'string' } } } },
                },
              },
            },
          },
          upstream: upstreamOf(a),
        }],
      });
      for (let i = 0; i < 5; i++) {
        const hit = await send(gw, '/mk/random');
        assert.equal(hit.headers['content-type'], 'application/json;charset=utf8');
        const value = JSON.parse(hit.body);
        assert.match(value.id, /^[a-z]{1,10}$/);
        assert.equal(typeof value.n, 'number');
        assert.ok(value.arr.length >= 1 && value.arr.length <= 3);
        assert.ok(value.arr.every((x: number) => x === 155));
        assert.equal(typeof value.nested.flag, 'boolean');
        assert.ok(value.nested.words.every((w: string) => /^[a-z]{1,10}$/.test(w)));
      }
    });

    it('writes XML for XML content types, as xml2lua lays it out', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'mk-xml',
          uri: '/mk/xml',
          plugins: { mocking: { content_type: 'application/xml;charset=utf8', response_schema: { type: 'object', properties: { field1: { type: 'string', example: 'hello' }, field2: { type: 'integer', example: 3 } } } } },
          upstream: upstreamOf(a),
        }],
      });
      const hit = await send(gw, '/mk/xml');
      assert.equal(hit.headers['content-type'], 'application/xml;charset=utf8');
      assert.equal(hit.body, '<data>\n  <field1>hello</field1>\n  <field2>3</field2>\n</data>\n');
    });

    it('response_example and response_headers read request variables', async () => {
      await apply(gw, a, {
        routes: [{
          id: 'mk-vars',
          uri: '/mk/vars',
          plugins: { mocking: { content_type: 'text/plain', response_example: 'Client IP: $remote_addr, user ${arg_user}', response_headers: { 'X-User-Id': '$arg_user', 'X-Product-Id': 'apac-398-472', 'X-Count': 100 } } },
          upstream: upstreamOf(a),
        }],
      });
      const hit = await send(gw, '/mk/vars?user=alice');
      assert.equal(hit.body, 'Client IP: 127.0.0.1, user alice');
      assert.equal(hit.headers['x-user-id'], 'alice');
      assert.equal(hit.headers['x-product-id'], 'apac-398-472');
      assert.equal(hit.headers['x-count'], '100');
    });

    it('delay holds the mocked answer for `delay` seconds', async () => {
      await apply(gw, a, {
        routes: [{ id: 'mk-delay', uri: '/mk/delay', plugins: { mocking: { delay: 1, response_example: 'late' } }, upstream: upstreamOf(a) }],
      });
      const started = Date.now();
      const hit = await send(gw, '/mk/delay');
      assert.equal(hit.body, 'late');
      assert.ok(Date.now() - started >= 950, 'held for the delay');
    });

    it('an unsupported content type is refused in apisix.yaml', async () => {
      const mark = gw.output().length;
      await apply(gw, a, {
        routes: [{ id: 'mk-bad', uri: '/mk/bad', plugins: { mocking: { content_type: 'image/png', response_example: 'x' } }, upstream: upstreamOf(a) }],
      });
      assert.equal((await request(gw.url('/mk/bad'))).status, 404);
      await waitForLog(gw, mark, /mk-bad[^\n]*failed to check the configuration of plugin mocking err: unsupported content type!/);
    });
  });

  describe('redirect', () => {
    const redirectRoute = (id: string, uri: string, conf: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ id, uri, plugins: { redirect: conf }, ...extra });

    it('uri templates: variables, $$, escaped \\$, unknown variables (TEST 3-14)', async () => {
      await apply(gw, a, {
        routes: [
          redirectRoute('rd-1', '/rd/plain', { uri: '/test/add', ret_code: 301 }),
          redirectRoute('rd-2', '/rd/uri', { uri: '$uri/test/add', ret_code: 301 }),
          redirectRoute('rd-3', '/rd/braced', { uri: '$uri/test/a${arg_name}c' }),
          redirectRoute('rd-4', '/rd/dollar', { uri: '/foo$$uri' }),
          redirectRoute('rd-5', '/rd/escaped', { uri: '\\$uri/foo$uri\\$uri/bar', ret_code: 301 }),
          redirectRoute('rd-6', '/rd/unknown', { uri: '$uri/$bad_var/bar', ret_code: 301 }),
          redirectRoute('rd-7', '/rd/dot', { uri: '$uri.html' }),
        ],
      });
      const cases: Array<[string, number, string]> = [
        ['/rd/plain', 301, '/test/add'],
        ['/rd/uri', 301, '/rd/uri/test/add'],
        ['/rd/braced?name=json', 302, '/rd/braced/test/ajsonc'],
        ['/rd/dollar?name=json', 302, '/foo$/rd/dollar'],
        ['/rd/escaped', 301, '\\$uri/foo/rd/escaped\\$uri/bar'],
        ['/rd/unknown', 301, '/rd/unknown//bar'],
        ['/rd/dot', 302, '/rd/dot.html'],
      ];
      for (const [path, status, location] of cases) {
        const res = await request(gw.url(path));
        assert.equal(res.status, status, path);
        assert.equal(res.headers.location, location, path);
      }
      assert.equal(a.seen.filter((r) => r.url.startsWith('/rd/')).length, 0);
    });

    it('https://$host$request_uri and http_to_https (301 for GET and HEAD, 308 otherwise) (TEST 15-29)', async () => {
      await apply(gw, a, {
        routes: [
          redirectRoute('rd-host', '/rd/host', { uri: 'https://$host$request_uri', ret_code: 301 }, { host: 'foo.com' }),
          redirectRoute('rd-https', '/rd/https', { http_to_https: true, ret_code: 302 }, { host: 'test.com', upstream: upstreamOf(a) }),
        ],
      });
      let res = await request(gw.url('/rd/host?x=1'), { headers: { host: 'foo.com' } });
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, 'https://foo.com/rd/host?x=1');
      // no plugin_attr.redirect.https_port: the default HTTPS listener port (9443)
      res = await request(gw.url('/rd/https?a=1'), { headers: { host: 'test.com' } });
      assert.equal(res.status, 301, 'ret_code does not apply to http_to_https');
      assert.equal(res.headers.location, 'https://test.com:9443/rd/https?a=1');
      res = await request(gw.url('/rd/https'), { method: 'HEAD', headers: { host: 'test.com' } });
      assert.equal(res.status, 301);
      res = await request(gw.url('/rd/https'), { method: 'POST', headers: { host: 'test.com' } });
      assert.equal(res.status, 308);
      assert.equal(res.headers.location, 'https://test.com:9443/rd/https');
      // a request that came in over HTTPS through a proxy is not redirected
      const passed = await send(gw, '/rd/https', { headers: { host: 'test.com', 'x-forwarded-proto': 'https' } });
      assert.equal(passed.port, a.port);
    });

    it('regex_uri rewrites matching paths; others go to the upstream; encode_uri escapes (TEST 30-36)', async () => {
      await apply(gw, a, {
        routes: [
          redirectRoute('rd-re', '/rd/re/*', { regex_uri: ['^/rd/re/(.*)', 'http://test.com/${1}'], ret_code: 301 }, { upstream: upstreamOf(a) }),
          redirectRoute('rd-re-miss', '/rd/keep', { regex_uri: ['^/rd/re/(.*)', 'http://test.com/$1'] }, { upstream: upstreamOf(a) }),
          redirectRoute('rd-enc', '/rd/enc/*', { regex_uri: ['^/rd/enc/(.*)', 'http://test.com/${1}'], ret_code: 301, encode_uri: true }, { upstream: upstreamOf(a) }),
          redirectRoute('rd-enc-uri', '/rd/encuri/*', { uri: '$uri', ret_code: 301, encode_uri: true }),
        ],
      });
      let res = await request(gw.url('/rd/re/1'));
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, 'http://test.com/1');
      assert.equal((await send(gw, '/rd/keep')).port, a.port);
      res = await request(gw.url('/rd/enc/with%20space'));
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, 'http://test.com/with%20space');
      res = await request(gw.url('/rd/encuri/with%20space'));
      assert.equal(res.headers.location, '/rd/encuri/with%20space');
    });

    it('append_query_string adds the query with ? or & (TEST 37-40)', async () => {
      await apply(gw, a, {
        routes: [
          redirectRoute('rd-q1', '/rd/q1', { uri: '$uri', append_query_string: true }),
          redirectRoute('rd-q2', '/rd/q2', { uri: '$uri?type=string', append_query_string: true }),
        ],
      });
      assert.equal((await request(gw.url('/rd/q1?name=json'))).headers.location, '/rd/q1?name=json');
      assert.equal((await request(gw.url('/rd/q1'))).headers.location, '/rd/q1');
      assert.equal((await request(gw.url('/rd/q2?name=json'))).headers.location, '/rd/q2?type=string&name=json');
    });

    it('uri together with http_to_https is refused in apisix.yaml (TEST 21)', async () => {
      const mark = gw.output().length;
      await apply(gw, a, {
        routes: [redirectRoute('rd-bad', '/rd/bad', { http_to_https: true, uri: '/hello' })],
      });
      assert.equal((await request(gw.url('/rd/bad'))).status, 404);
      await waitForLog(gw, mark, /rd-bad[^\n]*failed to check the configuration of plugin redirect err: value should match only one schema, but matches both schemas 1 and 3/);
    });
  });
});

describe('traffic plugins through the Admin API', () => {
  let node: AdminGateway;
  let adminPort: number;
  let gw: Gateway;
  let up: Upstream;

  before(async () => {
    up = await startUpstream();
    node = await startAdminGateway({ config: { plugin_attr: { redirect: { https_port: 8443 } } } });
    ({ gw, adminPort } = node);
  });

  after(async () => {
    await node?.stop();
    await up?.close();
  });

  const route = (plugins: Record<string, unknown>) => ({ uri: '/hello', plugins, upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } });
  const refused = async (plugins: Record<string, unknown>, message: string) => {
    const r = await adminCall(adminPort, 'PUT', '/routes/1', { body: route(plugins) });
    assert.deepEqual([r.status, r.json], [400, { error_msg: message }], JSON.stringify(plugins));
  };

  it('refuses bad traffic-split confs with APISIX messages', async () => {
    await refused({ 'traffic-split': { rules: [{ match: [{ vars: [['arg_name', 123, 'jack']] }] }] } },
      "failed to check the configuration of plugin traffic-split err: failed to validate the 'vars' expression: invalid operator '123'");
    await refused({ 'traffic-split': { rules: [{ weighted_upstreams: [{ weight: -1 }] }] } },
      'failed to check the configuration of plugin traffic-split err: property "rules" validation failed: failed to validate item 1: property "weighted_upstreams" validation failed: failed to validate item 1: property "weight" validation failed: expected -1 to be at least 0');
    await refused({ 'traffic-split': { rules: [{ weighted_upstreams: [] }] } },
      'failed to check the configuration of plugin traffic-split err: property "rules" validation failed: failed to validate item 1: property "weighted_upstreams" validation failed: expect array to have at least 1 items');
    await refused({ 'traffic-split': { rules: [{ matches: [] }] } },
      'failed to check the configuration of plugin traffic-split err: property "rules" validation failed: failed to validate item 1: additional properties forbidden, found matches');
  });

  it('refuses bad proxy-mirror confs (TEST 1-5, 13, 21)', async () => {
    await refused({ 'proxy-mirror': { host: 'http://127.0.0.1:1986', sample_ratio: 10 } },
      'failed to check the configuration of plugin proxy-mirror err: property "sample_ratio" validation failed: expected 10 to be at most 1');
    for (const host of ['ftp://127.0.0.1:1999', 'http://127.0.0.1::1999', '127.0.0.1:1999', 'http://127.0.0.1:1999/invalid_uri']) {
      const r = await adminCall(adminPort, 'PUT', '/routes/1', { body: route({ 'proxy-mirror': { host } }) });
      assert.equal(r.status, 400, host);
      assert.match(r.json.error_msg, /^failed to check the configuration of plugin proxy-mirror err: property "host" validation failed: failed to match pattern/);
    }
    for (const path of ['a', '/a?a=c']) {
      const r = await adminCall(adminPort, 'PUT', '/routes/1', { body: route({ 'proxy-mirror': { host: 'http://127.0.0.1:1999', path } }) });
      assert.equal(r.status, 400, path);
      assert.match(r.json.error_msg, /property "path" validation failed: failed to match pattern/);
    }
    await refused({ 'proxy-mirror': {} }, 'failed to check the configuration of plugin proxy-mirror err: property "host" is required');
    for (const host of ['http://a', 'http://ab.com', 'http://[::1]', 'http://[::1]:202', 'https://127.0.0.1:1443', 'grpc://127.0.0.1:50051']) {
      const r = await adminCall(adminPort, 'PUT', '/routes/1', { body: route({ 'proxy-mirror': { host } }) });
      assert.ok(r.status === 200 || r.status === 201, `${host}: ${r.text}`);
      assert.equal(r.json.value.plugins['proxy-mirror'].path_concat_mode, 'replace', 'defaults are stored');
      assert.equal(r.json.value.plugins['proxy-mirror'].sample_ratio, 1);
    }
  });

  it('refuses bad fault-injection confs', async () => {
    await refused({ 'fault-injection': {} }, 'failed to check the configuration of plugin fault-injection err: expect object to have at least 1 properties');
    await refused({ 'fault-injection': { abort: { body: 'x' } } },
      'failed to check the configuration of plugin fault-injection err: property "abort" validation failed: property "http_status" is required');
    await refused({ 'fault-injection': { abort: { http_status: 199 } } },
      'failed to check the configuration of plugin fault-injection err: property "abort" validation failed: property "http_status" validation failed: expected 199 to be at least 200');
    await refused({ 'fault-injection': { delay: { duration: 1, percentage: 101 } } },
      'failed to check the configuration of plugin fault-injection err: property "delay" validation failed: property "percentage" validation failed: expected 101 to be at most 100');
    await refused({ 'fault-injection': { abort: { http_status: 403, vars: [[['arg_name', 'equal', 'jack']]] } } },
      "failed to check the configuration of plugin fault-injection err: invalid operator 'equal'");
  });

  it('refuses bad mocking confs and stores the defaults', async () => {
    await refused({ mocking: { content_type: 'image/png', response_example: 'x' } }, 'failed to check the configuration of plugin mocking err: unsupported content type!');
    await refused({ mocking: { delay: 1 } },
      'failed to check the configuration of plugin mocking err: object matches none of the required: ["response_example"] or ["response_schema"]');
    await refused({ mocking: { response_example: 'x', response_status: 99 } },
      'failed to check the configuration of plugin mocking err: property "response_status" validation failed: expected 99 to be at least 100');
    const r = await adminCall(adminPort, 'PUT', '/routes/1', { body: route({ mocking: { response_example: 'x' } }) });
    assert.ok(r.status === 200 || r.status === 201, r.text);
    assert.deepEqual(r.json.value.plugins.mocking, { response_example: 'x', delay: 0, response_status: 200, content_type: 'application/json;charset=utf8', with_mock_header: true });
  });

  it('refuses bad redirect confs (mutual exclusion, regex)', async () => {
    await refused({ redirect: { http_to_https: true, uri: '/hello' } },
      'failed to check the configuration of plugin redirect err: value should match only one schema, but matches both schemas 1 and 3');
    await refused({ redirect: { uri: '/a', regex_uri: ['^/a', '/b'] } },
      'failed to check the configuration of plugin redirect err: value should match only one schema, but matches both schemas 1 and 2');
    await refused({ redirect: { ret_code: 301 } }, 'failed to check the configuration of plugin redirect err: value should match only one schema, but matches none');
    await refused({ redirect: { http_to_https: true, append_query_string: true } },
      'failed to check the configuration of plugin redirect err: only one of `http_to_https` and `append_query_string` can be configured.');
    await refused({ redirect: { regex_uri: ['^/a'] } },
      'failed to check the configuration of plugin redirect err: property "regex_uri" validation failed: expect array to have at least 2 items');
    await refused({ redirect: { uri: '/' } }, 'failed to check the configuration of plugin redirect err: property "uri" validation failed: string too short, expected at least 2, got 1');
    const r = await adminCall(adminPort, 'PUT', '/routes/1', { body: route({ redirect: { regex_uri: ['^/(a', '/b'] } }) });
    assert.equal(r.status, 400);
    assert.match(r.json.error_msg, /^failed to check the configuration of plugin redirect err: invalid regex_uri \(\^\/\(a, \/b\), err:/);
    const t = await adminCall(adminPort, 'PUT', '/routes/1', { body: route({ redirect: { regex_uri: ['^/(a)', '/b$x'] } }) });
    assert.equal(t.status, 400);
    assert.match(t.json.error_msg, /^failed to check the configuration of plugin redirect err: invalid regex_uri \(\^\/\(a\), \/b\$x\), err:/);
  });

  it('http_to_https uses plugin_attr.redirect.https_port', async () => {
    const r = await adminCall(adminPort, 'PUT', '/routes/1', { body: { uri: '/hello', host: 'foo.com', plugins: { redirect: { http_to_https: true } } } });
    assert.ok(r.status === 200 || r.status === 201, r.text);
    await waitFor(async () => (await request(gw.url('/hello'), { headers: { host: 'foo.com' } })).status === 301, 5_000, 'route served');
    const res = await request(gw.url('/hello?x=1'), { headers: { host: 'foo.com' } });
    assert.equal(res.headers.location, 'https://foo.com:8443/hello?x=1');
  });
});
