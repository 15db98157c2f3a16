// Black-box tests of the zipkin plugin: B3 headers (multi and single) read from the client and sent
// upstream, spans reported as Zipkin v2 JSON to an endpoint started here. Cases follow apache/apisix
// t/plugin/zipkin*.t. The reporter batches as APISIX's does (a batch leaves 5 s after the last span),
// so every request is sent first and the spans are awaited once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startZipkinCollector, type ZipkinCollector, type ZipkinSpan } from '../helpers/collectors.ts';
import { request, serverTracker, startGateway, startUpstream, waitFor, type Gateway, type Reply, type Upstream } from '../helpers/gateway.ts';

const T1 = '80f198ee56343ba864fe8b2a57d3eff1';
const T2 = '80f198ee56343ba864fe8b2a57d3eff2';
const T3 = '80f198ee56343ba864fe8b2a57d3eff3';
const T5 = '80f198ee56343ba864fe8b2a57d3eff5';
const T7 = '463ac35c9f6413ad';
const T8 = '80f198ee56343ba864fe8b2a57d3eff8';
const T9 = '80f198ee56343ba864fe8b2a57d3eff9';
const SPAN = 'e457b5a2e4d86bd1';
const PARENT = '05e3ac9a4f6e3b90';

type Headers = Record<string, string | undefined>;

function upstreamHeaders(r: Reply): Headers {
  return JSON.parse(r.body).headers;
}

const byName = (spans: ZipkinSpan[], name: string): ZipkinSpan => {
  const s = spans.find((x) => x.name === name);
  assert.ok(s, `span ${name} among ${spans.map((x) => x.name).join(', ')}`);
  return s;
};

describe('zipkin', () => {
  const servers = serverTracker();
  let collector: ZipkinCollector;
  let up: Upstream;
  let gw: Gateway;
  const replies: Record<string, Reply> = {};

  before(async () => {
    collector = servers.keep(await startZipkinCollector());
    up = servers.keep(await startUpstream());
    const upstream = { type: 'roundrobin', nodes: { [up.node]: 1 } };
    const zipkin = (extra: Record<string, unknown>) => ({ zipkin: { endpoint: collector.endpoint, ...extra } });
    gw = await startGateway({
      config: { plugins: ['zipkin', 'proxy-rewrite'], plugin_attr: { zipkin: { set_ngx_var: true } } },
      routes: {
        routes: [
          {
            id: 'z',
            uri: '/zipkin',
            plugins: {
              ...zipkin({ sample_ratio: 1, service_name: 'edge' }),
              'proxy-rewrite': { headers: { set: { 'X-Zipkin-Trace': '$zipkin_trace_id', 'X-Zipkin-Traceparent': '$zipkin_context_traceparent' } } },
            },
            upstream,
          },
          { id: 'z1', uri: '/zipkin-v1', plugins: zipkin({ sample_ratio: 1, span_version: 1, server_addr: '10.1.2.3' }), upstream },
          { id: 'rare', uri: '/rare', plugins: zipkin({ sample_ratio: 0.00001 }), upstream },
        ],
      },
    });
    const send = async (key: string, path: string, headers: Headers) => {
      replies[key] = await request(gw.url(path), { headers: headers as Record<string, string> });
    };
    await send('multi', '/zipkin?x=1', { 'x-b3-traceid': T1, 'x-b3-spanid': SPAN, 'x-b3-parentspanid': PARENT, 'x-b3-sampled': '1' });
    await send('single', '/zipkin', { b3: `${T2}-${SPAN}-1-${PARENT}` });
    await send('debug', '/zipkin', { b3: `${T3}-${SPAN}-d` });
    await send('zero', '/zipkin', { b3: '0' });
    await send('disabled', '/zipkin', { b3: `${T5}-${SPAN}-0-${PARENT}` });
    await send('invalid', '/zipkin', { b3: T5 });
    await send('v1', '/zipkin-v1', { 'x-b3-traceid': T7, 'x-b3-spanid': SPAN });
    await send('rare', '/rare', {});
    await send('forced', '/rare', { 'x-b3-traceid': T8, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'true' });
    await send('flags', '/rare', { 'x-b3-traceid': T9, 'x-b3-spanid': SPAN, 'x-b3-flags': '1' });
    const expected: Array<[string, number]> = [[T1, 3], [T2, 3], [T3, 3], [T7, 5], [T8, 3], [T9, 3]];
    await waitFor(() => expected.every(([id, n]) => collector.spansOf(id).length >= n), 30_000, 'the spans of every sampled request');
  });

  after(async () => {
    await gw?.stop();
    await servers.closeAll();
  });

  it('reports Zipkin v2 JSON spans to the endpoint', () => {
    assert.ok(collector.posts.length >= 1);
    for (const p of collector.posts) {
      assert.equal(p.path, '/api/v2/spans');
      assert.equal(p.headers['content-type'], 'application/json');
      assert.ok(Array.isArray(p.spans));
    }
  });

  it('continues the trace of X-B3-* headers and sends the proxy span upstream (span_version 2)', () => {
    const r = replies.multi;
    assert.equal(r.status, 200);
    const spans = collector.spansOf(T1);
    assert.equal(spans.length, 3);
    const request = byName(spans, 'apisix.request');
    const proxy = byName(spans, 'apisix.proxy');
    const response = byName(spans, 'apisix.response_span');
    assert.equal(request.kind, 'SERVER');
    assert.equal(request.parentId, SPAN, "the request span is a child of the client's span");
    assert.equal(proxy.parentId, request.id);
    assert.equal(response.parentId, request.id);
    assert.deepEqual(request.tags, { component: 'apisix', 'http.method': 'GET', 'http.url': '/zipkin?x=1', 'http.status_code': '200' });
    assert.deepEqual(request.localEndpoint, { serviceName: 'edge', ipv4: '127.0.0.1', port: gw.port });
    assert.equal(request.remoteEndpoint?.ipv4, '127.0.0.1');
    assert.equal(typeof request.remoteEndpoint?.port, 'number');
    assert.ok(Number.isInteger(request.timestamp) && Number.isInteger(request.duration));
    assert.ok(proxy.timestamp >= request.timestamp && response.timestamp >= proxy.timestamp);
    assert.ok(request.timestamp > (Date.now() - 120_000) * 1000, 'microseconds since the epoch');

    const h = upstreamHeaders(r);
    assert.equal(h['x-b3-traceid'], T1);
    assert.equal(h['x-b3-parentspanid'], request.id);
    assert.equal(h['x-b3-spanid'], proxy.id);
    assert.equal(h['x-b3-sampled'], '1');
    // plugin_attr.zipkin.set_ngx_var
    assert.equal(h['x-zipkin-trace'], T1);
    assert.equal(h['x-zipkin-traceparent'], `00-${T1}-${request.id}-01`);
  });

  it('reads the single b3 header and does not pass it upstream', () => {
    const h = upstreamHeaders(replies.single);
    assert.equal(h.b3, undefined);
    assert.equal(h['x-b3-traceid'], T2);
    assert.equal(h['x-b3-sampled'], '1');
    const request = byName(collector.spansOf(T2), 'apisix.request');
    assert.equal(request.parentId, SPAN);
    assert.equal(h['x-b3-parentspanid'], request.id);
  });

  it('a debug (d) sampled field samples and sends X-B3-Flags: 1', () => {
    const h = upstreamHeaders(replies.debug);
    assert.equal(h['x-b3-flags'], '1');
    assert.equal(h['x-b3-sampled'], '1');
    assert.equal(h['x-b3-traceid'], T3);
    assert.equal(collector.spansOf(T3).length, 3);
  });

  it('b3: 0 and a 0 sampled field stop sampling: X-B3-Sampled: 0 upstream, nothing reported', () => {
    const zero = upstreamHeaders(replies.zero);
    assert.equal(zero['x-b3-sampled'], '0');
    assert.equal(zero['x-b3-traceid'], undefined);
    assert.equal(zero['x-b3-spanid'], undefined);
    assert.equal(zero.b3, undefined);
    const disabled = upstreamHeaders(replies.disabled);
    assert.equal(disabled['x-b3-sampled'], '0');
    assert.equal(disabled['x-b3-traceid'], T5);
    assert.equal(disabled['x-b3-parentspanid'], SPAN);
    assert.equal(disabled['x-b3-spanid'], undefined);
    assert.equal(collector.spansOf(T5).length, 0);
  });

  it('answers 400 to a malformed b3 header', () => {
    assert.equal(replies.invalid.status, 400);
    assert.match(gw.output(), /invalid b3 header: 80f198ee56343ba864fe8b2a57d3eff5, ignored: missing span_id/);
  });

  it('span_version 1: rewrite, access, proxy and body_filter spans; server_addr in the local endpoint', () => {
    assert.equal(replies.v1.status, 200);
    const spans = collector.spansOf(T7);
    assert.equal(spans.length, 5);
    const request = byName(spans, 'apisix.request');
    const proxy = byName(spans, 'apisix.proxy');
    assert.equal(request.parentId, SPAN);
    assert.equal(byName(spans, 'apisix.rewrite').parentId, request.id);
    assert.equal(byName(spans, 'apisix.access').parentId, request.id);
    assert.equal(proxy.parentId, request.id);
    assert.equal(byName(spans, 'apisix.body_filter').parentId, proxy.id);
    assert.equal(request.localEndpoint?.ipv4, '10.1.2.3');
    assert.equal(request.localEndpoint?.serviceName, 'APISIX');
    const h = upstreamHeaders(replies.v1);
    assert.equal(h['x-b3-traceid'], T7, 'a 64-bit trace id is kept');
    assert.equal(h['x-b3-spanid'], proxy.id);
  });

  it('sample_ratio decides without B3 headers; X-B3-Sampled and X-B3-Flags override it', () => {
    assert.equal(upstreamHeaders(replies.rare)['x-b3-sampled'], '0');
    assert.equal(collector.spansOf(T8).length, 3);
    assert.equal(upstreamHeaders(replies.forced)['x-b3-sampled'], '1');
    assert.equal(collector.spansOf(T9).length, 3);
    assert.equal(upstreamHeaders(replies.flags)['x-b3-flags'], '1');
  });
});
