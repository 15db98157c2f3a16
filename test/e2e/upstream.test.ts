// Black-box tests of the proxy path to upstreams, with APISIX/nginx semantics: node forms, load
// balancing, retries, timeouts, pass_host, proxy headers, hop-by-hop headers, keep-alive, and the
// shapes of upstream responses and client request bodies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import {
  freePort,
  parseRawResponses,
  rawExchange,
  request,
  serverTracker,
  sleep,
  startGateway,
  startRawUpstream,
  startUpstream,
  waitFor,
  type Gateway,
  type RawUpstream,
  type Reply,
  type Upstream,
} from '../helpers/gateway.ts';

const VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

type Obj = Record<string, unknown>;

let probeVersion = 0;

/**
 * Replaces apisix.yaml with `routes` plus a probe route unique to this write, and waits until the
 * probe answers: the file is applied as a whole, so the other routes are live too.
 */
async function applyRoutes(gw: Gateway, probe: Upstream, routes: Obj[], extra: Obj = {}): Promise<void> {
  const v = ++probeVersion;
  gw.writeRoutes({ ...extra, routes: [...routes, { id: `probe-${v}`, uri: `/__probe/${v}`, upstream: { nodes: { [probe.node]: 1 } } }] });
  await waitFor(async () => (await request(gw.url(`/__probe/${v}`), { timeoutMs: 2000 })).status === 200, 10_000, `routes version ${v} to be live`);
}

/** The upstream port that answered (the default echo handler's JSON), or undefined. */
function portOf(reply: Reply): number | undefined {
  if (reply.status !== 200) return undefined;
  try {
    return (JSON.parse(reply.body) as { port: number }).port;
  } catch {
    return undefined;
  }
}

/** `n` sequential GETs; counts of answering upstream ports ('status:<code>' for non-200). */
async function tally(url: string, n: number, headers?: http.OutgoingHttpHeaders): Promise<Map<number | string, number>> {
  const counts = new Map<number | string, number>();
  for (let i = 0; i < n; i++) {
    const reply = await request(url, { headers });
    const key = portOf(reply) ?? `status:${reply.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

function echoBody(reply: Reply): { port: number; method: string; url: string; headers: http.IncomingHttpHeaders; body: string } {
  assert.equal(reply.status, 200, `expected 200, got ${reply.status}: ${reply.body.slice(0, 200)}`);
  return JSON.parse(reply.body);
}

/** An upstream that answers after `delayMs` with the default echo JSON. */
function delayedEcho(delayMs: number): Promise<Upstream> {
  const up: Promise<Upstream> = startUpstream((req, res, body) => {
    setTimeout(() => {
      void up.then((u) => {
        const text = JSON.stringify({ port: u.port, method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
        res.end(text);
      });
    }, delayMs);
  });
  return up;
}

/** A raw upstream that reads each request, waits `delayMs`, then closes the connection without answering. */
function slowFailing(delayMs: number): Promise<RawUpstream> {
  return startRawUpstream((socket) => {
    setTimeout(() => socket.destroy(), delayMs);
  });
}

describe('upstream nodes and load balancing', () => {
  let gw: Gateway;
  let probe: Upstream;
  const ups: Upstream[] = [];
  const up = async () => {
    const u = await startUpstream();
    ups.push(u);
    return u;
  };

  before(async () => {
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    await probe?.close();
    for (const u of ups) await u.close();
  });

  it('accepts nodes as a map and as an array', async () => {
    const a = await up();
    const b = await up();
    await applyRoutes(gw, probe, [
      { id: 'map', uri: '/nodes/map', upstream: { nodes: { [a.node]: 1 } } },
      { id: 'arr', uri: '/nodes/array', upstream: { nodes: [{ host: '127.0.0.1', port: b.port, weight: 1 }] } },
    ]);
    assert.equal(echoBody(await request(gw.url('/nodes/map'))).port, a.port);
    assert.equal(echoBody(await request(gw.url('/nodes/array'))).port, b.port);
  });

  it('roundrobin follows the weights exactly (2:1:1 over 40 requests → 20/10/10)', async () => {
    const [a, b, c] = [await up(), await up(), await up()];
    await applyRoutes(gw, probe, [{ id: 'wrr', uri: '/wrr', upstream: { type: 'roundrobin', nodes: { [a.node]: 2, [b.node]: 1, [c.node]: 1 } } }]);
    const counts = await tally(gw.url('/wrr'), 40);
    assert.deepEqual(Object.fromEntries(counts), { [a.port]: 20, [b.port]: 10, [c.port]: 10 });
  });

  it('roundrobin over array nodes follows the weights too (3:1 over 20 → 15/5)', async () => {
    const [a, b] = [await up(), await up()];
    await applyRoutes(gw, probe, [{
      id: 'wrr-arr', uri: '/wrr-arr',
      upstream: { nodes: [{ host: '127.0.0.1', port: a.port, weight: 3 }, { host: '127.0.0.1', port: b.port, weight: 1 }] },
    }]);
    const counts = await tally(gw.url('/wrr-arr'), 20);
    assert.deepEqual(Object.fromEntries(counts), { [a.port]: 15, [b.port]: 5 });
  });

  it('never uses a weight-0 node', async () => {
    const [a, b] = [await up(), await up()];
    await applyRoutes(gw, probe, [
      { id: 'w0-map', uri: '/w0/map', upstream: { nodes: { [a.node]: 1, [b.node]: 0 } } },
      { id: 'w0-arr', uri: '/w0/arr', upstream: { nodes: [{ host: '127.0.0.1', port: a.port, weight: 1 }, { host: '127.0.0.1', port: b.port, weight: 0 }] } },
    ]);
    assert.deepEqual(Object.fromEntries(await tally(gw.url('/w0/map'), 20)), { [a.port]: 20 });
    assert.deepEqual(Object.fromEntries(await tally(gw.url('/w0/arr'), 20)), { [a.port]: 20 });
    assert.equal(b.seen.length, 0);
  });

  it('uses a lower priority tier only when every higher-priority node failed', async () => {
    const [high, low] = [await up(), await up()];
    const dead1 = await freePort();
    const dead2 = await freePort();
    const node = (port: number, priority: number) => ({ host: '127.0.0.1', port, weight: 1, priority });
    await applyRoutes(gw, probe, [
      // both tiers healthy: only the high tier serves
      { id: 'prio-ok', uri: '/prio/ok', upstream: { nodes: [node(low.port, 0), node(high.port, 10)] } },
      // one high node dead: the other high node serves (retry stays in the tier)
      { id: 'prio-half', uri: '/prio/half', upstream: { nodes: [node(dead1, 10), node(high.port, 10), node(low.port, 0)] } },
      // whole high tier dead: the low tier serves
      { id: 'prio-down', uri: '/prio/down', upstream: { nodes: [node(dead1, 10), node(dead2, 10), node(low.port, -1)] } },
    ]);
    assert.deepEqual(Object.fromEntries(await tally(gw.url('/prio/ok'), 20)), { [high.port]: 20 });
    assert.deepEqual(Object.fromEntries(await tally(gw.url('/prio/half'), 20)), { [high.port]: 20 });
    assert.equal(low.seen.length, 0, 'the low tier was used while a higher node was healthy');
    assert.deepEqual(Object.fromEntries(await tally(gw.url('/prio/down'), 10)), { [low.port]: 10 });
  });

  describe('chash', () => {
    let a: Upstream, b: Upstream, c: Upstream;
    before(async () => {
      [a, b, c] = [await up(), await up(), await up()];
      const nodes = { [a.node]: 1, [b.node]: 1, [c.node]: 1 };
      await applyRoutes(gw, probe, [
        { id: 'ch-header', uri: '/chash/header', upstream: { type: 'chash', hash_on: 'header', key: 'x-user', nodes } },
        { id: 'ch-cookie', uri: '/chash/cookie', upstream: { type: 'chash', hash_on: 'cookie', key: 'sid', nodes } },
        { id: 'ch-arg', uri: '/chash/arg', upstream: { type: 'chash', hash_on: 'vars', key: 'arg_id', nodes } },
        { id: 'ch-comb', uri: '/chash/comb', upstream: { type: 'chash', hash_on: 'vars_combinations', key: '$http_x_a$arg_b', nodes } },
      ]);
    });

    /** Asserts each key sticks to one node over 20 requests and that 30 keys use at least 2 nodes. */
    async function checkSticky(call: (key: string) => Promise<Reply>): Promise<void> {
      for (const key of ['alice', 'bob', 'carol']) {
        const ports = new Set<number | undefined>();
        for (let i = 0; i < 20; i++) ports.add(portOf(await call(key)));
        assert.equal(ports.size, 1, `key ${key} went to ${[...ports].join(', ')}`);
        assert.ok(!ports.has(undefined), `key ${key} failed`);
      }
      const spread = new Set<number | undefined>();
      for (let i = 0; i < 30; i++) spread.add(portOf(await call(`user-${i}`)));
      assert.ok(!spread.has(undefined));
      assert.ok(spread.size >= 2, `30 different keys all went to one node (${[...spread].join(', ')})`);
    }

    it('hash_on header: the same header value always reaches the same node', async () => {
      await checkSticky((key) => request(gw.url('/chash/header'), { headers: { 'X-User': key } }));
    });

    it('hash_on cookie: the same cookie value always reaches the same node', async () => {
      await checkSticky((key) => request(gw.url('/chash/cookie'), { headers: { Cookie: `theme=dark; sid=${key}; lang=en` } }));
    });

    it('hash_on vars with key arg_id: the same query argument always reaches the same node', async () => {
      await checkSticky((key) => request(gw.url(`/chash/arg?x=1&id=${key}`)));
    });

    it('hash_on vars_combinations $http_x_a$arg_b hashes the concatenation', async () => {
      await checkSticky((key) => request(gw.url(`/chash/comb?b=${key}`), { headers: { 'X-A': `h-${key.length}` } }));
      // "foo" + "bar" and "foob" + "ar" make the same key
      const byKey = new Set<number | undefined>();
      byKey.add(portOf(await request(gw.url('/chash/comb?b=bar'), { headers: { 'X-A': 'foo' } })));
      byKey.add(portOf(await request(gw.url('/chash/comb?b=ar'), { headers: { 'X-A': 'foob' } })));
      byKey.add(portOf(await request(gw.url('/chash/comb?b=r'), { headers: { 'X-A': 'fooba' } })));
      assert.equal(byKey.size, 1);
      assert.ok(!byKey.has(undefined));
      // the query argument alone changes the node for some values
      const byArg = new Set<number | undefined>();
      for (let i = 0; i < 30; i++) byArg.add(portOf(await request(gw.url(`/chash/comb?b=v${i}`), { headers: { 'X-A': 'fixed' } })));
      assert.ok(byArg.size >= 2);
    });
  });

  for (const type of ['least_conn', 'ewma']) {
    it(`${type}: requests succeed and both nodes receive traffic`, async () => {
      const a = await delayedEcho(30);
      const b = await delayedEcho(30);
      ups.push(a, b);
      await applyRoutes(gw, probe, [{ id: `lb-${type}`, uri: `/lb/${type}`, upstream: { type, nodes: { [a.node]: 1, [b.node]: 1 } } }]);
      for (let round = 0; round < 4; round++) {
        const replies = await Promise.all(Array.from({ length: 10 }, () => request(gw.url(`/lb/${type}`))));
        for (const r of replies) assert.equal(r.status, 200);
      }
      assert.equal(a.seen.length + b.seen.length, 40);
      assert.ok(a.seen.length > 0 && b.seen.length > 0, `a=${a.seen.length} b=${b.seen.length}`);
    });
  }
});

describe('retries, timeouts and non-idempotent requests', () => {
  let gw: Gateway;
  let probe: Upstream;
  const servers = serverTracker();
  const keep = servers.keep;

  before(async () => {
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    await probe?.close();
    await servers.closeAll();
  });

  it('retries a dead node on the live one (retries unset → #nodes - 1)', async () => {
    const live = keep(await startUpstream());
    const dead = await freePort();
    await applyRoutes(gw, probe, [{ id: 'r-dead', uri: '/retry/dead', upstream: { nodes: { [`127.0.0.1:${dead}`]: 1, [live.node]: 1 } } }]);
    assert.deepEqual(Object.fromEntries(await tally(gw.url('/retry/dead'), 20)), { [live.port]: 20 });
  });

  it('retries: 0 turns a dead node into 502s', async () => {
    const live = keep(await startUpstream());
    const dead = await freePort();
    await applyRoutes(gw, probe, [{ id: 'r-zero', uri: '/retry/zero', upstream: { retries: 0, nodes: { [`127.0.0.1:${dead}`]: 1, [live.node]: 1 } } }]);
    const counts = await tally(gw.url('/retry/zero'), 20);
    assert.ok((counts.get('status:502') ?? 0) > 0, `no 502 in ${JSON.stringify(Object.fromEntries(counts))}`);
    assert.ok((counts.get(live.port) ?? 0) > 0);
    assert.equal((counts.get('status:502') ?? 0) + (counts.get(live.port) ?? 0), 20);
  });

  it('all nodes dead → 502 with an HTML error page', async () => {
    const [d1, d2] = [await freePort(), await freePort()];
    await applyRoutes(gw, probe, [{ id: 'r-all', uri: '/retry/all', upstream: { nodes: { [`127.0.0.1:${d1}`]: 1, [`127.0.0.1:${d2}`]: 1 } } }]);
    const reply = await request(gw.url('/retry/all'));
    assert.equal(reply.status, 502);
    assert.match(String(reply.headers['content-type']), /^text\/html/);
    assert.match(reply.body, /<html>/);
    assert.match(reply.body, /502 Bad Gateway/);
  });

  it('gateway-generated 502/504 carry Server and X-APISIX-Upstream-Status', async () => {
    const dead = await freePort();
    const silent = keep(await startRawUpstream());
    await applyRoutes(gw, probe, [
      { id: 'err-502', uri: '/errhdr/502', upstream: { nodes: { [`127.0.0.1:${dead}`]: 1 } } },
      { id: 'err-504', uri: '/errhdr/504', upstream: { timeout: { connect: 1, send: 1, read: 1 }, nodes: { [silent.node]: 1 } } },
    ]);
    const bad = await request(gw.url('/errhdr/502'));
    assert.equal(bad.status, 502);
    assert.equal(bad.headers.server, `Causeway/${VERSION}`);
    assert.equal(bad.headers['x-apisix-upstream-status'], '502');
    const slow = await request(gw.url('/errhdr/504'), { timeoutMs: 30_000 });
    assert.equal(slow.status, 504);
    assert.equal(slow.headers['x-apisix-upstream-status'], '504');
  });

  it('a POST whose connection failed (nothing sent) is retried with its whole body', async () => {
    const live = keep(await startUpstream());
    const dead = await freePort();
    await applyRoutes(gw, probe, [{ id: 'r-post', uri: '/retry/post', upstream: { nodes: { [`127.0.0.1:${dead}`]: 1, [live.node]: 1 } } }]);
    const body = Buffer.alloc(1 << 20);
    for (let i = 0; i < body.length; i++) body[i] = 97 + (i % 26);
    for (let i = 0; i < 4; i++) {
      const reply = await request(gw.url('/retry/post'), { method: 'POST', body });
      assert.equal(reply.status, 200);
      assert.equal(live.seen.at(-1)!.body, body.toString());
    }
    assert.equal(live.seen.length, 4);
  });

  it('retry_timeout stops retrying once it is used up', async () => {
    const slow = [keep(await slowFailing(700)), keep(await slowFailing(700)), keep(await slowFailing(700))];
    const nodes = Object.fromEntries(slow.map((s) => [s.node, 1]));
    await applyRoutes(gw, probe, [
      { id: 'rt-small', uri: '/retry/timeout-small', upstream: { retries: 2, retry_timeout: 0.3, nodes } },
      { id: 'rt-none', uri: '/retry/timeout-none', upstream: { retries: 2, nodes } },
    ]);
    const total = () => slow.reduce((n, s) => n + s.requests.length, 0);
    const limited = await request(gw.url('/retry/timeout-small'), { timeoutMs: 20_000 });
    assert.equal(limited.status, 502);
    assert.equal(total(), 1, 'retry_timeout 0.3 s: only the first (700 ms) attempt should run');
    const unlimited = await request(gw.url('/retry/timeout-none'), { timeoutMs: 20_000 });
    assert.equal(unlimited.status, 502);
    assert.equal(total(), 1 + 3, 'without retry_timeout every node is tried');
  });

  it('upstream timeout {connect, send, read: 1} → 504 within a few seconds', async () => {
    const silent = keep(await startRawUpstream()); // reads, never answers
    await applyRoutes(gw, probe, [{ id: 't-up', uri: '/timeout/upstream', upstream: { timeout: { connect: 1, send: 1, read: 1 }, nodes: { [silent.node]: 1 } } }]);
    const started = Date.now();
    const reply = await request(gw.url('/timeout/upstream'), { timeoutMs: 30_000 });
    const took = Date.now() - started;
    assert.equal(reply.status, 504);
    assert.match(reply.body, /504 Gateway Time-out|504 Gateway Timeout/);
    assert.equal(silent.requests.length, 1);
    assert.ok(took < 10_000, `took ${took} ms`);
  });

  it('a route timeout overrides the upstream timeout', async () => {
    const silent = keep(await startRawUpstream());
    await applyRoutes(gw, probe, [{
      id: 't-route', uri: '/timeout/route', timeout: { connect: 1, send: 1, read: 1 },
      upstream: { timeout: { connect: 30, send: 30, read: 30 }, nodes: { [silent.node]: 1 } },
    }]);
    const started = Date.now();
    const reply = await request(gw.url('/timeout/route'), { timeoutMs: 40_000 });
    const took = Date.now() - started;
    assert.equal(reply.status, 504);
    assert.ok(took < 10_000, `took ${took} ms: the upstream's 30 s read timeout was used`);
  });

  it('an upstream answering within the timeout → 200', async () => {
    const slowish = keep(await delayedEcho(200));
    await applyRoutes(gw, probe, [{ id: 't-ok', uri: '/timeout/ok', upstream: { timeout: { connect: 5, send: 5, read: 5 }, nodes: { [slowish.node]: 1 } } }]);
    assert.equal(echoBody(await request(gw.url('/timeout/ok'))).port, slowish.port);
  });

  it('a timed-out node is retried on the next node (proxy_next_upstream timeout)', async () => {
    const silent = keep(await startRawUpstream());
    const live = keep(await startUpstream());
    await applyRoutes(gw, probe, [{ id: 't-next', uri: '/timeout/next', upstream: { timeout: { connect: 1, send: 1, read: 1 }, nodes: { [silent.node]: 1, [live.node]: 1 } } }]);
    for (let i = 0; i < 2; i++) {
      assert.equal(echoBody(await request(gw.url('/timeout/next'), { timeoutMs: 20_000 })).port, live.port);
    }
    assert.equal(silent.requests.length, 1);
  });

  it('a POST that reached an upstream which then reset is not retried; a GET is', async () => {
    const resetter = () => startUpstream((_req, res) => res.socket!.destroy());
    const r1 = keep(await resetter());
    const r2 = keep(await resetter());
    const live = keep(await startUpstream());
    await applyRoutes(gw, probe, [
      { id: 'ni-reset', uri: '/nonidem/reset', upstream: { nodes: { [r1.node]: 1, [r2.node]: 1 } } },
      { id: 'ni-mixed', uri: '/nonidem/mixed', upstream: { nodes: { [r1.node]: 1, [live.node]: 1 } } },
    ]);
    const post = await request(gw.url('/nonidem/reset'), { method: 'POST', body: 'payload', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(post.status, 502);
    assert.equal(r1.seen.length + r2.seen.length, 1, 'the POST was sent to a second upstream');

    const get = await request(gw.url('/nonidem/reset'));
    assert.equal(get.status, 502);
    assert.equal(r1.seen.length + r2.seen.length, 1 + 2, 'the GET should be tried on both nodes');

    for (let i = 0; i < 6; i++) assert.equal(echoBody(await request(gw.url('/nonidem/mixed'))).port, live.port);
    // POSTs to the mixed upstream: the ones that hit the resetter fail, none is replayed on the live node
    const before = { r1: r1.seen.length, live: live.seen.length };
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(gw.url('/nonidem/mixed'), { method: 'POST', body: `n${i}` })).status);
    const resetHits = r1.seen.length - before.r1;
    const liveHits = live.seen.length - before.live;
    assert.equal(resetHits + liveHits, 6);
    assert.equal(statuses.filter((s) => s === 502).length, resetHits);
    assert.equal(statuses.filter((s) => s === 200).length, liveHits);
    assert.ok(resetHits > 0);
  });
});

describe('pass_host', () => {
  let gw: Gateway;
  let probe: Upstream;
  let echo: Upstream;

  before(async () => {
    probe = await startUpstream();
    echo = await startUpstream();
    gw = await startGateway();
    await applyRoutes(gw, probe, [
      { id: 'ph-pass', uri: '/host/pass', upstream: { pass_host: 'pass', nodes: { [echo.node]: 1 } } },
      { id: 'ph-default', uri: '/host/default', upstream: { nodes: { [echo.node]: 1 } } },
      { id: 'ph-node', uri: '/host/node', upstream: { pass_host: 'node', nodes: { [echo.node]: 1 } } },
      { id: 'ph-rewrite', uri: '/host/rewrite', upstream: { pass_host: 'rewrite', upstream_host: 'rewritten.example.com', nodes: { [echo.node]: 1 } } },
      { id: 'ph-bad', uri: '/host/bad', upstream: { pass_host: 'rewrite', nodes: { [echo.node]: 1 } } },
    ]);
  });
  after(async () => {
    await gw?.stop();
    await probe?.close();
    await echo?.close();
  });

  it('pass (and the default) sends the client Host', async () => {
    for (const path of ['/host/pass', '/host/default']) {
      const seen = echoBody(await request(gw.url(path), { headers: { Host: 'client.example.com:8080' } }));
      assert.equal(seen.headers.host, 'client.example.com:8080');
    }
  });

  it('node sends the node host (with its port, as it is not the scheme default)', async () => {
    // apache/apisix balancer.lua parse_server_for_upstream_host: host, plus ":" .. port unless the
    // port is the scheme's standard one (80 for http)
    const seen = echoBody(await request(gw.url('/host/node'), { headers: { Host: 'client.example.com' } }));
    assert.equal(seen.headers.host, `127.0.0.1:${echo.port}`);
  });

  it('rewrite sends upstream_host', async () => {
    const seen = echoBody(await request(gw.url('/host/rewrite'), { headers: { Host: 'client.example.com' } }));
    assert.equal(seen.headers.host, 'rewritten.example.com');
  });

  it('rewrite without upstream_host is rejected: the item is skipped and the log says why', async () => {
    const reply = await request(gw.url('/host/bad'));
    assert.equal(reply.status, 404);
    assert.match(gw.output(), /upstream_host/);
  });
});

describe('proxy headers (X-Real-IP, X-Forwarded-*)', () => {
  let probe: Upstream;
  let echo: Upstream;
  let plain: Gateway;
  let trustLocal: Gateway;
  let trustOther: Gateway;
  let showStatus: Gateway;

  before(async () => {
    probe = await startUpstream();
    echo = await startUpstream();
    [plain, trustLocal, trustOther, showStatus] = await Promise.all([
      startGateway(),
      startGateway({ config: { apisix: { trusted_addresses: ['127.0.0.1'] } } }),
      startGateway({ config: { apisix: { trusted_addresses: ['10.0.0.1'] } } }),
      startGateway({ config: { apisix: { show_upstream_status_in_response_header: true } } }),
    ]);
    for (const gw of [plain, trustLocal, trustOther, showStatus]) await applyRoutes(gw, probe, [{ id: 'hdr', uri: '/hdr', upstream: { nodes: { [echo.node]: 1 } } }]);
  });
  after(async () => {
    await Promise.all([plain?.stop(), trustLocal?.stop(), trustOther?.stop(), showStatus?.stop()]);
    await probe?.close();
    await echo?.close();
  });

  it('sets X-Real-IP, appends to X-Forwarded-For, and sets X-Forwarded-Proto/Host/Port', async () => {
    const seen = echoBody(await request(plain.url('/hdr'), { headers: { Host: 'www.example.com:1234', 'X-Forwarded-For': '1.2.3.4' } }));
    assert.equal(seen.headers['x-real-ip'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-for'], '1.2.3.4, 127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], 'www.example.com');
    assert.equal(seen.headers['x-forwarded-port'], String(plain.port));
  });

  it('several incoming X-Forwarded-For lines are joined, then the peer appended', async () => {
    const seen = echoBody(await request(plain.url('/hdr'), { headers: { 'X-Forwarded-For': ['1.1.1.1', '2.2.2.2, 3.3.3.3'] } }));
    assert.equal(seen.headers['x-forwarded-for'], '1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1');
  });

  it('show_upstream_status_in_response_header: true sends X-APISIX-Upstream-Status on a 200', async () => {
    const reply = await request(showStatus.url('/hdr'));
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-apisix-upstream-status'], '200');
    assert.equal((await request(plain.url('/hdr'))).headers['x-apisix-upstream-status'], undefined);
  });

  it('without an incoming chain X-Forwarded-For is the peer address', async () => {
    const seen = echoBody(await request(plain.url('/hdr')));
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  });

  it('without trusted_addresses incoming X-Forwarded-Proto/Host/Port are overwritten', async () => {
    const seen = echoBody(await request(plain.url('/hdr'), {
      headers: { Host: 'real.example.com', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'spoofed.example.com', 'X-Forwarded-Port': '443' },
    }));
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], 'real.example.com');
    assert.equal(seen.headers['x-forwarded-port'], String(plain.port));
  });

  it('a trusted peer keeps its X-Forwarded-Proto and X-Forwarded-For chain', async () => {
    const seen = echoBody(await request(trustLocal.url('/hdr'), { headers: { 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '1.2.3.4' } }));
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-for'], '1.2.3.4, 127.0.0.1');
    assert.equal(seen.headers['x-real-ip'], '127.0.0.1');
  });

  it('an untrusted peer (trusted_addresses set, peer not in it) gets its chain replaced and X-Forwarded-Proto overwritten', async () => {
    const seen = echoBody(await request(trustOther.url('/hdr'), { headers: { 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '1.2.3.4' } }));
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
  });
});

describe('hop-by-hop headers, Server, X-APISIX-Upstream-Status, keep-alive, response and body forms', () => {
  let gw: Gateway;
  let probe: Upstream;
  const servers = serverTracker();
  const keep = servers.keep;

  before(async () => {
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    await probe?.close();
    await servers.closeAll();
  });

  it('removes hop-by-hop request headers (incl. Connection-listed ones) and keeps the rest with their case', async () => {
    const echo = keep(await startUpstream());
    await applyRoutes(gw, probe, [{ id: 'hop-req', uri: '/hop/req', upstream: { nodes: { [echo.node]: 1 } } }]);
    const head = [
      'GET /hop/req HTTP/1.1',
      `Host: 127.0.0.1:${gw.port}`,
      'Connection: keep-alive, X-Custom-Hop',
      'X-Custom-Hop: 1',
      'Keep-Alive: timeout=5, max=100',
      'TE: trailers',
      'Proxy-Connection: keep-alive',
      'X-Keep-Me: yes',
      'X-MiXeD-CaSe: value',
      '', '',
    ].join('\r\n');
    const ex = await rawExchange(gw.port, head, { until: (d) => parseRawResponses(d, false).responses.length === 1 });
    const [res] = parseRawResponses(ex.data, ex.closed).responses;
    assert.equal(res?.status, 200);
    assert.equal(echo.seen.length, 1);
    const raw = echo.seen[0].rawHeaders;
    const names = raw.filter((_, i) => i % 2 === 0);
    const lower = names.map((n) => n.toLowerCase());
    for (const hop of ['x-custom-hop', 'keep-alive', 'te', 'proxy-connection']) assert.ok(!lower.includes(hop), `${hop} reached the upstream: ${names.join(', ')}`);
    const conn = echo.seen[0].headers.connection;
    assert.ok(conn === undefined || !/x-custom-hop/i.test(conn), `Connection: ${conn}`);
    assert.ok(names.includes('X-Keep-Me'), `names: ${names.join(', ')}`);
    assert.ok(names.includes('X-MiXeD-CaSe'), `names: ${names.join(', ')}`);
    assert.equal(echo.seen[0].headers['x-keep-me'], 'yes');
  });

  it('removes hop-by-hop response headers, replaces Server, keeps end-to-end ones', async () => {
    const raw = keep(await startRawUpstream((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nServer: upstream/9.9\r\nConnection: x-up-hop\r\nX-Up-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End-To-End: kept\r\nContent-Length: 2\r\n\r\nok');
    }));
    await applyRoutes(gw, probe, [{ id: 'hop-res', uri: '/hop/res', upstream: { nodes: { [raw.node]: 1 } } }]);
    const reply = await request(gw.url('/hop/res'));
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'ok');
    assert.equal(reply.headers['x-up-hop'], undefined);
    assert.equal(reply.headers['keep-alive'], undefined);
    assert.ok(!/x-up-hop/i.test(String(reply.headers.connection ?? '')));
    assert.equal(reply.headers['x-end-to-end'], 'kept');
    assert.equal(reply.headers.server, `Causeway/${VERSION}`);
  });

  it('X-APISIX-Upstream-Status is sent for an upstream 5xx and not for a 200', async () => {
    const up = keep(await startUpstream((req, res) => {
      const status = req.url!.includes('fail') ? 503 : 200;
      res.writeHead(status, { 'Content-Type': 'text/plain' });
      res.end(`status ${status}`);
    }));
    await applyRoutes(gw, probe, [{ id: 'ups-status', uri: '/upstatus/*', upstream: { nodes: { [up.node]: 1 } } }]);
    const failed = await request(gw.url('/upstatus/fail'));
    assert.equal(failed.status, 503);
    assert.equal(failed.body, 'status 503');
    assert.equal(failed.headers['x-apisix-upstream-status'], '503');
    const ok = await request(gw.url('/upstatus/ok'));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['x-apisix-upstream-status'], undefined);
  });

  it('keeps upstream connections alive across requests', async () => {
    const echo = keep(await startUpstream());
    await applyRoutes(gw, probe, [{ id: 'ka', uri: '/keepalive', upstream: { nodes: { [echo.node]: 1 } } }]);
    for (let i = 0; i < 50; i++) assert.equal((await request(gw.url('/keepalive'))).status, 200);
    assert.equal(echo.seen.length, 50);
    assert.ok(echo.connections <= 2, `${echo.connections} upstream connections for 50 sequential requests`);
  });

  it('keepalive_pool.requests caps the requests per upstream connection', async () => {
    const echo = keep(await startUpstream());
    await applyRoutes(gw, probe, [{ id: 'ka-req', uri: '/keepalive/capped', upstream: { keepalive_pool: { size: 10, idle_timeout: 60, requests: 10 }, nodes: { [echo.node]: 1 } } }]);
    for (let i = 0; i < 50; i++) assert.equal((await request(gw.url('/keepalive/capped'))).status, 200);
    assert.ok(echo.connections >= 5, `${echo.connections} upstream connections for 50 requests with requests: 10`);
  });

  it('a pooled connection the upstream dropped is replaced transparently (GET, single node, no retries left)', async () => {
    // every connection answers its first request and closes, unanswered, on its second one: the
    // race where an idle keep-alive connection is closed by the upstream just as it is reused
    const perConn = new WeakMap<object, number>();
    const flaky = keep(await startRawUpstream((socket) => {
      const n = (perConn.get(socket) ?? 0) + 1;
      perConn.set(socket, n);
      if (n === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else socket.destroy();
    }));
    await applyRoutes(gw, probe, [{ id: 'stale', uri: '/stale', upstream: { nodes: { [flaky.node]: 1 } } }]);
    for (let i = 0; i < 3; i++) {
      const reply = await request(gw.url('/stale'));
      assert.equal(reply.status, 200, `request ${i}`);
      assert.equal(reply.body, 'ok');
    }
    assert.equal(flaky.connections, 3);
  });

  describe('upstream response forms', () => {
    let http1: Upstream;
    let raw: RawUpstream;
    before(async () => {
      http1 = keep(await startUpstream((req, res) => {
        const path = req.url!.split('?')[0];
        switch (path) {
          case '/form/chunked':
            res.writeHead(200, { 'Content-Type': 'text/plain' });
            for (let i = 0; i < 5; i++) res.write(`part-${i};`);
            res.end('end');
            return;
          case '/form/length':
            res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 11 });
            res.end('hello world');
            return;
          case '/form/204':
            res.writeHead(204, { 'X-Kind': 'no-content' });
            res.end();
            return;
          case '/form/304':
            res.writeHead(304, { ETag: '"v1"' });
            res.end();
            return;
          case '/form/head':
            res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 100 });
            res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(100));
            return;
          case '/form/cookies':
            res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly', 'c=3']);
            res.end('cookies');
            return;
          case '/form/trailers':
            res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'X-Checksum' });
            res.write('with ');
            res.write('trailers');
            res.addTrailers({ 'X-Checksum': 'abc123' });
            res.end();
            return;
          default:
            res.writeHead(404);
            res.end();
        }
      }));
      raw = keep(await startRawUpstream((socket, req) => {
        if (req.url.startsWith('/form/close10')) {
          socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body');
        } else if (req.url.startsWith('/form/close11')) {
          socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhttp/1.1 close-delimited');
        } else if (req.url.startsWith('/form/interim')) {
          socket.write('HTTP/1.1 100 Continue\r\n\r\n');
          socket.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n');
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal');
        } else {
          socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        }
      }));
      await applyRoutes(gw, probe, [
        { id: 'forms', uri: '/form/*', upstream: { nodes: { [http1.node]: 1 } } },
        { id: 'forms-close10', uri: '/form/close10', upstream: { nodes: { [raw.node]: 1 } } },
        { id: 'forms-close11', uri: '/form/close11', upstream: { nodes: { [raw.node]: 1 } } },
        { id: 'forms-interim', uri: '/form/interim', upstream: { nodes: { [raw.node]: 1 } } },
      ]);
    });

    it('chunked response', async () => {
      const reply = await request(gw.url('/form/chunked'));
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'part-0;part-1;part-2;part-3;part-4;end');
    });

    it('content-length response', async () => {
      const reply = await request(gw.url('/form/length'));
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-length'], '11');
      assert.equal(reply.body, 'hello world');
    });

    it('close-delimited response (HTTP/1.0, and HTTP/1.1 with Connection: close)', async () => {
      for (let i = 0; i < 2; i++) {
        const r10 = await request(gw.url('/form/close10'));
        assert.equal(r10.status, 200);
        assert.equal(r10.body, 'close-delimited body');
        const r11 = await request(gw.url('/form/close11'));
        assert.equal(r11.status, 200);
        assert.equal(r11.body, 'http/1.1 close-delimited');
      }
    });

    it('204 and 304 carry no body, and the connection stays usable', async () => {
      // raw socket: make sure no stray body bytes precede the next response on the same connection
      const reqs = `GET /form/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /form/304 HTTP/1.1\r\nHost: x\r\n\r\nGET /form/length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
      const ex = await rawExchange(gw.port, reqs);
      const { responses } = parseRawResponses(ex.data, ex.closed);
      assert.deepEqual(responses.map((r) => r.status), [204, 304, 200]);
      assert.equal(responses[0].headers['x-kind']?.[0], 'no-content');
      assert.equal(responses[1].headers.etag?.[0], '"v1"');
      assert.equal(responses[2].body.toString(), 'hello world');
    });

    it('HEAD gets the headers and no body, and the upstream connection stays usable', async () => {
      for (let i = 0; i < 3; i++) {
        const head = await request(gw.url('/form/head'), { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers['content-length'], '100');
        assert.equal(head.body, '');
      }
      const get = await request(gw.url('/form/head'));
      assert.equal(get.status, 200);
      assert.equal(get.body, 'x'.repeat(100));
    });

    it('1xx interim responses from the upstream are passed over; the final response arrives', async () => {
      const reply = await request(gw.url('/form/interim'));
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'final');
    });

    it('a client Expect: 100-continue upload gets 100 Continue and then the upstream answer', async () => {
      const body = 'expect-body';
      const ex = await rawExchange(gw.port, [
        `POST /form/length HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        body,
      ], { gapMs: 300 });
      const { responses } = parseRawResponses(ex.data, ex.closed);
      const statuses = responses.map((r) => r.status);
      assert.equal(statuses.at(-1), 200, `statuses ${statuses.join(',')}`);
      assert.equal(responses.at(-1)!.body.toString(), 'hello world');
      assert.ok(statuses.includes(100), `no 100 Continue: ${statuses.join(',')}`);
    });

    it('keeps several Set-Cookie headers', async () => {
      const reply = await request(gw.url('/form/cookies'));
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.headers['set-cookie'], ['a=1; Path=/', 'b=2; HttpOnly', 'c=3']);
    });

    it('a chunked response with trailers does not break the response or the next one', async () => {
      for (let i = 0; i < 3; i++) {
        const reply = await request(gw.url('/form/trailers'));
        assert.equal(reply.status, 200);
        assert.equal(reply.body, 'with trailers');
      }
      assert.equal((await request(gw.url('/form/length'))).body, 'hello world');
    });
  });

  describe('request body forms', () => {
    let echo: Upstream;
    before(async () => {
      echo = keep(await startUpstream());
      await applyRoutes(gw, probe, [{ id: 'body', uri: '/body/*', upstream: { nodes: { [echo.node]: 1 } } }]);
    });

    const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

    it('a Content-Length body reaches the upstream unchanged', async () => {
      for (const size of [1, 1000, 200_000]) {
        const body = Buffer.alloc(size);
        for (let i = 0; i < size; i++) body[i] = 32 + ((i * 7) % 90);
        const reply = await request(gw.url('/body/length'), { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' } });
        assert.equal(reply.status, 200);
        const last = echo.seen.at(-1)!;
        assert.equal(last.headers['content-length'], String(size));
        assert.equal(sha(last.body), sha(body.toString()));
      }
    });

    it('an empty POST (Content-Length: 0) keeps its Content-Length: 0', async () => {
      const ex = await rawExchange(gw.port, 'POST /body/empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      assert.equal(parseRawResponses(ex.data, ex.closed).responses[0]?.status, 200);
      const last = echo.seen.at(-1)!;
      assert.equal(last.url, '/body/empty');
      assert.equal(last.headers['content-length'], '0');
    });

    it('a chunked body reaches the upstream with the same bytes', async () => {
      const parts = ['first,', 'second,', 'x'.repeat(70_000), ',last'];
      const reply = await new Promise<number>((resolve, reject) => {
        const req = http.request(gw.url('/body/chunked'), { method: 'PUT', agent: false, headers: { 'Transfer-Encoding': 'chunked' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        });
        req.on('error', reject);
        req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
        (async () => {
          for (const p of parts) {
            req.write(p);
            await sleep(20);
          }
          req.end();
        })();
      });
      assert.equal(reply, 200);
      const last = echo.seen.at(-1)!;
      assert.equal(last.method, 'PUT');
      assert.equal(last.body, parts.join(''));
    });

    it('passes the query string verbatim, encoded characters included', async () => {
      const target = '/body/query?a=%20b&c=%2F%3F%26&d=&e=x+y&%E2%9C%93=%e2%9c%93&f=1&f=2&g';
      const seen = echoBody(await request(gw.url(target)));
      assert.equal(seen.url, target);
    });
  });
});
