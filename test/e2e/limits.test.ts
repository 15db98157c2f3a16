// nginx_config.http.client_max_body_size: a declared body over the limit gets 413 before any route
// runs; a streamed (chunked) body that grows past it is refused with 413 too, and nothing over the
// limit reaches the upstream.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { request, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

describe('client_max_body_size', () => {
  let up: Upstream;
  let gw: Gateway;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      config: { nginx_config: { http: { client_max_body_size: '1k' } } },
      routes: { routes: [{ id: 1, uri: '/upload', upstream: { nodes: { [up.node]: 1 } } }] },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('passes a body within the limit', async () => {
    const res = await request(gw.url('/upload'), { method: 'POST', body: 'x'.repeat(1024) });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).body.length, 1024);
  });

  it('refuses a declared body over the limit with 413, before routing', async () => {
    const seen = up.seen.length;
    const res = await request(gw.url('/upload'), { method: 'POST', body: 'x'.repeat(1025) });
    assert.equal(res.status, 413);
    assert.match(res.body, /413 Request Entity Too Large|413 Payload Too Large/);
    assert.equal((await request(gw.url('/no-such-route'), { method: 'POST', body: 'x'.repeat(2000) })).status, 413);
    assert.equal(up.seen.length, seen);
  });

  it('refuses a chunked body that grows past the limit', async () => {
    const res = await new Promise<{ status: number }>((resolve, reject) => {
      const req = http.request(gw.url('/upload'), { method: 'POST', agent: false, headers: { 'Transfer-Encoding': 'chunked' } }, (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode! }));
      });
      req.on('error', reject);
      req.write('x'.repeat(600));
      setTimeout(() => req.end('y'.repeat(600)), 50);
    });
    assert.equal(res.status, 413);
    assert.equal((await request(gw.url('/upload'), { method: 'POST', body: 'ok' })).status, 200);
  });
});

describe('client_body_timeout and send_timeout', () => {
  let up: Upstream;
  let gw: Gateway;
  let bigAborted = false;

  before(async () => {
    // /big streams 64 MiB, far more than socket buffers hold, so a client that stops reading blocks it.
    up = await startUpstream((req, res) => {
      if (req.url !== '/big') return res.end('ok');
      res.writeHead(200, { 'Content-Length': String(64 << 20) });
      res.on('close', () => {
        if (!res.writableFinished) bigAborted = true;
      });
      const chunk = Buffer.alloc(1 << 20, 97);
      let sent = 0;
      const pump = () => {
        while (sent < 64) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    gw = await startGateway({
      config: { nginx_config: { http: { client_body_timeout: '1s', send_timeout: '1s' } } },
      routes: { routes: [{ id: 1, uri: '/*', upstream: { nodes: { [up.node]: 1 } } }] },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('answers 408 when the client stalls in the middle of its body', async () => {
    const started = Date.now();
    const res = await new Promise<{ status: number }>((resolve, reject) => {
      const req = http.request(gw.url('/slow-body'), { method: 'POST', agent: false, headers: { 'Content-Length': '100' } }, (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode! }));
      });
      req.on('error', reject);
      req.write('x'.repeat(10)); // then nothing more
    });
    assert.equal(res.status, 408);
    assert.ok(Date.now() - started < 10_000);
  });

  it('cuts a client that stops reading the response, and keeps serving others', async () => {
    // The client stops reading; once its window is full the gateway's writes block, and after
    // send_timeout it drops the exchange (the upstream sees its response cut).
    const req = http.get(gw.url('/big'), { agent: false }, (r) => r.pause());
    req.on('error', () => {});
    await waitFor(() => bigAborted, 15_000, 'the upstream response cut after send_timeout');
    req.destroy();
    assert.equal((await request(gw.url('/ok'))).status, 200);
  });
});
