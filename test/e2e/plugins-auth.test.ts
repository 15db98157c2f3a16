// The auth group through the running gateway: key-auth, basic-auth, jwt-auth, hmac-auth,
// forward-auth and consumer-restriction, with consumers, credentials and consumer groups from the
// standalone file, and the Admin API's refusals of bad configurations. Expected statuses, bodies
// and headers are those of APISIX's t/plugin/{key-auth,basic-auth,jwt-auth,hmac-auth,
// forward-auth,consumer-restriction}*.t.
import assert from 'node:assert/strict';
import { createHash, createHmac, generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { adminCall, startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { freePort, request, startGateway, startUpstream, waitFor, type Gateway, type Reply, type Upstream } from '../helpers/gateway.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const now = () => Math.floor(Date.now() / 1000);

/** What the echo upstream saw: the request headers after the gateway's plugins ran, and the target. */
function echoed(reply: Reply): { headers: http.IncomingHttpHeaders; url: string } {
  assert.equal(reply.status, 200, `expected the upstream to answer, got ${reply.status} ${reply.body}`);
  return JSON.parse(reply.body);
}

function assertRejected(reply: Reply, status: number, message: string, challenge?: string): void {
  assert.equal(reply.status, status, `expected ${status}, got ${reply.status} ${reply.body}`);
  assert.equal(reply.body, `${JSON.stringify({ message })}\n`);
  assert.equal(reply.headers['www-authenticate'], challenge);
}

function route(id: string, uri: string, plugins: Record<string, unknown>, up: Upstream, extra: Record<string, unknown> = {}) {
  return { id, uri, plugins, upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } }, ...extra };
}

/** The `Authorization: Signature ...` value for a request, signed as a hmac-auth client does. */
function hmacAuthorization(opts: {
  keyId: string;
  secret: string;
  algorithm?: string;
  method: string;
  target: string;
  headers: Record<string, string>;
  signed: string[];
}): string {
  const algorithm = opts.algorithm ?? 'hmac-sha256';
  let text = `${opts.keyId}\n`;
  for (const name of opts.signed) text += name === '@request-target' ? `${opts.method} ${opts.target}\n` : `${name}: ${opts.headers[name]}\n`;
  const digest = { 'hmac-sha1': 'sha1', 'hmac-sha256': 'sha256', 'hmac-sha512': 'sha512' }[algorithm] ?? 'sha256';
  const signature = createHmac(digest, opts.secret).update(text).digest('base64');
  return `Signature keyId="${opts.keyId}",algorithm="${algorithm}",headers="${opts.signed.join(' ')}",signature="${signature}"`;
}

/** An authorization service for forward-auth: decides on the `Authorization` header it is sent. */
async function startAuthService(): Promise<{ server: http.Server; port: number; seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> }> {
  const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
      const auth = req.headers.authorization;
      if (auth === 'ok') {
        res.writeHead(200, { 'X-User-ID': 'i-am-user', 'X-Not-Asked': 'x' });
        res.end();
      } else if (auth === 'ok-without-id') {
        res.writeHead(204);
        res.end();
      } else if (auth === 'redirect') {
        res.writeHead(302, { Location: 'http://login.example/', 'X-Reason': 'login' });
        res.end('go to login');
      } else {
        res.writeHead(403, { 'X-Reason': 'bad-token', 'X-Secret': 'not for clients' });
        res.end('Forbidden by the auth service');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, seen };
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const pem = (key: import('node:crypto').KeyObject) => key.export({ type: 'spki', format: 'pem' }) as string;
const secretBytes = (s: string) => new TextEncoder().encode(s);

describe('auth plugins (standalone file)', () => {
  let up: Upstream;
  let gw: Gateway;
  let auth: Awaited<ReturnType<typeof startAuthService>>;
  let silent: net.Server;
  const silentSockets = new Set<net.Socket>();
  let deadPort: number;

  before(async () => {
    up = await startUpstream();
    auth = await startAuthService();
    // accepts connections and never answers: forward-auth's timeout
    silent = net.createServer((socket) => {
      silentSockets.add(socket);
      socket.on('close', () => silentSockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    deadPort = await freePort();
    const authUri = `http://127.0.0.1:${auth.port}/auth?check=1`;
    gw = await startGateway({
      routes: {
        consumer_groups: [
          { id: 'gold', plugins: {} },
          { id: 'silver', plugins: { 'consumer-restriction': { type: 'route_id', blacklist: ['silver-blocked'] } } },
        ],
        consumers: [
          {
            username: 'jack',
            group_id: 'gold',
            plugins: {
              'key-auth': { key: 'auth-jack' },
              'basic-auth': { username: 'jack', password: 'jack:pass' },
              'jwt-auth': { key: 'jack-key', secret: 'jack-secret' },
              'hmac-auth': { key_id: 'jack-hmac', secret_key: 'jack-hmac-secret' },
            },
          },
          { id: 'jack/credentials/second-key', plugins: { 'key-auth': { key: 'auth-jack-2' } } },
          {
            username: 'rose',
            plugins: {
              'key-auth': { key: 'auth-rose' },
              'basic-auth': { username: 'rose', password: 'rose-pw' },
              'jwt-auth': { key: 'rose-key', algorithm: 'RS256', public_key: pem(rsa.publicKey) },
            },
          },
          { username: 'eve', plugins: { 'key-auth': { key: 'auth-eve' }, 'jwt-auth': { key: 'eve-key', algorithm: 'ES256', public_key: pem(ec.publicKey) } } },
          { username: 'gus', group_id: 'silver', plugins: { 'key-auth': { key: 'auth-gus' } } },
          { username: 'tom', plugins: { 'key-auth': { key: 'auth-tom' }, 'consumer-restriction': { type: 'route_id', whitelist: ['key'] } } },
          { username: 'ed', plugins: { 'jwt-auth': { key: 'ed-key', algorithm: 'EdDSA', public_key: pem(ed.publicKey) } } },
          { username: 'b64', plugins: { 'jwt-auth': { key: 'b64-key', secret: b64('raw secret bytes'), base64_secret: true, algorithm: 'HS512' } } },
          { username: 'late', plugins: { 'jwt-auth': { key: 'late-key', secret: 'late-secret', lifetime_grace_period: 100 } } },
          {
            // The anonymous consumer also carries each plugin (with a credential nobody uses); see docs/plugins/auth.md.
            username: 'anonymous',
            plugins: {
              'key-auth': { key: 'anonymous-unused-key' },
              'basic-auth': { username: 'anonymous-unused', password: 'x' },
              'jwt-auth': { key: 'anonymous-unused-key', secret: 'x' },
              'hmac-auth': { key_id: 'anonymous-unused', secret_key: 'x' },
            },
          },
          { username: 'guest', plugins: {} },
        ],
        routes: [
          route('key', '/key', { 'key-auth': {} }, up),
          route('key-hide', '/key-hide', { 'key-auth': { hide_credentials: true } }, up),
          route('key-custom', '/key-custom', { 'key-auth': { header: 'X-Custom-Key', query: 'k', realm: 'shop' } }, up),
          route('key-bearer', '/key-bearer', { 'key-auth': { bearer_token: true, hide_credentials: true } }, up),
          route('key-anon', '/key-anon', { 'key-auth': { anonymous_consumer: 'anonymous' } }, up),
          route('key-anon-guest', '/key-anon-guest', { 'key-auth': { anonymous_consumer: 'guest' } }, up),
          route('key-anon-missing', '/key-anon-missing', { 'key-auth': { anonymous_consumer: 'nobody' } }, up),
          route('silver-blocked', '/silver-blocked', { 'key-auth': {} }, up),
          route('basic', '/basic', { 'basic-auth': {} }, up),
          route('basic-hide', '/basic-hide', { 'basic-auth': { hide_credentials: true, realm: 'intranet' } }, up),
          route('basic-anon', '/basic-anon', { 'basic-auth': { anonymous_consumer: 'anonymous', hide_credentials: true } }, up),
          route('jwt', '/jwt', { 'jwt-auth': {} }, up),
          route('jwt-hide', '/jwt-hide', { 'jwt-auth': { hide_credentials: true, key_claim_name: 'iss', header: 'X-Token', query: 'token', cookie: 'token' } }, up),
          route('jwt-exp-only', '/jwt-exp-only', { 'jwt-auth': { claims_to_verify: ['exp'] } }, up),
          route('jwt-anon', '/jwt-anon', { 'jwt-auth': { anonymous_consumer: 'anonymous' } }, up),
          route('hmac', '/hmac', { 'hmac-auth': {} }, up),
          route('hmac-strict', '/hmac-strict', { 'hmac-auth': { allowed_algorithms: ['hmac-sha512'], signed_headers: ['date', 'x-tenant'], hide_credentials: true, clock_skew: 60 } }, up),
          route('hmac-body', '/hmac-body', { 'hmac-auth': { validate_request_body: true, max_req_body_size: 64 } }, up),
          route('hmac-anon', '/hmac-anon', { 'hmac-auth': { anonymous_consumer: 'anonymous' } }, up),
          route('restrict-white', '/restrict-white', { 'basic-auth': {}, 'consumer-restriction': { whitelist: ['jack'] } }, up),
          route('restrict-black', '/restrict-black', { 'basic-auth': {}, 'consumer-restriction': { blacklist: ['jack'], rejected_code: 401, rejected_msg: 'jack may not come in' } }, up),
          route('restrict-methods', '/restrict-methods', { 'key-auth': {}, 'consumer-restriction': { allowed_by_methods: [{ user: 'jack', methods: ['POST', 'PUT'] }] } }, up),
          route('restrict-group', '/restrict-group', { 'key-auth': {}, 'consumer-restriction': { type: 'consumer_group_id', whitelist: ['gold'] } }, up),
          route('restrict-route', '/restrict-route', { 'consumer-restriction': { type: 'route_id', blacklist: ['restrict-route'] } }, up),
          route('restrict-service', '/restrict-service', { 'consumer-restriction': { type: 'service_id', whitelist: ['svc-1'] } }, up),
          route('restrict-nobody', '/restrict-nobody', { 'consumer-restriction': { whitelist: ['jack'] } }, up),
          route('fa', '/fa', { 'forward-auth': { uri: authUri, request_headers: ['Authorization'], upstream_headers: ['X-User-ID'], client_headers: ['X-Reason', 'Location'] } }, up),
          route(
            'fa-post',
            '/fa-post',
            {
              'forward-auth': {
                uri: authUri,
                request_method: 'POST',
                request_headers: ['Authorization', 'X-Forwarded-Host'],
                extra_headers: { 'X-Client': '$remote_addr', 'X-Arg': 'a=${arg_a}' },
                max_req_body_size: 32,
              },
            },
            up,
          ),
          route('fa-down', '/fa-down', { 'forward-auth': { uri: `http://127.0.0.1:${deadPort}/auth` } }, up),
          route('fa-down-status', '/fa-down-status', { 'forward-auth': { uri: `http://127.0.0.1:${deadPort}/auth`, status_on_error: 503 } }, up),
          route('fa-degrade', '/fa-degrade', { 'forward-auth': { uri: `http://127.0.0.1:${deadPort}/auth`, allow_degradation: true } }, up),
          route('fa-timeout', '/fa-timeout', { 'forward-auth': { uri: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/auth`, timeout: 300 } }, up),
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
    auth?.server.closeAllConnections();
    auth?.server.close();
    for (const socket of silentSockets) socket.destroy();
    silent?.close();
  });

  describe('key-auth', () => {
    it('key-auth.t: no key → 401 Missing API key, with the apikey challenge', async () => {
      assertRejected(await request(gw.url('/key')), 401, 'Missing API key in request', 'apikey realm="key"');
    });

    it('key-auth.t: an unknown key → 401 Invalid API key', async () => {
      assertRejected(await request(gw.url('/key'), { headers: { apikey: 'nope' } }), 401, 'Invalid API key in request', 'apikey realm="key"');
      assertRejected(await request(gw.url('/key'), { headers: { apikey: '' } }), 401, 'Invalid API key in request', 'apikey realm="key"');
    });

    it('authenticates from the header, or the query string when the header is absent', async () => {
      const fromHeader = echoed(await request(gw.url('/key'), { headers: { apikey: 'auth-jack' } }));
      assert.equal(fromHeader.headers.apikey, 'auth-jack');
      const fromQuery = echoed(await request(gw.url('/key?apikey=auth-jack&x=1')));
      assert.equal(fromQuery.url, '/key?apikey=auth-jack&x=1');
      // the header wins over the query string
      assertRejected(await request(gw.url('/key?apikey=auth-jack'), { headers: { apikey: 'bad' } }), 401, 'Invalid API key in request', 'apikey realm="key"');
    });

    it('a key in a credential authenticates its consumer', async () => {
      const seen = echoed(await request(gw.url('/restrict-group'), { headers: { apikey: 'auth-jack-2' } }));
      assert.equal(seen.headers.apikey, 'auth-jack-2');
    });

    it('the upstream learns the consumer and the credential (X-Consumer-Username, X-Credential-Identifier)', async () => {
      const own = echoed(await request(gw.url('/key'), { headers: { apikey: 'auth-jack' } }));
      assert.equal(own.headers['x-consumer-username'], 'jack');
      assert.equal(own.headers['x-credential-identifier'], undefined);
      const viaCredential = echoed(await request(gw.url('/key'), { headers: { apikey: 'auth-jack-2' } }));
      assert.equal(viaCredential.headers['x-consumer-username'], 'jack');
      assert.equal(viaCredential.headers['x-credential-identifier'], 'second-key');
    });

    it('hide_credentials removes the header, or only the key argument', async () => {
      const header = echoed(await request(gw.url('/key-hide'), { headers: { apikey: 'auth-jack' } }));
      assert.equal(header.headers.apikey, undefined);
      const query = echoed(await request(gw.url('/key-hide?a=1&apikey=auth-jack&b=%2F')));
      assert.equal(query.url, '/key-hide?a=1&b=%2F');
    });

    it('header, query and realm options', async () => {
      echoed(await request(gw.url('/key-custom'), { headers: { 'X-Custom-Key': 'auth-rose' } }));
      echoed(await request(gw.url('/key-custom?k=auth-rose')));
      assertRejected(await request(gw.url('/key-custom'), { headers: { apikey: 'auth-rose' } }), 401, 'Missing API key in request', 'apikey realm="shop"');
    });

    it('bearer_token reads `Authorization: Bearer <key>`', async () => {
      const seen = echoed(await request(gw.url('/key-bearer'), { headers: { Authorization: 'Bearer auth-jack' } }));
      assert.equal(seen.headers.authorization, undefined);
      assertRejected(await request(gw.url('/key-bearer'), { headers: { Authorization: 'auth-jack' } }), 401, 'Invalid Bearer token format', 'Bearer realm="key"');
      assertRejected(await request(gw.url('/key-bearer'), { headers: { apikey: 'auth-jack' } }), 401, 'Missing API key in request', 'Bearer realm="key"');
    });

    it('anonymous_consumer lets unauthenticated requests in as that consumer', async () => {
      const anonymous = echoed(await request(gw.url('/key-anon')));
      assert.equal(anonymous.headers['x-consumer-username'], 'anonymous');
      const jack = echoed(await request(gw.url('/key-anon'), { headers: { apikey: 'auth-jack' } }));
      assert.equal(jack.headers['x-consumer-username'], 'jack');
    });

    it('an anonymous_consumer that does not exist → 401 Invalid user authorization', async () => {
      assertRejected(await request(gw.url('/key-anon-missing')), 401, 'Invalid user authorization', 'apikey realm="key"');
      await waitFor(() => gw.output().includes('key-auth failed to authenticate the request, code: 401. error: failed to get anonymous consumer nobody'), 3000, 'error log');
    });

    it('anonymous_consumer may be a consumer without the plugin', async () => {
      const guest = echoed(await request(gw.url('/key-anon-guest')));
      assert.equal(guest.headers['x-consumer-username'], 'guest');
    });
  });

  describe('consumers and groups', () => {
    it("the consumer's own plugins run after it authenticated (consumer-restriction on the consumer)", async () => {
      echoed(await request(gw.url('/key'), { headers: { apikey: 'auth-tom' } }));
      assertRejected(await request(gw.url('/key-hide'), { headers: { apikey: 'auth-tom' } }), 403, 'The route_id is forbidden.');
    });

    it("the group's plugins apply to its consumers", async () => {
      echoed(await request(gw.url('/key'), { headers: { apikey: 'auth-gus' } }));
      assertRejected(await request(gw.url('/silver-blocked'), { headers: { apikey: 'auth-gus' } }), 403, 'The route_id is forbidden.');
      echoed(await request(gw.url('/silver-blocked'), { headers: { apikey: 'auth-jack' } }));
    });
  });

  describe('basic-auth', () => {
    it('basic-auth.t: missing header → 401 with the Basic challenge', async () => {
      assertRejected(await request(gw.url('/basic')), 401, 'Missing authorization in request', 'Basic realm="basic"');
    });

    it('basic-auth.t: a malformed header → 401 Invalid authorization in request', async () => {
      for (const value of ['Bad_header YmFyOmJhcgo=', 'Basic aca_a', 'Basic YmFy']) {
        assertRejected(await request(gw.url('/basic'), { headers: { Authorization: value } }), 401, 'Invalid authorization in request', 'Basic realm="basic"');
      }
    });

    it('basic-auth.t: unknown user or wrong password → 401 Invalid user authorization', async () => {
      assertRejected(await request(gw.url('/basic'), { headers: { Authorization: 'Basic YmFyOmJhcgo=' } }), 401, 'Invalid user authorization', 'Basic realm="basic"');
      assertRejected(await request(gw.url('/basic'), { headers: { Authorization: `Basic ${b64('jack:jack')}` } }), 401, 'Invalid user authorization', 'Basic realm="basic"');
    });

    it('authenticates; a password may contain colons', async () => {
      const seen = echoed(await request(gw.url('/basic'), { headers: { Authorization: `Basic ${b64('jack:jack:pass')}` } }));
      assert.equal(seen.headers.authorization, `Basic ${b64('jack:jack:pass')}`);
      assert.equal(seen.headers['x-consumer-username'], 'jack');
    });

    it('hide_credentials and realm', async () => {
      const seen = echoed(await request(gw.url('/basic-hide'), { headers: { Authorization: `Basic ${b64('jack:jack:pass')}` } }));
      assert.equal(seen.headers.authorization, undefined);
      assertRejected(await request(gw.url('/basic-hide')), 401, 'Missing authorization in request', 'Basic realm="intranet"');
    });

    it('anonymous_consumer, credentials still hidden', async () => {
      const seen = echoed(await request(gw.url('/basic-anon'), { headers: { Authorization: `Basic ${b64('jack:wrong')}` } }));
      assert.equal(seen.headers['x-consumer-username'], 'anonymous');
      assert.equal(seen.headers.authorization, undefined);
    });
  });

  describe('jwt-auth', () => {
    const hs = (payload: Record<string, unknown>, secret = 'jack-secret', alg = 'HS256') => new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT' }).sign(secretBytes(secret));

    it('jwt-auth.t: no token → 401 Missing JWT token in request, with the Bearer challenge', async () => {
      assertRejected(await request(gw.url('/jwt')), 401, 'Missing JWT token in request', 'Bearer realm="jwt"');
    });

    it('jwt-auth.t: a malformed token → 401 JWT token invalid', async () => {
      assertRejected(await request(gw.url('/jwt'), { headers: { Authorization: 'Bearer invalid-eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9' } }), 401, 'JWT token invalid', 'Bearer realm="jwt"');
    });

    it('jwt-auth.t: no key claim, an unknown key, a bad signature', async () => {
      assertRejected(await request(gw.url('/jwt'), { headers: { Authorization: await hs({ exp: now() + 60 }) } }), 401, 'missing user key in JWT token', 'Bearer realm="jwt"');
      assertRejected(await request(gw.url('/jwt'), { headers: { Authorization: await hs({ key: 'who', exp: now() + 60 }) } }), 401, 'Invalid user key in JWT token', 'Bearer realm="jwt"');
      assertRejected(await request(gw.url('/jwt'), { headers: { Authorization: await hs({ key: 'jack-key' }, 'other-secret') } }), 401, 'failed to verify jwt', 'Bearer realm="jwt"');
    });

    it('from the header (with or without Bearer), the query string and the cookie', async () => {
      const token = await hs({ key: 'jack-key', exp: now() + 60 });
      for (const [path, headers] of [
        ['/jwt', { Authorization: `Bearer ${token}` }],
        ['/jwt', { Authorization: `bearer ${token}` }],
        ['/jwt', { Authorization: token }],
        [`/jwt?jwt=${token}`, {}],
        ['/jwt', { Cookie: `a=1; jwt=${token}` }],
      ] as const) {
        const seen = echoed(await request(gw.url(path), { headers }));
        assert.equal(seen.headers['x-consumer-username'], 'jack', `${path} ${JSON.stringify(headers)}`);
      }
    });

    it('exp and nbf are checked; claims_to_verify and lifetime_grace_period', async () => {
      assertRejected(await request(gw.url('/jwt'), { headers: { Authorization: await hs({ key: 'jack-key', exp: now() - 10 }) } }), 401, 'failed to verify jwt', 'Bearer realm="jwt"');
      assertRejected(await request(gw.url('/jwt'), { headers: { Authorization: await hs({ key: 'jack-key', nbf: now() + 100 }) } }), 401, 'failed to verify jwt', 'Bearer realm="jwt"');
      echoed(await request(gw.url('/jwt-exp-only'), { headers: { Authorization: await hs({ key: 'jack-key', nbf: now() + 100 }) } }));
      // a token that expired 10 s ago is still good with a 100 s grace period
      echoed(await request(gw.url('/jwt'), { headers: { Authorization: await hs({ key: 'late-key', exp: now() - 10 }, 'late-secret') } }));
      assertRejected(await request(gw.url('/jwt'), { headers: { Authorization: await hs({ key: 'late-key', exp: now() - 200 }, 'late-secret') } }), 401, 'failed to verify jwt', 'Bearer realm="jwt"');
    });

    it('HS512 with a base64 secret, RS256, PS256, ES256 and EdDSA', async () => {
      const signed = [
        await hs({ key: 'b64-key' }, 'raw secret bytes', 'HS512'),
        await new SignJWT({ key: 'rose-key' }).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey),
        await new SignJWT({ key: 'rose-key' }).setProtectedHeader({ alg: 'PS256' }).sign(rsa.privateKey),
        await new SignJWT({ key: 'eve-key' }).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey),
        await new SignJWT({ key: 'ed-key' }).setProtectedHeader({ alg: 'EdDSA' }).sign(ed.privateKey),
      ];
      const names = [];
      for (const token of signed) names.push(echoed(await request(gw.url('/jwt'), { headers: { Authorization: token } })).headers['x-consumer-username']);
      assert.deepEqual(names, ['b64', 'rose', 'rose', 'eve', 'ed']);
    });

    it('a token signed with HS256 using the public key of an RS256 consumer is refused', async () => {
      const forged = await hs({ key: 'rose-key' }, pem(rsa.publicKey));
      assertRejected(await request(gw.url('/jwt'), { headers: { Authorization: forged } }), 401, 'failed to verify jwt', 'Bearer realm="jwt"');
    });

    it('custom header, query, cookie and key_claim_name; hide_credentials removes each', async () => {
      const token = await hs({ iss: 'jack-key' });
      const header = echoed(await request(gw.url('/jwt-hide'), { headers: { 'X-Token': token } }));
      assert.equal(header.headers['x-token'], undefined);
      const query = echoed(await request(gw.url(`/jwt-hide?a=1&token=${token}`)));
      assert.equal(query.url, '/jwt-hide?a=1');
      const cookie = echoed(await request(gw.url('/jwt-hide'), { headers: { Cookie: `a=1; token=${token}; b=2` } }));
      assert.equal(cookie.headers.cookie, 'a=1; b=2');
      assertRejected(await request(gw.url('/jwt-hide'), { headers: { Authorization: token } }), 401, 'Missing JWT token in request', 'Bearer realm="jwt"');
    });

    it('anonymous_consumer', async () => {
      const seen = echoed(await request(gw.url('/jwt-anon'), { headers: { Authorization: 'garbage' } }));
      assert.equal(seen.headers['x-consumer-username'], 'anonymous');
    });
  });

  describe('hmac-auth', () => {
    const signedRequest = (path: string, opts: { keyId?: string; secret?: string; algorithm?: string; method?: string; signed?: string[]; extra?: Record<string, string>; date?: string } = {}) => {
      const headers: Record<string, string> = { date: opts.date ?? new Date().toUTCString(), ...opts.extra };
      const authorization = hmacAuthorization({
        keyId: opts.keyId ?? 'jack-hmac',
        secret: opts.secret ?? 'jack-hmac-secret',
        algorithm: opts.algorithm,
        method: opts.method ?? 'GET',
        target: path,
        headers,
        signed: opts.signed ?? ['@request-target', 'date'],
      });
      return { ...headers, Authorization: authorization };
    };

    it('hmac-auth.t: missing or foreign Authorization header → 401 naming the problem', async () => {
      assertRejected(await request(gw.url('/hmac')), 401, "client request can't be validated: missing Authorization header", 'hmac realm="hmac"');
      assertRejected(await request(gw.url('/hmac'), { headers: { Authorization: 'Basic abc' } }), 401, "client request can't be validated: Authorization header does not start with 'Signature'", 'hmac realm="hmac"');
    });

    it('hmac-auth.t: anything else wrong → 401 without detail', async () => {
      const cases: Array<Record<string, string>> = [
        { Authorization: 'Signature algorithm="hmac-sha256",headers="date",signature="abc"', Date: new Date().toUTCString() },
        { Authorization: 'Signature keyId="jack-hmac",headers="date",signature="abc"', Date: new Date().toUTCString() },
        signedRequest('/hmac', { keyId: 'nobody' }),
        signedRequest('/hmac', { secret: 'wrong' }),
        signedRequest('/hmac', { algorithm: 'hmac-md5' }),
        signedRequest('/hmac', { date: new Date(Date.now() - 3600_000).toUTCString() }),
        signedRequest('/hmac', { date: 'yesterday' }),
      ];
      for (const headers of cases) assertRejected(await request(gw.url('/hmac'), { headers }), 401, "client request can't be validated", 'hmac realm="hmac"');
    });

    it('authenticates with each algorithm, with Date or X-Date', async () => {
      for (const algorithm of ['hmac-sha1', 'hmac-sha256', 'hmac-sha512']) {
        const seen = echoed(await request(gw.url('/hmac?a=1'), { headers: signedRequest('/hmac?a=1', { algorithm }) }));
        assert.equal(seen.headers['x-consumer-username'], 'jack');
        assert.ok(seen.headers.authorization?.startsWith('Signature '));
      }
      const xDate = new Date().toUTCString();
      const headers = { 'x-date': xDate, Authorization: hmacAuthorization({ keyId: 'jack-hmac', secret: 'jack-hmac-secret', method: 'GET', target: '/hmac', headers: { 'x-date': xDate }, signed: ['@request-target', 'x-date'] }) };
      echoed(await request(gw.url('/hmac'), { headers }));
    });

    it('allowed_algorithms, signed_headers and hide_credentials', async () => {
      const good = signedRequest('/hmac-strict', { algorithm: 'hmac-sha512', signed: ['@request-target', 'date', 'x-tenant'], extra: { 'x-tenant': 't1' } });
      const seen = echoed(await request(gw.url('/hmac-strict'), { headers: good }));
      assert.equal(seen.headers.authorization, undefined);
      const notAllowed = signedRequest('/hmac-strict', { signed: ['@request-target', 'date', 'x-tenant'], extra: { 'x-tenant': 't1' } });
      assertRejected(await request(gw.url('/hmac-strict'), { headers: notAllowed }), 401, "client request can't be validated", 'hmac realm="hmac"');
      const tenantUnsigned = signedRequest('/hmac-strict', { algorithm: 'hmac-sha512', extra: { 'x-tenant': 't1' } });
      assertRejected(await request(gw.url('/hmac-strict'), { headers: tenantUnsigned }), 401, "client request can't be validated", 'hmac realm="hmac"');
    });

    it('validate_request_body checks the Digest header and max_req_body_size', async () => {
      const body = '{"name":"world"}';
      const digest = `SHA-256=${createHash('sha256').update(body).digest('base64')}`;
      const headers = signedRequest('/hmac-body', { method: 'POST', signed: ['@request-target', 'date', 'digest'], extra: { digest } });
      const seen = echoed(await request(gw.url('/hmac-body'), { method: 'POST', headers, body }));
      assert.equal((seen as unknown as { body: string }).body, body);
      assertRejected(await request(gw.url('/hmac-body'), { method: 'POST', headers, body: '{"name":"other"}' }), 401, "client request can't be validated", 'hmac realm="hmac"');
      const noDigest = signedRequest('/hmac-body', { method: 'POST' });
      assertRejected(await request(gw.url('/hmac-body'), { method: 'POST', headers: noDigest, body }), 401, "client request can't be validated", 'hmac realm="hmac"');
      const big = 'x'.repeat(100);
      const bigDigest = `SHA-256=${createHash('sha256').update(big).digest('base64')}`;
      const bigHeaders = signedRequest('/hmac-body', { method: 'POST', signed: ['@request-target', 'date', 'digest'], extra: { digest: bigDigest } });
      assert.equal((await request(gw.url('/hmac-body'), { method: 'POST', headers: bigHeaders, body: big })).status, 413);
    });

    it('anonymous_consumer', async () => {
      const seen = echoed(await request(gw.url('/hmac-anon')));
      assert.equal(seen.headers['x-consumer-username'], 'anonymous');
    });
  });

  describe('consumer-restriction', () => {
    const basic = (user: string, password: string) => ({ Authorization: `Basic ${b64(`${user}:${password}`)}` });

    it('consumer-restriction.t: whitelist', async () => {
      echoed(await request(gw.url('/restrict-white'), { headers: basic('jack', 'jack:pass') }));
      assertRejected(await request(gw.url('/restrict-white'), { headers: basic('rose', 'rose-pw') }), 403, 'The consumer_name is forbidden.');
    });

    it('consumer-restriction.t: blacklist with rejected_code and rejected_msg', async () => {
      assertRejected(await request(gw.url('/restrict-black'), { headers: basic('jack', 'jack:pass') }), 401, 'jack may not come in');
    });

    it('consumer-restriction.t: allowed_by_methods', async () => {
      assertRejected(await request(gw.url('/restrict-methods'), { headers: { apikey: 'auth-jack' } }), 403, 'The consumer_name is forbidden.');
      echoed(await request(gw.url('/restrict-methods'), { method: 'POST', headers: { apikey: 'auth-jack' } }));
      // eve is not listed: any method
      echoed(await request(gw.url('/restrict-methods'), { method: 'DELETE', headers: { apikey: 'auth-eve' } }));
    });

    it('consumer-restriction.t: consumer_group_id, route_id and service_id', async () => {
      echoed(await request(gw.url('/restrict-group'), { headers: { apikey: 'auth-jack' } }));
      assertRejected(await request(gw.url('/restrict-group'), { headers: { apikey: 'auth-eve' } }), 401, 'The request is rejected, please check the consumer_group_id for this request');
      assertRejected(await request(gw.url('/restrict-route')), 403, 'The route_id is forbidden.');
      assertRejected(await request(gw.url('/restrict-service')), 401, 'The request is rejected, please check the service_id for this request');
    });

    it('consumer-restriction.t: no consumer → 401 asking to check the consumer_name', async () => {
      assertRejected(await request(gw.url('/restrict-nobody')), 401, 'The request is rejected, please check the consumer_name for this request');
    });
  });

  describe('forward-auth', () => {
    it('forward-auth.t: sends X-Forwarded-* and the chosen request headers; 2xx passes with upstream_headers', async () => {
      const before = auth.seen.length;
      const seen = echoed(await request(gw.url('/fa?x=1'), { headers: { Authorization: 'ok', 'X-Other': 'not sent' } }));
      assert.equal(seen.headers['x-user-id'], 'i-am-user');
      assert.equal(seen.headers['x-not-asked'], undefined);
      const call = auth.seen[before];
      assert.equal(call.method, 'GET');
      assert.equal(call.url, '/auth?check=1');
      assert.equal(call.headers['x-forwarded-proto'], 'http');
      assert.equal(call.headers['x-forwarded-method'], 'GET');
      assert.equal(call.headers['x-forwarded-host'], '127.0.0.1');
      assert.equal(call.headers['x-forwarded-uri'], '/fa?x=1');
      assert.equal(call.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(call.headers.authorization, 'ok');
      assert.equal(call.headers['x-other'], undefined);
    });

    it('a configured upstream header the service did not send is removed from the request', async () => {
      const seen = echoed(await request(gw.url('/fa'), { headers: { Authorization: 'ok-without-id', 'X-User-ID': 'forged' } }));
      assert.equal(seen.headers['x-user-id'], undefined);
    });

    it("forward-auth.t: other statuses reach the client with the service's body and client_headers", async () => {
      const denied = await request(gw.url('/fa'), { headers: { Authorization: 'bad' } });
      assert.equal(denied.status, 403);
      assert.equal(denied.body, 'Forbidden by the auth service');
      assert.equal(denied.headers['x-reason'], 'bad-token');
      assert.equal(denied.headers['x-secret'], undefined);
      const redirect = await request(gw.url('/fa'), { headers: { Authorization: 'redirect' } });
      assert.equal(redirect.status, 302);
      assert.equal(redirect.headers.location, 'http://login.example/');
      assert.equal(redirect.body, 'go to login');
    });

    it('POST sends the body, extra_headers resolve variables, request_headers do not override X-Forwarded-*', async () => {
      const before = auth.seen.length;
      const res = await request(gw.url('/fa-post?a=42'), { method: 'POST', headers: { Authorization: 'ok', 'X-Forwarded-Host': 'spoofed' }, body: 'hello' });
      assert.equal(res.status, 200);
      const call = auth.seen[before];
      assert.equal(call.method, 'POST');
      assert.equal(call.body, 'hello');
      assert.equal(call.headers['x-client'], '127.0.0.1');
      assert.equal(call.headers['x-arg'], 'a=42');
      assert.equal(call.headers['x-forwarded-host'], '127.0.0.1');
      assert.equal((await request(gw.url('/fa-post'), { method: 'POST', headers: { Authorization: 'ok' }, body: 'x'.repeat(64) })).status, 413);
    });

    it('an unreachable service → 403, or status_on_error, or through with allow_degradation', async () => {
      assert.equal((await request(gw.url('/fa-down'))).status, 403);
      assert.equal((await request(gw.url('/fa-down-status'))).status, 503);
      echoed(await request(gw.url('/fa-degrade')));
    });

    it('a service slower than timeout → 403', async () => {
      assert.equal((await request(gw.url('/fa-timeout'))).status, 403);
    });
  });

  it('a bad plugin configuration in the file leaves the route out and says why', async () => {
    const marker = `/marker-${Date.now()}`;
    gw.writeRoutes({
      routes: [
        route('bad-key-auth', '/bad-key-auth', { 'key-auth': { header: 123 } }, up),
        route('marker', marker, {}, up),
      ],
    });
    await waitFor(async () => (await request(gw.url(marker))).status === 200, 5000, 'the new file to load');
    assert.equal((await request(gw.url('/bad-key-auth'))).status, 404);
    assert.match(gw.output(), /failed to check the configuration of plugin key-auth err: property "header" validation failed: wrong type: expected string, got number/);
  });
});

describe('auth plugins (Admin API)', () => {
  let node: AdminGateway;
  let adminPort: number;
  let gw: Gateway;
  let up: Upstream;

  before(async () => {
    up = await startUpstream();
    node = await startAdminGateway();
    ({ gw, adminPort } = node);
  });

  after(async () => {
    await node?.stop();
    await up?.close();
  });

  const put = (path: string, body: unknown) => adminCall(adminPort, 'PUT', path, { body });
  const refused = async (path: string, body: unknown, message: string) => {
    const res = await put(path, body);
    assert.equal(res.status, 400, `${path}: ${res.text}`);
    assert.deepEqual(res.json, { error_msg: message });
  };

  it('refuses consumer confs that miss their credential fields', async () => {
    await refused('/consumers', { username: 'jack', plugins: { 'key-auth': {} } }, 'invalid plugins configuration: failed to check the configuration of plugin key-auth err: property "key" is required');
    await refused('/consumers', { username: 'jack', plugins: { 'basic-auth': { username: 'jack' } } }, 'invalid plugins configuration: failed to check the configuration of plugin basic-auth err: property "password" is required');
    await refused('/consumers', { username: 'jack', plugins: { 'hmac-auth': { key_id: 'k' } } }, 'invalid plugins configuration: failed to check the configuration of plugin hmac-auth err: property "secret_key" is required');
  });

  it('jwt-auth.t: refuses HS256 without secret, a secret that is not base64, an asymmetric algorithm without public key', async () => {
    await refused('/consumers', { username: 'jack', plugins: { 'jwt-auth': { key: 'k' } } }, 'invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: property "secret" is required when "algorithm" is "HS256" or "HS512"');
    await refused('/consumers', { username: 'jack', plugins: { 'jwt-auth': { key: 'k', secret: '^^^', base64_secret: true } } }, 'invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: base64_secret required but the secret is not in base64 format');
    await refused('/consumers', { username: 'jack', plugins: { 'jwt-auth': { key: 'k', algorithm: 'RS256' } } }, 'invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: failed to validate dependent schema for "algorithm": value should match only one schema, but matches none');
  });

  it('refuses bad route confs with the schema message', async () => {
    await refused('/routes/1', { uri: '/a', plugins: { 'key-auth': { header: 1 } }, upstream: { nodes: { [up.node]: 1 } } }, 'failed to check the configuration of plugin key-auth err: property "header" validation failed: wrong type: expected string, got number');
    await refused('/routes/1', { uri: '/a', plugins: { 'hmac-auth': { clock_skew: 0 } }, upstream: { nodes: { [up.node]: 1 } } }, 'failed to check the configuration of plugin hmac-auth err: property "clock_skew" validation failed: expected 0 to be at least 1');
    await refused('/routes/1', { uri: '/a', plugins: { 'forward-auth': {} }, upstream: { nodes: { [up.node]: 1 } } }, 'failed to check the configuration of plugin forward-auth err: property "uri" is required');
    await refused(
      '/routes/1',
      { uri: '/a', plugins: { 'consumer-restriction': { type: 'consumer_name' } }, upstream: { nodes: { [up.node]: 1 } } },
      'failed to check the configuration of plugin consumer-restriction err: object matches none of the required: ["blacklist"] or ["whitelist"] or ["allowed_by_methods"]',
    );
    await refused('/routes/1', { uri: '/a', plugins: { 'jwt-auth': { claims_to_verify: ['iat'] } }, upstream: { nodes: { [up.node]: 1 } } }, 'failed to check the configuration of plugin jwt-auth err: property "claims_to_verify" validation failed: failed to validate item 1: matches none of the enum values');
  });

  it('a key-auth credential created through the Admin API authenticates its consumer, until it is deleted', async () => {
    assert.equal((await put('/consumers', { username: 'jack' })).status, 201);
    assert.equal((await put('/consumers/jack/credentials/key-1', { plugins: { 'key-auth': { key: 'cred-key' } } })).status, 201);
    assert.equal((await put('/routes/r1', { uri: '/hello', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.node]: 1 } } })).status, 201);
    await waitFor(async () => (await request(gw.url('/hello'), { headers: { apikey: 'cred-key' } })).status === 200, 5000, 'the credential to work');
    const seen = JSON.parse((await request(gw.url('/hello'), { headers: { apikey: 'cred-key' } })).body);
    assert.equal(seen.headers['x-consumer-username'], 'jack');
    assert.equal((await adminCall(adminPort, 'DELETE', '/consumers/jack/credentials/key-1')).status, 200);
    await waitFor(async () => (await request(gw.url('/hello'), { headers: { apikey: 'cred-key' } })).status === 401, 5000, 'the credential to be gone');
    assertRejected(await request(gw.url('/hello'), { headers: { apikey: 'cred-key' } }), 401, 'Invalid API key in request', 'apikey realm="key"');
  });
});
