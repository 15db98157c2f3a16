// Upstream health checks (APISIX's `checks`), black-box: real nodes on loopback that fail their
// health path, refuse connections, hang, die and come back; the gateway's Control API for the states
// and counters; two workers to show that every worker follows the same state.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { freePort, request, sleep, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

type Obj = Record<string, unknown>;

interface NodeInfo {
  ip: string;
  port: number;
  hostname: string;
  hostheader?: string;
  status: string;
  counter: { success: number; http_failure: number; tcp_failure: number; timeout_failure: number };
}

interface CheckerInfo {
  name: string;
  type: string;
  nodes: NodeInfo[];
}

async function control(gw: Gateway, path: string, headers?: http.OutgoingHttpHeaders): Promise<{ status: number; body: string; json: any; type: string | undefined }> {
  const r = await request(`http://127.0.0.1:${gw.controlPort}${path}`, { headers });
  let json: unknown;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, body: r.body, json, type: r.headers['content-type'] };
}

async function checker(gw: Gateway, src: string): Promise<CheckerInfo> {
  const r = await control(gw, `/v1/healthcheck/${src}`);
  assert.equal(r.status, 200, r.body);
  return r.json as CheckerInfo;
}

async function nodeOf(gw: Gateway, src: string, port: number): Promise<NodeInfo | undefined> {
  return (await checker(gw, src)).nodes.find((n) => n.port === port);
}

/** Waits until the checker of `src` reports the node on `port` in `status`. */
async function waitStatus(gw: Gateway, src: string, port: number, status: string, timeoutMs = 15_000): Promise<NodeInfo> {
  let last: NodeInfo | undefined;
  await waitFor(async () => (last = await nodeOf(gw, src, port))?.status === status, timeoutMs, `${src} node :${port} to be ${status} (last: ${JSON.stringify(last)})`);
  return last!;
}

/** Requests that reached a node, health probes left out. */
function proxied(up: Upstream, healthPath = '/status'): number {
  return up.seen.filter((s) => s.url !== healthPath).length;
}

/** The port of the node that answered (the echo JSON), or `status:<code>`. */
async function answeredBy(url: string): Promise<number | string> {
  const r = await request(url);
  if (r.status !== 200) return `status:${r.status}`;
  return (JSON.parse(r.body) as { port: number }).port;
}

/** A node whose health path answers `health()`'s status; other paths get the echo JSON. */
function nodeWithHealth(health: () => number, path = '/status'): Promise<Upstream> {
  const upP: Promise<Upstream> = startUpstream((req, res, body) => {
    if (req.url === path) {
      res.writeHead(health(), { 'Content-Length': 0 });
      res.end();
      return;
    }
    void upP.then((u) => {
      const text = JSON.stringify({ port: u.port, url: req.url, body });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  return upP;
}

let probeVersion = 0;

/** Replaces apisix.yaml and waits until a route unique to this write answers: the file is live. */
async function applyRoutes(gw: Gateway, probe: Upstream, content: { routes?: Obj[] } & Obj): Promise<void> {
  const v = ++probeVersion;
  gw.writeRoutes({ ...content, routes: [...(content.routes ?? []), { id: `probe-${v}`, uri: `/__probe/${v}`, upstream: { nodes: { [probe.node]: 1 } } }] });
  await waitFor(async () => (await request(gw.url(`/__probe/${v}`), { timeoutMs: 2000 })).status === 200, 10_000, `routes version ${v}`);
}

const FAST_ACTIVE = { http_path: '/status', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } };

describe('active health checks', () => {
  let good: Upstream;
  let flaky: Upstream;
  let flakyStatus = 200;
  let gw: Gateway;

  before(async () => {
    good = await nodeWithHealth(() => 200);
    flaky = await nodeWithHealth(() => flakyStatus);
    gw = await startGateway({
      control: true,
      workers: 2,
      routes: {
        routes: [{ id: 'r1', uri: '/hello', upstream_id: 'u1' }],
        upstreams: [{ id: 'u1', type: 'roundrobin', nodes: { [good.node]: 1, [flaky.node]: 1 }, checks: { active: FAST_ACTIVE } }],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await good?.close();
    await flaky?.close();
  });

  it('no checker before the upstream served a request', async () => {
    assert.deepEqual((await control(gw, '/v1/healthcheck')).json, [{ name: '/apisix/upstreams/u1', type: 'http', nodes: {} }]);
    await sleep(1500);
    assert.equal(good.seen.length + flaky.seen.length, 0, 'no probes before traffic');
  });

  it('a node whose health path answers 500 is marked unhealthy and, on every worker, gets no request', async () => {
    flakyStatus = 500;
    assert.equal((await request(gw.url('/hello'))).status, 200);
    const down = await waitStatus(gw, 'upstreams/u1', flaky.port, 'unhealthy');
    assert.deepEqual(down.counter, { success: 0, http_failure: 1, tcp_failure: 0, timeout_failure: 0 });
    const before = proxied(flaky);
    // New connections each time: the kernel spreads them over both workers.
    for (let i = 0; i < 60; i++) assert.equal(await answeredBy(gw.url('/hello')), good.port);
    assert.equal(proxied(flaky), before);
    assert.equal((await nodeOf(gw, 'upstreams/u1', good.port))!.status, 'healthy');
  });

  it('comes back once its health path answers 200 again', async () => {
    flakyStatus = 200;
    const up = await waitStatus(gw, 'upstreams/u1', flaky.port, 'healthy');
    assert.deepEqual(up.counter, { success: 1, http_failure: 0, tcp_failure: 0, timeout_failure: 0 });
    const seen = new Set<number | string>();
    for (let i = 0; i < 20; i++) seen.add(await answeredBy(gw.url('/hello')));
    assert.deepEqual([...seen].sort(), [good.port, flaky.port].sort());
  });
});

describe('active checks: probe types and what probes send', () => {
  let open: Upstream;
  let closedPort: number;
  let recorder: Upstream;
  let target: Upstream;
  let gw: Gateway;

  before(async () => {
    open = await nodeWithHealth(() => 200, '/');
    closedPort = await freePort();
    recorder = await startUpstream((_req, res) => {
      res.writeHead(200, { 'Content-Length': 0 });
      res.end();
    });
    target = await startUpstream();
    gw = await startGateway({
      control: true,
      routes: {
        routes: [
          { id: 'tcp', uri: '/tcp', upstream: { type: 'roundrobin', nodes: { [open.node]: 1, [`127.0.0.1:${closedPort}`]: 1 }, checks: { active: { type: 'tcp', healthy: { interval: 1 }, unhealthy: { interval: 1 } } } } },
          {
            id: 'probe',
            uri: '/probe',
            upstream: {
              type: 'roundrobin',
              nodes: { [target.node]: 1, [open.node]: 1 },
              checks: {
                active: {
                  port: recorder.port,
                  host: 'health.example.com',
                  http_path: '/ready?deep=1',
                  http_method: 'POST',
                  http_req_body: '{"ping":1}',
                  req_headers: ['X-Probe: causeway', 'User-Agent: checker/1'],
                  healthy: { interval: 1 },
                },
              },
            },
          },
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    for (const up of [open, recorder, target]) await up?.close();
  });

  it('tcp: a closed port is unhealthy after tcp_failures refused connections; a listening one stays healthy', async () => {
    // Clients never notice: the refused try is retried on the other node.
    for (let i = 0; i < 4; i++) assert.equal(await answeredBy(gw.url('/tcp')), open.port);
    const down = await waitStatus(gw, 'routes/tcp', closedPort, 'unhealthy');
    assert.equal(down.counter.tcp_failure, 2);
    const info = await checker(gw, 'routes/tcp');
    assert.equal(info.type, 'tcp');
    assert.deepEqual(info.nodes.find((n) => n.port === open.port), {
      ip: '127.0.0.1',
      port: open.port,
      hostname: '127.0.0.1',
      status: 'healthy',
      counter: { success: 0, http_failure: 0, tcp_failure: 0, timeout_failure: 0 },
    });
  });

  it('http: probes go to checks.active.port with the method, path, host, headers and body configured', async () => {
    assert.equal((await request(gw.url('/probe'))).status, 200);
    await waitFor(() => recorder.seen.length > 0, 10_000, 'a probe');
    const seen = recorder.seen[0];
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/ready?deep=1');
    assert.equal(seen.headers.host, 'health.example.com');
    assert.equal(seen.headers['x-probe'], 'causeway');
    assert.equal(seen.headers['user-agent'], 'checker/1');
    assert.equal(seen.headers.connection, 'close');
    assert.equal(seen.headers['content-length'], '10');
    assert.equal(seen.body, '{"ping":1}');
    // Both nodes are probed on the one port: they are two targets, named by their host.
    const info = await checker(gw, 'routes/probe');
    assert.deepEqual(
      info.nodes.map((n) => [n.ip, n.port, n.hostname]),
      [
        ['127.0.0.1', recorder.port, 'health.example.com'],
      ],
    );
    assert.equal(target.seen.filter((s) => s.url === '/ready?deep=1').length, 0);
  });
});

describe('active checks over https', () => {
  let dir: string;
  let trusted: https.Server;
  let stranger: https.Server;
  let trustedPort: number;
  let strangerPort: number;
  let gw: Gateway;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causeway-health-tls-'));
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=health-ca', '-days', '2']);
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=localhost']);
    run(['x509', '-req', '-in', 'node.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'node.crt', '-days', '2', '-extfile', 'san.ext']);
    run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'self.key', '-out', 'self.crt', '-subj', '/CN=localhost', '-days', '2', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    // trusted: CA-signed, healthy; stranger: self-signed, and its health path answers 500.
    trusted = https.createServer({ cert: read('node.crt'), key: read('node.key') }, (_req, res) => res.end('trusted'));
    stranger = https.createServer({ cert: read('self.crt'), key: read('self.key') }, (req, res) => {
      res.writeHead(req.url === '/status' ? 500 : 200);
      res.end('stranger');
    });
    await new Promise<void>((resolve) => trusted.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => stranger.listen(0, '127.0.0.1', resolve));
    trustedPort = (trusted.address() as AddressInfo).port;
    strangerPort = (stranger.address() as AddressInfo).port;
    const upstream = (verify: boolean | undefined) => ({
      type: 'roundrobin',
      scheme: 'https',
      nodes: { [`127.0.0.1:${trustedPort}`]: 1, [`127.0.0.1:${strangerPort}`]: 1 },
      checks: { active: { type: 'https', http_path: '/status', ...(verify === undefined ? {} : { https_verify_certificate: verify }), healthy: { interval: 1 }, unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1 } } },
    });
    gw = await startGateway({
      control: true,
      config: { apisix: { ssl: { ssl_trusted_certificate: join(dir, 'ca.crt') } } },
      routes: {
        routes: [
          { id: 'verify', uri: '/verify', upstream: upstream(undefined) },
          { id: 'noverify', uri: '/noverify', upstream: upstream(false) },
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    for (const server of [trusted, stranger]) {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('checks certificates by default (apisix.ssl.ssl_trusted_certificate): a failed handshake is a TCP failure', async () => {
    await request(gw.url('/verify'));
    const down = await waitStatus(gw, 'routes/verify', strangerPort, 'unhealthy');
    assert.deepEqual(down.counter, { success: 0, http_failure: 0, tcp_failure: 1, timeout_failure: 0 });
    assert.equal((await nodeOf(gw, 'routes/verify', trustedPort))!.status, 'healthy');
    assert.equal((await checker(gw, 'routes/verify')).type, 'https');
  });

  it('with https_verify_certificate: false the status over TLS decides', async () => {
    await request(gw.url('/noverify'));
    const down = await waitStatus(gw, 'routes/noverify', strangerPort, 'unhealthy');
    assert.deepEqual(down.counter, { success: 0, http_failure: 1, tcp_failure: 0, timeout_failure: 0 });
    assert.equal((await nodeOf(gw, 'routes/noverify', trustedPort))!.status, 'healthy');
    for (let i = 0; i < 6; i++) assert.equal((await request(gw.url('/noverify'))).body, 'trusted');
  });
});

describe('passive health checks', () => {
  let steady: Upstream;
  let broken: Upstream;
  let brokenFails = true;
  let hanging: Upstream;
  let hangs = true;
  let gw: Gateway;

  before(async () => {
    steady = await nodeWithHealth(() => 200);
    broken = await startUpstream((req, res) => {
      // While failing, proxied requests and the health path answer 500.
      const status = brokenFails ? 500 : 200;
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ port: broken.port }));
    });
    hanging = await startUpstream((req, res) => {
      if (hangs) return; // never answers, health path included
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ port: hanging.port }));
    });
    // Healthy nodes are probed rarely (interval 60): the passive counts are not cleared by probes.
    const active = { http_path: '/status', timeout: 1, healthy: { interval: 60, successes: 1 }, unhealthy: { interval: 1, http_failures: 1, timeouts: 1 } };
    gw = await startGateway({
      control: true,
      workers: 2,
      routes: {
        routes: [{ id: 'statuses', uri: '/statuses', upstream_id: 'statuses' }, { id: 'timeouts', uri: '/timeouts', upstream_id: 'timeouts' }],
        upstreams: [
          { id: 'statuses', type: 'roundrobin', nodes: { [steady.node]: 1, [broken.node]: 1 }, checks: { active, passive: { unhealthy: { http_statuses: [500], http_failures: 2 } } } },
          {
            id: 'timeouts',
            type: 'roundrobin',
            nodes: { [steady.node]: 1, [hanging.node]: 1 },
            timeout: { connect: 1, send: 1, read: 1 },
            checks: { active, passive: { unhealthy: { timeouts: 1 } } },
          },
        ],
      },
    });
  });

  // The checkers start with the first request; passive counts need them.
  before(async () => {
    await request(gw.url('/statuses'));
    await request(gw.url('/timeouts'));
    await waitFor(async () => (await checker(gw, 'upstreams/statuses')).nodes.length === 2 && (await checker(gw, 'upstreams/timeouts')).nodes.length === 2, 10_000, 'the checkers');
  });

  after(async () => {
    await gw?.stop();
    hanging?.server.closeAllConnections();
    for (const up of [steady, broken, hanging]) await up?.close();
  });

  it('a node answering 500 is unhealthy after http_failures responses, counted across workers', async () => {
    assert.equal((await nodeOf(gw, 'upstreams/statuses', broken.port))?.status, 'healthy');
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await request(gw.url('/statuses'))).status);
    // 500s are passed on (a status is not a failed try); exactly http_failures of them reach clients.
    assert.equal(statuses.filter((s) => s === 500).length, 2, statuses.join());
    assert.equal(statuses.filter((s) => s === 200).length, 18);
    const down = await nodeOf(gw, 'upstreams/statuses', broken.port);
    assert.equal(down?.status, 'unhealthy');
    assert.equal(down?.counter.http_failure, 2);
  });

  it('active checks bring it back', async () => {
    brokenFails = false;
    await waitStatus(gw, 'upstreams/statuses', broken.port, 'healthy');
    const ports = new Set<number | string>();
    for (let i = 0; i < 10; i++) ports.add(await answeredBy(gw.url('/statuses')));
    assert.ok(ports.has(broken.port));
  });

  it('a node that times out is unhealthy after `timeouts`, and the timed-out request is retried', async () => {
    const before = proxied(hanging);
    const ports: Array<number | string> = [];
    for (let i = 0; i < 10; i++) ports.push(await answeredBy(gw.url('/timeouts')));
    assert.deepEqual(ports, Array(10).fill(steady.port));
    assert.equal(proxied(hanging) - before, 1, 'one request timed out there, then the node was left out');
    const down = await nodeOf(gw, 'upstreams/timeouts', hanging.port);
    assert.equal(down?.status, 'unhealthy');
    assert.ok(down!.counter.timeout_failure >= 1);
    hangs = false;
    hanging.server.closeAllConnections();
    await waitStatus(gw, 'upstreams/timeouts', hanging.port, 'healthy');
  });
});

describe('health state and configuration changes', () => {
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let probe: Upstream;
  let bStatus = 500;
  let gw: Gateway;
  // Unhealthy nodes are probed only every 60 s: once down, a node stays down for this test unless its
  // state is lost.
  const checks = { active: { http_path: '/status', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 60, http_failures: 1 } } };
  const upstream = (nodes: Upstream[], withChecks = true) => ({ id: 'u', type: 'roundrobin', nodes: Object.fromEntries(nodes.map((n) => [n.node, 1])), ...(withChecks ? { checks } : {}) });

  before(async () => {
    a = await nodeWithHealth(() => 200);
    b = await nodeWithHealth(() => bStatus);
    c = await nodeWithHealth(() => 200);
    probe = await startUpstream();
    gw = await startGateway({ control: true, routes: { routes: [{ id: 'r', uri: '/r', upstream_id: 'u' }], upstreams: [upstream([a, b])] } });
  });

  after(async () => {
    await gw?.stop();
    for (const up of [a, b, c, probe]) await up?.close();
  });

  it('a change that leaves the upstream alone keeps its checker and node states', async () => {
    await request(gw.url('/r'));
    const down = await waitStatus(gw, 'upstreams/u', b.port, 'unhealthy');
    bStatus = 200; // would heal at the next probe, which is a minute away
    await applyRoutes(gw, probe, { routes: [{ id: 'r', uri: '/r', upstream_id: 'u', name: 'changed', methods: ['GET'] }], upstreams: [upstream([a, b])] });
    assert.deepEqual(await nodeOf(gw, 'upstreams/u', b.port), down);
    for (let i = 0; i < 10; i++) assert.equal(await answeredBy(gw.url('/r')), a.port);
  });

  it('a changed upstream keeps the state of the nodes it still has; new nodes start healthy', async () => {
    await applyRoutes(gw, probe, { routes: [{ id: 'r', uri: '/r', upstream_id: 'u' }], upstreams: [upstream([a, b, c])] });
    const info = await checker(gw, 'upstreams/u');
    assert.deepEqual(info.nodes.map((n) => [n.port, n.status]), [
      [a.port, 'healthy'],
      [b.port, 'unhealthy'],
      [c.port, 'healthy'],
    ]);
    const ports = new Set<number | string>();
    for (let i = 0; i < 12; i++) ports.add(await answeredBy(gw.url('/r')));
    assert.deepEqual([...ports].sort(), [a.port, c.port].sort());
  });

  it('without checks the checker is gone and every node takes traffic again', async () => {
    await applyRoutes(gw, probe, { routes: [{ id: 'r', uri: '/r', upstream_id: 'u' }], upstreams: [upstream([a, b, c], false)] });
    assert.deepEqual((await control(gw, '/v1/healthcheck')).json, {});
    const ports = new Set<number | string>();
    for (let i = 0; i < 12; i++) ports.add(await answeredBy(gw.url('/r')));
    assert.deepEqual([...ports].sort(), [a.port, b.port, c.port].sort());
  });
});

describe('health checks through the Admin API', () => {
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let bStatus = 500;
  let admin: AdminGateway;
  const checks = { active: { http_path: '/status', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 60, http_failures: 1 } } };

  before(async () => {
    a = await nodeWithHealth(() => 200);
    b = await nodeWithHealth(() => bStatus);
    c = await nodeWithHealth(() => 200);
    admin = await startAdminGateway({ control: true, workers: 2 });
  });

  after(async () => {
    await admin?.stop();
    for (const up of [a, b, c]) await up?.close();
  });

  it('follows the upstream as it is written, changed and deleted', async () => {
    const gw = admin.gw;
    const stored = await admin.put('/upstreams/1', { type: 'roundrobin', nodes: { [a.node]: 1, [b.node]: 1 }, checks });
    assert.deepEqual(stored.json.value.checks, checks, 'stored as sent');
    await admin.put('/routes/1', { uri: '/admin-hc', upstream_id: '1' });
    await request(gw.url('/admin-hc'));
    await waitStatus(gw, 'upstreams/1', b.port, 'unhealthy');
    bStatus = 200; // unhealthy nodes are probed again only in a minute
    await admin.put('/upstreams/1', { type: 'roundrobin', nodes: { [a.node]: 1, [b.node]: 1, [c.node]: 1 }, checks });
    assert.deepEqual((await checker(gw, 'upstreams/1')).nodes.map((n) => [n.port, n.status]), [
      [a.port, 'healthy'],
      [b.port, 'unhealthy'],
      [c.port, 'healthy'],
    ]);
    const ports = new Set<number | string>();
    for (let i = 0; i < 12; i++) ports.add(await answeredBy(gw.url('/admin-hc')));
    assert.deepEqual([...ports].sort(), [a.port, c.port].sort());
    await admin.del('/routes/1');
    await admin.del('/upstreams/1');
    assert.deepEqual((await control(gw, '/v1/healthcheck')).json, {});
  });
});

describe('Control API: /v1/healthcheck', () => {
  let a: Upstream;
  let dead: number;
  let lone: Upstream;
  let gw: Gateway;
  const checks = { active: { http_path: '/status', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } } };

  before(async () => {
    a = await nodeWithHealth(() => 200);
    lone = await nodeWithHealth(() => 200);
    dead = await freePort();
    const nodes = { [a.node]: 1, [`127.0.0.1:${dead}`]: 1 };
    gw = await startGateway({
      control: true,
      routes: {
        routes: [
          { id: 'inline', uri: '/inline', upstream: { type: 'roundrobin', nodes, checks } },
          { id: 'via-service', uri: '/service', service_id: 's1' },
          { id: 'plain', uri: '/plain', upstream: { nodes: { [a.node]: 1 } } },
          { id: 'lone', uri: '/lone', upstream_id: 'lone' },
        ],
        services: [{ id: 's1', upstream: { type: 'roundrobin', nodes, checks: { ...checks, active: { ...checks.active, host: 'svc.test' } } } }],
        upstreams: [{ id: 'lone', nodes: { [lone.node]: 1 }, checks }],
      },
    });
    for (const path of ['/inline', '/service', '/plain', '/lone']) await request(gw.url(path));
    await waitStatus(gw, 'routes/inline', dead, 'unhealthy');
    await waitStatus(gw, 'services/s1', dead, 'unhealthy');
  });

  after(async () => {
    await gw?.stop();
    await a?.close();
    await lone?.close();
  });

  it('lists the routes, services and upstreams with checks, in APISIX\'s shape', async () => {
    const r = await control(gw, '/v1/healthcheck');
    assert.equal(r.status, 200);
    const down = { success: 0, http_failure: 0, tcp_failure: 2, timeout_failure: 0 };
    const fine = { success: 0, http_failure: 0, tcp_failure: 0, timeout_failure: 0 };
    assert.deepEqual(r.json, [
      {
        name: '/apisix/routes/inline',
        type: 'http',
        nodes: [
          { ip: '127.0.0.1', port: a.port, hostname: '127.0.0.1', status: 'healthy', counter: fine },
          { ip: '127.0.0.1', port: dead, hostname: '127.0.0.1', status: 'unhealthy', counter: down },
        ],
      },
      {
        name: '/apisix/services/s1',
        type: 'http',
        nodes: [
          { ip: '127.0.0.1', port: a.port, hostname: 'svc.test', status: 'healthy', counter: fine },
          { ip: '127.0.0.1', port: dead, hostname: 'svc.test', status: 'unhealthy', counter: down },
        ],
      },
      // One node: no checker, as in APISIX (that node is used whatever its health).
      { name: '/apisix/upstreams/lone', type: 'http', nodes: {} },
    ]);
  });

  it('/v1/healthcheck/{routes,services,upstreams}/{id}: one checker, or APISIX\'s errors', async () => {
    assert.equal((await checker(gw, 'routes/inline')).name, '/apisix/routes/inline');
    assert.equal((await checker(gw, 'services/s1')).nodes.length, 2);
    assert.deepEqual((await checker(gw, 'upstreams/lone')).nodes, {});
    const cases: Array<[string, number, string]> = [
      ['/v1/healthcheck/routes/plain', 404, 'no checker for routes[plain]'],
      ['/v1/healthcheck/routes/nope', 404, 'routes[nope] not found'],
      ['/v1/healthcheck/route/inline', 400, 'invalid src type route'],
      ['/v1/healthcheck/routes', 404, 'missing src id for src type routes'],
    ];
    for (const [path, status, message] of cases) {
      const r = await control(gw, path);
      assert.deepEqual([r.status, r.json], [status, { error_msg: message }], path);
    }
  });

  it('answers a browser with an HTML table', async () => {
    const r = await control(gw, '/v1/healthcheck', { Accept: 'text/html,application/xhtml+xml' });
    assert.equal(r.status, 200);
    assert.match(r.type ?? '', /text\/html/);
    assert.match(r.body, /<table/);
    assert.match(r.body, new RegExp(`127\\.0\\.0\\.1:${dead}</td>\\s*<td>unhealthy`));
  });
});

describe('apisix.disable_upstream_healthcheck', () => {
  let a: Upstream;
  let b: Upstream;
  let gw: Gateway;

  before(async () => {
    a = await nodeWithHealth(() => 200);
    b = await nodeWithHealth(() => 500);
    gw = await startGateway({
      control: true,
      config: { apisix: { disable_upstream_healthcheck: true } },
      routes: { routes: [{ id: 'r', uri: '/r', upstream: { type: 'roundrobin', nodes: { [a.node]: 1, [b.node]: 1 }, checks: { active: FAST_ACTIVE, passive: { unhealthy: { http_failures: 1 } } } } }] },
    });
  });

  after(async () => {
    await gw?.stop();
    await a?.close();
    await b?.close();
  });

  it('turns checks off: no probes, no checker, every node serves', async () => {
    for (let i = 0; i < 4; i++) await request(gw.url('/r'));
    await sleep(2500);
    assert.equal(b.seen.filter((s) => s.url === '/status').length, 0);
    assert.deepEqual((await control(gw, '/v1/healthcheck')).json, [{ name: '/apisix/routes/r', type: 'http', nodes: {} }]);
    const ports = new Set<number | string>();
    for (let i = 0; i < 6; i++) ports.add(await answeredBy(gw.url('/r')));
    assert.deepEqual([...ports].sort(), [a.port, b.port].sort());
  });
});

/** A node on a fixed port that can die (refuse connections), hang (never answer) and come back. */
class Node {
  port: number;
  server: http.Server | undefined;
  hanging = false;
  /** Proxied requests that arrived, and those answered (health probes left out). */
  received = 0;
  proxied = 0;

  constructor(port: number) {
    this.port = port;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      req.resume();
      if (req.url !== '/status') this.received++;
      if (this.hanging) return;
      if (req.url !== '/status') this.proxied++;
      const text = JSON.stringify({ port: this.port });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', resolve);
    });
    this.server = server;
  }

  async die(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('nodes that die, hang and come back during a load run', () => {
  let nodes: { a: Node; b: Node; c: Node };
  let gw: Gateway;

  before(async () => {
    nodes = { a: new Node(await freePort()), b: new Node(await freePort()), c: new Node(await freePort()) };
    await nodes.a.start();
    await nodes.b.start();
    // c is down at first: nothing listens on its port.
    gw = await startGateway({
      control: true,
      workers: 2,
      routes: {
        routes: [{ id: 'load', uri: '/load', upstream_id: 'load' }],
        upstreams: [
          {
            id: 'load',
            type: 'roundrobin',
            nodes: { [`127.0.0.1:${nodes.a.port}`]: 1, [`127.0.0.1:${nodes.b.port}`]: 1, [`127.0.0.1:${nodes.c.port}`]: 1 },
            timeout: { connect: 2, send: 2, read: 2 },
            checks: {
              active: { http_path: '/status', timeout: 2, healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1, timeouts: 1 } },
              passive: { unhealthy: { tcp_failures: 1, timeouts: 1 } },
            },
          },
        ],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    for (const node of Object.values(nodes ?? {})) await node.die();
  });

  it('loses no request: retries (2, one per other node) cover every failure', async () => {
    const MAX_REQUESTS = 20_000;
    const deadline = Date.now() + 90_000;
    let stop = false;
    let sent = 0;
    const statuses = new Map<number | string, number>();
    const client = async () => {
      while (!stop && sent < MAX_REQUESTS && Date.now() < deadline) {
        sent++;
        let key: number | string;
        try {
          key = (await request(gw.url('/load'), { timeoutMs: 10_000 })).status;
        } catch (err) {
          key = (err as Error).message;
        }
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        await sleep(5);
      }
    };
    const clients = Array.from({ length: 4 }, client);
    const src = 'upstreams/load';
    const untilServed = async (node: Node, more: number) => {
      const target = node.proxied + more;
      await waitFor(() => node.proxied >= target, 15_000, `:${node.port} to serve ${more} more`);
    };

    // c refuses connections: marked down by the first refused try (passive) or probe (active).
    await waitStatus(gw, src, nodes.c.port, 'unhealthy');
    // c comes back: the probes of unhealthy nodes see it and it takes traffic again.
    await nodes.c.start();
    await waitStatus(gw, src, nodes.c.port, 'healthy');
    await untilServed(nodes.c, 20);
    // a dies mid-run: in-flight requests are cut, connections refused; it is marked down.
    await nodes.a.die();
    await waitStatus(gw, src, nodes.a.port, 'unhealthy');
    await untilServed(nodes.c, 20);
    // b hangs: requests on it time out (read: 2 s) and go to c; it is marked down.
    nodes.b.hanging = true;
    await waitStatus(gw, src, nodes.b.port, 'unhealthy');
    await sleep(500); // tries that picked b before the change reach it
    const bAfterDown = nodes.b.received;
    await untilServed(nodes.c, 100);
    stop = true;
    await Promise.all(clients);

    assert.ok(sent < MAX_REQUESTS && Date.now() < deadline, 'the run ended by itself');
    assert.deepEqual([...statuses.entries()], [[200, sent]], `every request answered 200 (sent ${sent})`);
    assert.equal(nodes.b.received, bAfterDown, 'b got nothing once it was down');
    const info = await checker(gw, src);
    assert.deepEqual(info.nodes.map((n) => [n.port, n.status]), [
      [nodes.a.port, 'unhealthy'],
      [nodes.b.port, 'unhealthy'],
      [nodes.c.port, 'healthy'],
    ]);
  });
});
