// End-to-end tests of the transform plugins (proxy-rewrite, response-rewrite, gzip, real-ip,
// request-id, serverless-pre-function, serverless-post-function) through the built gateway, against
// real upstreams on loopback. Expectations follow APISIX's t/plugin/<name>*.t.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createGunzip, gunzipSync } from 'node:zlib';
import { adminCall, startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { freePort, rawExchange, parseRawResponses, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';
import { apply, upstreamOf } from '../helpers/routing.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
  /** What the echo upstream saw, when it answered with its JSON. */
  echo?: { method: string; url: string; headers: http.IncomingHttpHeaders };
}

/** One request, the target sent as written, the body kept as bytes. */
function call(gw: Gateway, path: string, options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, path, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const answer: Answer = { status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString() };
        if (String(res.headers['content-type']).startsWith('application/json') && !res.headers['content-encoding']) {
          try {
            const parsed = JSON.parse(answer.text);
            if (parsed && typeof parsed.url === 'string') answer.echo = parsed;
          } catch {
            // not the echo upstream
          }
        }
        resolve(answer);
      });
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Response headers the test asks for with `resp-<name>: <value>` request headers (as APISIX's test server does). */
function askedHeaders(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (name.startsWith('resp-') && typeof value === 'string') out[name.slice(5)] = value;
  return out;
}

/** Releases the second half of `/stream` answers. */
const streamGates: Array<() => void> = [];

/**
 * The upstream: a few fixed answers APISIX's tests use, and an echo of the request otherwise.
 *   /hello           200 text/plain "hello world\n"
 *   /server_error    500 text/plain
 *   /html/<n>        200 text/html, n bytes, with Content-Length
 *   /chunked/<n>     200 text/html, n bytes, no Content-Length
 *   /json/<n>        200 application/json, n bytes
 *   /stream          200 text/html: a first part, then the rest once the test opens the gate
 */
function mockHandler(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
  const path = (req.url ?? '/').split('?')[0];
  const extra = askedHeaders(req);
  const send = (status: number, type: string, text: string, withLength = true) => {
    const headers: Record<string, string | number> = { 'Content-Type': type, ...extra };
    if (withLength) headers['Content-Length'] = Buffer.byteLength(text);
    res.writeHead(status, headers);
    res.end(text);
  };
  const sized = /^\/(html|chunked|json)\/(\d+)$/.exec(path);
  if (path === '/hello') return send(200, 'text/plain', 'hello world\n');
  if (path === '/server_error') return send(500, 'text/plain', '500 Internal Server Error\n');
  if (sized) {
    const text = 'a'.repeat(Number(sized[2]));
    return send(200, sized[1] === 'json' ? 'application/json' : 'text/html; charset=utf-8', text, sized[1] !== 'chunked');
  }
  if (path === '/stream') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.write('first part of the stream;');
    streamGates.push(() => res.end('second part'));
    return;
  }
  const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body });
  send(200, 'application/json', text);
}

function route(id: string, uri: string, up: Upstream, plugins: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { id, uri, plugins, upstream: upstreamOf(up), ...extra };
}

describe('transform plugins on the declarative file', () => {
  let gw: Gateway;
  let up: Upstream;

  before(async () => {
    up = await startUpstream(mockHandler);
    gw = await startGateway();
  });
  after(async () => {
    for (const open of streamGates.splice(0)) open();
    await gw?.stop();
    await up?.close();
  });

  describe('proxy-rewrite', () => {
    it('uri: a constant path, with the client query appended', async () => {
      await apply(gw, up, {
        routes: [
          route('c', '/pr/const', up, { 'proxy-rewrite': { uri: '/test/add' } }),
          route('q', '/pr/q', up, { 'proxy-rewrite': { uri: '/plugin_proxy_rewrite_args?q=apisix' } }),
        ],
      });
      assert.equal((await call(gw, '/pr/const')).echo?.url, '/test/add');
      assert.equal((await call(gw, '/pr/const?a=1&b=2')).echo?.url, '/test/add?a=1&b=2');
      // a query in `uri` is kept, and the client's joins it with `&`
      assert.equal((await call(gw, '/pr/q')).echo?.url, '/plugin_proxy_rewrite_args?q=apisix');
      assert.equal((await call(gw, '/pr/q?a=1')).echo?.url, '/plugin_proxy_rewrite_args?q=apisix&a=1');
    });

    it('uri: variables, fallbacks, and a `?` inside a value kept out of the query', async () => {
      await apply(gw, up, {
        routes: [route('v', '/pr/vars', up, { 'proxy-rewrite': { uri: '/v/$arg_name/${http_x_ver ?? v0}' } })],
      });
      assert.equal((await call(gw, '/pr/vars?name=alice', { headers: { 'X-Ver': 'v2' } })).echo?.url, '/v/alice/v2?name=alice');
      assert.equal((await call(gw, '/pr/vars?name=bob')).echo?.url, '/v/bob/v0?name=bob');
      // a `?` from a variable is escaped as %3F and then, like every `%`, as %25 by the path escaping
      assert.equal((await call(gw, '/pr/vars', { headers: { 'X-Ver': 'a?b' } })).echo?.url, '/v//a%253Fb');
    });

    it('regex_uri: the first matching pair rewrites the path; no match leaves it', async () => {
      await apply(gw, up, {
        routes: [
          route('r1', '/test/*', up, { 'proxy-rewrite': { regex_uri: ['^/test/(.*)/(.*)/(.*)', '/$1_$2_$3'] } }),
          route('r2', '/multi/*', up, { 'proxy-rewrite': { regex_uri: ['^/nope/(.*)', '/never/$1', '^/multi/(\\w+)', '/second/${1}'] } }),
        ],
      });
      assert.equal((await call(gw, '/test/plugin/proxy/rewrite')).echo?.url, '/plugin_proxy_rewrite');
      assert.equal((await call(gw, '/test/plugin/proxy/rewrite?x=1')).echo?.url, '/plugin_proxy_rewrite?x=1');
      assert.equal((await call(gw, '/test/nomatch')).echo?.url, '/test/nomatch');
      assert.equal((await call(gw, '/multi/abc/def')).echo?.url, '/second/abc/def');
    });

    it('the path sent upstream is the normalised one, escaped again', async () => {
      await apply(gw, up, {
        routes: [route('e', '/esc/*', up, { 'proxy-rewrite': { headers: { 'X-Seen': '1' } } })],
      });
      assert.equal((await call(gw, '/esc/a%20b')).echo?.url, '/esc/a%20b');
      assert.equal((await call(gw, '/esc/%7e/./x/../y?k=v')).echo?.url, '/esc/~/y?k=v');
    });

    it('use_real_request_uri_unsafe: the request target as the client sent it', async () => {
      await apply(gw, up, {
        routes: [
          route('u1', '/unsafe/*', up, { 'proxy-rewrite': { use_real_request_uri_unsafe: true } }),
          route('u2', '/unsafe-re/*', up, { 'proxy-rewrite': { use_real_request_uri_unsafe: true, regex_uri: ['^/unsafe-re/(.*)', '/$1'] } }),
        ],
      });
      assert.equal((await call(gw, '/unsafe/%7e/../x%20y?a=%20')).echo?.url, '/unsafe/%7e/../x%20y?a=%20');
      assert.equal((await call(gw, '/unsafe-re/%7e/z?q=1')).echo?.url, '/%7e/z?q=1');
    });

    it('headers, flat form: set, and an empty value removes', async () => {
      await apply(gw, up, {
        routes: [route('h', '/pr/h', up, { 'proxy-rewrite': { headers: { 'X-Api-Version': 'v2', 'X-Number': 10, 'X-Drop': '' } } })],
      });
      const seen = (await call(gw, '/pr/h', { headers: { 'X-Drop': 'yes', 'X-Api-Version': 'v1' } })).echo!;
      assert.equal(seen.headers['x-api-version'], 'v2');
      assert.equal(seen.headers['x-number'], '10');
      assert.equal(seen.headers['x-drop'], undefined);
    });

    it('headers, add/set/remove with variables and regex captures', async () => {
      await apply(gw, up, {
        routes: [
          route('ops', '/ops/*', up, {
            'proxy-rewrite': {
              regex_uri: ['^/ops/(\\w+)', '/done/$1'],
              headers: {
                add: { 'X-Multi': 'added', 'X-Captured': '$1' },
                set: { 'X-Client': '$remote_addr', 'X-Api': 'v3', 'X-Route': '${route_id}' },
                remove: ['X-Remove'],
              },
            },
          }),
        ],
      });
      const answer = await call(gw, '/ops/item', { headers: { 'X-Multi': 'orig', 'X-Api': 'v1', 'X-Remove': 'bye' } });
      const seen = answer.echo!;
      assert.equal(seen.url, '/done/item');
      assert.equal(seen.headers['x-multi'], 'orig, added');
      // `add` sends one more header line, as nginx's proxy_set_header does for APISIX.
      const raw = up.seen.at(-1)!.rawHeaders;
      assert.deepEqual(raw.filter((name, i) => i % 2 === 0 && name.toLowerCase() === 'x-multi').length, 2);
      assert.equal(seen.headers['x-captured'], 'item');
      assert.equal(seen.headers['x-client'], '127.0.0.1');
      assert.equal(seen.headers['x-api'], 'v3');
      assert.equal(seen.headers['x-route'], 'ops');
      assert.equal(seen.headers['x-remove'], undefined);
    });

    it('host and method', async () => {
      await apply(gw, up, {
        routes: [route('hm', '/pr/hm', up, { 'proxy-rewrite': { host: 'iresty.com', method: 'POST' } })],
      });
      const seen = (await call(gw, '/pr/hm')).echo!;
      assert.equal(seen.headers.host, 'iresty.com');
      assert.equal(seen.method, 'POST');
      // The upstream's pass_host: node decides over the plugin's host, as APISIX's balancer does.
      await apply(gw, up, {
        routes: [route('hm', '/pr/hm', up, { 'proxy-rewrite': { host: 'iresty.com' } }, { upstream: { ...upstreamOf(up), pass_host: 'node' } })],
      });
      assert.equal((await call(gw, '/pr/hm')).echo!.headers.host, up.node);
    });
  });

  describe('response-rewrite', () => {
    it('body and flat headers; an empty header value removes the header', async () => {
      await apply(gw, up, {
        routes: [
          route('rr', '/with_header', up, {
            'response-rewrite': { headers: { 'X-Server-id': 3, 'X-Server-status': 'on', 'Content-Type': '' }, body: 'new body\n' },
          }),
        ],
      });
      const a = await call(gw, '/with_header');
      assert.equal(a.status, 200);
      assert.equal(a.text, 'new body\n');
      assert.equal(a.headers['content-type'], undefined);
      assert.equal(a.headers['x-server-status'], 'on');
      assert.equal(a.headers['x-server-id'], '3');
    });

    it('a new body drops Content-Length, Content-Encoding, Last-Modified and ETag, keeps the rest', async () => {
      await apply(gw, up, { routes: [route('rr', '/with_header', up, { 'response-rewrite': { body: 'new body2\n' } })] });
      const a = await call(gw, '/with_header', {
        headers: {
          'resp-X-Server-id': '100',
          'resp-Content-Encoding': 'gzip',
          'resp-Last-Modified': 'Wed, 21 Oct 2015 07:28:00 GMT',
          'resp-ETag': '"33a64df551425fcc55e4d42a148795d9f25f89d4"',
        },
      });
      assert.equal(a.text, 'new body2\n');
      assert.equal(a.headers['x-server-id'], '100');
      assert.equal(a.headers['content-type'], 'application/json');
      for (const gone of ['content-length', 'content-encoding', 'last-modified', 'etag']) assert.equal(a.headers[gone], undefined, gone);
    });

    it('status_code with a Location header', async () => {
      await apply(gw, up, { routes: [route('rr', '/hello', up, { 'response-rewrite': { headers: { Location: 'https://www.iresty.com' }, status_code: 302 } })] });
      const a = await call(gw, '/hello');
      assert.equal(a.status, 302);
      assert.equal(a.headers.location, 'https://www.iresty.com');
      assert.equal(a.text, 'hello world\n');
    });

    it('body_base64', async () => {
      await apply(gw, up, { routes: [route('rr', '/hello', up, { 'response-rewrite': { body: 'SGVsbG8K', body_base64: true } })] });
      assert.equal((await call(gw, '/hello')).text, 'Hello\n');
    });

    it('vars: only responses that match are changed', async () => {
      await apply(gw, up, {
        routes: [
          { id: 'rr', uris: ['/server_error', '/hello'], plugins: { 'response-rewrite': { body: 'new body3\n', status_code: 403, vars: [['status', '==', 500]] } }, upstream: upstreamOf(up) },
        ],
      });
      const changed = await call(gw, '/server_error');
      assert.equal(changed.status, 403);
      assert.equal(changed.text, 'new body3\n');
      const kept = await call(gw, '/hello');
      assert.equal(kept.status, 200);
      assert.equal(kept.text, 'hello world\n');
    });

    it('responses the gateway makes itself are rewritten too', async () => {
      const dead = await freePort();
      await apply(gw, up, {
        routes: [
          {
            id: 'down',
            uri: '/down',
            plugins: { 'response-rewrite': { vars: [['status', '==', 502]], status_code: 503, body: '{"message":"try later"}', headers: { 'Content-Type': 'application/json' } } },
            upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${dead}`]: 1 } },
          },
        ],
      });
      const a = await call(gw, '/down');
      assert.equal(a.status, 503);
      assert.equal(a.text, '{"message":"try later"}');
      assert.equal(a.headers['content-type'], 'application/json');
    });

    it('filters: once, global, several in order, empty replace, no match', async () => {
      const rr = (filters: unknown[]) => ({ 'response-rewrite': { vars: [['status', '==', 200]], filters } });
      await apply(gw, up, {
        routes: [
          route('f1', '/hello', up, rr([{ regex: 'hello', replace: 'test' }]), { host: 'once.test' }),
          route('f2', '/hello', up, rr([{ regex: 'l', replace: 't', scope: 'global' }]), { host: 'global.test' }),
          route('f3', '/hello', up, rr([{ regex: 'hello', replace: 'HELLO' }, { regex: 'L', replace: 'T' }]), { host: 'multi.test' }),
          route('f4', '/hello', up, rr([{ regex: 'hello', replace: '' }]), { host: 'empty.test' }),
          route('f5', '/hello', up, rr([{ regex: '\\w\\S+$', replace: '*' }]), { host: 'words.test' }),
          route('f6', '/hello', up, rr([{ regex: 'test', replace: 'TEST' }]), { host: 'none.test' }),
          route('f7', '/hello', up, rr([{ regex: '(H)ELLO', replace: '[$1|$0]', options: 'ijo' }]), { host: 'caseless.test' }),
        ],
      });
      const body = async (host: string) => {
        const a = await call(gw, '/hello', { headers: { Host: host } });
        assert.equal(a.headers['content-length'], undefined);
        return a.text;
      };
      assert.equal(await body('once.test'), 'test world\n');
      assert.equal(await body('global.test'), 'hetto wortd\n');
      assert.equal(await body('multi.test'), 'HETLO world\n');
      assert.equal(await body('empty.test'), ' world\n');
      assert.equal(await body('words.test'), 'hello *\n');
      assert.equal(await body('none.test'), 'hello world\n');
      assert.equal(await body('caseless.test'), '[h|hello] world\n');
    });

    it('filters see the whole body, even when it arrives in pieces', async () => {
      await apply(gw, up, {
        routes: [route('fs', '/stream', up, { 'response-rewrite': { filters: [{ regex: 'stream;second', replace: 'STREAM+SECOND' }] } })],
      });
      const pending = call(gw, '/stream');
      await waitFor(() => streamGates.length > 0, 5_000, 'the upstream to start streaming');
      streamGates.shift()!();
      assert.equal((await pending).text, 'first part of the STREAM+SECOND part');
    });

    it('headers: add, set and remove, with variables', async () => {
      await apply(gw, up, {
        routes: [
          route('ho', '/hello', up, {
            'response-rewrite': {
              headers: {
                add: ['Set-Cookie: a=1; Max-Age=60', 'X-Status: $status'],
                set: { 'X-Client': '$remote_addr', 'X-Count': 2 },
                remove: ['X-Secret'],
              },
            },
          }),
        ],
      });
      const a = await call(gw, '/hello', { headers: { 'resp-Set-Cookie': 'up=1', 'resp-X-Secret': 'hidden' } });
      assert.deepEqual(a.headers['set-cookie'], ['up=1', 'a=1; Max-Age=60']);
      assert.equal(a.headers['x-status'], '200');
      assert.equal(a.headers['x-client'], '127.0.0.1');
      assert.equal(a.headers['x-count'], '2');
      assert.equal(a.headers['x-secret'], undefined);
      // headers only: the body and its length are untouched
      assert.equal(a.text, 'hello world\n');
      assert.equal(a.headers['content-length'], '12');
    });
  });

  describe('gzip', () => {
    const GZ = { 'Accept-Encoding': 'gzip' };

    it('compresses after the other plugins changed the body, as nginx\'s gzip filter does', async () => {
      await apply(gw, up, { routes: [route('gz-rw', '/html/*', up, { gzip: { min_length: 1 }, 'response-rewrite': { body: 'rewritten by response-rewrite\n' } })] });
      const r = await call(gw, '/html/100', { headers: GZ });
      assert.equal(r.headers['content-encoding'], 'gzip');
      assert.equal(gunzipSync(r.body).toString(), 'rewritten by response-rewrite\n');
    });

    it('compresses a matching response for a client that accepts gzip', async () => {
      await apply(gw, up, { routes: [route('gz', '/html/*', up, { gzip: {} })] });
      const a = await call(gw, '/html/100', { headers: GZ });
      assert.equal(a.headers['content-encoding'], 'gzip');
      assert.equal(a.headers['content-length'], undefined);
      assert.equal(a.headers.vary, undefined);
      assert.equal(gunzipSync(a.body).toString(), 'a'.repeat(100));
      // no Accept-Encoding, or gzip refused: as the upstream sent it
      const plain = await call(gw, '/html/100');
      assert.equal(plain.headers['content-encoding'], undefined);
      assert.equal(plain.headers['content-length'], '100');
      assert.equal((await call(gw, '/html/100', { headers: { 'Accept-Encoding': 'gzip;q=0, br' } })).headers['content-encoding'], undefined);
      // a request that came through a proxy (gzip_proxied off)
      assert.equal((await call(gw, '/html/100', { headers: { ...GZ, Via: '1.1 proxy' } })).headers['content-encoding'], undefined);
      // HEAD gets the headers as they are
      assert.equal((await call(gw, '/html/100', { method: 'HEAD', headers: GZ })).headers['content-encoding'], undefined);
    });

    it('types: only the listed ones, or every type with "*"', async () => {
      await apply(gw, up, {
        routes: [
          route('gz-html', '/json/*', up, { gzip: {} }, { host: 'default.test' }),
          route('gz-json', '/json/*', up, { gzip: { types: ['application/json'] } }, { host: 'json.test' }),
          route('gz-all', '/hello', up, { gzip: { types: '*', min_length: 1 } }),
        ],
      });
      assert.equal((await call(gw, '/json/100', { headers: { ...GZ, Host: 'default.test' } })).headers['content-encoding'], undefined);
      const json = await call(gw, '/json/100', { headers: { ...GZ, Host: 'json.test' } });
      assert.equal(json.headers['content-encoding'], 'gzip');
      assert.equal(gunzipSync(json.body).toString(), 'a'.repeat(100));
      const any = await call(gw, '/hello', { headers: GZ });
      assert.equal(gunzipSync(any.body).toString(), 'hello world\n');
    });

    it('min_length applies to a known length only; comp_level and vary', async () => {
      await apply(gw, up, {
        routes: [
          route('gz-min', '/html/*', up, { gzip: { min_length: 50, comp_level: 9, vary: true } }),
          route('gz-chunk', '/chunked/*', up, { gzip: { min_length: 50 } }),
        ],
      });
      const small = await call(gw, '/html/49', { headers: GZ });
      assert.equal(small.headers['content-encoding'], undefined);
      assert.equal(small.text, 'a'.repeat(49));
      const big = await call(gw, '/html/50', { headers: GZ });
      assert.equal(big.headers['content-encoding'], 'gzip');
      assert.equal(big.headers.vary, 'Accept-Encoding');
      assert.equal(gunzipSync(big.body).toString(), 'a'.repeat(50));
      const unknownLength = await call(gw, '/chunked/10', { headers: GZ });
      assert.equal(unknownLength.headers['content-encoding'], 'gzip');
      assert.equal(gunzipSync(unknownLength.body).toString(), 'a'.repeat(10));
    });

    it('http_version: an HTTP/1.0 request is not compressed by default, and is with 1.0', async () => {
      await apply(gw, up, {
        routes: [
          route('gz11', '/html/*', up, { gzip: {} }, { host: 'v11.test' }),
          route('gz10', '/html/*', up, { gzip: { http_version: 1.0 } }, { host: 'v10.test' }),
        ],
      });
      const ask = async (host: string) => {
        const ex = await rawExchange(gw.port, `GET /html/100 HTTP/1.0\r\nHost: ${host}\r\nAccept-Encoding: gzip\r\n\r\n`);
        const [res] = parseRawResponses(ex.data, ex.closed).responses;
        return res;
      };
      assert.equal((await ask('v11.test')).headers['content-encoding'], undefined);
      const compressed = await ask('v10.test');
      assert.deepEqual(compressed.headers['content-encoding'], ['gzip']);
      assert.equal(gunzipSync(compressed.body).toString(), 'a'.repeat(100));
    });

    it('streams: what the upstream sent so far reaches the client compressed before the upstream ends', async () => {
      await apply(gw, up, { routes: [route('gz-stream', '/stream', up, { gzip: {} })] });
      const firstText = await new Promise<{ first: string; rest: Promise<string> }>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: gw.port, path: '/stream', headers: GZ, agent: false }, (res) => {
          assert.equal(res.headers['content-encoding'], 'gzip');
          const gunzip = createGunzip();
          res.pipe(gunzip);
          let text = '';
          let resolved = false;
          const rest = new Promise<string>((done) => gunzip.on('end', () => done(text)));
          gunzip.on('data', (d: Buffer) => {
            text += d.toString();
            if (!resolved && text.includes('first part')) {
              resolved = true;
              resolve({ first: text, rest });
            }
          });
        });
        req.on('error', reject);
      });
      assert.equal(firstText.first, 'first part of the stream;');
      streamGates.shift()!();
      assert.equal(await firstText.rest, 'first part of the stream;second part');
    });
  });

  describe('real-ip', () => {
    it('source http_x_forwarded_for: the last address', async () => {
      await apply(gw, up, { routes: [route('ri', '/ri/xff', up, { 'real-ip': { source: 'http_x_forwarded_for' } })] });
      const seen = (await call(gw, '/ri/xff', { headers: { 'X-Forwarded-For': '1.2.3.4, 5.6.7.8' } })).echo!;
      assert.equal(seen.headers['x-real-ip'], '5.6.7.8');
      // no header: the peer stays the client
      assert.equal((await call(gw, '/ri/xff')).echo!.headers['x-real-ip'], '127.0.0.1');
    });

    it('source arg_realip with a port; bad addresses and ports are ignored', async () => {
      await apply(gw, up, {
        routes: [
          route('ra', '/ri/arg', up, {
            'real-ip': { source: 'arg_realip' },
            'proxy-rewrite': { headers: { 'X-Remote': '$remote_addr:$remote_port' } },
          }),
        ],
      });
      assert.equal((await call(gw, '/ri/arg?realip=1.2.3.4:8080')).echo!.headers['x-remote'], '1.2.3.4:8080');
      assert.equal((await call(gw, '/ri/arg?realip=[::2]:81')).echo!.headers['x-remote'], '::2:81');
      assert.match(String((await call(gw, '/ri/arg?realip=1.2.3.4:0')).echo!.headers['x-remote']), /^127\.0\.0\.1:/);
      assert.match(String((await call(gw, '/ri/arg?realip=not-an-ip')).echo!.headers['x-remote']), /^127\.0\.0\.1:/);
    });

    it('trusted_addresses: only a trusted peer may set the address', async () => {
      await apply(gw, up, {
        routes: [
          route('t1', '/ri/trusted', up, { 'real-ip': { source: 'http_x_real_ip_in', trusted_addresses: ['127.0.0.0/24'] } }),
          route('t2', '/ri/untrusted', up, { 'real-ip': { source: 'http_x_real_ip_in', trusted_addresses: ['10.0.0.0/8', '::1'] } }),
        ],
      });
      assert.equal((await call(gw, '/ri/trusted', { headers: { 'X-Real-IP-In': '9.9.9.9' } })).echo!.headers['x-real-ip'], '9.9.9.9');
      assert.equal((await call(gw, '/ri/untrusted', { headers: { 'X-Real-IP-In': '9.9.9.9' } })).echo!.headers['x-real-ip'], '127.0.0.1');
    });

    it('recursive: the first address from the right that is not a trusted proxy', async () => {
      await apply(gw, up, {
        routes: [
          route('rec', '/ri/rec', up, { 'real-ip': { source: 'http_x_forwarded_for', trusted_addresses: ['127.0.0.0/8', '10.0.0.0/8'], recursive: true } }),
          route('flat', '/ri/flat', up, { 'real-ip': { source: 'http_x_forwarded_for', trusted_addresses: ['127.0.0.0/8', '10.0.0.0/8'] } }),
        ],
      });
      const xff = { 'X-Forwarded-For': '1.1.1.1, 2.2.2.2, 10.0.0.5' };
      assert.equal((await call(gw, '/ri/rec', { headers: xff })).echo!.headers['x-real-ip'], '2.2.2.2');
      assert.equal((await call(gw, '/ri/flat', { headers: xff })).echo!.headers['x-real-ip'], '10.0.0.5');
      assert.equal((await call(gw, '/ri/rec', { headers: { 'X-Forwarded-For': '10.0.0.7, 10.0.0.5' } })).echo!.headers['x-real-ip'], '10.0.0.7');
    });
  });

  describe('request-id', () => {
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

    it('generates a uuid, sends it upstream and echoes it back', async () => {
      await apply(gw, up, { routes: [route('id', '/rid/default', up, { 'request-id': {} })] });
      const a = await call(gw, '/rid/default');
      const id = String(a.headers['x-request-id']);
      assert.match(id, UUID);
      assert.equal(a.echo!.headers['x-request-id'], id);
      const b = await call(gw, '/rid/default');
      assert.notEqual(b.headers['x-request-id'], id);
    });

    it('keeps the id a client sent (an empty one counts as none)', async () => {
      await apply(gw, up, { routes: [route('id', '/rid/default', up, { 'request-id': {} })] });
      const a = await call(gw, '/rid/default', { headers: { 'X-Request-Id': 'client-id-1' } });
      assert.equal(a.headers['x-request-id'], 'client-id-1');
      assert.equal(a.echo!.headers['x-request-id'], 'client-id-1');
      assert.match(String((await call(gw, '/rid/default', { headers: { 'X-Request-Id': '' } })).headers['x-request-id']), UUID);
    });

    it('header_name, include_in_response, and an id the upstream answers with', async () => {
      await apply(gw, up, {
        routes: [
          route('id1', '/rid/custom', up, { 'request-id': { header_name: 'X-Trace', include_in_response: false } }),
          route('id2', '/hello', up, { 'request-id': {} }),
        ],
      });
      const a = await call(gw, '/rid/custom');
      assert.equal(a.headers['x-trace'], undefined);
      assert.match(String(a.echo!.headers['x-trace']), UUID);
      const b = await call(gw, '/hello', { headers: { 'resp-X-Request-Id': 'from-upstream' } });
      assert.equal(b.headers['x-request-id'], 'from-upstream');
    });

    it('algorithms: nanoid, range_id, ksuid', async () => {
      await apply(gw, up, {
        routes: [
          route('n', '/rid/nanoid', up, { 'request-id': { algorithm: 'nanoid' } }),
          route('r', '/rid/range', up, { 'request-id': { algorithm: 'range_id', range_id: { length: 8, char_set: 'abcdef' } } }),
          route('rd', '/rid/range-default', up, { 'request-id': { algorithm: 'range_id' } }),
          route('k', '/rid/ksuid', up, { 'request-id': { algorithm: 'ksuid' } }),
        ],
      });
      assert.match(String((await call(gw, '/rid/nanoid')).headers['x-request-id']), /^[A-Za-z0-9_-]{21}$/);
      assert.match(String((await call(gw, '/rid/range')).headers['x-request-id']), /^[a-f]{8}$/);
      assert.match(String((await call(gw, '/rid/range-default')).headers['x-request-id']), /^[A-Za-z0-9]{16}$/);
      assert.match(String((await call(gw, '/rid/ksuid')).headers['x-request-id']), /^[0-9A-Za-z]{27}$/);
    });
  });

  describe('serverless', () => {
    it('pre-function in the default phase (access) sets a response header', async () => {
      await apply(gw, up, {
        routes: [route('s1', '/sl/header', up, { 'serverless-pre-function': { functions: ["(conf, ctx) => { ctx.response.headers.set('X-Pre', conf.phase) }"] } })],
      });
      const a = await call(gw, '/sl/header');
      assert.equal(a.status, 200);
      assert.equal(a.headers['x-pre'], 'access');
    });

    it('a function ends the request with { status, body }, synchronously or through a promise', async () => {
      await apply(gw, up, {
        routes: [
          route('s2', '/sl/deny', up, {
            'serverless-pre-function': {
              phase: 'rewrite',
              functions: ['(conf, ctx) => {}', "(conf, ctx) => (ctx.get('arg_ok') ? undefined : { status: 403, body: { message: 'denied' } })"],
            },
          }),
          route('s3', '/sl/async', up, {
            'serverless-post-function': { functions: ["return async (conf, ctx) => { await new Promise((r) => setTimeout(r, 5)); return { status: 418, body: 'teapot', headers: { 'X-Why': 'async' } } }"] },
          }),
        ],
      });
      const denied = await call(gw, '/sl/deny');
      assert.equal(denied.status, 403);
      assert.equal(denied.text, '{"message":"denied"}\n');
      assert.equal((await call(gw, '/sl/deny?ok=1')).status, 200);
      const tea = await call(gw, '/sl/async');
      assert.equal(tea.status, 418);
      assert.equal(tea.text, 'teapot');
      assert.equal(tea.headers['x-why'], 'async');
    });

    it('pre runs before post; rewrite can change the upstream request', async () => {
      await apply(gw, up, {
        routes: [
          route('s4', '/sl/order', up, {
            'serverless-pre-function': { phase: 'rewrite', functions: ["(conf, ctx) => { ctx.setHeader('X-Order', 'pre'); ctx.upstreamUri = '/rewritten' }"] },
            'serverless-post-function': { phase: 'rewrite', functions: ["(conf, ctx) => { ctx.setHeader('X-Order', ctx.header('x-order') + ',post') }"] },
          }),
        ],
      });
      const seen = (await call(gw, '/sl/order')).echo!;
      assert.equal(seen.url, '/rewritten');
      assert.equal(seen.headers['x-order'], 'pre,post');
    });

    it('header_filter, body_filter and log phases', async () => {
      await apply(gw, up, {
        routes: [
          route('s5', '/hello', up, {
            'serverless-pre-function': { phase: 'header_filter', functions: ["(conf, ctx) => { ctx.response.headers.remove('Content-Length'); ctx.response.status = 201 }"] },
            'serverless-post-function': { phase: 'body_filter', functions: ['(conf, ctx, chunk, eof) => chunk.toString().toUpperCase()'] },
          }),
          route('s6', '/sl/log', up, { 'serverless-post-function': { phase: 'log', functions: ['(conf, ctx) => { globalThis.__transformLogHits = (globalThis.__transformLogHits ?? 0) + 1 }'] } }),
          route('s7', '/sl/count', up, { 'serverless-pre-function': { functions: ['(conf, ctx) => ({ status: 200, body: String(globalThis.__transformLogHits ?? 0) })'] } }),
        ],
      });
      const a = await call(gw, '/hello');
      assert.equal(a.status, 201);
      assert.equal(a.text, 'HELLO WORLD\n');
      const before = Number((await call(gw, '/sl/count')).text);
      await call(gw, '/sl/log');
      await call(gw, '/sl/log');
      await waitFor(async () => Number((await call(gw, '/sl/count')).text) === before + 2, 5_000, 'the log phase to run twice');
    });
  });

  it('an asynchronous body_filter function: chunks in order, and the upstream connection stays usable', async () => {
    await apply(gw, up, {
      routes: [
        route('s8', '/hello', up, {
          // a body filter that changes the length drops Content-Length in header_filter
          'serverless-pre-function': { phase: 'header_filter', functions: ["(conf, ctx) => ctx.response.headers.remove('Content-Length')"] },
          'serverless-post-function': { phase: 'body_filter', functions: ['async (conf, ctx, chunk, eof) => { await new Promise((r) => setTimeout(r, 2)); return eof ? chunk.toString() + "[end]" : chunk.toString().replace("hello", "bye") }'] },
        }),
      ],
    });
    for (let i = 0; i < 3; i++) assert.equal((await call(gw, '/hello')).text, 'bye world\n[end]');
  });

  it('a config a plugin refuses is not loaded from the file, and the error names it', async () => {
    await apply(gw, up, { routes: [route('bad', '/bad/regex', up, { 'proxy-rewrite': { uri: '/fine' } })] });
    assert.equal((await call(gw, '/bad/regex')).echo?.url, '/fine');
    await apply(gw, up, {
      routes: [
        route('bad', '/bad/regex', up, { 'proxy-rewrite': { regex_uri: ['^/a', '/b', '^/c'] } }),
        route('bad-fn', '/bad/fn', up, { 'serverless-pre-function': { functions: ['(conf, ctx) => {'] } }),
      ],
    });
    await waitFor(() => gw.output().includes('failed to check the configuration of plugin proxy-rewrite err: The length of regex_uri should be an even number'), 5_000, 'the refusal in the log');
    await waitFor(() => gw.output().includes('failed to check the configuration of plugin serverless-pre-function err: functions[1]: failed to compile:'), 5_000, 'the refusal in the log');
    assert.notEqual((await call(gw, '/bad/fn')).status, 200);
  });
});

describe('transform plugins through the Admin API (exact 400 messages)', () => {
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

  async function refused(plugins: Record<string, unknown>): Promise<string> {
    const reply = await adminCall(adminPort, 'PUT', '/routes/1', { body: { uri: '/x', plugins, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } } } });
    assert.equal(reply.status, 400, reply.text);
    return reply.json.error_msg;
  }

  async function accepted(plugins: Record<string, unknown>): Promise<Record<string, unknown>> {
    const reply = await adminCall(adminPort, 'PUT', '/routes/1', { body: { uri: '/x', plugins, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } } } });
    assert.equal(reply.status < 300, true, reply.text);
    return reply.json.value.plugins;
  }

  it('proxy-rewrite', async () => {
    const err = (conf: unknown) => refused({ 'proxy-rewrite': conf });
    const p = 'failed to check the configuration of plugin proxy-rewrite err: ';
    assert.equal(await err({ regex_uri: ['^/a', '/b', '^/c'] }), `${p}The length of regex_uri should be an even number`);
    assert.equal(await err({ regex_uri: ['^/(a)', '/$x'] }), `${p}invalid regex_uri(^/(a), /$x): bad template for substitution: "/$x"`);
    assert.match(await err({ regex_uri: ['^/(a', '/b'] }), /^failed to check the configuration of plugin proxy-rewrite err: invalid regex_uri\(\^\/\(a, \/b\): /);
    assert.equal(await err({ headers: { 'X Api': 'v' } }), `${p}invalid field character in header`);
    assert.equal(await err({ headers: { 'X-Api': 'a\nb' } }), `${p}invalid value character in header`);
    assert.match(await err({ uri: 'hello' }), /^failed to check the configuration of plugin proxy-rewrite err: property "uri" validation failed/);
    assert.match(await err({ method: 'GETX' }), /property "method" validation failed: matches none of the enum values/);
    const stored = await accepted({ 'proxy-rewrite': { uri: '/a' } });
    assert.deepEqual(stored['proxy-rewrite'], { uri: '/a', use_real_request_uri_unsafe: false });
  });

  it('response-rewrite', async () => {
    const err = (conf: unknown) => refused({ 'response-rewrite': conf });
    const p = 'failed to check the configuration of plugin response-rewrite err: ';
    assert.equal(await err({ body: '1', body_base64: true }), `${p}invalid base64 content`);
    assert.equal(await err({ status_code: 200, headers: { 'X-Name': {} } }), `${p}invalid type as header value`);
    assert.equal(await err({ status_code: 200, headers: { '': 2 } }), `${p}invalid field length in header`);
    assert.equal(await err({ filters: [{ regex: 'hello', replace: 'HELLO', options: 'h' }] }), `${p}regex "hello" validation failed: unknown flag "h" (flags "h")`);
    assert.match(await err({ vars: [['status', 'bad-op', 200]] }), /^failed to check the configuration of plugin response-rewrite err: failed to validate the 'vars' expression: /);
    assert.match(await err({ filters: [{ regex: 'l' }] }), /property "replace" is required/);
    assert.match(await err({ status_code: 599 }), /property "status_code" validation failed/);
    assert.equal(await err({ body: 'x', filters: [{ regex: 'l', replace: 'm' }] }), `${p}failed to validate dependent schema for "body": value wasn't supposed to match schema`);
    const stored = await accepted({ 'response-rewrite': { body: 'new body\n', headers: { 'X-Server-id': 3 } } });
    assert.deepEqual(stored['response-rewrite'], { body: 'new body\n', body_base64: false, headers: { 'X-Server-id': 3 } });
  });

  it('gzip, real-ip, request-id', async () => {
    assert.match(await refused({ gzip: { comp_level: 10 } }), /^failed to check the configuration of plugin gzip err: property "comp_level" validation failed/);
    assert.match(await refused({ gzip: { http_version: 2 } }), /property "http_version" validation failed/);
    assert.equal(await refused({ 'real-ip': {} }), 'failed to check the configuration of plugin real-ip err: property "source" is required');
    assert.match(await refused({ 'real-ip': { source: 'http_x_forwarded_for', trusted_addresses: ['1.2.3.4.5'] } }), /^failed to check the configuration of plugin real-ip err: property "trusted_addresses" validation failed/);
    assert.match(await refused({ 'request-id': { algorithm: 'snowflake' } }), /property "algorithm" validation failed: matches none of the enum values/);
    assert.match(await refused({ 'request-id': { range_id: { length: 5 } } }), /property "range_id" validation failed/);
    const stored = await accepted({ gzip: {}, 'request-id': {}, 'real-ip': { source: 'arg_ip' } });
    assert.deepEqual(stored.gzip, { types: ['text/html'], min_length: 20, comp_level: 1, http_version: 1.1, buffers: { number: 32, size: 4096 } });
    assert.deepEqual(stored['request-id'], {
      header_name: 'X-Request-Id',
      include_in_response: true,
      algorithm: 'uuid',
      range_id: { length: 16, char_set: 'abcdefghijklmnopqrstuvwxyzABCDEFGHIGKLMNOPQRSTUVWXYZ0123456789' },
    });
    assert.deepEqual(stored['real-ip'], { source: 'arg_ip', recursive: false });
  });

  it('serverless functions are compiled on write', async () => {
    const p = 'failed to check the configuration of plugin serverless-pre-function err: ';
    assert.match(await refused({ 'serverless-pre-function': { functions: ['(conf, ctx) => {'] } }), /^failed to check the configuration of plugin serverless-pre-function err: functions\[1\]: failed to compile: /);
    assert.equal(await refused({ 'serverless-pre-function': { functions: ['(c) => 1', '42'] } }), `${p}functions[2]: only accept JavaScript function, the input code type is number`);
    assert.equal(await refused({ 'serverless-post-function': { functions: ['"text"'] } }), 'failed to check the configuration of plugin serverless-post-function err: functions[1]: only accept JavaScript function, the input code type is string');
    assert.match(await refused({ 'serverless-pre-function': { phase: 'balancer', functions: ['(c) => 1'] } }), /property "phase" validation failed: matches none of the enum values/);
    assert.match(await refused({ 'serverless-pre-function': { functions: [] } }), /property "functions" validation failed: expect array to have at least 1 items/);
    const stored = await accepted({ 'serverless-pre-function': { functions: ['(conf, ctx) => undefined'] } });
    assert.deepEqual(stored['serverless-pre-function'], { phase: 'access', functions: ['(conf, ctx) => undefined'] });
  });

  it('a route written through the Admin API runs its plugins', async () => {
    const up = await startUpstream();
    try {
      const reply = await adminCall(adminPort, 'PUT', '/routes/live', {
        body: { uri: '/live', plugins: { 'proxy-rewrite': { uri: '/rewritten' }, 'request-id': {} }, upstream: upstreamOf(up) },
      });
      assert.equal(reply.status < 300, true, reply.text);
      let answer: Answer | undefined;
      await waitFor(async () => {
        answer = await call(gw, '/live');
        return answer.status === 200;
      }, 5_000, 'the route to be served');
      assert.equal(answer!.echo?.url, '/rewritten');
      assert.ok(answer!.headers['x-request-id']);
    } finally {
      await up.close();
    }
  });
});
