// Black-box tests of how the gateway copes with broken or unusual clients and upstreams (nginx
// semantics): malformed and oversized request heads, missing Host, slow headers, clients that
// abort, upstreams that send garbage or cut a body short, pipelining and concurrency. The gateway
// must answer the right status, never hang, and keep serving.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  parseRawResponses,
  rawExchange,
  request,
  startGateway,
  startRawUpstream,
  startUpstream,
  waitFor,
  type Gateway,
  type RawExchange,
  type RawUpstream,
  type Upstream,
} from '../helpers/gateway.ts';

/** The status code of the first response in a raw exchange, or undefined. */
function statusOf(ex: RawExchange): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(ex.data.toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

interface Outcome {
  status: number | undefined;
  bytes: number;
  /** The response ended normally with its whole body. */
  complete: boolean;
  error: string | undefined;
}

/** A GET that reports how the response ended instead of throwing. */
function fetchOutcome(url: string, timeoutMs = 10_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { status: undefined, bytes: 0, complete: false, error: undefined };
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(out);
    };
    const req = http.get(url, { agent: false }, (res) => {
      out.status = res.statusCode;
      res.on('data', (c: Buffer) => (out.bytes += c.length));
      res.on('end', () => {
        out.complete = res.complete;
        done();
      });
      res.on('aborted', () => {
        out.error ??= 'aborted';
      });
      res.on('error', (err) => {
        out.error ??= err.message;
        done();
      });
      res.on('close', done);
    });
    req.on('error', (err) => {
      out.error ??= err.message;
      done();
    });
    const timer = setTimeout(() => {
      out.error ??= 'timed out';
      req.destroy();
      done();
    }, timeoutMs);
  });
}

describe('broken clients and upstreams', () => {
  let gw: Gateway;
  let echo: Upstream;
  let slowStream: Upstream;
  const streamState = { started: 0, closedEarly: 0, finished: 0 };
  let raw: RawUpstream;

  before(async () => {
    echo = await startUpstream((req, res, body) => {
      const delay = Number(new URL(req.url!, 'http://x').searchParams.get('delay') ?? 0);
      setTimeout(() => {
        const text = JSON.stringify({ url: req.url, body });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
        res.end(text);
      }, delay);
    });
    // streams a chunk every 50 ms for up to 10 s
    slowStream = await startUpstream((_req, res) => {
      streamState.started++;
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      let n = 0;
      let over = false;
      const timer = setInterval(() => {
        if (n++ >= 200) {
          clearInterval(timer);
          over = true;
          streamState.finished++;
          res.end();
          return;
        }
        res.write(`chunk ${n}\n`);
      }, 50);
      res.on('close', () => {
        clearInterval(timer);
        if (!over) streamState.closedEarly++;
      });
    });
    raw = await startRawUpstream((socket, req) => {
      switch (req.url) {
        case '/bad/status-line':
          socket.end('FOO BAR BAZ\r\n\r\n');
          return;
        case '/bad/status-code':
          socket.end('HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n');
          return;
        case '/bad/header-line':
          socket.end('HTTP/1.1 200 OK\r\nthis is not a header\r\nContent-Length: 2\r\n\r\nok');
          return;
        case '/bad/huge-header':
          socket.end(`HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(100_000)}\r\nContent-Length: 2\r\n\r\nok`);
          return;
        case '/bad/cut-length':
          socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(100)}`);
          setTimeout(() => socket.destroy(), 100);
          return;
        case '/bad/cut-chunked':
          socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n' + 'y'.repeat(100) + '\r\n');
          setTimeout(() => socket.destroy(), 100);
          return;
        default:
          socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      }
    });
    gw = await startGateway({
      config: { nginx_config: { http: { client_header_timeout: '1s' } } },
      routes: {
        routes: [
          { id: 'echo', uri: '/echo/*', upstream: { nodes: { [echo.node]: 1 } } },
          { id: 'stream', uri: '/stream', upstream: { nodes: { [slowStream.node]: 1 } } },
          { id: 'bad', uri: '/bad/*', upstream: { nodes: { [raw.node]: 1 } } },
        ],
      },
    });
    await waitFor(async () => (await request(gw.url('/echo/ready'))).status === 200, 10_000, 'routes');
  });
  after(async () => {
    await gw?.stop();
    await echo?.close();
    await slowStream?.close();
    await raw?.close();
  });

  it('a malformed request line gets 400 and the connection is closed', async () => {
    const ex = await rawExchange(gw.port, 'GARBAGE\r\n\r\n', { timeoutMs: 5000 });
    assert.equal(statusOf(ex), 400);
    assert.ok(ex.closed, 'the connection was left open');
  });

  it('an oversized header (40 KB) gets 400 and the connection is closed', async () => {
    const ex = await rawExchange(gw.port, `GET /echo/x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`, { timeoutMs: 5000 });
    assert.equal(statusOf(ex), 400);
    assert.ok(ex.closed);
  });

  it('an oversized header sent in pieces still gets 400', async () => {
    const ex = await rawExchange(gw.port, [
      `GET /echo/x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100)}`,
      'a'.repeat(20_000),
      'a'.repeat(20_000),
      '\r\n\r\n',
    ], { timeoutMs: 5000, gapMs: 50 });
    assert.equal(statusOf(ex), 400);
    assert.ok(ex.closed);
  });

  it('an oversized request line (40 KB URI) gets 414 and the connection is closed', async () => {
    const ex = await rawExchange(gw.port, `GET /echo/${'a'.repeat(40_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, { timeoutMs: 5000 });
    assert.equal(statusOf(ex), 414);
    assert.ok(ex.closed);
  });

  it('an oversized request line sent in pieces still gets 414', async () => {
    const ex = await rawExchange(gw.port, [`GET /echo/${'a'.repeat(20_000)}`, `${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`], { timeoutMs: 5000, gapMs: 50 });
    assert.equal(statusOf(ex), 414);
    assert.ok(ex.closed);
  });

  it('HTTP/1.1 without Host gets 400', async () => {
    const ex = await rawExchange(gw.port, 'GET /echo/x HTTP/1.1\r\n\r\n', { timeoutMs: 5000 });
    assert.equal(statusOf(ex), 400);
    assert.ok(ex.closed);
  });

  it('a client that stalls in the middle of its head is cut off after client_header_timeout (1 s)', async () => {
    const ex = await rawExchange(gw.port, 'GET /echo/x HTTP/1.1\r\nHost: x\r\nX-Half', { timeoutMs: 12_000 });
    assert.ok(ex.closed, `still open after ${ex.elapsedMs} ms`);
    assert.ok(ex.elapsedMs < 8000, `closed only after ${ex.elapsedMs} ms`);
    const status = statusOf(ex);
    assert.ok(status === undefined || status === 408, `status ${status}`);
  });

  it('a client aborting mid-response does not disturb the gateway, and the upstream connection is dropped', async () => {
    const before = { ...streamState };
    await new Promise<void>((resolve, reject) => {
      const req = http.get(gw.url('/stream'), { agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.setTimeout(10_000, () => reject(new Error('no data')));
    });
    for (let i = 0; i < 5; i++) assert.equal((await request(gw.url(`/echo/after-abort-${i}`))).status, 200);
    await waitFor(() => streamState.closedEarly > before.closedEarly, 8000, 'the upstream stream to be closed');
    assert.equal(streamState.finished, before.finished);
  });

  for (const [path, what] of [
    ['/bad/status-line', 'a garbage status line'],
    ['/bad/status-code', 'a non-numeric status code'],
    ['/bad/header-line', 'a header line without a colon'],
    ['/bad/huge-header', 'a 100 KB response header'],
  ]) {
    it(`an upstream sending ${what} → 502`, async () => {
      // raw client: a response head too big for an HTTP client must not mask the status
      const ex = await rawExchange(gw.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { timeoutMs: 10_000 });
      assert.equal(statusOf(ex), 502, `got ${JSON.stringify(ex.data.toString('latin1', 0, 120))}${ex.data.length > 120 ? '…' : ''} (${ex.data.length} bytes)`);
    });
  }

  it('an upstream closing mid-body (Content-Length promised more) → the client sees a cut response; the gateway keeps serving', async () => {
    const out = await fetchOutcome(gw.url('/bad/cut-length'));
    assert.equal(out.status, 200);
    assert.equal(out.complete, false, `the response looked complete (${out.bytes} bytes)`);
    assert.ok(out.bytes <= 100, `${out.bytes} bytes`);
    for (let i = 0; i < 3; i++) assert.equal((await request(gw.url(`/echo/after-cut-${i}`))).status, 200);
  });

  it('an upstream closing mid-chunked-body → the client sees a cut response (no final chunk)', async () => {
    const out = await fetchOutcome(gw.url('/bad/cut-chunked'));
    assert.equal(out.status, 200);
    assert.equal(out.complete, false, `the response looked complete (${out.bytes} bytes)`);
    assert.ok(out.bytes <= 100);
    assert.equal((await request(gw.url('/echo/after-cut-chunked'))).status, 200);
  });

  it('pipelined requests on one connection are answered in order', async () => {
    const reqs = [
      'GET /echo/p1?delay=200 HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /echo/p2?delay=0 HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /echo/p3?delay=50 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
      'GET /echo/p4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ].join('');
    const ex = await rawExchange(gw.port, reqs, { timeoutMs: 10_000 });
    assert.ok(ex.closed);
    const { responses } = parseRawResponses(ex.data, ex.closed);
    assert.deepEqual(responses.map((r) => r.status), [200, 200, 200, 200]);
    const bodies = responses.map((r) => JSON.parse(r.body.toString()) as { url: string; body: string });
    assert.deepEqual(bodies.map((b) => b.url), ['/echo/p1?delay=200', '/echo/p2?delay=0', '/echo/p3?delay=50', '/echo/p4']);
    assert.equal(bodies[2].body, 'hello');
  });

  it('100 concurrent requests all succeed', async () => {
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => request(gw.url(`/echo/c${i}?delay=${i % 5}`), { timeoutMs: 20_000 })));
    assert.deepEqual(replies.map((r) => r.status), Array(100).fill(200));
    for (let i = 0; i < 100; i++) assert.equal(JSON.parse(replies[i].body).url, `/echo/c${i}?delay=${i % 5}`);
  });

  it('after all that the gateway process is alive and /status answers', async () => {
    assert.equal(gw.proc.exitCode, null);
    assert.equal(gw.proc.signalCode, null);
    const status = await request(`http://127.0.0.1:${gw.statusPort}/status`);
    assert.equal(status.status, 200);
    assert.equal((await request(gw.url('/echo/last'))).status, 200);
    assert.doesNotMatch(gw.output(), /uncaught exception/);
  });
});
