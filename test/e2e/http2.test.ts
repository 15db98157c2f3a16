// HTTP/2 from clients: ALPN h2 next to HTTP/1.1 on the TLS port, prior-knowledge h2c next to
// HTTP/1.1 on the plain port, checked with Node's http2 client, curl and nghttp2's client. The route,
// plugin and upstream logic is the same whatever the client speaks; `enable_http2: false` keeps
// both ports on HTTP/1.1.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { rawExchange, request, sleep, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

const execFileAsync = promisify(execFile);

/** A self-signed certificate for `name`, made with openssl. */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  execFileSync('openssl', [
    'req', '-x509', '-nodes', '-newkey', 'rsa:2048', '-days', '2', '-subj', `/CN=${name}`,
    '-addext', `subjectAltName=DNS:${name}`, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`),
  ], { stdio: 'ignore' });
  return { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
}

interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on an HTTP/2 session; `body` may be a list of chunks (sent without Content-Length). */
function h2request(session: http2.ClientHttp2Session, path: string, options: { method?: string; headers?: http2.OutgoingHttpHeaders; body?: Buffer | Buffer[] } = {}): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = { ':method': options.method ?? 'GET', ':path': path, ...options.headers };
    if (Buffer.isBuffer(options.body)) headers['content-length'] = options.body.length;
    const stream = session.request(headers, { endStream: options.body === undefined });
    const chunks: Buffer[] = [];
    let status = 0;
    let replyHeaders: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => {
      status = Number(h[':status']);
      replyHeaders = h;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, headers: replyHeaders, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    stream.setTimeout(20_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    if (Array.isArray(options.body)) {
      (async () => {
        for (const chunk of options.body as Buffer[]) {
          if (!stream.write(chunk)) await new Promise((r) => stream.once('drain', r));
        }
        stream.end();
      })().catch(reject);
    } else if (options.body) {
      stream.end(options.body);
    }
  });
}

function connectTls(port: number, servername: string): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${port}`, { servername, rejectUnauthorized: false });
  session.on('error', () => {});
  return session;
}

function connectH2c(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  return session;
}

async function curl(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('curl', ['-s', '--max-time', '20', ...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

async function nghttp(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('nghttp', ['-t', '20', ...args], { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    // nghttp exits non-zero on some stream errors; its output still tells what happened
    return (err as { stdout?: string }).stdout ?? '';
  }
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('HTTP/2 from clients, next to HTTP/1.1', () => {
  let dir: string;
  let cert: { cert: string; key: string };
  let up: Upstream;
  let gw: Gateway;
  const name = 'h2.test';
  /** Slow streamed answers the client may cut: how many of them the upstream saw end early. */
  const slow = { started: 0, closedEarly: 0 };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causeway-h2-'));
    cert = selfSigned(dir, name);
    up = await startUpstream((req, res, body) => {
      const url = req.url!;
      if (url.startsWith('/status/')) {
        res.writeHead(Number(url.slice(8)), { 'Content-Type': 'text/plain' });
        res.end('as asked');
        return;
      }
      if (url.startsWith('/big/')) {
        const size = Number(url.slice(5));
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size, 'X-Sha': sha(Buffer.alloc(size, 7)) });
        res.end(Buffer.alloc(size, 7));
        return;
      }
      if (url === '/hop') {
        // HTTP/1 connection headers an HTTP/2 response must not carry
        res.writeHead(200, { 'Content-Type': 'text/plain', Connection: 'keep-alive, X-Hop', 'Keep-Alive': 'timeout=5', 'X-Hop': 'gone', 'Proxy-Connection': 'x', 'X-Kept': 'yes' });
        res.end('hop');
        return;
      }
      if (url === '/slow') {
        slow.started++;
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('first\n');
        let n = 0;
        const timer = setInterval(() => {
          if (++n > 30) {
            clearInterval(timer);
            res.end('last\n');
          } else {
            res.write(`tick ${n}\n`);
          }
        }, 100);
        res.on('close', () => {
          clearInterval(timer);
          if (!res.writableFinished) slow.closedEarly++;
        });
        return;
      }
      const text = JSON.stringify({ method: req.method, url, headers: req.headers, rawHeaders: req.rawHeaders, size: body.length, sha: sha(body) });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    });
    gw = await startGateway({
      tls: true,
      config: { apisix: { ssl: { fallback_sni: name } }, nginx_config: { http: { client_max_body_size: '10m' } } },
      routes: {
        ssls: [{ id: 'h2', ...cert, snis: [name] }],
        consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'k-jack' } } }],
        routes: [
          { id: 'proto', uri: '/proto', vars: [['server_protocol', '==', 'HTTP/2.0']], plugins: { 'proxy-rewrite': { uri: '/seen-as-h2' } }, upstream: { nodes: { [up.node]: 1 } } },
          { id: 'auth', uri: '/auth/*', plugins: { 'key-auth': {}, 'proxy-rewrite': { headers: { 'X-Added': 'by-plugin' } } }, upstream: { nodes: { [up.node]: 1 } } },
          { id: 'mirror', uri: '/mirror/*', plugins: { 'proxy-mirror': { host: `http://${up.node}`, path: '/mirrored' } }, upstream: { nodes: { [up.node]: 1 } } },
          { id: 'dead', uri: '/dead', upstream: { nodes: { '127.0.0.1:1': 1 } } },
          { id: 'ws', uri: '/ws', enable_websocket: true, upstream: { nodes: { [up.node]: 1 } } },
          { id: 'all', uri: '/*', upstream: { nodes: { [up.node]: 1 } } },
        ],
      },
    });
    await waitFor(async () => (await request(gw.url('/ready'))).status === 200, 10_000, 'routes');
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('Node http2 client over TLS (ALPN h2): proxied to the HTTP/1.1 node with :authority as Host and no pseudo-headers', async () => {
    const session = connectTls(gw.sslPort, name);
    try {
      const r = await h2request(session, '/echo/a?b=1', { headers: { ':authority': `${name}:${gw.sslPort}`, 'x-client': 'h2' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.server, 'Causeway/0.1.0');
      assert.equal(r.headers.connection, undefined);
      const seen = JSON.parse(r.body.toString());
      assert.equal(seen.url, '/echo/a?b=1');
      assert.equal(seen.headers.host, `${name}:${gw.sslPort}`);
      assert.equal(seen.headers['x-client'], 'h2');
      assert.equal(seen.headers['x-forwarded-proto'], 'https');
      assert.ok(!seen.rawHeaders.some((h: string) => h.startsWith(':')), `pseudo-headers forwarded: ${seen.rawHeaders}`);
      // $server_protocol is HTTP/2.0: a route conditioned on it matches
      assert.equal(JSON.parse((await h2request(session, '/proto')).body.toString()).url, '/seen-as-h2');
    } finally {
      session.close();
    }
    // ... and does not match over HTTP/1.1
    assert.equal(JSON.parse((await request(gw.url('/proto'))).body).url, '/proto');
  });

  it('curl: --http2 negotiates h2 and --http1.1 gets HTTP/1.1, on the same TLS port', async () => {
    const base = ['-k', '--resolve', `${name}:${gw.sslPort}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}'];
    assert.equal(await curl([...base, '--http2', `https://${name}:${gw.sslPort}/x`]), '2 200');
    assert.equal(await curl([...base, '--http1.1', `https://${name}:${gw.sslPort}/x`]), '1.1 200');
  });

  it('nghttp over TLS negotiates h2', async () => {
    const out = await nghttp(['-nv', `https://127.0.0.1:${gw.sslPort}/ng`]);
    assert.match(out, /negotiated protocol: h2/);
    assert.match(out, /:status: 200/);
  });

  it('h2c with prior knowledge and HTTP/1.1 on the same plain port (curl, nghttp, Node)', async () => {
    const base = ['-o', '/dev/null', '-w', '%{http_version} %{http_code}'];
    assert.equal(await curl([...base, '--http2-prior-knowledge', gw.url('/c')]), '2 200');
    assert.equal(await curl([...base, gw.url('/c')]), '1.1 200');
    const out = await nghttp(['-nv', gw.url('/n')]);
    assert.match(out, /:status: 200/);
    assert.match(out, /server: Causeway/);
    const session = connectH2c(gw.port);
    try {
      const r = await h2request(session, '/h2c');
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body.toString()).headers['x-forwarded-proto'], 'http');
      assert.equal(JSON.parse((await h2request(session, '/proto')).body.toString()).url, '/seen-as-h2');
    } finally {
      session.close();
    }
  });

  it('route plugins run the same over HTTP/2: key-auth refuses without a key, proxy-rewrite sets headers, proxy-mirror copies', async () => {
    for (const session of [connectTls(gw.sslPort, name), connectH2c(gw.port)]) {
      try {
        const refused = await h2request(session, '/auth/x');
        assert.equal(refused.status, 401);
        assert.deepEqual(JSON.parse(refused.body.toString()), { message: 'Missing API key in request' });
        const ok = await h2request(session, '/auth/x', { headers: { apikey: 'k-jack' } });
        assert.equal(ok.status, 200);
        const seen = JSON.parse(ok.body.toString());
        assert.equal(seen.headers['x-added'], 'by-plugin');
        assert.equal(seen.headers['x-consumer-username'], 'jack');
      } finally {
        session.close();
      }
    }
    const session = connectH2c(gw.port);
    try {
      assert.equal((await h2request(session, '/mirror/x', { headers: { 'x-mirror': 'copy-me' } })).status, 200);
      await waitFor(() => up.seen.some((r) => r.url === '/mirrored' && r.headers['x-mirror'] === 'copy-me'), 5000, 'the mirrored copy');
    } finally {
      session.close();
    }
  });

  it('upstream statuses, X-APISIX-Upstream-Status and the gateway\'s own 502 over HTTP/2', async () => {
    const session = connectTls(gw.sslPort, name);
    try {
      const r503 = await h2request(session, '/status/503');
      assert.equal(r503.status, 503);
      assert.equal(r503.body.toString(), 'as asked');
      assert.equal(r503.headers['x-apisix-upstream-status'], '503');
      assert.equal((await h2request(session, '/status/404')).status, 404);
      const dead = await h2request(session, '/dead');
      assert.equal(dead.status, 502);
      assert.equal(dead.headers['x-apisix-upstream-status'], '502');
      assert.match(dead.body.toString(), /502 Bad Gateway/);
    } finally {
      session.close();
    }
  });

  it('connection headers of the node and of the gateway\'s own answers never reach an HTTP/2 client', async () => {
    const session = connectH2c(gw.port);
    try {
      const r = await h2request(session, '/hop');
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'hop');
      assert.equal(r.headers['x-kept'], 'yes');
      for (const h of ['connection', 'keep-alive', 'proxy-connection', 'x-hop', 'transfer-encoding']) assert.equal(r.headers[h], undefined, h);
      // The 413 for a declared body over client_max_body_size says Connection: close on HTTP/1.1.
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/upload', 'content-length': String(20 * 1024 * 1024) });
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
      assert.equal(status, 413);
      assert.equal((await h2request(session, '/after-413')).status, 200);
    } finally {
      session.close();
    }
  });

  it('large bodies both ways: uploads with and without Content-Length, a 3 MB download', async () => {
    const session = connectTls(gw.sslPort, name);
    try {
      const body = Buffer.alloc(4 * 1024 * 1024 + 123);
      for (let i = 0; i < body.length; i++) body[i] = 97 + (i % 26);
      const sized = await h2request(session, '/upload', { method: 'POST', body });
      assert.equal(sized.status, 200);
      assert.deepEqual([JSON.parse(sized.body.toString()).size, JSON.parse(sized.body.toString()).sha], [body.length, sha(body)]);
      const chunks: Buffer[] = [];
      for (let i = 0; i < body.length; i += 300_000) chunks.push(body.subarray(i, i + 300_000));
      const streamed = await h2request(session, '/upload', { method: 'POST', body: chunks });
      assert.equal(streamed.status, 200);
      const seen = JSON.parse(streamed.body.toString());
      assert.deepEqual([seen.size, seen.sha], [body.length, sha(body)]);
      const down = await h2request(session, `/big/${3 * 1024 * 1024}`);
      assert.equal(down.status, 200);
      assert.equal(down.body.length, 3 * 1024 * 1024);
      assert.equal(sha(down.body), down.headers['x-sha']);
    } finally {
      session.close();
    }
    // curl over h2c: a 2 MB upload
    const file = join(dir, 'upload.bin');
    writeFileSync(file, Buffer.alloc(2 * 1024 * 1024, 3));
    const seen = JSON.parse(await curl(['--http2-prior-knowledge', '--data-binary', `@${file}`, gw.url('/curl-upload')]));
    assert.equal(seen.size, 2 * 1024 * 1024);
  });

  it('a client resetting its stream, or dropping its connection, mid-response does not disturb the worker', async () => {
    const before = slow.closedEarly;
    for (const how of ['reset', 'drop'] as const) {
      const session = connectH2c(gw.port);
      await new Promise<void>((resolve, reject) => {
        const stream = session.request({ ':path': '/slow' });
        stream.on('error', () => {});
        stream.once('data', () => {
          if (how === 'reset') stream.close(http2.constants.NGHTTP2_CANCEL);
          else session.destroy();
          resolve();
        });
        stream.setTimeout(10_000, () => reject(new Error('no data')));
      });
      if (how === 'reset') {
        // the connection stays usable
        assert.equal((await h2request(session, '/after-reset')).status, 200);
        session.close();
      }
    }
    await waitFor(() => slow.closedEarly >= before + 2, 10_000, 'the node to see both answers cut');
    for (let i = 0; i < 3; i++) assert.equal((await request(gw.url(`/after-${i}`))).status, 200);
    assert.doesNotMatch(gw.output(), /uncaught|exited/i);
  });

  it('WebSocket upgrades still work over HTTP/1.1 on the TLS port', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(426);
      res.end();
    });
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo:${m}`)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const node = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const local = await startGateway({
      tls: true,
      config: { apisix: { ssl: { fallback_sni: name } } },
      routes: { ssls: [{ id: 'h2', ...cert, snis: [name] }], routes: [{ id: 'ws', uri: '/ws', enable_websocket: true, upstream: { nodes: { [node]: 1 } } }] },
    });
    try {
      await waitFor(async () => (await request(local.url('/ws'))).status === 426, 10_000, 'routes');
      const ws = new WebSocket(`wss://127.0.0.1:${local.sslPort}/ws`, { servername: name, rejectUnauthorized: false });
      const reply = await new Promise<string>((resolve, reject) => {
        ws.once('open', () => ws.send('over-tls'));
        ws.once('message', (m) => resolve(m.toString()));
        ws.once('error', reject);
      });
      assert.equal(reply, 'echo:over-tls');
      ws.close();
    } finally {
      await local.stop();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('stopping the gateway sends GOAWAY to HTTP/2 clients and lets their open streams finish', async () => {
    const local = await startGateway({ routes: { routes: [{ id: 'all', uri: '/*', upstream: { nodes: { [up.node]: 1 } } }] } });
    await waitFor(async () => (await request(local.url('/ready'))).status === 200, 10_000, 'routes');
    const session = connectH2c(local.port);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const pending = h2request(session, '/slow');
    await sleep(300);
    const stopped = local.stop();
    const r = await pending;
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /last\n$/);
    assert.ok(goaway, 'no GOAWAY');
    await stopped;
  });
});

describe('enable_http2: false', () => {
  let dir: string;
  let up: Upstream;
  let gw: Gateway;
  const name = 'h1.test';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causeway-h1-'));
    const cert = selfSigned(dir, name);
    up = await startUpstream();
    gw = await startGateway({
      tls: true,
      config: { apisix: { enable_http2: false, ssl: { fallback_sni: name } } },
      routes: { ssls: [{ id: 'h1', ...cert, snis: [name] }], routes: [{ id: 'all', uri: '/*', upstream: { nodes: { [up.node]: 1 } } }] },
    });
    await waitFor(async () => (await request(gw.url('/ready'))).status === 200, 10_000, 'routes');
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the TLS port offers only http/1.1 by ALPN', async () => {
    const alpn = await new Promise<string | false>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: gw.sslPort, servername: name, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(socket.alpnProtocol ?? false);
        socket.end();
      });
      socket.once('error', reject);
    });
    assert.equal(alpn, 'http/1.1');
    assert.equal(await curl(['-k', '--http2', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://127.0.0.1:${gw.sslPort}/x`]), '1.1 200');
  });

  it('the plain port does not speak h2c: the preface gets an HTTP/1.1 error', async () => {
    const ex = await rawExchange(gw.port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', { timeoutMs: 5000 });
    assert.match(ex.data.toString('latin1'), /^HTTP\/1\.1 400 /);
    assert.equal(await curl(['-o', '/dev/null', '-w', '%{http_version} %{http_code}', gw.url('/x')]), '1.1 200');
  });
});
