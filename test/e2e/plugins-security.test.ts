// The security plugins through the running gateway: ip-restriction, ua-restriction,
// referer-restriction, cors, uri-blocker, csrf and request-validation. Expected statuses, headers
// and bodies come from APISIX's t/plugin/<name>*.t and its plugin docs.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { adminCall, startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { freePort, serverTracker, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';
import { apply, NOT_FOUND_BODY, upstreamOf } from '../helpers/routing.ts';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface CallOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string;
  /** Client address: an IPv4 loopback address to send from, or `::1` to use the IPv6 listener. */
  from?: string;
}

/** A gateway listening on 127.0.0.1 and [::1], so client addresses of both families can be tried. */
async function startDualStackGateway(): Promise<{ gw: Gateway; port4: number; port6: number }> {
  const [port4, port6] = [await freePort(), await freePort()];
  const gw = await startGateway({ config: { apisix: { enable_ipv6: true, node_listen: [{ ip: '127.0.0.1', port: port4 }, { ip: '::1', port: port6 }] } } });
  gw.port = port4; // what `send`/`apply` use
  return { gw, port4, port6 };
}

const MESSAGE_IP = '{"message":"Your IP address is not allowed"}\n';

describe('security plugins', () => {
  const servers = serverTracker();
  let gw: Gateway;
  let port4: number;
  let port6: number;
  let up: Upstream;

  /** One request with the target sent as written; `from` picks the client address. */
  function call(path: string, options: CallOptions = {}): Promise<Reply> {
    const v6 = options.from === '::1';
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: v6 ? '::1' : '127.0.0.1', port: v6 ? port6 : port4, path, method: options.method ?? 'GET', headers: options.headers, localAddress: v6 ? undefined : options.from, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
          res.on('error', reject);
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(options.body);
    });
  }

  /** Loads routes (each given the echo upstream unless it has one) and waits until they are live. */
  async function routes(...list: Array<Record<string, unknown>>): Promise<void> {
    await apply(gw, up, { routes: list.map((r) => ({ upstream: upstreamOf(up), ...r })) });
  }

  function assertJson(reply: Reply, status: number, body: string): void {
    assert.equal(reply.status, status, reply.body);
    assert.equal(reply.body, body);
    assert.equal(reply.headers['content-type'], 'text/plain; charset=utf-8');
  }

  /** The request reached the echo upstream. */
  function assertPassed(reply: Reply): { headers: http.IncomingHttpHeaders; body: string; url: string } {
    assert.equal(reply.status, 200, reply.body);
    const echo = JSON.parse(reply.body);
    assert.equal(echo.port, up.port);
    return echo;
  }

  before(async () => {
    up = servers.keep(await startUpstream());
    ({ gw, port4, port6 } = await startDualStackGateway());
  });
  after(async () => {
    await gw?.stop();
    await servers.closeAll();
  });

  describe('ip-restriction', () => {
    it('whitelist: listed addresses and ranges pass, others get 403 (t/plugin/ip-restriction.t)', async () => {
      await routes({ id: 'ip', uri: '/hello', plugins: { 'ip-restriction': { whitelist: ['127.0.0.0/30', '127.0.0.9'] } } });
      assertPassed(await call('/hello'));
      assertPassed(await call('/hello', { from: '127.0.0.2' }));
      assertPassed(await call('/hello', { from: '127.0.0.9' }));
      assertJson(await call('/hello', { from: '127.0.0.5' }), 403, MESSAGE_IP);
      assertJson(await call('/hello', { from: '::1' }), 403, MESSAGE_IP);
    });

    it('blacklist: listed addresses get 403, others pass', async () => {
      await routes({ id: 'ip', uri: '/hello', plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/24', '113.74.26.106'] } } });
      assertJson(await call('/hello'), 403, MESSAGE_IP);
      assertPassed(await call('/hello', { from: '::1' }));
      await routes({ id: 'ip', uri: '/hello', plugins: { 'ip-restriction': { blacklist: ['127.0.0.6'] } } });
      assertPassed(await call('/hello', { from: '127.0.0.5' }));
      assertJson(await call('/hello', { from: '127.0.0.6' }), 403, MESSAGE_IP);
    });

    it('IPv6 addresses and ranges', async () => {
      await routes({ id: 'ip', uri: '/hello', plugins: { 'ip-restriction': { blacklist: ['::1', 'fe80::/32'] } } });
      assertJson(await call('/hello', { from: '::1' }), 403, MESSAGE_IP);
      assertPassed(await call('/hello'));
      await routes({ id: 'ip', uri: '/hello', plugins: { 'ip-restriction': { whitelist: ['::/0'] } } });
      assertPassed(await call('/hello', { from: '::1' }));
      assertJson(await call('/hello'), 403, MESSAGE_IP);
    });

    it('message and response_code', async () => {
      await routes({ id: 'ip', uri: '/hello', plugins: { 'ip-restriction': { whitelist: ['10.0.0.0/8'], message: 'Access denied', response_code: 404 } } });
      assertJson(await call('/hello'), 404, '{"message":"Access denied"}\n');
    });
  });

  describe('ua-restriction', () => {
    it('denylist refuses matching agents and a missing one (t/plugin/ua-restriction.t)', async () => {
      await routes({ id: 'ua', uri: '/hello', plugins: { 'ua-restriction': { denylist: ['my-bot1', '(Baiduspider)/(\\d+)\\.(\\d+)'] } } });
      assertJson(await call('/hello', { headers: { 'User-Agent': 'my-bot1' } }), 403, '{"message":"Not allowed"}\n');
      assertJson(await call('/hello', { headers: { 'User-Agent': 'Baiduspider/3.0' } }), 403, '{"message":"Not allowed"}\n');
      assertJson(await call('/hello', { headers: { 'User-Agent': 'x my-bot1 y' } }), 403, '{"message":"Not allowed"}\n');
      assertPassed(await call('/hello', { headers: { 'User-Agent': 'foo/bar' } }));
      assertJson(await call('/hello'), 403, '{"message":"Not allowed"}\n');
    });

    it('allowlist lets only matching agents through; bypass_missing; message', async () => {
      await routes({ id: 'ua', uri: '/hello', plugins: { 'ua-restriction': { allowlist: ['my-bot1', '(Baiduspider)/(\\d+)\\.(\\d+)'], bypass_missing: true, message: 'Do you want to do something bad?' } } });
      assertPassed(await call('/hello', { headers: { 'User-Agent': 'my-bot1' } }));
      assertPassed(await call('/hello', { headers: { 'User-Agent': 'Baiduspider/1.0' } }));
      assertPassed(await call('/hello'));
      assertJson(await call('/hello', { headers: { 'User-Agent': 'foo/bar' } }), 403, '{"message":"Do you want to do something bad?"}\n');
    });
  });

  describe('referer-restriction', () => {
    it('whitelist with a wildcard; bypass_missing (docs example)', async () => {
      await routes({ id: 'ref', uri: '/hello', plugins: { 'referer-restriction': { bypass_missing: true, whitelist: ['xx.com', '*.xx.com'] } } });
      assertPassed(await call('/hello', { headers: { Referer: 'http://xx.com/x' } }));
      assertPassed(await call('/hello', { headers: { Referer: 'https://a.b.xx.com:8443/path?q=1' } }));
      assertPassed(await call('/hello', { headers: { Referer: '//xx.com' } }));
      assertJson(await call('/hello', { headers: { Referer: 'http://yy.com/x' } }), 403, '{"message":"Your referer host is not allowed"}\n');
      assertJson(await call('/hello', { headers: { Referer: 'http://axx.com/x' } }), 403, '{"message":"Your referer host is not allowed"}\n');
      // missing or malformed: bypassed
      assertPassed(await call('/hello'));
      assertPassed(await call('/hello', { headers: { Referer: 'xx.com' } }));
    });

    it('blacklist; a missing or malformed Referer is refused without bypass_missing; message', async () => {
      await routes({ id: 'ref', uri: '/hello', plugins: { 'referer-restriction': { blacklist: ['*.xx.com'], message: 'go away' } } });
      assertJson(await call('/hello', { headers: { Referer: 'http://a.xx.com/x' } }), 403, '{"message":"go away"}\n');
      assertPassed(await call('/hello', { headers: { Referer: 'http://xx.com/x' } }));
      assertJson(await call('/hello'), 403, '{"message":"go away"}\n');
      assertJson(await call('/hello', { headers: { Referer: 'not a url' } }), 403, '{"message":"go away"}\n');
    });
  });

  describe('uri-blocker', () => {
    it('blocks URIs matching any rule with 403 and the error page (t/plugin/uri-blocker.t)', async () => {
      await routes({ id: 'ub', uri: '/hello', plugins: { 'uri-blocker': { block_rules: ['aa', 'bb', 'c\\d+'] } } });
      for (const path of ['/hello?aa=1', '/hello?x=bb', '/hello?bb=2', '/hello?c1=2']) {
        const reply = await call(path);
        assert.equal(reply.status, 403, path);
        assert.match(reply.body, /<title>403 Forbidden<\/title>/);
      }
      assertPassed(await call('/hello?cc=2'));
    });

    it('SQL injection rules match the raw query string', async () => {
      await routes({ id: 'ub', uri: '/hello', plugins: { 'uri-blocker': { block_rules: ['select.+(from|limit)', '(?:(union(.*?)select))'] } } });
      assert.equal((await call('/hello?name=;select%20from%20sys')).status, 403);
      assert.equal((await call('/hello?name=;union%20select%20')).status, 403);
      assertPassed(await call('/hello?cc=2'));
    });

    it('rejected_msg, rejected_code and case_insensitive', async () => {
      await routes({ id: 'ub', uri: '/hello', plugins: { 'uri-blocker': { block_rules: ['AA'], rejected_msg: 'access is not allowed', case_insensitive: true, rejected_code: 410 } } });
      assertJson(await call('/hello?aa=1'), 410, '{"error_msg":"access is not allowed"}\n');
      await routes({ id: 'ub', uri: '/hello', plugins: { 'uri-blocker': { block_rules: ['AA'], rejected_msg: 'access is not allowed' } } });
      assertJson(await call('/hello?AA=1'), 403, '{"error_msg":"access is not allowed"}\n');
      assertPassed(await call('/hello?aa=1'));
    });

    it('cannot be bypassed with an unnormalised path', async () => {
      await routes({ id: 'ub', uri: '/internal/*', plugins: { 'uri-blocker': { block_rules: ['^/internal/'] } } });
      assert.equal((await call('/./internal/x?aa=1')).status, 403);
      assert.equal((await call('/internal/../internal/x')).status, 403);
    });
  });

  describe('cors', () => {
    it('defaults: `*` for everything, no Vary, no credentials', async () => {
      await routes({ id: 'cors', uri: '/hello', plugins: { cors: {} } });
      const reply = await call('/hello', { headers: { Origin: 'http://sub.domain.com' } });
      assertPassed(reply);
      assert.equal(reply.headers['access-control-allow-origin'], '*');
      assert.equal(reply.headers['access-control-allow-methods'], '*');
      assert.equal(reply.headers['access-control-allow-headers'], '*');
      assert.equal(reply.headers['access-control-max-age'], '5');
      assert.equal(reply.headers['access-control-expose-headers'], undefined);
      assert.equal(reply.headers['access-control-allow-credentials'], undefined);
      assert.equal(reply.headers.vary, undefined);
    });

    it('answers every OPTIONS request itself with 200, without calling the upstream', async () => {
      await routes({ id: 'cors', uri: '/hello', plugins: { cors: { allow_origins: 'http://sub.domain.com', allow_methods: 'GET,POST', allow_headers: 'request-h', expose_headers: 'expose-h', max_age: 10 } } });
      const seen = up.seen.length;
      const reply = await call('/hello', { method: 'OPTIONS', headers: { Origin: 'http://sub.domain.com', 'Access-Control-Request-Method': 'POST' } });
      assert.equal(reply.status, 200);
      assert.equal(reply.body, '');
      assert.equal(reply.headers['access-control-allow-origin'], 'http://sub.domain.com');
      assert.equal(reply.headers['access-control-allow-methods'], 'GET,POST');
      assert.equal(reply.headers['access-control-allow-headers'], 'request-h');
      assert.equal(reply.headers['access-control-expose-headers'], 'expose-h');
      assert.equal(reply.headers['access-control-max-age'], '10');
      assert.equal(reply.headers.vary, 'Origin');
      // not a preflight by CORS rules, still answered here
      assert.equal((await call('/hello', { method: 'OPTIONS' })).status, 200);
      assert.equal(up.seen.length, seen);
    });

    it('a list of origins echoes a listed Origin; an unlisted one gets only Vary (t/plugin/cors4.t)', async () => {
      await routes({ id: 'cors', uri: '/hello', plugins: { cors: { allow_origins: 'http://one.domain.com,http://two.domain.com', allow_methods: 'GET,POST', allow_headers: 'request-h', expose_headers: 'expose-h', max_age: 10, timing_allow_origins: 'http://one.domain.com' } } });
      const one = await call('/hello', { headers: { Origin: 'http://one.domain.com' } });
      assert.equal(one.headers['access-control-allow-origin'], 'http://one.domain.com');
      assert.equal(one.headers['timing-allow-origin'], 'http://one.domain.com');
      assert.equal(one.headers.vary, 'Origin');
      const two = await call('/hello', { headers: { Origin: 'http://two.domain.com' } });
      assert.equal(two.headers['access-control-allow-origin'], 'http://two.domain.com');
      assert.equal(two.headers['timing-allow-origin'], undefined);
      const other = await call('/hello', { headers: { Origin: 'http://notexistent.domain.com' } });
      assertPassed(other);
      for (const h of ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-expose-headers', 'access-control-max-age', 'timing-allow-origin']) {
        assert.equal(other.headers[h], undefined, h);
      }
      assert.equal(other.headers.vary, 'Origin');
    });

    it('timing_allow_origins works apart from allow_origins (t/plugin/cors4.t)', async () => {
      await routes({ id: 'cors', uri: '/hello', plugins: { cors: { allow_origins: 'http://one.domain.com', timing_allow_origins: 'http://another.domain.com' } } });
      const another = await call('/hello', { headers: { Origin: 'http://another.domain.com' } });
      assert.equal(another.headers['access-control-allow-origin'], undefined);
      assert.equal(another.headers['timing-allow-origin'], 'http://another.domain.com');
      const one = await call('/hello', { headers: { Origin: 'http://one.domain.com' } });
      assert.equal(one.headers['access-control-allow-origin'], 'http://one.domain.com');
      assert.equal(one.headers['timing-allow-origin'], undefined);
      await routes({ id: 'cors', uri: '/hello', plugins: { cors: { timing_allow_origins: 'http://sub.domain.com' } } });
      const sub = await call('/hello', { headers: { Origin: 'http://sub.domain.com' } });
      assert.equal(sub.headers['access-control-allow-origin'], '*');
      assert.equal(sub.headers['timing-allow-origin'], 'http://sub.domain.com');
      assert.equal((await call('/hello', { headers: { Origin: 'http://other.domain.com' } })).headers['timing-allow-origin'], undefined);
    });

    it('regexes replace allow_origins and timing_allow_origins (t/plugin/cors4.t)', async () => {
      await routes({ id: 'cors', uri: '/hello', plugins: { cors: { allow_origins_by_regex: ['http://.*?\\.domain\\.com'], timing_allow_origins_by_regex: ['http://test.*?\\.domain\\.com'], timing_allow_origins: 'http://nonexistent.newdomain.com' } } });
      const test = await call('/hello', { headers: { Origin: 'http://testurl.domain.com' } });
      assert.equal(test.headers['access-control-allow-origin'], 'http://testurl.domain.com');
      assert.equal(test.headers['timing-allow-origin'], 'http://testurl.domain.com');
      const sub = await call('/hello', { headers: { Origin: 'http://sub.domain.com' } });
      assert.equal(sub.headers['access-control-allow-origin'], 'http://sub.domain.com');
      assert.equal(sub.headers['timing-allow-origin'], undefined);
      const none = await call('/hello', { headers: { Origin: 'http://other.newdomain.com' } });
      assert.equal(none.headers['access-control-allow-origin'], undefined);
      assert.equal(none.headers['timing-allow-origin'], undefined);
    });

    it('`**` echoes the Origin, every method and the requested headers; allow_credential', async () => {
      await routes({ id: 'cors', uri: '/hello', plugins: { cors: { allow_credential: true, allow_headers: '**', allow_methods: '**', allow_origins: '**', expose_headers: 'ex-headr1,ex-headr2', max_age: 3500 } } });
      const reply = await call('/hello', { headers: { Origin: 'http://sub.domain.com', 'Access-Control-Request-Headers': 'x-a,x-b' } });
      assert.equal(reply.headers['access-control-allow-origin'], 'http://sub.domain.com');
      assert.equal(reply.headers['access-control-allow-methods'], 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE');
      assert.equal(reply.headers['access-control-allow-headers'], 'x-a,x-b');
      assert.equal(reply.headers['access-control-expose-headers'], 'ex-headr1,ex-headr2');
      assert.equal(reply.headers['access-control-max-age'], '3500');
      assert.equal(reply.headers['access-control-allow-credentials'], 'true');
      // nothing requested: no Allow-Headers; an empty expose_headers sends none
      await routes({ id: 'cors', uri: '/hello', plugins: { cors: { allow_credential: true, allow_headers: '**', allow_methods: '**', allow_origins: '**', expose_headers: '' } } });
      const bare = await call('/hello', { headers: { Origin: 'http://sub.domain.com' } });
      assert.equal(bare.headers['access-control-allow-headers'], undefined);
      assert.equal(bare.headers['access-control-expose-headers'], undefined);
      // no Origin at all: `**` becomes `*`
      assert.equal((await call('/hello')).headers['access-control-allow-origin'], '*');
    });

    it('allow_origins_by_metadata reads plugin_metadata.cors.allow_origins', async () => {
      await apply(gw, up, {
        routes: [{ id: 'cors', uri: '/hello', upstream: upstreamOf(up), plugins: { cors: { allow_origins_by_metadata: ['key_1', 'key_2'] } } }],
        plugin_metadata: [{ id: 'cors', allow_origins: { key_1: 'https://domain.com', key_2: 'https://a.com,https://b.com', key_3: '*' } }],
      } as Parameters<typeof apply>[2]);
      for (const origin of ['https://domain.com', 'https://b.com']) {
        const reply = await call('/hello', { headers: { Origin: origin } });
        assert.equal(reply.headers['access-control-allow-origin'], origin);
        assert.equal(reply.headers.vary, undefined);
      }
      assert.equal((await call('/hello', { headers: { Origin: 'https://c.com' } })).headers['access-control-allow-origin'], undefined);
      // the route's own origins are tried too when they are not the default `*`
      await apply(gw, up, {
        routes: [{ id: 'cors', uri: '/hello', upstream: upstreamOf(up), plugins: { cors: { allow_origins: 'https://own.com', allow_origins_by_metadata: ['key_1'] } } }],
        plugin_metadata: [{ id: 'cors', allow_origins: { key_1: 'https://domain.com' } }],
      } as Parameters<typeof apply>[2]);
      assert.equal((await call('/hello', { headers: { Origin: 'https://own.com' } })).headers['access-control-allow-origin'], 'https://own.com');
      assert.equal((await call('/hello', { headers: { Origin: 'https://domain.com' } })).headers['access-control-allow-origin'], 'https://domain.com');
      assert.equal((await call('/hello', { headers: { Origin: 'https://c.com' } })).headers['access-control-allow-origin'], undefined);
    });

    it('headers go on every answer: another plugin’s refusal, a failed upstream, the upstream’s own CORS headers replaced', async () => {
      const corsUp = servers.keep(await startUpstream((_req, res) => {
        res.writeHead(200, { 'Access-Control-Allow-Origin': 'http://upstream.example', Vary: 'Accept-Encoding', 'Content-Type': 'text/plain' });
        res.end('from upstream');
      }));
      const cors = { allow_origins: 'http://sub.domain.com' };
      await routes(
        { id: 'cors', uri: '/hello', plugins: { cors, 'ip-restriction': { blacklist: ['127.0.0.6'] } }, upstream: upstreamOf(corsUp) },
        { id: 'cors-dead', uri: '/dead', plugins: { cors }, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } },
      );
      const headers = { Origin: 'http://sub.domain.com' };
      const refused = await call('/hello', { headers, from: '127.0.0.6' });
      assertJson(refused, 403, MESSAGE_IP);
      assert.equal(refused.headers['access-control-allow-origin'], 'http://sub.domain.com');
      const dead = await call('/dead', { headers });
      assert.equal(dead.status, 502);
      assert.equal(dead.headers['access-control-allow-origin'], 'http://sub.domain.com');
      const replaced = await call('/hello', { headers });
      assert.equal(replaced.body, 'from upstream');
      assert.equal(replaced.headers['access-control-allow-origin'], 'http://sub.domain.com');
      assert.equal(replaced.headers.vary, 'Accept-Encoding, Origin');
    });
  });

  describe('csrf', () => {
    const CSRF = { csrf: { key: 'userkey' } };

    function tokenOf(reply: Reply, name = 'apisix-csrf-token'): string {
      const cookies = ([] as string[]).concat(reply.headers['set-cookie'] ?? []);
      const cookie = cookies.find((c) => c.startsWith(`${name}=`));
      assert.ok(cookie, `no ${name} cookie in ${JSON.stringify(cookies)}`);
      return cookie.slice(name.length + 1, cookie.indexOf(';'));
    }

    it('a safe request gets a signed token cookie (t/plugin/csrf.t)', async () => {
      await routes({ id: 'csrf', uri: '/hello', plugins: CSRF });
      const reply = await call('/hello');
      assertPassed(reply);
      const cookie = String(reply.headers['set-cookie']);
      assert.match(cookie, /^apisix-csrf-token=[A-Za-z0-9+/=]+;path=\/;SameSite=Lax;Expires=(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d:\d\d GMT$/);
      const fields = JSON.parse(Buffer.from(tokenOf(reply), 'base64').toString());
      assert.deepEqual(Object.keys(fields).sort(), ['expires', 'random', 'sign']);
      // HEAD and OPTIONS need no token either
      assert.equal((await call('/hello', { method: 'HEAD' })).status, 200);
      assert.equal((await call('/hello', { method: 'OPTIONS' })).status, 200);
    });

    it('an unsafe request is refused with APISIX’s 401 bodies until header and cookie carry the same valid token', async () => {
      await routes({ id: 'csrf', uri: '/hello', plugins: CSRF });
      const post = (headers: http.OutgoingHttpHeaders) => call('/hello', { method: 'POST', headers });
      assertJson(await post({}), 401, '{"error_msg":"no csrf token in headers"}\n');
      assertJson(await post({ 'apisix-csrf-token': 'wrongtoken' }), 401, '{"error_msg":"no csrf cookie"}\n');
      assertJson(await post({ Cookie: 'apisix-csrf-token=testcookie' }), 401, '{"error_msg":"no csrf token in headers"}\n');
      assertJson(await post({ 'apisix-csrf-token': 'wrongtoken', Cookie: 'apisix-csrf-token=testcookie' }), 401, '{"error_msg":"csrf token mismatch"}\n');
      const forged = 'eyJleHBpcmVzIjo3MjAwLCJyYW5kb20iOjAuMjE2ODAxOTYyNTEwNDEsInNpZ24iOiJqZnhDckk1TVwvMHI3VjdyWWRBSXNCeEg3emljY3VnV0dySGtYQkZ0QT0ifQ==';
      const refused = await post({ 'apisix-csrf-token': forged, Cookie: `apisix-csrf-token=${forged}` });
      assertJson(refused, 401, '{"error_msg":"Failed to verify the csrf token signature"}\n');
      // the refusal carries a fresh token too
      const fresh = tokenOf(refused);
      assertPassed(await post({ 'apisix-csrf-token': fresh, Cookie: `apisix-csrf-token=${fresh}` }));
      const token = tokenOf(await call('/hello'));
      assertPassed(await call('/hello', { method: 'PUT', headers: { 'apisix-csrf-token': token, Cookie: `other=1; apisix-csrf-token=${token}` } }));
      // a token signed with another key
      await routes({ id: 'csrf', uri: '/hello', plugins: { csrf: { key: 'otherkey' } } });
      assertJson(await post({ 'apisix-csrf-token': token, Cookie: `apisix-csrf-token=${token}` }), 401, '{"error_msg":"Failed to verify the csrf token signature"}\n');
    });

    it('name and expires', async () => {
      await routes({ id: 'csrf', uri: '/hello', plugins: { csrf: { key: 'k', name: 'my-token', expires: 60 } } });
      const reply = await call('/hello');
      const token = tokenOf(reply, 'my-token');
      const expires = /Expires=([^;]+)$/.exec(String(reply.headers['set-cookie']))![1];
      const stamp = /^\w{3}, (\d\d)-(\w{3})-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/.exec(expires)!;
      const when = Date.parse(`${stamp[1]} ${stamp[2]} 20${stamp[3]} ${stamp[4]}:${stamp[5]}:${stamp[6]} GMT`);
      assert.ok(Math.abs(when - (Date.now() + 60_000)) < 5_000, `Expires=${expires}`);
      assertPassed(await call('/hello', { method: 'DELETE', headers: { 'my-token': token, Cookie: `my-token=${token}` } }));
      assertJson(await call('/hello', { method: 'DELETE', headers: { 'apisix-csrf-token': token, Cookie: `apisix-csrf-token=${token}` } }), 401, '{"error_msg":"no csrf token in headers"}\n');
    });

    it('a token older than `expires` is refused', async () => {
      await routes({ id: 'csrf', uri: '/hello', plugins: { csrf: { key: 'userkey' } } });
      // APISIX's own test token: issued at 7200 s after the epoch
      const old = 'eyJzaWduIjoiZTlhNWVkOTBmZDc2YjRhMTYyMzg1ZDU2Y2ZhZDI1N2MxNmI0MWY1MjFjZWUwODczNzExM2NlYzZkZDQwMWJmNyIsInJhbmRvbSI6MC4zNjcxNDg2NDI2MjE0MywiZXhwaXJlcyI6NzIwMH0=';
      assertJson(await call('/hello', { method: 'POST', headers: { 'apisix-csrf-token': old, Cookie: `apisix-csrf-token=${old}` } }), 401, '{"error_msg":"Failed to verify the csrf token signature"}\n');
      // with expires 0 tokens never age, so the same token passes
      await routes({ id: 'csrf', uri: '/hello', plugins: { csrf: { key: 'userkey', expires: 0 } } });
      assertPassed(await call('/hello', { method: 'POST', headers: { 'apisix-csrf-token': old, Cookie: `apisix-csrf-token=${old}` } }));
    });
  });

  describe('request-validation', () => {
    const SCHEMA = {
      type: 'object',
      required: ['required_payload'],
      properties: {
        required_payload: { type: 'string' },
        boolean_payload: { type: 'boolean' },
        timeouts: { type: 'integer', minimum: 1, maximum: 254, default: 3 },
        req_headers: { type: 'array', minItems: 1, items: { type: 'string' } },
      },
    };
    const json = { 'Content-Type': 'application/json' };

    function assertText(reply: Reply, status: number, body: string): void {
      assert.equal(reply.status, status, reply.body);
      assert.equal(reply.body, body);
      assert.match(String(reply.headers['content-type']), /^text\/plain/);
    }

    it('body_schema: the validator’s words as a 400 body; a valid body goes upstream as validated (t/plugin/request-validation.t)', async () => {
      await routes({ id: 'rv', uri: '/opentracing', plugins: { 'request-validation': { body_schema: SCHEMA } } });
      assertText(await call('/opentracing', { method: 'POST', headers: json, body: '{"boolean-payload": true}' }), 400, 'property "required_payload" is required');
      assertText(await call('/opentracing', { method: 'POST', headers: json, body: '{"required_payload": "x", "timeouts": 300}' }), 400, 'property "timeouts" validation failed: expected 300 to be at most 254');
      assertText(await call('/opentracing', { method: 'POST', headers: json, body: '{"required_payload": "x",}' }), 400, 'Expected object key string but found T_OBJ_END at character 26');
      // no Content-Type: JSON is the default
      assertText(await call('/opentracing', { method: 'POST', body: 'abc' }), 400, 'Expected value but found invalid token at character 1');
      const echo = assertPassed(await call('/opentracing', { method: 'POST', headers: json, body: '{"required_payload": "a", "required_payload": "hello", "boolean_payload": true}' }));
      assert.deepEqual(JSON.parse(echo.body), { required_payload: 'hello', boolean_payload: true, timeouts: 3 });
      assert.equal(echo.headers['content-length'], String(Buffer.byteLength(echo.body)));
    });

    it('a request without a body is refused with the code and the gateway’s error page', async () => {
      await routes({ id: 'rv', uri: '/opentracing', plugins: { 'request-validation': { body_schema: SCHEMA } } });
      const reply = await call('/opentracing');
      assert.equal(reply.status, 400);
      assert.match(reply.body, /<title>400 Bad Request<\/title>/);
    });

    it('header_schema, with header names in any case', async () => {
      await routes({ id: 'rv', uri: '/opentracing', plugins: { 'request-validation': { header_schema: SCHEMA } } });
      assertText(await call('/opentracing', { headers: json }), 400, 'property "required_payload" is required');
      assertPassed(await call('/opentracing', { headers: { ...json, required_payload: 'test payload' } }));
      await routes({ id: 'rv', uri: '/opentracing', plugins: { 'request-validation': { header_schema: { type: 'object', required: ['X-Api-Version'], properties: { 'X-Api-Version': { type: 'string', enum: ['1', '2'] } } } } } });
      assertPassed(await call('/opentracing', { headers: { 'x-api-version': '2' } }));
      assertText(await call('/opentracing', { headers: { 'X-API-VERSION': '3' } }), 400, 'property "X-Api-Version" validation failed: matches none of the enum values');
    });

    it('rejected_msg and rejected_code', async () => {
      await routes({ id: 'rv', uri: '/opentracing', plugins: { 'request-validation': { header_schema: { type: 'object', properties: { test: { type: 'string', enum: ['a', 'b', 'c'] } }, required: ['test'] }, rejected_msg: 'customize reject message for header_schema.required' } } });
      assertText(await call('/opentracing'), 400, 'customize reject message for header_schema.required');
      assertText(await call('/opentracing', { headers: { test: 'abc' } }), 400, 'customize reject message for header_schema.required');
      assertPassed(await call('/opentracing', { headers: { test: 'a' } }));
      await routes({ id: 'rv', uri: '/opentracing', plugins: { 'request-validation': { body_schema: { type: 'object', properties: { test: { type: 'string', enum: ['a', 'b', 'c'] } }, required: ['test'] }, rejected_code: 505 } } });
      assert.equal((await call('/opentracing')).status, 505);
      assert.equal((await call('/opentracing', { method: 'POST', body: '{"test":"abc"}' })).status, 505);
      assertPassed(await call('/opentracing', { method: 'POST', body: '{"test":"a"}' }));
    });

    it('application/x-www-form-urlencoded bodies are validated as decoded fields and forwarded unchanged', async () => {
      await routes({ id: 'rv', uri: '/echo', plugins: { 'request-validation': { body_schema: { type: 'object', required: ['required_payload'], properties: { required_payload: { type: 'string' } } } } } });
      const body = 'a=b&'.repeat(101) + 'required_payload=101-hello';
      for (const type of ['application/x-www-form-urlencoded', 'Application/X-WWW-Form-Urlencoded; charset=utf-8']) {
        const echo = assertPassed(await call('/echo', { method: 'POST', headers: { 'Content-Type': type }, body }));
        assert.equal(echo.body, body);
      }
      assertText(await call('/echo', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=b' }), 400, 'property "required_payload" is required');
    });

    it('with two Content-Type headers the body is read by the first, and only that one goes upstream', async () => {
      await routes({ id: 'rv', uri: '/echo', plugins: { 'request-validation': { body_schema: { type: 'object', required: ['required_payload'], properties: { required_payload: { type: 'string' } } } } } });
      const seen = up.seen.length;
      assertPassed(await call('/echo', { method: 'POST', headers: { 'Content-Type': ['application/x-www-form-urlencoded', 'application/json'] }, body: 'required_payload=x' }));
      const raw = up.seen[seen].rawHeaders;
      const types = raw.filter((_, i) => i % 2 === 0 && raw[i].toLowerCase() === 'content-type').length;
      assert.equal(types, 1);
      assert.equal(up.seen[seen].headers['content-type'], 'application/x-www-form-urlencoded');
      assertText(await call('/echo', { method: 'POST', headers: { 'Content-Type': ['application/json', 'application/x-www-form-urlencoded'] }, body: 'required_payload=x' }), 400, 'Expected value but found invalid token at character 1');
    });
  });

  it('bad confs in apisix.yaml are refused with the plugin’s message and the route is not served', async () => {
    const bad: Record<string, unknown> = {
      'ip-restriction': { whitelist: ['::1/129'] },
      'ua-restriction': { denylist: ['^b('] },
      'referer-restriction': {},
      cors: { allow_credential: true },
      'uri-blocker': { block_rules: ['.+('] },
      csrf: { expires: 10 },
      'request-validation': { body_schema: { type: 'test' } },
    };
    const expected: Record<string, string> = {
      'ip-restriction': 'invalid ip address: ::1/129',
      'ua-restriction': 'pcre2_compile() failed: missing closing parenthesis in "^b("',
      'referer-restriction': 'value should match only one schema, but matches none',
      cors: "you can not set '*' for other option when 'allow_credential' is true",
      'uri-blocker': 'pcre2_compile() failed: missing closing parenthesis in ".+("',
      csrf: 'property "key" is required',
      'request-validation': 'invalid JSON type: test',
    };
    const mark = gw.output().length;
    await routes(...Object.entries(bad).map(([name, conf]) => ({ id: `bad-${name}`, uri: `/bad/${name}`, plugins: { [name]: conf } })));
    for (const name of Object.keys(bad)) {
      const reply = await call(`/bad/${name}`);
      assert.equal(reply.status, 404, name);
      assert.equal(reply.body, NOT_FOUND_BODY);
    }
    await waitFor(() => Object.keys(bad).every((name) => gw.output().slice(mark).includes(`(id bad-${name}): failed to check the configuration of plugin ${name} err: ${expected[name]}; item skipped`)), 5_000, 'a log line per refused route');
  });
});

describe('security plugin confs refused by the Admin API', () => {
  let gw: Gateway;
  let adminPort: number;
  let node: AdminGateway;

  before(async () => {
    node = await startAdminGateway();
    ({ gw, adminPort } = node);
  });
  after(async () => {
    await node?.stop();
  });

  async function refused(name: string, conf: unknown, message: string): Promise<void> {
    const reply = await adminCall(adminPort, 'PUT', '/routes/1', { body: { uri: '/hello', plugins: { [name]: conf }, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } } } });
    assert.equal(reply.status, 400, `${name} ${JSON.stringify(conf)}: ${reply.text}`);
    assert.deepEqual(reply.json, { error_msg: `failed to check the configuration of plugin ${name} err: ${message}` });
  }

  async function accepted(name: string, conf: unknown): Promise<void> {
    const reply = await adminCall(adminPort, 'PUT', '/routes/1', { body: { uri: '/hello', plugins: { [name]: conf }, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } } } });
    assert.ok(reply.status === 200 || reply.status === 201, `${name} ${JSON.stringify(conf)}: ${reply.text}`);
  }

  it('ip-restriction (t/plugin/ip-restriction.t)', async () => {
    await accepted('ip-restriction', { whitelist: ['10.255.254.0/24', '192.168.0.0/16', '::1', 'fe80::/32', '2001:DB8:0:23:8:800:200C:417A'] });
    await refused('ip-restriction', {}, 'value should match only one schema, but matches none');
    await refused('ip-restriction', { whitelist: ['172.17.40.0/24'], blacklist: ['10.255.0.0/16'] }, 'value should match only one schema, but matches both schemas 1 and 2');
    await refused('ip-restriction', { blacklist: [] }, 'property "blacklist" validation failed: expect array to have at least 1 items');
    await refused('ip-restriction', { whitelist: ['10.255.256.0/24'] }, 'property "whitelist" validation failed: failed to validate item 1: object matches none of the required');
    await refused('ip-restriction', { whitelist: ['10.255.254.0/38'] }, 'property "whitelist" validation failed: failed to validate item 1: object matches none of the required');
    await refused('ip-restriction', { whitelist: ['::1/129'] }, 'invalid ip address: ::1/129');
    await refused('ip-restriction', { whitelist: ['::ffgg'] }, 'property "whitelist" validation failed: failed to validate item 1: object matches none of the required');
    await refused('ip-restriction', { whitelist: ['127.0.0.1'], response_code: 500 }, 'property "response_code" validation failed: expected 500 to be at most 404');
    await refused('ip-restriction', { whitelist: ['127.0.0.1'], message: '' }, 'property "message" validation failed: string too short, expected at least 1, got 0');
  });

  it('ua-restriction (t/plugin/ua-restriction.t)', async () => {
    await refused('ua-restriction', {}, 'value should match only one schema, but matches none');
    await refused('ua-restriction', { allowlist: ['a'], denylist: ['b'] }, 'value should match only one schema, but matches both schemas 1 and 2');
    await refused('ua-restriction', { allowlist: 'my-bot1' }, 'property "allowlist" validation failed: wrong type: expected array, got string');
    await refused('ua-restriction', { denylist: 100 }, 'property "denylist" validation failed: wrong type: expected array, got number');
    await refused('ua-restriction', { denylist: ['x'], message: 100 }, 'property "message" validation failed: wrong type: expected string, got number');
    await refused('ua-restriction', { denylist: ['my-bot1'], message: '-1Aa#'.repeat(205) }, 'property "message" validation failed: string too long, expected at most 1024, got 1025');
    await refused('ua-restriction', { denylist: ['(Baiduspider'] }, 'pcre2_compile() failed: missing closing parenthesis in "(Baiduspider"');
  });

  it('referer-restriction', async () => {
    await refused('referer-restriction', { whitelist: ['xx.com'], blacklist: ['yy.com'] }, 'value should match only one schema, but matches both schemas 1 and 2');
    await refused('referer-restriction', { whitelist: ['bad host'] }, 'property "whitelist" validation failed: failed to validate item 1: failed to match pattern "^\\\\*$|^\\\\*?[0-9a-zA-Z-._\\\\[\\\\]:]+$" with "bad host"');
    await refused('referer-restriction', { whitelist: ['xx.com'], bypass_missing: 'yes' }, 'property "bypass_missing" validation failed: wrong type: expected boolean, got string');
  });

  it('cors', async () => {
    await refused('cors', { allow_credential: true, allow_origins: 'http://a.com' }, "you can not set '*' for other option when 'allow_credential' is true");
    await refused('cors', { allow_credential: true, allow_origins: '**', allow_methods: '**', allow_headers: '**', timing_allow_origins: '*' }, "you can not set '*' for other option when 'allow_credential' is true");
    await accepted('cors', { allow_credential: true, allow_origins: '**', allow_methods: '**', allow_headers: '**' });
    await refused('cors', { allow_origins: 'x.com' }, 'property "allow_origins" validation failed: failed to match pattern "^(\\\\*|\\\\*\\\\*|null|\\\\w+://[^,]+(,\\\\w+://[^,]+)*)$" with "x.com"');
    await refused('cors', { timing_allow_origins: 'https://x.com,*,https://y.com.uk' }, 'property "timing_allow_origins" validation failed: failed to match pattern "^(\\\\*|\\\\*\\\\*|null|\\\\w+://[^,]+(,\\\\w+://[^,]+)*)$" with "https://x.com,*,https://y.com.uk"');
    await refused('cors', { allow_origins_by_regex: ['(http://a'] }, 'pcre2_compile() failed: missing closing parenthesis in "(http://a"');
    await refused('cors', { timing_allow_origins_by_regex: [] }, 'property "timing_allow_origins_by_regex" validation failed: expect array to have at least 1 items');
  });

  it('uri-blocker (t/plugin/uri-blocker.t)', async () => {
    await accepted('uri-blocker', { block_rules: ['^a', '^b'] });
    await refused('uri-blocker', { block_rules: ['.+('] }, 'pcre2_compile() failed: missing closing parenthesis in ".+("');
    await refused('uri-blocker', { block_rules: ['^a', '^b('] }, 'pcre2_compile() failed: missing closing parenthesis in "^b("');
    await refused('uri-blocker', { block_rules: ['^a'], rejected_msg: '' }, 'property "rejected_msg" validation failed: string too short, expected at least 1, got 0');
    await refused('uri-blocker', { block_rules: ['^a'], rejected_msg: true }, 'property "rejected_msg" validation failed: wrong type: expected string, got boolean');
    await refused('uri-blocker', { block_rules: ['^a'], rejected_code: 199 }, 'property "rejected_code" validation failed: expected 199 to be at least 200');
    await refused('uri-blocker', {}, 'property "block_rules" is required');
  });

  it('csrf (t/plugin/csrf.t)', async () => {
    await accepted('csrf', { name: '_csrf', expires: 3600, key: 'testkey' });
    await refused('csrf', {}, 'property "key" is required');
    await refused('csrf', { key: 'k', expires: '1' }, 'property "expires" validation failed: wrong type: expected integer, got string');
  });

  it('request-validation (t/plugin/request-validation.t)', async () => {
    await accepted('request-validation', { body_schema: {} });
    await refused('request-validation', {}, 'object matches none of the required: ["header_schema"] or ["body_schema"]');
    await refused('request-validation', { rejected_msg: 'customize reject message' }, 'object matches none of the required: ["header_schema"] or ["body_schema"]');
    await refused('request-validation', { body_schema: { type: 'test' } }, 'invalid JSON type: test');
    await refused('request-validation', { header_schema: { type: 'test' } }, 'invalid JSON type: test');
    await refused('request-validation', { body_schema: { type: 'string', properties: { test: { type: 'string', enum: 'test-enum' } } } }, 'table expected, got string');
    await refused('request-validation', { header_schema: { type: 'object', required: 'test-required' } }, 'table expected, got string');
    await refused('request-validation', { header_schema: { type: 'object' }, rejected_code: 10000 }, 'property "rejected_code" validation failed: expected 10000 to be at most 599');
    await refused('request-validation', { header_schema: { type: 'object' }, rejected_msg: 'x'.repeat(257) }, 'property "rejected_msg" validation failed: string too long, expected at most 256, got 257');
  });

  it('cors plugin metadata', async () => {
    const ok = await adminCall(adminPort, 'PUT', '/plugin_metadata/cors', { body: { allow_origins: { key_1: 'https://domain.com', key_2: '*' } } });
    assert.ok(ok.status === 200 || ok.status === 201, ok.text);
    const bad = await adminCall(adminPort, 'PUT', '/plugin_metadata/cors', { body: { allow_origins: { key_1: 'domain.com' } } });
    assert.equal(bad.status, 400, bad.text);
    assert.deepEqual(bad.json, { error_msg: 'invalid configuration: property "allow_origins" validation failed: property "key_1" validation failed: failed to match pattern "^(\\\\*|\\\\*\\\\*|null|\\\\w+://[^,]+(,\\\\w+://[^,]+)*)$" with "domain.com"' });
  });
});
