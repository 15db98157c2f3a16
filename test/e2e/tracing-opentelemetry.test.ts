// Black-box tests of the opentelemetry plugin: the built gateway exports to an OTLP/HTTP collector
// started here, whose requests are decoded (protobuf with test/fixtures/otlp/traces.proto, or
// OTLP/JSON). Cases follow apache/apisix t/plugin/opentelemetry*.t and the W3C Trace Context rules,
// plus Causeway's CLIENT spans for the upstream tries.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { startOtlpCollector, type OtlpCollector, type ReceivedSpan } from '../helpers/collectors.ts';
import { freePort, request, serverTracker, sleep, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
let counter = 0;
/** A fresh trace id for each request of these tests. */
function traceId(): string {
  counter++;
  return `${TRACE.slice(0, 24)}${counter.toString(16).padStart(8, '0')}`;
}
const PARENT = '00f067aa0ba902b7';

function upstreamTraceparent(body: string): string {
  return JSON.parse(body).headers.traceparent as string;
}

async function spansOf(collector: OtlpCollector, id: string, count: number): Promise<ReceivedSpan[]> {
  await waitFor(() => collector.spansOf(id).length >= count, 10_000, `${count} span(s) of trace ${id}`);
  return collector.spansOf(id);
}

const SERVER = 2;
const CLIENT = 3;

describe('opentelemetry', () => {
  const servers = serverTracker();
  let collector: OtlpCollector;
  let up: Upstream;
  let failing: Upstream;
  let gw: Gateway;
  let deadPort: number;

  before(async () => {
    collector = servers.keep(await startOtlpCollector());
    up = servers.keep(await startUpstream());
    failing = servers.keep(
      await startUpstream((_req, res) => {
        res.writeHead(503, { 'Content-Type': 'text/plain' });
        res.end('unavailable');
      }),
    );
    deadPort = await freePort();
    const otel = (sampler: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ opentelemetry: { sampler, ...extra } });
    const upstream = { type: 'roundrobin', nodes: { [up.node]: 1 } };
    gw = await startGateway({
      config: {
        plugins: ['opentelemetry', 'proxy-rewrite'],
        plugin_attr: {
          opentelemetry: {
            trace_id_source: 'random',
            resource: { 'service.name': 'edge-gateway', 'deployment.environment': 'test', build: 7, canary: true },
            collector: { address: collector.address, request_timeout: 2, request_headers: { 'X-Collector-Token': 'secret' } },
            batch_span_processor: { batch_timeout: 0.2, inactive_timeout: 0.1, max_export_batch_size: 64 },
          },
        },
      },
      routes: {
        services: [{ id: 'svc-billing', name: 'billing' }],
        routes: [
          {
            id: 'r-on',
            name: 'traced',
            uri: '/on',
            service_id: 'svc-billing',
            plugins: otel({ name: 'always_on' }, { additional_attributes: ['remote_addr', 'arg_user', 'http_x_tenant', 'route_id', 'arg_absent'], additional_header_prefix_attributes: ['x-meta-*', 'X-Single'] }),
            upstream,
          },
          { id: 'r-wild', uri: '/wild/*', plugins: otel({ name: 'always_on' }), upstream },
          { id: 'r-off', uri: '/off', plugins: otel({ name: 'always_off' }), upstream },
          { id: 'r-default', uri: '/default', plugins: { opentelemetry: {} }, upstream },
          { id: 'r-ratio0', uri: '/ratio0', plugins: otel({ name: 'trace_id_ratio', options: { fraction: 0 } }), upstream },
          { id: 'r-ratio1', uri: '/ratio1', plugins: otel({ name: 'trace_id_ratio', options: { fraction: 1 } }), upstream },
          { id: 'r-parent', uri: '/parent', plugins: otel({ name: 'parent_base' }), upstream },
          { id: 'r-parent-root-on', uri: '/parent-root-on', plugins: otel({ name: 'parent_base', options: { root: { name: 'always_on' } } }), upstream },
          { id: 'r-fail', uri: '/fail', plugins: otel({ name: 'always_on' }), upstream: { type: 'roundrobin', nodes: { [failing.node]: 1 } } },
          {
            id: 'r-retry',
            uri: '/retry',
            plugins: otel({ name: 'always_on' }),
            upstream: {
              type: 'roundrobin',
              retries: 1,
              nodes: [
                { host: '127.0.0.1', port: deadPort, weight: 1, priority: 10 },
                { host: '127.0.0.1', port: up.port, weight: 1, priority: 0 },
              ],
            },
          },
          { id: 'r-exit', uri: '/exit', plugins: { ...otel({ name: 'always_on' }), 'proxy-rewrite': { uri: '/rewritten' } }, upstream },
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await servers.closeAll();
  });

  it('exports a SERVER span for the request and a CLIENT span for the upstream call, continuing the incoming trace', async () => {
    const id = traceId();
    const r = await request(gw.url('/on?user=alice'), {
      headers: {
        traceparent: `00-${id}-${PARENT}-01`,
        tracestate: 'vendor=opaque',
        'user-agent': 'tracing-test/1.0',
        'x-tenant': 'acme',
        'x-meta-region': 'eu',
        'x-meta-zone': 'b',
        'x-single': 'one',
      },
    });
    assert.equal(r.status, 200);
    const sent = upstreamTraceparent(r.body);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(sent);
    assert.ok(m, `upstream traceparent ${sent}`);
    assert.equal(m[1], id, 'the upstream continues the same trace');
    assert.equal(JSON.parse(r.body).headers.tracestate, 'vendor=opaque');

    const spans = await spansOf(collector, id, 2);
    assert.equal(spans.length, 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    const client = spans.find((s) => s.kind === CLIENT)!;
    assert.ok(server && client, 'one SERVER and one CLIENT span');

    assert.equal(server.name, 'GET /on');
    assert.equal(server.parentSpanId, PARENT, "the SERVER span's parent is the client's span");
    assert.equal(server.traceState, 'vendor=opaque');
    assert.equal(server.flags & 0xff, 1);
    assert.equal(server.status.code, 0);
    assert.deepEqual(server.attributes, {
      'net.host.name': '127.0.0.1',
      'http.method': 'GET',
      'http.scheme': 'http',
      'http.target': '/on?user=alice',
      'http.user_agent': 'tracing-test/1.0',
      'apisix.route_id': 'r-on',
      'apisix.route_name': 'traced',
      'http.route': '/on',
      'apisix.service_id': 'svc-billing',
      'apisix.service_name': 'billing',
      remote_addr: '127.0.0.1',
      arg_user: 'alice',
      http_x_tenant: 'acme',
      route_id: 'r-on',
      'x-meta-region': 'eu',
      'x-meta-zone': 'b',
      'X-Single': 'one',
      'http.status_code': 200,
      'http.response.status_code': 200,
    });

    assert.equal(client.name, 'GET');
    assert.equal(client.parentSpanId, server.spanId, "the CLIENT span's parent is the SERVER span");
    assert.equal(client.spanId, m[2], "the upstream's parent is the CLIENT span");
    assert.equal(client.attributes['net.peer.ip'], '127.0.0.1');
    assert.equal(client.attributes['net.peer.port'], up.port);
    assert.equal(client.attributes['http.status_code'], 200);
    assert.equal(client.attributes['http.target'], '/on?user=alice');
    assert.ok(client.startNanos >= server.startNanos && client.endNanos <= server.endNanos, 'the upstream call lies within the request');
    assert.ok(server.endNanos > server.startNanos);
    // wall-clock nanoseconds
    const nowNanos = BigInt(Date.now()) * 1_000_000n;
    assert.ok(server.startNanos > nowNanos - 60_000_000_000n && server.startNanos <= nowNanos);
  });

  it('POSTs protobuf to /v1/traces with the request headers and resource of plugin_attr', async () => {
    const id = traceId();
    await request(gw.url('/on'), { headers: { traceparent: `00-${id}-${PARENT}-01` } });
    await spansOf(collector, id, 2);
    const exp = collector.exportOf(id)!;
    assert.equal(exp.path, '/v1/traces');
    assert.equal(exp.headers['content-type'], 'application/x-protobuf');
    assert.equal(exp.headers['x-collector-token'], 'secret');
    assert.equal(exp.resource['service.name'], 'edge-gateway');
    assert.equal(exp.resource['deployment.environment'], 'test');
    assert.equal(exp.resource.build, 7);
    assert.equal(exp.resource.canary, true);
    assert.equal(exp.resource.hostname, hostname());
    assert.equal(exp.scope.name, 'causeway');
  });

  it('starts a new trace when the request has no traceparent, and names the span after the route path', async () => {
    const r = await request(gw.url('/wild/a/b'));
    assert.equal(r.status, 200);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(upstreamTraceparent(r.body));
    assert.ok(m);
    const spans = await spansOf(collector, m[1], 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    assert.equal(server.parentSpanId, '', 'a root span');
    assert.equal(server.name, 'GET /wild/*');
    assert.equal(server.attributes['http.route'], '/wild/*');
    assert.equal(server.attributes['apisix.route_id'], 'r-wild');
    assert.equal(server.attributes['apisix.route_name'], undefined);
    assert.equal(server.attributes['apisix.service_id'], undefined);
  });

  it('an invalid traceparent starts a new trace and its tracestate is not passed on', async () => {
    const r = await request(gw.url('/on'), { headers: { traceparent: `00-${'0'.repeat(32)}-${PARENT}-01`, tracestate: 'a=b' } });
    const body = JSON.parse(r.body);
    const m = /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(body.headers.traceparent);
    assert.ok(m);
    assert.notEqual(m[1], '0'.repeat(32));
    assert.equal(body.headers.tracestate, undefined);
    const server = (await spansOf(collector, m[1], 2)).find((s) => s.kind === SERVER)!;
    assert.equal(server.parentSpanId, '');
    assert.equal(server.traceState, '');
  });

  /** Sends a sampled request and waits for it: spans queued before it have been exported by then. */
  async function drain(): Promise<void> {
    const id = traceId();
    await request(gw.url('/on'), { headers: { traceparent: `00-${id}-${PARENT}-01` } });
    await spansOf(collector, id, 2);
  }

  it('always_off (the default) exports nothing but still propagates the trace, unsampled', async () => {
    for (const path of ['/off', '/default']) {
      const id = traceId();
      const r = await request(gw.url(path), { headers: { traceparent: `00-${id}-${PARENT}-01` } });
      assert.equal(r.status, 200);
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(upstreamTraceparent(r.body));
      assert.ok(m, `${path}: ${upstreamTraceparent(r.body)}`);
      assert.equal(m[1], id);
      assert.notEqual(m[2], PARENT, 'the gateway is the new parent');
      await drain();
      assert.equal(collector.spansOf(id).length, 0, `${path}: nothing exported`);
    }
  });

  it('trace_id_ratio samples nothing with fraction 0 and everything with fraction 1', async () => {
    const none = traceId();
    const all = traceId();
    const r0 = await request(gw.url('/ratio0'), { headers: { traceparent: `00-${none}-${PARENT}-01` } });
    assert.match(upstreamTraceparent(r0.body), /-00$/);
    const r1 = await request(gw.url('/ratio1'), { headers: { traceparent: `00-${all}-${PARENT}-00` } });
    assert.match(upstreamTraceparent(r1.body), /-01$/);
    assert.equal((await spansOf(collector, all, 2)).length, 2);
    await drain();
    assert.equal(collector.spansOf(none).length, 0);
  });

  it("parent_base follows the parent's sampled flag, and the root sampler without a parent", async () => {
    const sampled = traceId();
    const unsampled = traceId();
    await request(gw.url('/parent'), { headers: { traceparent: `00-${sampled}-${PARENT}-01` } });
    const r = await request(gw.url('/parent'), { headers: { traceparent: `00-${unsampled}-${PARENT}-00` } });
    assert.match(upstreamTraceparent(r.body), new RegExp(`^00-${unsampled}-[0-9a-f]{16}-00$`));
    const rootOff = /^00-([0-9a-f]{32})-/.exec(upstreamTraceparent((await request(gw.url('/parent'))).body))![1];
    const rootOn = /^00-([0-9a-f]{32})-/.exec(upstreamTraceparent((await request(gw.url('/parent-root-on'))).body))![1];
    const server = (await spansOf(collector, sampled, 2)).find((s) => s.kind === SERVER)!;
    assert.equal(server.parentSpanId, PARENT);
    await spansOf(collector, rootOn, 2);
    await drain();
    assert.equal(collector.spansOf(unsampled).length, 0, 'an unsampled parent: not exported');
    assert.equal(collector.spansOf(rootOff).length, 0, 'no parent, root always_off: not exported');
  });

  it('marks the spans as errors when the upstream answers 5xx', async () => {
    const id = traceId();
    const r = await request(gw.url('/fail'), { headers: { traceparent: `00-${id}-${PARENT}-01` } });
    assert.equal(r.status, 503);
    const spans = await spansOf(collector, id, 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    const client = spans.find((s) => s.kind === CLIENT)!;
    assert.deepEqual(server.status, { code: 2, message: 'upstream response status: 503' });
    assert.equal(server.attributes['http.status_code'], 503);
    assert.equal(client.status.code, 2);
    assert.equal(client.attributes['http.status_code'], 503);
  });

  it('gives every try to a node its own CLIENT span', async () => {
    const id = traceId();
    const r = await request(gw.url('/retry'), { headers: { traceparent: `00-${id}-${PARENT}-01` } });
    assert.equal(r.status, 200);
    const sentSpan = upstreamTraceparent(r.body).split('-')[2];
    const spans = await spansOf(collector, id, 3);
    const server = spans.find((s) => s.kind === SERVER)!;
    const clients = spans.filter((s) => s.kind === CLIENT).sort((a, b) => (a.startNanos < b.startNanos ? -1 : 1));
    assert.equal(clients.length, 2);
    assert.equal(clients[0].attributes['net.peer.port'], deadPort);
    assert.equal(clients[0].attributes['http.status_code'], 502);
    assert.equal(clients[0].status.code, 2);
    assert.equal(clients[1].attributes['net.peer.port'], up.port);
    assert.equal(clients[1].attributes['http.status_code'], 200);
    assert.equal(clients[1].status.code, 0);
    assert.equal(clients[1].spanId, sentSpan, 'the node that answered saw the second try as its parent');
    for (const c of clients) assert.equal(c.parentSpanId, server.spanId);
    assert.ok(clients[0].endNanos <= clients[1].startNanos);
    assert.equal(server.attributes['http.status_code'], 200);
  });

  it('the CLIENT span shows the request as sent upstream', async () => {
    const id = traceId();
    await request(gw.url('/exit?q=1'), { headers: { traceparent: `00-${id}-${PARENT}-01` } });
    const client = (await spansOf(collector, id, 2)).find((s) => s.kind === CLIENT)!;
    assert.equal(client.attributes['http.target'], '/rewritten?q=1');
  });
});

describe('opentelemetry: OTLP/JSON, batching, x-request-id trace ids, variables', () => {
  const servers = serverTracker();
  let collector: OtlpCollector;
  let up: Upstream;
  let gw: Gateway;

  before(async () => {
    collector = servers.keep(await startOtlpCollector());
    up = servers.keep(await startUpstream());
    gw = await startGateway({
      config: {
        plugins: ['opentelemetry', 'proxy-rewrite'],
        plugin_attr: {
          opentelemetry: {
            // trace_id_source is x-request-id by default
            collector: { address: `http://${collector.address}`, format: 'json' },
            // exported only when 8 spans (4 requests) are queued
            batch_span_processor: { max_export_batch_size: 8, batch_timeout: 600, inactive_timeout: 0.2, max_queue_size: 64 },
            set_ngx_var: true,
          },
        },
      },
      routes: {
        routes: [
          {
            id: 'json',
            uri: '/json',
            plugins: {
              opentelemetry: { sampler: { name: 'always_on' } },
              'proxy-rewrite': { headers: { set: { 'X-Trace-Id': '$opentelemetry_trace_id', 'X-Span-Id': '$opentelemetry_span_id', 'X-Traceparent': '$opentelemetry_context_traceparent' } } },
            },
            upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } },
          },
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await servers.closeAll();
  });

  it('batches four requests into one OTLP/JSON export; trace ids come from X-Request-Id; the variables are set', async () => {
    const ids = ['0f8fad5b-d9cb-469f-a165-70867728950e', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'c9bf9e57-1685-4c89-bafb-ff5af830be8a', '16fd2706-8baf-433b-82eb-8c7fada847da'];
    const bodies: Array<Record<string, any>> = [];
    for (const rid of ids) {
      const r = await request(gw.url('/json'), { headers: { 'x-request-id': rid } });
      assert.equal(r.status, 200);
      bodies.push(JSON.parse(r.body));
    }
    await waitFor(() => collector.exports.length >= 1, 10_000, 'one export');
    await sleep(300);
    assert.equal(collector.exports.length, 1, 'one export request for the four requests');
    const exp = collector.exports[0];
    assert.equal(exp.headers['content-type'], 'application/json');
    assert.equal(exp.path, '/v1/traces');
    assert.equal(exp.spans.length, 8);
    assert.equal(exp.resource['service.name'], 'APISIX');
    assert.equal(exp.headers.authorization, 'token', "APISIX's default request_headers");
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i].replace(/-/g, '');
      const spans = collector.spansOf(id);
      assert.equal(spans.length, 2, `trace ${id}`);
      const server = spans.find((s) => s.kind === 2)!;
      const h = bodies[i].headers;
      assert.equal(h['x-trace-id'], id);
      assert.equal(h['x-span-id'], server.spanId);
      assert.equal(h['x-traceparent'], `00-${id}-${server.spanId}-01`);
      assert.match(h.traceparent, new RegExp(`^00-${id}-[0-9a-f]{16}-01$`));
      assert.ok(server.startNanos > 0n && server.endNanos >= server.startNanos);
    }
  });
});

describe('opentelemetry: a collector that never answers', () => {
  const servers = serverTracker();
  let up: Upstream;
  let gw: Gateway;
  let blackhole: http.Server;
  const sockets = new Set<Socket>();
  let accepted = 0;

  before(async () => {
    up = servers.keep(await startUpstream());
    // Accepts connections and reads, never answers.
    blackhole = http.createServer(() => undefined);
    blackhole.on('connection', (s: Socket) => {
      accepted++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const port = (blackhole.address() as AddressInfo).port;
    gw = await startGateway({
      config: {
        plugins: ['opentelemetry'],
        plugin_attr: {
          opentelemetry: {
            collector: { address: `127.0.0.1:${port}`, request_timeout: 1 },
            batch_span_processor: { max_queue_size: 8, max_export_batch_size: 4, batch_timeout: 0.05, inactive_timeout: 0.05, drop_on_queue_full: false },
          },
        },
      },
      routes: {
        routes: [{ id: 'slow', uri: '/slow', plugins: { opentelemetry: { sampler: { name: 'always_on' } } }, upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } }],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => blackhole.close(() => resolve()));
    await servers.closeAll();
  });

  it('does not slow or fail requests: the queue stays bounded and spans are dropped', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    try {
      const statuses: number[] = [];
      // 200 requests, 8 at a time
      for (let round = 0; round < 25; round++) {
        const replies = await Promise.all(Array.from({ length: 8 }, () => request(gw.url('/slow'), { agent, timeoutMs: 5000 })));
        for (const r of replies) statuses.push(r.status);
      }
      assert.equal(statuses.length, 200);
      assert.ok(statuses.every((s) => s === 200), `statuses: ${[...new Set(statuses)].join(', ')}`);
    } finally {
      agent.destroy();
    }
    await waitFor(() => /opentelemetry: collector [^\n]*queue is full/.test(gw.output()), 10_000, 'the queue-full warning');
    assert.ok(accepted >= 1, 'the gateway tried the collector');
    await waitFor(() => /opentelemetry: collector [^\n]*failed to export/.test(gw.output()), 10_000, 'an export failure in the log');
    // still serving
    assert.equal((await request(gw.url('/slow'))).status, 200);
  });
});
