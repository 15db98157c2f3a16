// Black-box tests of the logger plugins (http-logger, tcp-logger, udp-logger, file-logger, syslog)
// and their batch processor, through the built gateway: every logger delivers to a real sink the
// test starts (HTTP, TCP, UDP, file, syslog over UDP and TCP). Cases follow apache/apisix
// t/plugin/http-logger*.t, tcp-logger.t, udp-logger.t, file-logger.t, syslog.t and
// t/utils/batch-processor.t.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { makeEtcdCerts } from '../helpers/etcd.ts';
import { rawExchange, parseRawResponses, REPO, serverTracker, sleep, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';
import { parseRfc5424, startHttpSink, startTcpSink, startUdpSink, type HttpSink } from '../helpers/log-sinks.ts';
import { send, upstreamOf } from '../helpers/routing.ts';

const VERSION = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string;

let generation = 0;

/** Writes apisix.yaml (any kinds) plus a marker route, and waits until the marker answers. */
async function applyAll(gw: Gateway, marker: Upstream, content: Record<string, unknown[]>): Promise<void> {
  const n = ++generation;
  const routes = [...(content.routes ?? []), { id: `__marker_${n}`, uri: `/__marker/${n}`, upstream: upstreamOf(marker) }];
  gw.writeRoutes({ ...content, routes });
  await waitFor(async () => (await send(gw, `/__marker/${n}`)).status === 200, 5_000, `apisix.yaml version ${n} to load`);
}

/** The entries of every delivery so far, flattened (a delivery is one object or an array). */
function entriesOf(sink: HttpSink): any[] {
  return sink.deliveries.flatMap((d) => (Array.isArray(d.json) ? d.json : [d.json]));
}

/** One raw HTTP/1.1 request; resolves with the bytes sent, the bytes received and the parsed answer. */
async function rawRequest(gw: Gateway, head: string, body = ''): Promise<{ sent: number; received: number; status: number; body: string }> {
  const request = `${head}\r\n\r\n${body}`;
  const ex = await rawExchange(gw.port, request, { until: (data) => parseRawResponses(data, false).responses.length === 1 });
  const { responses } = parseRawResponses(ex.data, false);
  return { sent: Buffer.byteLength(request), received: ex.data.length, status: responses[0].status, body: responses[0].body.toString() };
}

async function waitForLog(gw: Gateway, from: number, re: RegExp, timeoutMs = 5_000): Promise<string> {
  await waitFor(() => re.test(gw.output().slice(from)), timeoutMs, `log line matching ${re}`);
  return gw.output().slice(from);
}

describe('logger plugins on a standalone gateway', () => {
  const servers = serverTracker();
  let gw: Gateway;
  let up: Upstream;

  before(async () => {
    up = servers.keep(await startUpstream());
    gw = await startGateway();
  });

  after(async () => {
    await gw?.stop();
    await servers.closeAll();
  });

  describe('http-logger', () => {
    it('delivers the default entry with the request, response, route, consumer and timing fields', async () => {
      const sink = servers.keep(await startHttpSink());
      await applyAll(gw, up, {
        consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } }],
        routes: [{
          id: 'hl-full',
          uri: '/hl/full',
          plugins: { 'key-auth': {}, 'http-logger': { uri: `${sink.url}/logs?src=gw`, batch_max_size: 1, auth_header: 'Bearer t0k' } },
          upstream: upstreamOf(up),
        }],
      });
      const before = Date.now();
      const r = await rawRequest(gw, `GET /hl/full?x=1&flag&x=2 HTTP/1.1\r\nHost: logs.test\r\nApikey: jack-key\r\nX-Trace: abc\r\nConnection: close`);
      assert.equal(r.status, 200);
      await waitFor(() => sink.deliveries.length === 1, 5_000, 'the log delivery');
      const d = sink.deliveries[0];
      assert.equal(d.method, 'POST');
      assert.equal(d.url, '/logs?src=gw');
      assert.equal(d.headers['content-type'], 'application/json');
      assert.equal(d.headers.authorization, 'Bearer t0k');
      // batch_max_size 1: one object, not an array
      const e = d.json;
      assert.ok(e && !Array.isArray(e), d.body);
      assert.equal(e.route_id, 'hl-full');
      assert.equal(e.service_id, '');
      assert.equal(e.client_ip, '127.0.0.1');
      assert.deepEqual(e.consumer, { username: 'jack' });
      assert.equal(e.upstream, up.node);
      assert.deepEqual(e.server, { hostname: hostname(), version: VERSION });
      assert.equal(e.request.method, 'GET');
      assert.equal(e.request.uri, '/hl/full?x=1&flag&x=2');
      assert.equal(e.request.url, `http://logs.test:${gw.port}/hl/full?x=1&flag&x=2`);
      assert.deepEqual(e.request.querystring, { x: ['1', '2'], flag: true });
      assert.equal(e.request.headers['x-trace'], 'abc');
      assert.equal(e.request.headers.host, 'logs.test');
      assert.equal(e.request.size, r.sent);
      assert.equal(e.request.body, undefined);
      assert.equal(e.response.status, 200);
      assert.equal(e.response.size, r.received);
      assert.equal(e.response.headers['content-type'], 'application/json');
      assert.equal(e.response.body, undefined);
      assert.ok(e.start_time >= before - 1000 && e.start_time <= Date.now(), `start_time ${e.start_time}`);
      assert.ok(typeof e.latency === 'number' && e.latency >= 0);
      assert.ok(typeof e.upstream_latency === 'number' && e.upstream_latency >= 0 && e.upstream_latency <= e.latency + 1);
      assert.ok(typeof e.apisix_latency === 'number' && e.apisix_latency >= 0);
    });

    it('logs requests the gateway answers itself: a 401 from key-auth has no consumer and no upstream', async () => {
      const sink = servers.keep(await startHttpSink());
      await applyAll(gw, up, {
        routes: [{ id: 'hl-401', uri: '/hl/401', plugins: { 'key-auth': {}, 'http-logger': { uri: sink.url, batch_max_size: 1 } }, upstream: upstreamOf(up) }],
      });
      assert.equal((await send(gw, '/hl/401')).status, 401);
      await waitFor(() => sink.deliveries.length === 1, 5_000, 'the log delivery');
      const e = sink.deliveries[0].json;
      assert.equal(e.route_id, 'hl-401');
      assert.equal(e.response.status, 401);
      assert.equal(e.consumer, undefined);
      assert.equal(e.upstream, undefined);
      assert.equal(e.upstream_latency, undefined);
    });

    it('a global rule logs requests no route matched, as route_id no-matched with the host as service_id', async () => {
      const sink = servers.keep(await startHttpSink());
      await applyAll(gw, up, { global_rules: [{ id: 'g-log', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 1 } } }] });
      assert.equal((await send(gw, '/nowhere', { headers: { Host: 'lost.test' } })).status, 404);
      await waitFor(() => entriesOf(sink).some((e) => e.request.uri === '/nowhere'), 5_000, 'the 404 entry');
      const e = entriesOf(sink).find((x) => x.request.uri === '/nowhere');
      assert.equal(e.route_id, 'no-matched');
      assert.equal(e.service_id, 'lost.test');
      assert.equal(e.response.status, 404);
    });

    it('batch_max_size groups entries per delivery; inactive_timeout flushes a partial batch', async () => {
      const sink = servers.keep(await startHttpSink());
      await applyAll(gw, up, {
        routes: [{ id: 'hl-batch', uri: '/hl/batch', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 3, inactive_timeout: 1 } }, upstream: upstreamOf(up) }],
      });
      for (let i = 0; i < 7; i++) assert.equal((await send(gw, `/hl/batch?i=${i}`)).status, 200);
      await waitFor(() => sink.deliveries.length === 2, 5_000, 'two full batches');
      // two batches of three left at once; the seventh entry waits for the quiet second
      assert.deepEqual(sink.deliveries.map((d) => d.json.length), [3, 3]);
      await waitFor(() => sink.deliveries.length === 3, 5_000, 'the partial batch');
      assert.deepEqual(sink.deliveries[2].json.map((e: any) => e.request.querystring.i), ['6']);
      assert.deepEqual(entriesOf(sink).map((e) => e.request.querystring.i), ['0', '1', '2', '3', '4', '5', '6']);
    });

    it('concat_method new_line sends one JSON entry per line as text/plain', async () => {
      const sink = servers.keep(await startHttpSink());
      await applyAll(gw, up, {
        routes: [{ id: 'hl-nl', uri: '/hl/nl', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 2, concat_method: 'new_line' } }, upstream: upstreamOf(up) }],
      });
      await send(gw, '/hl/nl?n=1');
      await send(gw, '/hl/nl?n=2');
      await waitFor(() => sink.deliveries.length === 1, 5_000, 'the batch');
      const d = sink.deliveries[0];
      assert.equal(d.headers['content-type'], 'text/plain');
      const lines = d.body.split('\n');
      assert.equal(lines.length, 2);
      assert.deepEqual(lines.map((l) => JSON.parse(l).request.querystring.n), ['1', '2']);
    });

    it('a custom log_format in the conf: $variables, literals and nested objects, plus route_id', async () => {
      const sink = servers.keep(await startHttpSink());
      await applyAll(gw, up, {
        services: [{ id: 'svc-log', upstream: upstreamOf(up) }],
        routes: [{
          id: 'hl-fmt',
          uri: '/hl/fmt',
          service_id: 'svc-log',
          plugins: {
            'http-logger': {
              uri: sink.url,
              batch_max_size: 1,
              log_format: {
                host: '$host',
                client: '$remote_addr',
                arg: '$arg_who',
                missing: '$no_such_variable',
                joined: '$host:$server_port',
                literal: 'fixed',
                number: 7,
                req: { method: '$request_method', headers: '$request_headers', l2: { l3: { l4: { status: '$status', l5: { l6: 'gone' } } } } },
                latency: '$latency',
                consumer: '$consumer_username',
              },
            },
          },
        }],
      });
      await send(gw, '/hl/fmt?who=me', { headers: { Host: 'fmt.test', 'X-Y': 'z' } });
      await waitFor(() => sink.deliveries.length === 1, 5_000, 'the log delivery');
      const e = sink.deliveries[0].json;
      assert.equal(e.host, 'fmt.test');
      assert.equal(e.client, '127.0.0.1');
      assert.equal(e.arg, 'me');
      assert.ok(!('missing' in e));
      assert.ok(!('joined' in e), 'a `$` value names one variable, it is not a template');
      assert.equal(e.literal, 'fixed');
      assert.equal(e.number, 7);
      assert.equal(e.req.method, 'GET');
      assert.equal(e.req.headers['x-y'], 'z');
      // five levels: the fifth level's object (l6) is cut
      assert.deepEqual(e.req.l2, { l3: { l4: { status: '200' } } });
      assert.equal(typeof e.latency, 'number');
      assert.ok(!('consumer' in e));
      assert.equal(e.route_id, 'hl-fmt');
      assert.equal(e.service_id, 'svc-log');
      assert.ok(!('request' in e) && !('response' in e), 'a custom format replaces the default entry');
    });

    it('request and response bodies are logged when configured and only when the expressions hold', async () => {
      const sink = servers.keep(await startHttpSink());
      await applyAll(gw, up, {
        routes: [{
          id: 'hl-bodies',
          uri: '/hl/bodies',
          plugins: {
            'http-logger': {
              uri: sink.url,
              batch_max_size: 1,
              include_req_body: true,
              include_req_body_expr: [['arg_req', '==', 'yes']],
              include_resp_body: true,
              include_resp_body_expr: [['arg_resp', '==', 'yes']],
            },
          },
          upstream: upstreamOf(up),
        }, {
          id: 'hl-bodies-cut',
          uri: '/hl/cut',
          plugins: { 'http-logger': { uri: sink.url, batch_max_size: 1, include_req_body: true, include_resp_body: true, max_req_body_bytes: 5, max_resp_body_bytes: 8 } },
          upstream: upstreamOf(up),
        }],
      });
      const both = await send(gw, '/hl/bodies?req=yes&resp=yes', { method: 'POST', body: 'hello body', headers: { 'Content-Type': 'text/plain' } });
      assert.equal(both.status, 200);
      // the upstream still got the body the logger read
      assert.equal(JSON.parse(both.body).body, 'hello body');
      await waitFor(() => sink.deliveries.length === 1, 5_000, 'delivery 1');
      let e = sink.deliveries[0].json;
      assert.equal(e.request.body, 'hello body');
      assert.equal(e.response.body, both.body);

      await send(gw, '/hl/bodies?req=no&resp=no', { method: 'POST', body: 'secret' });
      await waitFor(() => sink.deliveries.length === 2, 5_000, 'delivery 2');
      e = sink.deliveries[1].json;
      assert.ok(!('body' in e.request));
      assert.ok(!('body' in e.response));

      await send(gw, '/hl/bodies?req=yes', { method: 'POST', body: 'only the request' });
      await waitFor(() => sink.deliveries.length === 3, 5_000, 'delivery 3');
      e = sink.deliveries[2].json;
      assert.equal(e.request.body, 'only the request');
      assert.ok(!('body' in e.response));

      const cut = await send(gw, '/hl/cut', { method: 'POST', body: 'abcdefghij' });
      await waitFor(() => sink.deliveries.length === 4, 5_000, 'delivery 4');
      e = sink.deliveries[3].json;
      assert.equal(e.request.body, 'abcde');
      assert.equal(e.response.body, cut.body.slice(0, 8));
    });

    it('a batch the sink refuses is retried after retry_delay and delivered once it recovers', async () => {
      const sink = servers.keep(await startHttpSink((i) => (i === 0 ? 500 : 200)));
      await applyAll(gw, up, {
        routes: [{ id: 'hl-retry', uri: '/hl/retry', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 1, max_retry_count: 2, retry_delay: 1 } }, upstream: upstreamOf(up) }],
      });
      const mark = gw.output().length;
      assert.equal((await send(gw, '/hl/retry?try=1')).status, 200);
      await waitFor(() => sink.deliveries.length === 2, 5_000, 'the refused try and the retry');
      assert.equal(sink.deliveries[0].body, sink.deliveries[1].body, 'the same batch is sent again');
      assert.equal(sink.deliveries[1].json.request.querystring.try, '1');
      await waitForLog(gw, mark, /Batch Processor\[http logger\] failed to process entries: server returned status code\[500\] host\[127\.0\.0\.1\] port\[\d+\] body\[sink failure\]/);
      await sleep(1500);
      assert.equal(sink.deliveries.length, 2, 'delivered once, no retry after success');
    });

    it('after max_retry_count failures the batch is dropped with an error line', async () => {
      const sink = servers.keep(await startHttpSink(() => 503));
      await applyAll(gw, up, {
        routes: [{ id: 'hl-drop', uri: '/hl/drop', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 1, max_retry_count: 1, retry_delay: 0, name: 'dropper' } }, upstream: upstreamOf(up) }],
      });
      const mark = gw.output().length;
      await send(gw, '/hl/drop');
      await waitForLog(gw, mark, /Batch Processor\[dropper\] exceeded the max_retry_count\[2\] dropping the entries/);
      assert.equal(sink.received, 2);
    });

    it('a dead sink (closed port) never slows or fails requests', async () => {
      const dead = await startHttpSink();
      const deadUrl = dead.url;
      await dead.close();
      await applyAll(gw, up, {
        routes: [{ id: 'hl-dead', uri: '/hl/dead', plugins: { 'http-logger': { uri: deadUrl, batch_max_size: 1, max_retry_count: 1, retry_delay: 0 } }, upstream: upstreamOf(up) }],
      });
      const mark = gw.output().length;
      const started = Date.now();
      for (let i = 0; i < 40; i++) assert.equal((await send(gw, '/hl/dead')).status, 200);
      assert.ok(Date.now() - started < 20_000, `40 requests took ${Date.now() - started} ms`);
      await waitForLog(gw, mark, /failed to connect to host\[127\.0\.0\.1\] port\[\d+\]/);
    });

    it('a hanging sink never slows requests; beyond max_pending_entries entries are discarded and counted', async () => {
      const sink = servers.keep(await startHttpSink(() => 'hang'));
      await applyAll(gw, up, {
        plugin_metadata: [{ id: 'http-logger', max_pending_entries: 5 }],
        routes: [{ id: 'hl-hang', uri: '/hl/hang', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 1, timeout: 30 } }, upstream: upstreamOf(up) }],
      });
      const mark = gw.output().length;
      const started = Date.now();
      for (let i = 0; i < 30; i++) assert.equal((await send(gw, `/hl/hang?i=${i}`)).status, 200);
      assert.ok(Date.now() - started < 20_000, `30 requests took ${Date.now() - started} ms`);
      await waitForLog(gw, mark, /max pending entries limit exceeded\. discarding entry\. plugin: http-logger pending_entries: 5 max_pending_entries: 5 discarded_entries: 1\b/);
      // five entries wait on the sink (one connection each); the other 25 were discarded, not queued
      await waitFor(() => sink.received === 5, 5_000, 'five sends in flight');
      await sleep(300);
      assert.equal(sink.received, 5);
      assert.equal(sink.deliveries.length, 0);
      await sink.close();
    });

    it('plugin_metadata log_format applies to instances without their own; the conf wins over it', async () => {
      const sink = servers.keep(await startHttpSink());
      await applyAll(gw, up, {
        plugin_metadata: [{ id: 'http-logger', log_format: { host: '$host', '@timestamp': '$time_iso8601', client_ip: '$remote_addr', status: '$status' } }],
        routes: [
          { id: 'hl-meta', uri: '/hl/meta', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 1 } }, upstream: upstreamOf(up) },
          { id: 'hl-own', uri: '/hl/own', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 1, log_format: { mine: '$uri' } } }, upstream: upstreamOf(up) },
        ],
      });
      await send(gw, '/hl/meta', { headers: { Host: 'meta.test' } });
      await waitFor(() => sink.deliveries.length === 1, 5_000, 'delivery 1');
      const e = sink.deliveries[0].json;
      assert.deepEqual(Object.keys(e).sort(), ['@timestamp', 'client_ip', 'host', 'route_id', 'status']);
      assert.equal(e.host, 'meta.test');
      assert.equal(e.client_ip, '127.0.0.1');
      assert.equal(e.status, '200');
      assert.equal(e.route_id, 'hl-meta');
      assert.match(e['@timestamp'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
      await send(gw, '/hl/own');
      await waitFor(() => sink.deliveries.length === 2, 5_000, 'delivery 2');
      assert.deepEqual(sink.deliveries[1].json, { mine: '/hl/own', route_id: 'hl-own' });
    });

    it('a conf replaced while entries wait flushes them at once (to the old sink)', async () => {
      const sink = servers.keep(await startHttpSink());
      const other = servers.keep(await startHttpSink());
      const route = (uri: string) => ({ id: 'hl-replace', uri: '/hl/replace', plugins: { 'http-logger': { uri, batch_max_size: 100, inactive_timeout: 60, buffer_duration: 60 } }, upstream: upstreamOf(up) });
      await applyAll(gw, up, { routes: [route(sink.url)] });
      await send(gw, '/hl/replace?n=1');
      await send(gw, '/hl/replace?n=2');
      await sleep(300);
      assert.equal(sink.deliveries.length, 0, 'held in the buffer');
      await applyAll(gw, up, { routes: [route(other.url)] });
      await waitFor(() => sink.deliveries.length === 1, 5_000, 'the flush of the replaced conf');
      assert.deepEqual(sink.deliveries[0].json.map((e: any) => e.request.querystring.n), ['1', '2']);
      assert.equal(other.deliveries.length, 0);
    });
  });

  describe('tcp-logger', () => {
    it('sends each batch over its own connection as one JSON document', async () => {
      const sink = servers.keep(await startTcpSink());
      await applyAll(gw, up, {
        routes: [
          { id: 'tcp-one', uri: '/tcp/one', plugins: { 'tcp-logger': { host: '127.0.0.1', port: sink.port, batch_max_size: 1 } }, upstream: upstreamOf(up) },
          { id: 'tcp-two', uri: '/tcp/two', plugins: { 'tcp-logger': { host: '127.0.0.1', port: sink.port, batch_max_size: 2 } }, upstream: upstreamOf(up) },
        ],
      });
      await send(gw, '/tcp/one?a=1');
      await waitFor(() => sink.messages.length === 1, 5_000, 'the first connection');
      const one = JSON.parse(sink.messages[0]);
      assert.equal(one.route_id, 'tcp-one');
      assert.equal(one.response.status, 200);
      assert.equal(one.client_ip, '127.0.0.1');
      assert.deepEqual(one.request.querystring, { a: '1' });
      await send(gw, '/tcp/two?b=1');
      await send(gw, '/tcp/two?b=2', { method: 'POST', body: 'x' });
      await waitFor(() => sink.messages.length === 2, 5_000, 'the second connection');
      const two = JSON.parse(sink.messages[1]);
      assert.ok(Array.isArray(two));
      assert.deepEqual(two.map((e: any) => [e.route_id, e.request.method, e.request.querystring.b]), [['tcp-two', 'GET', '1'], ['tcp-two', 'POST', '2']]);
      assert.equal(sink.connections, 2);
    });

    it('tls: true sends over TLS, with tls_options as the server name', async (t) => {
      const certs = makeEtcdCerts();
      if (!certs) return t.skip('openssl is not available');
      const sink = servers.keep(await startTcpSink({ key: readFileSync(certs.serverKey, 'utf8'), cert: readFileSync(certs.serverCert, 'utf8') }));
      await applyAll(gw, up, {
        routes: [{ id: 'tcp-tls', uri: '/tcp/tls', plugins: { 'tcp-logger': { host: '127.0.0.1', port: sink.port, tls: true, tls_options: 'etcd.test', batch_max_size: 1 } }, upstream: upstreamOf(up) }],
      });
      await send(gw, '/tcp/tls');
      await waitFor(() => sink.messages.length === 1, 5_000, 'the TLS delivery');
      assert.equal(JSON.parse(sink.messages[0]).route_id, 'tcp-tls');
      assert.deepEqual(sink.servernames, ['etcd.test']);
    });

    it('a closed port fails the batch with an error line and never the request', async () => {
      const dead = await startTcpSink();
      const port = dead.port;
      await dead.close();
      await applyAll(gw, up, {
        routes: [{ id: 'tcp-dead', uri: '/tcp/dead', plugins: { 'tcp-logger': { host: '127.0.0.1', port, batch_max_size: 1 } }, upstream: upstreamOf(up) }],
      });
      const mark = gw.output().length;
      for (let i = 0; i < 20; i++) assert.equal((await send(gw, '/tcp/dead')).status, 200);
      await waitForLog(gw, mark, new RegExp(`Batch Processor\\[tcp logger\\] failed to process entries: failed to connect to TCP server: host\\[127\\.0\\.0\\.1\\] port\\[${port}\\] err: `));
    });
  });

  describe('udp-logger', () => {
    it('sends one datagram per batch; plugin_metadata log_format shapes the entries', async () => {
      const sink = servers.keep(await startUdpSink());
      await applyAll(gw, up, {
        plugin_metadata: [{ id: 'udp-logger', log_format: { uri: '$uri', method: '$request_method', ua: '$http_user_agent' } }],
        routes: [{ id: 'udp-1', uri: '/udp/*', plugins: { 'udp-logger': { host: '127.0.0.1', port: sink.port, batch_max_size: 2 } }, upstream: upstreamOf(up) }],
      });
      await send(gw, '/udp/a', { headers: { 'User-Agent': 'ua-a' } });
      await send(gw, '/udp/b', { method: 'DELETE', headers: { 'User-Agent': 'ua-b' } });
      await waitFor(() => sink.datagrams.length === 1, 5_000, 'the datagram');
      assert.deepEqual(JSON.parse(sink.datagrams[0]), [
        { uri: '/udp/a', method: 'GET', ua: 'ua-a', route_id: 'udp-1' },
        { uri: '/udp/b', method: 'DELETE', ua: 'ua-b', route_id: 'udp-1' },
      ]);
    });

    it('with batch_max_size 1 each datagram holds one object, with the request body when configured', async () => {
      const sink = servers.keep(await startUdpSink());
      await applyAll(gw, up, {
        routes: [{ id: 'udp-body', uri: '/udp/body', plugins: { 'udp-logger': { host: '127.0.0.1', port: sink.port, batch_max_size: 1, include_req_body: true } }, upstream: upstreamOf(up) }],
      });
      await send(gw, '/udp/body', { method: 'PUT', body: '{"k":"v"}' });
      await waitFor(() => sink.datagrams.length === 1, 5_000, 'the datagram');
      const e = JSON.parse(sink.datagrams[0]);
      assert.equal(e.route_id, 'udp-body');
      assert.equal(e.request.body, '{"k":"v"}');
    });
  });

  describe('file-logger', () => {
    it('appends one JSON line per request to a path relative to the working directory; match picks the requests', async () => {
      await applyAll(gw, up, {
        routes: [{
          id: 'file-1',
          uri: '/file/*',
          plugins: { 'file-logger': { path: 'file-1.log', match: [[['arg_log', '==', 'yes']], [['http_x_log', '==', '1']]], include_resp_body: true } },
          upstream: upstreamOf(up),
        }],
      });
      const file = join(gw.dir, 'file-1.log');
      const a = await send(gw, '/file/a?log=yes');
      await send(gw, '/file/b?log=no');
      await send(gw, '/file/c', { headers: { 'X-Log': '1' } });
      await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').split('\n').length === 3, 5_000, 'two lines in the file');
      const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(lines.map((e) => e.request.uri), ['/file/a?log=yes', '/file/c']);
      assert.equal(lines[0].route_id, 'file-1');
      assert.equal(lines[0].response.body, a.body);
    });

    it('a rotated file (renamed away) is opened again at its path', async () => {
      await applyAll(gw, up, {
        routes: [{ id: 'file-rot', uri: '/rot', plugins: { 'file-logger': { path: 'rot.log', log_format: { n: '$arg_n' } } }, upstream: upstreamOf(up) }],
      });
      const file = join(gw.dir, 'rot.log');
      await send(gw, '/rot?n=1');
      await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('"n":"1"'), 5_000, 'the first line');
      renameSync(file, `${file}.1`);
      await sleep(1100);
      await send(gw, '/rot?n=2');
      await waitFor(() => existsSync(file), 5_000, 'the file opened again');
      await waitFor(() => readFileSync(file, 'utf8').includes('"n":"2"'), 5_000, 'the line after rotation');
      assert.deepEqual(readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l)), [{ n: '2', route_id: 'file-rot' }]);
      assert.deepEqual(readFileSync(`${file}.1`, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l)), [{ n: '1', route_id: 'file-rot' }]);
    });
  });

  describe('syslog', () => {
    it('UDP: one RFC 5424 message per datagram, the request host as HOSTNAME, the entry as MSG', async () => {
      const sink = servers.keep(await startUdpSink());
      await applyAll(gw, up, {
        routes: [{ id: 'sys-udp', uri: '/sys/udp', plugins: { syslog: { host: '127.0.0.1', port: sink.port, sock_type: 'udp', batch_max_size: 2 } }, upstream: upstreamOf(up) }],
      });
      await send(gw, '/sys/udp?n=1', { headers: { Host: 'sys.test' } });
      await send(gw, '/sys/udp?n=2', { headers: { Host: 'sys.test' } });
      await waitFor(() => sink.datagrams.length === 2, 5_000, 'two datagrams');
      const messages = sink.datagrams.map((d) => {
        assert.ok(d.endsWith('\n'));
        const m = parseRfc5424(d.slice(0, -1));
        assert.ok(m, d);
        return m;
      });
      for (const m of messages) {
        assert.equal(m.pri, 46);
        assert.equal(m.version, 1);
        assert.match(m.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.equal(m.hostname, 'sys.test');
        assert.equal(m.appName, 'apisix');
        assert.match(m.procId, /^\d+$/);
        assert.equal(m.msgId, '-');
        assert.equal(m.structuredData, '-');
      }
      assert.deepEqual(messages.map((m) => [JSON.parse(m.msg).route_id, JSON.parse(m.msg).request.querystring.n]).sort(), [['sys-udp', '1'], ['sys-udp', '2']]);
    });

    it('TCP: newline-framed messages over one kept connection, with log_format from the conf', async () => {
      const sink = servers.keep(await startTcpSink());
      await applyAll(gw, up, {
        routes: [{ id: 'sys-tcp', uri: '/sys/tcp', plugins: { syslog: { host: '127.0.0.1', port: sink.port, batch_max_size: 2, log_format: { path: '$uri', n: '$arg_n' } } }, upstream: upstreamOf(up) }],
      });
      for (let n = 1; n <= 4; n++) await send(gw, `/sys/tcp?n=${n}`);
      await waitFor(() => sink.lines.length === 4, 5_000, 'four messages');
      assert.deepEqual(sink.lines.map((l) => JSON.parse(parseRfc5424(l)!.msg)), [1, 2, 3, 4].map((n) => ({ path: '/sys/tcp', n: String(n), route_id: 'sys-tcp' })));
      assert.equal(sink.connections, 1, 'the connection is kept for the next batch');
    });
  });
});

describe('logger confs through the Admin API', () => {
  let node: AdminGateway;
  let up: Upstream;

  before(async () => {
    up = await startUpstream();
    node = await startAdminGateway();
  });

  after(async () => {
    await node?.stop();
    await up?.close();
  });

  const route = (plugins: Record<string, unknown>) => ({ uri: '/logged', plugins, upstream: upstreamOf(up) });
  const refused = async (plugins: Record<string, unknown>, message: string) => {
    const r = await node.call('PUT', '/routes/1', route(plugins));
    assert.deepEqual([r.status, r.json], [400, { error_msg: message }], JSON.stringify(plugins));
  };

  it('refuses bad confs with APISIX wording', async () => {
    const checkOf = (name: string, err: string) => `failed to check the configuration of plugin ${name} err: ${err}`;
    await refused({ 'http-logger': {} }, checkOf('http-logger', 'property "uri" is required'));
    await refused({ 'http-logger': { uri: '127.0.0.1:80/logs' } }, checkOf('http-logger', 'property "uri" validation failed: failed to match pattern "^[^\\\\/]+:\\\\/\\\\/([\\\\da-zA-Z.-]+|\\\\[[\\\\da-fA-F:]+\\\\])(:\\\\d+)?" with "127.0.0.1:80/logs"'));
    await refused({ 'http-logger': { uri: 'http://127.0.0.1', batch_max_size: 0 } }, checkOf('http-logger', 'property "batch_max_size" validation failed: expected 0 to be at least 1'));
    await refused({ 'http-logger': { uri: 'http://127.0.0.1', concat_method: 'csv' } }, checkOf('http-logger', 'property "concat_method" validation failed: matches none of the enum values'));
    await refused({ 'http-logger': { uri: 'http://127.0.0.1', include_req_body_expr: [['arg_a', '=', 'b']] } }, checkOf('http-logger', "failed to validate the 'include_req_body_expr' expression: invalid operator '='"));
    await refused({ 'tcp-logger': { host: '127.0.0.1' } }, checkOf('tcp-logger', 'property "port" is required'));
    await refused({ 'udp-logger': { host: '127.0.0.1', port: -1 } }, checkOf('udp-logger', 'property "port" validation failed: expected -1 to be at least 0'));
    await refused({ syslog: { host: '127.0.0.1', port: 514, sock_type: 'sctp' } }, checkOf('syslog', 'property "sock_type" validation failed: matches none of the enum values'));
    await refused({ syslog: { host: '127.0.0.1', port: 514, pool_size: 1 } }, checkOf('syslog', 'property "pool_size" validation failed: expected 1 to be at least 5'));
    await refused({ 'file-logger': {} }, checkOf('file-logger', 'property "path" is required'));
    await refused({ 'file-logger': { path: 'x.log', match: [[['arg_a', '=', 'b']]] } }, checkOf('file-logger', "failed to validate the 'match' expression: invalid operator '='"));
    const meta = await node.call('PUT', '/plugin_metadata/http-logger', { max_pending_entries: 0 });
    assert.deepEqual([meta.status, meta.json], [400, { error_msg: 'invalid configuration: property "max_pending_entries" validation failed: expected 0 to be at least 1' }]);
  });

  it('stores confs with the defaults of the batch processor and the entry options', async () => {
    const r = await node.put('/routes/1', route({ 'http-logger': { uri: 'http://127.0.0.1:9/logs' }, syslog: { host: '127.0.0.1', port: 514 } }));
    assert.deepEqual(r.json.value.plugins['http-logger'], {
      uri: 'http://127.0.0.1:9/logs', timeout: 3, concat_method: 'json', ssl_verify: false,
      include_req_body: false, include_resp_body: false, max_req_body_bytes: 524288, max_resp_body_bytes: 524288,
      name: 'http logger', batch_max_size: 1000, inactive_timeout: 5, buffer_duration: 60, max_retry_count: 0, retry_delay: 1,
    });
    const sys = r.json.value.plugins.syslog;
    assert.deepEqual([sys.name, sys.timeout, sys.sock_type, sys.pool_size, sys.flush_limit, sys.drop_limit, sys.tls], ['sys logger', 3000, 'tcp', 5, 4096, 1048576, false]);
    const meta = await node.call('PUT', '/plugin_metadata/tcp-logger', { log_format: { host: '$host' } });
    assert.equal(meta.status, 201, meta.text);
    assert.deepEqual(meta.json.value, { id: 'tcp-logger', log_format: { host: '$host' }, max_pending_entries: 8192 });
    const list = await node.call('GET', '/plugins/list');
    for (const name of ['http-logger', 'tcp-logger', 'udp-logger', 'syslog', 'file-logger']) assert.ok(list.json.includes(name), name);
  });

  it('a logger configured through the Admin API delivers to its sink', async () => {
    const sink = await startHttpSink();
    try {
      await node.put('/routes/2', { uri: '/admin-logged', plugins: { 'http-logger': { uri: sink.url, batch_max_size: 1 } }, upstream: upstreamOf(up) });
      assert.equal((await send(node.gw, '/admin-logged')).status, 200);
      await waitFor(() => sink.deliveries.length === 1, 5_000, 'the delivery');
      assert.equal(sink.deliveries[0].json.route_id, '2');
      assert.equal(sink.deliveries[0].json.request.uri, '/admin-logged');
    } finally {
      await sink.close();
    }
  });
});
