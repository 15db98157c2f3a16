// The prometheus plugin and the export server: APISIX's metric names, types and labels, counts
// from two workers summed into one exposition, checked with Prometheus's own `promtool`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { request, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

/** The exposition lines of one metric (without HELP/TYPE). */
function lines(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

/** The value of the sample with exactly these labels. */
function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of lines(text, name)) {
    if (!line.includes('{')) {
      if (want.length === 0) return Number(line.slice(line.lastIndexOf(' ') + 1));
      continue;
    }
    const inner = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
    const pairs = inner.split(/,(?=[a-z_]+=")/);
    if (pairs.length === want.length && want.every((w) => pairs.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/**
 * Scrapes until `ready` holds: a request is counted in its log phase, which runs once the response
 * has been sent, so the client can be a moment ahead of the counters.
 */
async function scrapeWhen(gw: Gateway, ready: (body: string) => boolean, path?: string): Promise<string> {
  let body = '';
  await waitFor(async () => ready((body = (await scrape(gw, path)).body)), 5000, 'the expected counts');
  return body;
}

async function scrape(gw: Gateway, path = '/apisix/prometheus/metrics'): Promise<{ status: number; body: string; type: string | undefined }> {
  const r = await request(`http://127.0.0.1:${gw.metricsPort}${path}`);
  return { status: r.status, body: r.body, type: r.headers['content-type'] as string | undefined };
}

/**
 * `promtool check metrics` on the exposition. It exits 1 on a format error and 3 on lint findings;
 * APISIX's own names predate the naming rules: its counters `http_status` and `bandwidth` lack `_total`
 * and its gauge `http_requests_total` has it. Those findings, and only those, are expected.
 */
async function assertPromtoolAccepts(text: string, prefix: string): Promise<void> {
  const { code, out } = await promtool(text);
  const findings = out.split('\n').filter(Boolean);
  const expected = new Set([
    `${prefix}http_status counter metrics should have "_total" suffix`,
    `${prefix}bandwidth counter metrics should have "_total" suffix`,
    `${prefix}http_requests_total non-counter metrics should not have "_total" suffix`,
  ]);
  const unexpected = findings.filter((line) => !expected.has(line));
  assert.deepEqual(unexpected, [], out);
  assert.ok(code === 0 || (code === 3 && findings.length > 0), `promtool exited ${code}: ${out}`);
}

function promtool(text: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(text);
  });
}

describe('prometheus: per-request metrics across workers', () => {
  let up: Upstream;
  let gw: Gateway;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      workers: 2,
      metrics: true,
      routes: {
        routes: [
          { id: 'r1', name: 'named-route', uri: '/hello', plugins: { prometheus: {} }, upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } },
          { id: 'r2', name: 'by-name', uri: '/named/*', hosts: ['*.example.com'], service_id: 's1', plugins: { prometheus: { prefer_name: true } } },
          { id: 'r3', uri: '/down', plugins: { prometheus: {} }, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } },
          { id: 'plain', uri: '/plain', upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } },
        ],
        services: [{ id: 's1', name: 'named-service', upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } }],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('counts every request once, whichever worker served it', async () => {
    const n = 40;
    const answers = await Promise.all(Array.from({ length: n }, () => request(gw.url('/hello'), { headers: { Connection: 'close' } })));
    assert.ok(answers.every((r) => r.status === 200));
    for (let i = 0; i < 3; i++) assert.equal((await request(gw.url('/down'))).status, 502);
    for (let i = 0; i < 2; i++) assert.equal((await request(gw.url('/plain'))).status, 200);
    const node = up.node.split(':')[0];
    const { status, type } = await scrape(gw);
    const body = await scrapeWhen(gw, (text) => value(text, 'apisix_http_latency_count', { type: 'apisix', route: 'r1', service: '', consumer: '', node }) === n
      && value(text, 'apisix_http_status', { code: '502', route: 'r3', matched_uri: '/down', matched_host: '', service: '', consumer: '', node: '127.0.0.1' }) === 3);
    assert.equal(status, 200);
    assert.match(type ?? '', /^text\/plain/);
    assert.match(body, /# TYPE apisix_http_status counter/);
    assert.equal(value(body, 'apisix_http_status', { code: '200', route: 'r1', matched_uri: '/hello', matched_host: '', service: '', consumer: '', node }), n);
    assert.equal(value(body, 'apisix_http_status', { code: '502', route: 'r3', matched_uri: '/down', matched_host: '', service: '', consumer: '', node: '127.0.0.1' }), 3);
    // no plugin on the route: not counted
    assert.ok(!body.includes('route="plain"'));
    // one request latency and one gateway latency per request; upstream latency for answered ones
    assert.match(body, /# TYPE apisix_http_latency histogram/);
    assert.equal(value(body, 'apisix_http_latency_count', { type: 'request', route: 'r1', service: '', consumer: '', node }), n);
    assert.equal(value(body, 'apisix_http_latency_count', { type: 'apisix', route: 'r1', service: '', consumer: '', node }), n);
    assert.equal(value(body, 'apisix_http_latency_count', { type: 'upstream', route: 'r1', service: '', consumer: '', node }), n);
    assert.equal(value(body, 'apisix_http_latency_bucket', { type: 'request', route: 'r1', service: '', consumer: '', node, le: '+Inf' }), n);
    assert.match(body, /apisix_http_latency_bucket\{type="request",route="r1",service="",consumer="",node="[^"]*",le="00001\.0"\}/);
    assert.match(body, /le="60000\.0"/);
    // bandwidth: both directions counted
    assert.ok((value(body, 'apisix_bandwidth', { type: 'ingress', route: 'r1', service: '', consumer: '', node }) ?? 0) > 0);
    assert.ok((value(body, 'apisix_bandwidth', { type: 'egress', route: 'r1', service: '', consumer: '', node }) ?? 0) > 0);
    assert.equal(value(body, 'apisix_node_info', { hostname: (await import('node:os')).hostname() }), 1);
    // stub_status equivalents: every request the proxy got, every connection it accepted
    assert.equal(value(body, 'apisix_http_requests_total', {}), n + 5);
    assert.ok((value(body, 'apisix_nginx_http_current_connections', { state: 'accepted' }) ?? 0) >= n);
    assert.equal(value(body, 'apisix_nginx_http_current_connections', { state: 'handled' }), value(body, 'apisix_nginx_http_current_connections', { state: 'accepted' }));
    for (const state of ['active', 'reading', 'writing', 'waiting']) assert.ok((value(body, 'apisix_nginx_http_current_connections', { state }) ?? -1) >= 0, state);
    // shared memories, as APISIX reports its shared dicts
    for (const name of ['plugin-counters', 'metrics-series']) {
      const capacity = value(body, 'apisix_shared_dict_capacity_bytes', { name }) ?? 0;
      const free = value(body, 'apisix_shared_dict_free_space_bytes', { name }) ?? -1;
      assert.ok(capacity > 0 && free >= 0 && free <= capacity, `${name}: ${free} of ${capacity}`);
    }
  });

  it('prefer_name labels by route and service name; matched_host is the route host that matched', async () => {
    const r = await request(gw.url('/named/x'), { headers: { Host: 'a.example.com' } });
    assert.equal(r.status, 200);
    const labels = { code: '200', route: 'by-name', matched_uri: '/named/*', matched_host: '*.example.com', service: 'named-service', consumer: '', node: up.node.split(':')[0] };
    const body = await scrapeWhen(gw, (text) => value(text, 'apisix_http_status', labels) === 1);
    assert.equal(value(body, 'apisix_http_status', { code: '200', route: 'by-name', matched_uri: '/named/*', matched_host: '*.example.com', service: 'named-service', consumer: '', node: up.node.split(':')[0] }), 1);
  });

  it('the exposition passes promtool check metrics', async () => {
    const { body } = await scrape(gw);
    await assertPromtoolAccepts(body, 'apisix_');
  });

  it('answers 404 for other paths on the export server', async () => {
    assert.equal((await scrape(gw, '/other')).status, 404);
  });
});

describe('prometheus: logger queues', () => {
  let up: Upstream;
  let gw: Gateway;
  let sink: import('node:http').Server;

  before(async () => {
    const http = await import('node:http');
    // A log sink that takes the connection and never answers: entries wait in the batch processor.
    sink = http.createServer(() => {});
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const sinkPort = (sink.address() as import('node:net').AddressInfo).port;
    up = await startUpstream();
    gw = await startGateway({
      workers: 2,
      metrics: true,
      routes: {
        routes: [{
          id: 'logged',
          uri: '/hello',
          plugins: { 'http-logger': { uri: `http://127.0.0.1:${sinkPort}/logs`, batch_max_size: 1, timeout: 30 } },
          upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } },
        }],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
    sink?.closeAllConnections();
    sink?.close();
  });

  it('apisix_batch_process_entries counts the entries a logger still holds, over every worker', async () => {
    const n = 6;
    const answers = await Promise.all(Array.from({ length: n }, () => request(gw.url('/hello'), { headers: { Connection: 'close' } })));
    assert.ok(answers.every((a) => a.status === 200));
    const labels = { name: 'http-logger', route_id: 'logged', server_addr: '' };
    const body = await scrapeWhen(gw, (text) => value(text, 'apisix_batch_process_entries', labels) === n);
    assert.equal(value(body, 'apisix_batch_process_entries', labels), n);
  });
});

describe('prometheus: served on the proxy port through public-api (enable_export_server: false)', () => {
  let up: Upstream;
  let gw: Gateway;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      workers: 2,
      config: { plugin_attr: { prometheus: { enable_export_server: false } } },
      routes: {
        routes: [
          { id: 'hello', uri: '/hello', plugins: { prometheus: {} }, upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } },
          { id: 'metrics', uri: '/apisix/prometheus/metrics', plugins: { 'public-api': {} } },
          { id: 'renamed', uri: '/internal/metrics', plugins: { 'public-api': { uri: '/apisix/prometheus/metrics' }, 'key-auth': {} } },
          { id: 'nothing', uri: '/nothing', plugins: { 'public-api': {} } },
        ],
        consumers: [{ username: 'ops', plugins: { 'key-auth': { key: 'ops-key' } } }],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('serves the metrics of every worker on the route, and the route\'s plugins guard it', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await request(gw.url('/hello'), { headers: { Connection: 'close' } })).status, 200);
    const labels = { code: '200', route: 'hello', matched_uri: '/hello', matched_host: '', service: '', consumer: '', node: up.node.split(':')[0] };
    let body = '';
    await waitFor(async () => value((body = (await request(gw.url('/apisix/prometheus/metrics'))).body), 'apisix_http_status', labels) === 4, 5000, 'the counts');
    assert.match(body, /# TYPE apisix_http_latency histogram/);
    assert.equal((await request(gw.url('/internal/metrics'))).status, 401);
    const guarded = await request(gw.url('/internal/metrics'), { headers: { apikey: 'ops-key' } });
    assert.equal(guarded.status, 200);
    assert.match(guarded.body, /apisix_http_status\{code="200",route="hello"/);
    // a public-api route whose path names no endpoint
    assert.equal((await request(gw.url('/nothing'))).status, 404);
  });
});

describe('prometheus: plugin_attr (metric_prefix, export_uri, extra labels, buckets)', () => {
  let up: Upstream;
  let gw: Gateway;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      metrics: true,
      config: {
        plugin_attr: {
          prometheus: {
            metric_prefix: 'edge_',
            export_uri: '/metrics',
            default_buckets: [5, 50.5, 500],
            metrics: { http_status: { extra_labels: [{ method: '$request_method' }] } },
          },
        },
      },
      routes: { routes: [{ id: '1', uri: '/hello', plugins: { prometheus: {} }, upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } }] },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('names metrics with the prefix, serves them on export_uri and adds the extra labels', async () => {
    await request(gw.url('/hello'));
    await request(gw.url('/hello'), { method: 'POST', body: 'x' });
    const node = up.node.split(':')[0];
    const body = await scrapeWhen(gw, (text) => value(text, 'edge_http_status', { code: '200', route: '1', matched_uri: '/hello', matched_host: '', service: '', consumer: '', node, method: 'POST' }) === 1, '/metrics');
    assert.equal(value(body, 'edge_http_status', { code: '200', route: '1', matched_uri: '/hello', matched_host: '', service: '', consumer: '', node, method: 'GET' }), 1);
    assert.equal(value(body, 'edge_http_status', { code: '200', route: '1', matched_uri: '/hello', matched_host: '', service: '', consumer: '', node, method: 'POST' }), 1);
    assert.match(body, /edge_http_latency_bucket\{[^}]*le="005\.0"\}/);
    assert.match(body, /edge_http_latency_bucket\{[^}]*le="050\.5"\}/);
    assert.equal((await scrape(gw, '/apisix/prometheus/metrics')).status, 404);
    await assertPromtoolAccepts(body, 'edge_');
  });
});
