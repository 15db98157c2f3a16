// nginx_config.http.client_max_body_size: a declared body over the limit gets 413 before any route
// runs; a streamed (chunked) body that grows past it is refused with 413 too, and nothing over the
// limit reaches the upstream.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { request, startGateway, startUpstream, type Gateway, type Upstream } from '../helpers/gateway.ts';

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
