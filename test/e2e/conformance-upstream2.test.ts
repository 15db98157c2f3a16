// Conformance cases from Apache APISIX's black-box tests, second pass: t/node/upstream-retries.t,
// upstream-keepalive-pool.t, chash-balance.t, chash-hashon.t, least_conn.t, least_conn2.t,
// ewma.t, route-delete.t and remote-addr-ipv6.t. Each `it` names the APISIX case it reproduces.
// APISIX's test servers on 127.0.0.1:1980/1981/1982 are emulated by `testServer` upstreams on free
// ports, so a node is known by its port and the upstream that answered `/server_port` says which.
//
// Distribution: where APISIX asserts exact counts that follow from its algorithm and fixed ports
// (roundrobin, least_conn, ewma), the same counts are asserted. For chash APISIX's counts depend on
// resty.chash's ring and on the node addresses; Causeway's ring differs (docs/compat.md) and the
// ports here are random, so these cases assert what is deterministic: a key always lands on the same
// node, weight-0 nodes get nothing, the key source is the one configured (different values spread
// over the nodes), and a missing key falls back to `remote_addr`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import { freePort, request, sleep, startGateway, startUpstream, waitFor, type Gateway, type Reply, type Upstream } from '../helpers/gateway.ts';

type Obj = Record<string, unknown>;

let version = 0;

/** Replaces apisix.yaml (plus a probe route on its own upstream) and waits until this version is live. */
async function apply(gw: Gateway, probe: Upstream, content: { routes: Obj[]; upstreams?: Obj[] }, url = gw.url): Promise<void> {
  const v = ++version;
  gw.writeRoutes({ ...content, routes: [...content.routes, { id: `probe-${v}`, uri: `/__probe/${v}`, upstream: { nodes: { [probe.node]: 1 } } }] });
  await waitFor(async () => (await request(url(`/__probe/${v}`), { timeoutMs: 2000 })).status === 200, 10_000, `routes version ${v} to be live`);
}

interface TestServer extends Upstream {
  /** Paths of the requests that reached this server, in arrival order. */
  arrivals: string[];
}

/**
 * APISIX's t/lib/server.lua endpoints used here: /hello, /server_port (the port as the body),
 * /mysleep?seconds=&abort= (abort closes the connection without an answer after the sleep) and
 * /ewma (answers its port after `ewmaDelayMs`: APISIX's 1980 takes 1 ms, 1981 and 1982 5 ms).
 */
async function testServer(ewmaDelayMs = 1): Promise<TestServer> {
  const arrivals: string[] = [];
  const up = await startUpstream((req, res) => {
    const url = new URL(req.url!, 'http://x');
    arrivals.push(url.pathname);
    const text = (status: number, body: string) => {
      res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    const port = String(req.socket.localPort);
    switch (url.pathname) {
      case '/hello':
        return text(200, 'hello world\n');
      case '/server_port':
        return text(200, port);
      case '/ewma':
        setTimeout(() => text(200, port), ewmaDelayMs);
        return;
      case '/mysleep': {
        const seconds = url.searchParams.get('seconds') ?? '0';
        setTimeout(() => (url.searchParams.get('abort') ? req.socket.destroy() : text(200, `${seconds}\n`)), Number(seconds) * 1000);
        return;
      }
      default:
        return url.pathname.startsWith('/__probe/') ? text(200, 'probe\n') : text(404, 'not found\n');
    }
  });
  return Object.assign(up, { arrivals });
}

/** A listener that accepts and resets every connection, logging `ip:port` each time (a node that fails after connect). */
async function resetter(ip: string, port: number, log: string[]): Promise<net.Server> {
  const server = net.createServer((socket) => {
    log.push(ip);
    socket.resetAndDestroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve());
  });
  return server;
}

/** A listener that accepts connections and never answers (APISIX's ewma.t uses a node that loops back to itself). */
async function silent(): Promise<{ server: net.Server; node: string }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  }) as typeof server.close;
  return { server, node: `127.0.0.1:${(server.address() as net.AddressInfo).port}` };
}

/** `n` sequential GETs of `path`, as APISIX's tests do: counts of the bodies (ports) that answered. */
async function portCounts(gw: Gateway, path: string | ((i: number) => string), n: number, headers?: (i: number) => http.OutgoingHttpHeaders): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 1; i <= n; i++) {
    const reply = await request(gw.url(typeof path === 'string' ? path : path(i)), { headers: headers?.(i) });
    const key = reply.status === 200 ? reply.body : `status:${reply.status}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** The port answering each of `keys` (sent via `send`), asked twice per key: the answers must agree. */
async function stickyPorts(gw: Gateway, keys: string[], send: (key: string) => { path: string; headers?: http.OutgoingHttpHeaders }): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let round = 0; round < 2; round++) {
    for (const key of keys) {
      const { path, headers } = send(key);
      const reply = await request(gw.url(path), { headers });
      assert.equal(reply.status, 200, `key ${key}: ${reply.status} ${reply.body}`);
      if (round === 0) out.set(key, reply.body);
      else assert.equal(reply.body, out.get(key), `key ${key} moved from ${out.get(key)} to ${reply.body}`);
    }
  }
  return out;
}

function range(n: number, f: (i: number) => string): string[] {
  return Array.from({ length: n }, (_, i) => f(i + 1));
}

describe('conformance: t/node/upstream-retries.t', () => {
  let gw: Gateway;
  let server: TestServer;
  let probe: Upstream;
  // APISIX's unreachable nodes: port 1 on loopback addresses refuses the connection.
  const dead4 = { '127.0.0.1:1': 1, '127.0.0.2:1': 1, '127.0.0.3:1': 1, '127.0.0.4:1': 1 };

  before(async () => {
    server = await testServer();
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    await server?.close();
    await probe?.close();
  });

  it('TEST 1-3: /not_found → 404 with the JSON body', async () => {
    await apply(gw, probe, { upstreams: [{ id: '1', nodes: dead4, type: 'roundrobin' }], routes: [{ id: 1, uri: '/hello', upstream_id: '1' }] });
    const reply = await request(gw.url('/not_found'));
    assert.equal(reply.status, 404);
    assert.equal(reply.body, '{"error_msg":"404 Route Not Found"}\n');
  });

  it('TEST 4-5: retries default to the number of nodes - 1: four tries, then 502', async () => {
    await apply(gw, probe, { upstreams: [{ id: '1', nodes: dead4, type: 'roundrobin' }], routes: [{ id: 1, uri: '/hello', upstream_id: '1' }] });
    for (let i = 0; i < 2; i++) {
      const reply = await request(gw.url('/hello'));
      assert.equal(reply.status, 502);
      assert.equal(reply.headers['x-apisix-upstream-status'], '502, 502, 502, 502');
    }
  });

  it('TEST 6-7: retries = 1 → two tries', async () => {
    await apply(gw, probe, { upstreams: [{ id: '1', nodes: dead4, retries: 1, type: 'roundrobin' }], routes: [{ id: 1, uri: '/hello', upstream_id: '1' }] });
    const reply = await request(gw.url('/hello'));
    assert.equal(reply.status, 502);
    assert.equal(reply.headers['x-apisix-upstream-status'], '502, 502');
  });

  it('TEST 8-9: retries = 0 → one try', async () => {
    await apply(gw, probe, { upstreams: [{ id: '1', nodes: dead4, retries: 0, type: 'roundrobin' }], routes: [{ id: 1, uri: '/hello', upstream_id: '1' }] });
    const reply = await request(gw.url('/hello'));
    assert.equal(reply.status, 502);
    assert.equal(reply.headers['x-apisix-upstream-status'], '502');
  });

  it('TEST 10-11: retries > number of nodes → each node is tried once', async () => {
    await apply(gw, probe, {
      upstreams: [{ id: '1', nodes: { '127.0.0.1:1': 1, '127.0.0.2:1': 1 }, retries: 3, type: 'roundrobin' }],
      routes: [{ id: 1, uri: '/hello', upstream_id: '1' }],
    });
    const reply = await request(gw.url('/hello'));
    assert.equal(reply.status, 502);
    assert.equal(reply.headers['x-apisix-upstream-status'], '502, 502');
  });

  it('TEST 12: the same node is not retried twice', async () => {
    const log: string[] = [];
    const servers: net.Server[] = [];
    try {
      for (let tries = 0; tries < 5 && servers.length === 0; tries++) {
        const port = await freePort();
        try {
          for (const ip of ['127.0.0.1', '127.0.0.2']) servers.push(await resetter(ip, port, log));
          await apply(gw, probe, {
            upstreams: [{ id: '1', nodes: { [`127.0.0.1:${port}`]: 1, [`127.0.0.2:${port}`]: 1 }, retries: 3, type: 'roundrobin' }],
            routes: [{ id: 1, uri: '/hello', upstream_id: '1' }],
          });
        } catch {
          for (const s of servers.splice(0)) s.close();
        }
      }
      assert.equal(servers.length, 2);
      for (let i = 0; i < 2; i++) {
        log.length = 0;
        const reply = await request(gw.url('/hello'));
        assert.equal(reply.status, 502);
        assert.equal(log.length, 2);
        assert.deepEqual([...log].sort(), ['127.0.0.1', '127.0.0.2']);
      }
    } finally {
      for (const s of servers) s.close();
    }
  });

  it('TEST 13: retry_timeout stops the retries → 502', async () => {
    // Every node sleeps 1 s and then closes the connection; retries: 10, retry_timeout: 2.
    const others = [await testServer(), await testServer()];
    try {
      await apply(gw, probe, {
        routes: [{
          id: 1,
          uri: '/mysleep',
          upstream: { nodes: { [server.node]: 100, [others[0].node]: 100, [others[1].node]: 100 }, retries: 10, retry_timeout: 2, type: 'roundrobin' },
        }],
      });
      const started = Date.now();
      const reply = await request(gw.url('/mysleep?abort=true&seconds=1'), { timeoutMs: 15_000 });
      const elapsed = Date.now() - started;
      assert.equal(reply.status, 502);
      // APISIX logs "retry count: 2": its cached clock reads the deadline exactly at the second
      // failure (timers fire on the millisecond), so it starts one more try. Causeway stops once
      // retry_timeout has passed, after two tries. Either way the retries stop well before the 3
      // nodes × 10 retries allow.
      const tries = reply.headers['x-apisix-upstream-status']!.toString().split(', ').length;
      assert.ok(tries === 2 || tries === 3, `tries: ${tries}`);
      assert.ok(elapsed >= 1900 && elapsed < 3800, `elapsed ${elapsed} ms`);
    } finally {
      for (const s of others) await s.close();
    }
  });
});

describe('conformance: t/node/upstream-keepalive-pool.t', () => {
  let gw: Gateway;
  let server: TestServer;
  let probe: Upstream;

  before(async () => {
    server = await testServer();
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    await server?.close();
    await probe?.close();
  });

  /** Three requests on three client connections (resty.http's request_uri): new upstream connections opened. */
  async function hit3(): Promise<number> {
    const before = server.connections;
    for (let i = 0; i < 3; i++) {
      const reply = await request(gw.url('/hello'));
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'hello world\n');
    }
    return server.connections - before;
  }

  it('TEST 1: keepalive_pool.size 0 is rejected (the route does not load)', async () => {
    const port = await freePort();
    await apply(gw, probe, {
      upstreams: [{ id: '1', type: 'roundrobin', nodes: { [`127.0.0.1:${port}`]: 1 }, keepalive_pool: { size: 0 } }],
      routes: [{ id: 'bad', uri: '/bad', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${port}`]: 1 }, keepalive_pool: { size: 0 } } }],
    });
    assert.equal((await request(gw.url('/bad'))).status, 404);
    await waitFor(() => /keepalive_pool/.test(gw.output()) && /at least 1|>= 1|minimum/i.test(gw.output()), 5000, 'the validation error in the log');
  });

  it('TEST 2-3: size 4, requests 16: three requests share one upstream connection', async () => {
    await apply(gw, probe, {
      upstreams: [{ id: '1', type: 'roundrobin', nodes: { [server.node]: 1 }, keepalive_pool: { size: 4, idle_timeout: 8, requests: 16 } }],
      routes: [{ id: 1, uri: '/hello', upstream_id: 1 }],
    });
    assert.equal(await hit3(), 1);
  });

  it('TEST 4-5: requests 2: a connection serves two requests, the third opens a new one', async () => {
    await apply(gw, probe, {
      upstreams: [{ id: '1', type: 'roundrobin', nodes: { [server.node]: 1 }, keepalive_pool: { size: 1, idle_timeout: 8, requests: 2 } }],
      routes: [{ id: 1, uri: '/hello', upstream_id: 1 }],
    });
    assert.equal(await hit3(), 2);
  });

  it('TEST 6-7: without keepalive_pool the defaults apply (one connection reused)', async () => {
    await apply(gw, probe, { upstreams: [{ id: '1', type: 'roundrobin', nodes: { [server.node]: 1 } }], routes: [{ id: 1, uri: '/hello', upstream_id: 1 }] });
    assert.ok((await hit3()) <= 1);
    assert.equal(await hit3(), 0);
  });

  it('TEST 8-18: client certificates, SNI pools, gRPC', { todo: 'needs upstream TLS (tls.client_cert), https nodes with SNI and gRPC; not built yet' }, () => {});
});

describe('conformance: t/node/chash-balance.t', () => {
  let gw: Gateway;
  let s: TestServer[];
  let probe: Upstream;

  before(async () => {
    s = [await testServer(), await testServer(), await testServer()];
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    for (const x of s ?? []) await x.close();
    await probe?.close();
  });

  const chashRoute = (key: string, weights: number[]) => ({
    id: 1,
    uri: '/server_port',
    upstream: { key, type: 'chash', nodes: Object.fromEntries(weights.map((w, i) => [s[i].node, w])) },
  });

  it('TEST 1-2: key remote_addr, two nodes: all 12 requests on one node', async () => {
    await apply(gw, probe, { routes: [chashRoute('remote_addr', [1, 1])] });
    const counts = await portCounts(gw, '/server_port', 12);
    assert.equal(counts.size, 1, JSON.stringify([...counts]));
    assert.equal([...counts.values()][0], 12);
    assert.ok([String(s[0].port), String(s[1].port)].includes([...counts.keys()][0]));
  });

  it('TEST 3-4: key remote_addr, three nodes: all 12 requests on one node', async () => {
    await apply(gw, probe, { routes: [chashRoute('remote_addr', [1, 1, 1])] });
    const counts = await portCounts(gw, '/server_port', 12);
    assert.equal(counts.size, 1, JSON.stringify([...counts]));
    assert.equal([...counts.values()][0], 12);
  });

  it('TEST 5-6: weight-0 nodes get nothing', async () => {
    await apply(gw, probe, { routes: [chashRoute('remote_addr', [1, 0, 0])] });
    assert.deepEqual([...(await portCounts(gw, '/server_port', 12))], [[String(s[0].port), 12]]);
  });

  it('TEST 7-8: key query_string: each query string sticks to a node, and they spread', async () => {
    await apply(gw, probe, { routes: [chashRoute('query_string', [1, 1, 1])] });
    // APISIX: [5, 8, 5] over 18 keys (its ring and ports); here: stable per key and spread.
    const placed = await stickyPorts(gw, range(18, (i) => `var=2&var2=${i}`), (q) => ({ path: `/server_port?${q}` }));
    const used = new Set(placed.values());
    assert.ok(used.size >= 2, `all 18 keys on ${[...used]}`);
    for (const port of used) assert.ok(s.some((x) => String(x.port) === port));
  });

  it('TEST 9-10: key arg_device_id: each device id sticks to a node, and they spread', async () => {
    await apply(gw, probe, { routes: [chashRoute('arg_device_id', [1, 1, 1])] });
    const placed = await stickyPorts(gw, range(18, String), (id) => ({ path: `/server_port?device_id=${id}` }));
    assert.ok(new Set(placed.values()).size >= 2);
    // Only the argument counts: other arguments do not move the key.
    for (const [id, port] of placed) if (Number(id) <= 3) assert.equal((await request(gw.url(`/server_port?x=${id}9&device_id=${id}`))).body, port);
  });

  it('TEST 11-12: all nodes weight 0 → 502 without contacting an upstream', async () => {
    await apply(gw, probe, { routes: [chashRoute('arg_device_id', [0, 0])] });
    const reply = await request(gw.url('/server_port?device_id=1'));
    assert.match(String(reply.status), /^50\d$/);
    assert.equal(reply.status, 502);
    // No upstream was tried, so $upstream_status is empty and APISIX sends no X-APISIX-Upstream-Status.
    assert.equal(reply.headers['x-apisix-upstream-status'], undefined);
    await waitFor(() => /failed to find valid upstream server, no valid upstream node/.test(gw.output()), 5000, 'the error log line');
  });

  it('a lone weight-0 node is still used (APISIX skips the balancer for one node)', async () => {
    await apply(gw, probe, { routes: [chashRoute('arg_device_id', [0])] });
    const reply = await request(gw.url('/server_port?device_id=1'));
    assert.equal(reply.status, 200);
    assert.equal(reply.body, String(s[0].port));
  });
});

describe('conformance: t/node/chash-hashon.t', () => {
  let gw: Gateway;
  let s: TestServer[];
  let probe: Upstream;

  before(async () => {
    s = [await testServer(), await testServer()];
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    for (const x of s ?? []) await x.close();
    await probe?.close();
  });

  const route = (upstream: Obj) => ({ id: 1, uri: '/server_port', upstream: { type: 'chash', nodes: { [s[0].node]: 1, [s[1].node]: 1 }, ...upstream } });

  /** The node that `key remote_addr` picks for this client (the fallback's target). */
  async function remoteAddrNode(): Promise<string> {
    await apply(gw, probe, { routes: [route({ key: 'remote_addr' })] });
    return (await request(gw.url('/server_port'))).body;
  }

  it('TEST 1-4: hash_on consumer', { todo: 'needs the key-auth plugin and consumers (plugins are not built yet)' }, () => {});

  it('TEST 5-6: hash_on header, key custom_header (underscore): one value sticks, values spread', async () => {
    await apply(gw, probe, { routes: [route({ key: 'custom_header', hash_on: 'header' })] });
    const counts = await portCounts(gw, '/server_port', 4, () => ({ custom_header: 'custom-one' }));
    assert.equal(counts.size, 1, JSON.stringify([...counts]));
    assert.equal([...counts.values()][0], 4);
    // The header really is the key (not the remote_addr fallback): different values use both nodes.
    const placed = await stickyPorts(gw, range(24, (i) => `custom-${i}`), (v) => ({ path: '/server_port', headers: { custom_header: v } }));
    assert.equal(new Set(placed.values()).size, 2);
    // nginx's $http_custom_header also matches `Custom-Header`.
    for (const [v, port] of [...placed].slice(0, 4)) assert.equal((await request(gw.url('/server_port'), { headers: { 'Custom-Header': v } })).body, port);
  });

  it('TEST 7: hash_on header, header missing → remote_addr', async () => {
    const expected = await remoteAddrNode();
    await apply(gw, probe, { routes: [route({ key: 'custom_header', hash_on: 'header' })] });
    const counts = await portCounts(gw, '/server_port', 4, () => ({ 'miss-custom-header': 'custom-one' }));
    assert.deepEqual([...counts], [[expected, 4]]);
  });

  it('TEST 8-9: hash_on cookie: one value sticks, values spread', async () => {
    await apply(gw, probe, { routes: [route({ key: 'custom-cookie', hash_on: 'cookie' })] });
    const counts = await portCounts(gw, '/server_port', 4, () => ({ Cookie: 'custom-cookie=cuscookie' }));
    assert.equal(counts.size, 1);
    const placed = await stickyPorts(gw, range(24, (i) => `cookie${i}`), (v) => ({ path: '/server_port', headers: { Cookie: `a=b; custom-cookie=${v}` } }));
    assert.equal(new Set(placed.values()).size, 2);
  });

  it('TEST 10: hash_on cookie, cookie missing → remote_addr', async () => {
    const expected = await remoteAddrNode();
    await apply(gw, probe, { routes: [route({ key: 'custom-cookie', hash_on: 'cookie' })] });
    const counts = await portCounts(gw, '/server_port', 4, () => ({ Cookie: 'miss-custom-cookie=cuscookie' }));
    assert.deepEqual([...counts], [[expected, 4]]);
  });

  it('TEST 11-12: hash_on header, key X-Sessionid (upper case and hyphen)', async () => {
    await apply(gw, probe, { routes: [route({ key: 'X-Sessionid', hash_on: 'header' })] });
    // APISIX: chash_val_1..6 split 3/3; here: each value sticks, and values spread over both nodes.
    const placed = await stickyPorts(gw, range(24, (i) => `chash_val_${i}`), (v) => ({ path: '/server_port', headers: { 'X-Sessionid': v } }));
    assert.equal(new Set(placed.values()).size, 2);
  });

  it('TEST 13-14: hash_on vars_combinations `$http_custom_header-$http_custom_header_second`', async () => {
    await apply(gw, probe, { routes: [route({ key: '$http_custom_header-$http_custom_header_second', hash_on: 'vars_combinations' })] });
    const counts = await portCounts(gw, '/server_port', 4, () => ({ custom_header: 'custom-one', custom_header_second: 'custom-two' }));
    assert.equal(counts.size, 1);
    const placed = await stickyPorts(gw, range(24, (i) => `v${i}`), (v) => ({ path: '/server_port', headers: { custom_header: 'custom-one', custom_header_second: v } }));
    assert.equal(new Set(placed.values()).size, 2);
  });
});

describe('conformance: t/node/least_conn.t, least_conn2.t', () => {
  let gw: Gateway;
  let a: TestServer;
  let b: TestServer;
  let probe: Upstream;

  before(async () => {
    a = await testServer();
    b = await testServer();
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    await a?.close();
    await b?.close();
    await probe?.close();
  });

  const mysleep = { routes: [{ upstream_id: 1, uris: ['/mysleep'] }] };

  it('least_conn TEST 1: the highest weight is picked (twice, as repeat_each 2)', async () => {
    await apply(gw, probe, { upstreams: [{ id: 1, type: 'least_conn', nodes: { [a.node]: 2, [b.node]: 1 } }], ...mysleep });
    for (let i = 0; i < 2; i++) {
      a.arrivals.length = 0;
      b.arrivals.length = 0;
      const reply = await request(gw.url('/mysleep?seconds=0.1'));
      assert.equal(reply.status, 200);
      assert.equal(reply.body, '0.1\n');
      assert.deepEqual([a.arrivals.length, b.arrivals.length], [1, 0]);
    }
  });

  it('least_conn TEST 2: three concurrent requests over weights 3:2 → 3-node, 2-node, 3-node', async () => {
    await apply(gw, probe, { upstreams: [{ id: 1, type: 'least_conn', nodes: { [a.node]: 3, [b.node]: 2 } }], ...mysleep });
    for (let round = 0; round < 2; round++) {
      a.arrivals.length = 0;
      b.arrivals.length = 0;
      const replies = await Promise.all([1, 2, 3].map((i) => request(gw.url(`/mysleep?seconds=0.1${i}`))));
      for (const r of replies) assert.equal(r.status, 200);
      assert.deepEqual([a.arrivals.length, b.arrivals.length], [2, 1]);
    }
  });

  it('least_conn TEST 3: retry: the heavier node fails, the other answers', async () => {
    const log: string[] = [];
    const port = await freePort();
    const bad = await resetter('127.0.0.1', port, log);
    try {
      await apply(gw, probe, { upstreams: [{ id: 1, type: 'least_conn', nodes: { [`127.0.0.1:${port}`]: 2, [a.node]: 1 } }], ...mysleep });
      for (let i = 0; i < 2; i++) {
        log.length = 0;
        a.arrivals.length = 0;
        const reply = await request(gw.url('/mysleep?seconds=0.1'));
        assert.equal(reply.status, 200);
        assert.deepEqual([log.length, a.arrivals.length], [1, 1]);
      }
    } finally {
      bad.close();
    }
  });

  it('least_conn TEST 4: every node fails → 502 after trying each', async () => {
    const dead = await freePort();
    await apply(gw, probe, { upstreams: [{ id: 1, type: 'least_conn', nodes: { [`127.0.0.1:${dead}`]: 2, [`127.0.0.2:${dead}`]: 1 } }], ...mysleep });
    for (let i = 0; i < 2; i++) {
      const reply = await request(gw.url('/mysleep?seconds=0.1'));
      assert.equal(reply.status, 502);
      assert.equal(reply.headers['x-apisix-upstream-status'], '502, 502');
    }
  });

  it('least_conn2 TEST 1-2: one upstream used by two routes shares its connection counts', async () => {
    await apply(gw, probe, {
      upstreams: [{ id: '1', type: 'least_conn', nodes: { [a.node]: 3, [b.node]: 2 } }],
      routes: [{ id: 1, host: '1.com', uri: '/mysleep', upstream_id: '1' }, { id: 2, host: '2.com', uri: '/mysleep', upstream_id: '1' }],
    });
    for (let round = 0; round < 2; round++) {
      a.arrivals.length = 0;
      b.arrivals.length = 0;
      const replies = await Promise.all([1, 2].map((i) => request(gw.url('/mysleep?seconds=0.1'), { headers: { Host: `${i}.com` } })));
      for (const r of replies) assert.equal(r.status, 200);
      assert.deepEqual([a.arrivals.length, b.arrivals.length], [1, 1]);
    }
  });
});

describe('conformance: t/node/ewma.t', () => {
  let gw: Gateway;
  let fast: TestServer;
  let slow: TestServer;
  let other: TestServer;
  let probe: Upstream;

  before(async () => {
    fast = await testServer(1); // APISIX's 1980
    slow = await testServer(5); // 1981
    other = await testServer(5); // 1982
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    for (const x of [fast, slow, other]) await x?.close();
    await probe?.close();
  });

  const ewmaRoute = (nodes: Record<string, number>, extra: Obj = {}) => ({ routes: [{ id: 1, uri: '/ewma', upstream: { nodes, type: 'ewma', ...extra } }] });

  it('TEST 1-2: latency: the faster node takes (nearly) every request', async () => {
    // APISIX's test expects 11 of 12; the first picks are random until latencies are known, and timing on a
    // shared machine moves, so the bar here is a clear majority.
    // The slow node answers 100 ms late here (APISIX's test server: a few ms), so that other tests
    // loading the machine cannot blur the difference.
    const slower = await testServer(100);
    try {
      await apply(gw, probe, ewmaRoute({ [fast.node]: 100, [slower.node]: 100 }));
      const counts = await portCounts(gw, '/ewma', 12);
      const toFast = counts.get(String(fast.port)) ?? 0;
      assert.ok(toFast >= 10, `fast node got ${toFast} of 12: ${JSON.stringify([...counts])}`);
    } finally {
      await slower.close();
    }
  });

  it('TEST 3: frequency: a node idle for 20 s wins over a busy faster one', { timeout: 60_000 }, async () => {
    for (let i = 0; i < 2; i++) assert.equal((await request(gw.url('/ewma'))).status, 200);
    await apply(gw, probe, ewmaRoute({ [fast.node]: 100, [other.node]: 100 }));
    await sleep(20_000);
    // keep the fast node hot
    for (let i = 0; i < 12; i++) assert.equal((await request(gw.url('/ewma'))).status, 200);
    await apply(gw, probe, ewmaRoute({ [fast.node]: 100, [slow.node]: 100 }));
    const reply = await request(gw.url('/ewma'));
    assert.equal(reply.status, 200);
    assert.equal(reply.body, String(slow.port));
  });

  it('TEST 4: a node that times out is left for the working one (12 of 12)', async () => {
    const hang = await silent();
    try {
      await apply(gw, probe, ewmaRoute({ [fast.node]: 1, [hang.node]: 1 }, { timeout: { connect: 0.5, send: 0.5, read: 0.5 } }));
      const counts = new Map<string, number>();
      for (let i = 0; i < 12; i++) {
        const reply = await request(gw.url('/ewma'), { timeoutMs: 2000 });
        counts.set(reply.body, (counts.get(reply.body) ?? 0) + 1);
      }
      assert.deepEqual([...counts], [[String(fast.port), 12]]);
    } finally {
      hang.server.close();
    }
  });
});

describe('conformance: t/node/route-delete.t', () => {
  let gw: Gateway;
  let server: TestServer;
  let probe: Upstream;

  before(async () => {
    server = await testServer();
    probe = await startUpstream();
    gw = await startGateway();
  });
  after(async () => {
    await gw?.stop();
    await server?.close();
    await probe?.close();
  });

  it('TEST 1: 130 routes created, updated, deleted, created again and deleted', async () => {
    const routes = range(130, (i) => i).map((i) => ({ id: i, uri: `/hello${i}`, upstream: { nodes: { [server.node]: 1 }, type: 'roundrobin' } }));
    const check = async (status: number) => {
      for (const i of [1, 126, 130]) assert.equal((await request(gw.url(`/hello${i}`))).status, status, `/hello${i}`);
    };
    await apply(gw, probe, { routes });
    await check(404); // the test server has no /helloN: the route is live when the upstream answers
    assert.equal(server.arrivals.filter((p) => p === '/hello126').length, 1);
    await apply(gw, probe, { routes: routes.map((r) => ({ ...r, desc: 'updated' })) });
    await check(404);
    assert.equal(server.arrivals.filter((p) => p === '/hello126').length, 2);
    await apply(gw, probe, { routes: [] });
    const reply = await request(gw.url('/hello126'));
    assert.equal(reply.body, '{"error_msg":"404 Route Not Found"}\n');
    await apply(gw, probe, { routes });
    await check(404);
    assert.equal(server.arrivals.filter((p) => p === '/hello126').length, 3);
    await apply(gw, probe, { routes: [] });
    assert.equal((await request(gw.url('/hello126'))).body, '{"error_msg":"404 Route Not Found"}\n');
    assert.equal(server.arrivals.filter((p) => p === '/hello126').length, 3);
    assert.doesNotMatch(gw.output(), /\[error\]/);
  });
});

describe('conformance: t/node/remote-addr-ipv6.t', () => {
  let gw: Gateway;
  let server: TestServer;
  let probe: Upstream;
  let port: number;

  before(async () => {
    server = await testServer();
    probe = await startUpstream();
    port = await freePort();
    gw = await startGateway({ config: { apisix: { node_listen: [{ ip: '127.0.0.1', port }, { ip: '::1', port }] } } });
  });
  after(async () => {
    await gw?.stop();
    await server?.close();
    await probe?.close();
  });

  const v6 = (path: string) => `http://[::1]:${port}${path}`;
  const v4 = (path: string) => `http://127.0.0.1:${port}${path}`;

  it('TEST 1-3: /not_found over IPv6 and IPv4 → 404', async () => {
    await apply(gw, probe, { routes: [{ id: 1, remote_addr: '::1', uri: '/hello', upstream: { nodes: { [server.node]: 1 }, type: 'roundrobin' } }] }, v4);
    for (const url of [v6('/not_found'), v4('/not_found')]) {
      const reply = await request(url);
      assert.equal(reply.status, 404);
      assert.match(reply.body, /"error_msg":"404 Route Not Found"/);
    }
  });

  it('TEST 4: remote_addr ::1 matches a client on ::1', async () => {
    const reply: Reply = await request(v6('/hello'), { headers: { Connection: 'close' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'hello world\n');
    assert.equal(reply.headers['content-type'], 'text/plain');
    assert.equal(reply.headers['content-length'], '12');
    assert.equal(reply.headers.connection, 'close');
    assert.match(String(reply.headers.server), /^Causeway\//);
  });

  it('TEST 5: the same route does not match a client on 127.0.0.1 → 404', async () => {
    const reply = await request(v4('/hello'));
    assert.equal(reply.status, 404);
    assert.equal(reply.body, '{"error_msg":"404 Route Not Found"}\n');
  });
});
