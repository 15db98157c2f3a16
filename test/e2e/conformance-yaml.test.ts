// Cases from APISIX's t/config-center-yaml/*.t (standalone file mode): where a route's upstream comes
// from when route and service name several, and what a missing reference answers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

describe('conformance: t/config-center-yaml route-service.t and route-upstream.t', () => {
  let gw: Gateway;
  let live: Upstream;
  let dead: string;
  let round = 0;

  before(async () => {
    live = await startUpstream((_req, res) => res.end('hello world\n'));
    dead = `127.0.0.1:${await freePort()}`;
    gw = await startGateway();
  });

  after(async () => {
    await gw?.stop();
    await live?.close();
  });

  /** Writes the file plus a marker route and waits until the marker answers, so the new file is live. */
  async function apply(content: Record<string, unknown[]>): Promise<void> {
    const marker = `/__yaml/${++round}`;
    const routes = [...(content.routes ?? []), { id: `marker-${round}`, uri: marker, upstream: { nodes: { [live.node]: 1 } } }];
    gw.writeRoutes({ ...content, routes });
    await waitFor(async () => (await request(gw.url(marker))).status === 200, 5000, 'file applied');
  }

  const up = (node: string) => ({ nodes: { [node]: 1 }, type: 'roundrobin' });

  it('route-upstream.t TEST 1: a route with upstream_id', async () => {
    await apply({ routes: [{ id: 1, uri: '/hello', upstream_id: 1 }], upstreams: [{ id: 1, ...up(live.node) }] });
    assert.equal((await request(gw.url('/hello'))).body, 'hello world\n');
  });

  it('route-upstream.t TEST 2: an upstream_id that names nothing answers 5xx', async () => {
    await apply({ routes: [{ id: 1, uri: '/hello', upstream_id: 1111 }], upstreams: [{ id: 1, ...up(live.node) }] });
    const res = await request(gw.url('/hello'));
    assert.match(String(res.status), /^50\d$/);
    await waitFor(() => /failed to find upstream by id: 1111/.test(gw.output()), 3000, 'error log');
  });

  it('route-upstream.t TEST 3: upstream_id beats the inline upstream', async () => {
    await apply({ routes: [{ id: 1, uri: '/hello', upstream_id: 1, upstream: up(dead) }], upstreams: [{ id: 1, ...up(live.node) }] });
    assert.equal((await request(gw.url('/hello'))).body, 'hello world\n');
  });

  it('route-service.t TEST 1: a route with a service', async () => {
    await apply({ routes: [{ id: 1, uri: '/hello', service_id: 1 }], services: [{ id: 1, upstream: up(live.node) }] });
    assert.equal((await request(gw.url('/hello'))).body, 'hello world\n');
  });

  it('route-service.t TEST 2: a service that does not exist answers 404', async () => {
    await apply({ routes: [{ id: 1, uri: '/hello', service_id: 1111 }], services: [{ id: 1, upstream: up(live.node) }] });
    assert.equal((await request(gw.url('/hello'))).status, 404);
    await waitFor(() => /failed to fetch service configuration by id: 1111/.test(gw.output()), 3000, 'error log');
  });

  it("route-service.t TEST 3: the service's upstream_id beats its inline upstream", async () => {
    await apply({ routes: [{ id: 1, uri: '/hello', service_id: 1 }], services: [{ id: 1, upstream: up(dead), upstream_id: 1 }], upstreams: [{ id: 1, ...up(live.node) }] });
    assert.equal((await request(gw.url('/hello'))).body, 'hello world\n');
  });

  it("route-service.t TEST 4 and 6: the route's inline upstream beats the service's", async () => {
    await apply({ routes: [{ id: 1, uri: '/hello', service_id: 1, upstream: up(live.node) }], services: [{ id: 1, upstream: up(dead), upstream_id: 1 }], upstreams: [{ id: 1, ...up(dead) }] });
    assert.equal((await request(gw.url('/hello'))).body, 'hello world\n');
  });

  it("route-service.t TEST 5: the route's upstream_id beats everything", async () => {
    await apply({ routes: [{ id: 1, uri: '/hello', service_id: 1, upstream: up(dead), upstream_id: 1 }], services: [{ id: 1, upstream: up(dead) }], upstreams: [{ id: 1, ...up(live.node) }] });
    assert.equal((await request(gw.url('/hello'))).body, 'hello world\n');
  });

  it('route-service.t TEST 8: a service with a bad plugin is left out, so its routes answer 404', async () => {
    // a fresh service id: an invalid item that was valid before keeps its last good version (docs/compat.md)
    await apply({ routes: [{ id: 1, uri: '/hello', service_id: 8 }], services: [{ id: 8, plugins: { 'proxy-rewrite': { uri: 1 } }, upstream: up(live.node) }] });
    assert.equal((await request(gw.url('/hello'))).status, 404);
  });
});
