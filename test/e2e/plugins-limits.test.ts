// limit-count, limit-req, limit-conn and api-breaker through the running gateway, against their
// APISIX contracts (apache/apisix: t/plugin/limit-count*.t, limit-req*.t, limit-conn*.t,
// api-breaker.t): statuses, quota headers, rejection bodies, counters shared by every worker of a
// node (shared memory) and by several nodes (a real redis-server, and a real three-master Redis
// cluster), degradation when Redis is gone, and the Admin API's and the standalone file's refusals.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { adminCall, startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { freePort, request, startGateway, startUpstream, waitFor, type Gateway, type Reply, type Upstream } from '../helpers/gateway.ts';

const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Peers

/** An upstream that answers at once, or holds requests carrying `x-hold: 1` until `release()`. */
interface HoldingUpstream extends Upstream {
  held: http.ServerResponse[];
  /** Status of the next answers (api-breaker flips it). */
  status: number;
  release(): void;
}

async function startHoldingUpstream(): Promise<HoldingUpstream> {
  const answer = (res: http.ServerResponse, status: number) => {
    const text = JSON.stringify({ status });
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
  let self: HoldingUpstream | undefined;
  const up = await startUpstream((req, res) => {
    if (req.headers['x-hold'] === '1') self!.held.push(res);
    else answer(res, self!.status);
  });
  self = Object.assign(up, {
    held: [] as http.ServerResponse[],
    status: 200,
    release() {
      for (const res of self!.held.splice(0)) if (!res.writableEnded && !res.destroyed) answer(res, 200);
    },
  });
  return self;
}

interface RedisServer {
  port: number;
  node: string;
  stop(): Promise<void>;
}

/** A real redis-server on a free loopback port, its data in a temp folder, nothing saved to disk. */
async function startRedisServer(extra: string[] = [], password?: string): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'causeway-redis-'));
  const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const auth = password ? ['-a', password, '--no-auth-warning'] : [];
  await waitFor(async () => (await run('redis-cli', ['-p', String(port), ...auth, 'PING'])).stdout.trim() === 'PONG', 10_000, `redis-server on ${port}`);
  return {
    port,
    node: `127.0.0.1:${port}`,
    async stop() {
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Three cluster-enabled masters, joined with `redis-cli --cluster create`, all slots covered. */
async function startRedisCluster(): Promise<{ nodes: string[]; stop(): Promise<void> }> {
  const servers: RedisServer[] = [];
  for (let i = 0; i < 3; i++) {
    const busPort = await freePort();
    servers.push(await startRedisServer(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000', '--cluster-port', String(busPort)]));
  }
  const nodes = servers.map((s) => s.node);
  await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
  await waitFor(async () => {
    for (const s of servers) {
      const info = (await run('redis-cli', ['-p', String(s.port), 'CLUSTER', 'INFO'])).stdout;
      if (!/cluster_state:ok/.test(info)) return false;
    }
    return true;
  }, 15_000, 'the Redis cluster to be ok on every node');
  return { nodes, stop: async () => void (await Promise.all(servers.map((s) => s.stop()))) };
}

// ---------------------------------------------------------------------------------------------
// Requests

/** One request on its own connection (so on a multi-worker gateway the kernel picks the worker). */
function get(gw: Gateway, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> {
  return request(gw.url(path), { headers });
}

async function statuses(gw: Gateway, path: string, times: number, headers: http.OutgoingHttpHeaders = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) out.push((await get(gw, path, headers)).status);
  return out;
}

/** `times` requests at once, each on its own connection; returns how many got each status. */
async function burst(gw: Gateway, path: string, times: number): Promise<Record<number, number>> {
  const replies = await Promise.all(Array.from({ length: times }, () => get(gw, path)));
  const tally: Record<number, number> = {};
  for (const r of replies) tally[r.status] = (tally[r.status] ?? 0) + 1;
  return tally;
}

/** Starts a request the holding upstream will keep open; resolves once the upstream has it. */
async function holdOne(gw: Gateway, up: HoldingUpstream, path: string): Promise<{ reply: Promise<Reply> }> {
  const before = up.held.length;
  const reply = get(gw, path, { 'x-hold': '1' });
  reply.catch(() => {});
  await waitFor(() => up.held.length > before, 5_000, 'the request to reach the upstream');
  // wrapped: an async function would otherwise wait for the reply itself
  return { reply };
}

let generation = 0;

/** Writes apisix.yaml with a marker route and waits until that version serves. */
async function apply(gw: Gateway, marker: Upstream, content: Record<string, unknown> & { routes?: unknown[] }): Promise<void> {
  const n = ++generation;
  const routes = [...(content.routes ?? []), { id: `__marker_${n}`, uri: `/__marker/${n}`, upstream: nodesOf(marker) }];
  gw.writeRoutes({ ...content, routes });
  await waitFor(async () => (await get(gw, `/__marker/${n}`)).status === 200, 5_000, `apisix.yaml version ${n} to load`);
}

function nodesOf(up: { node: string }): { type: string; nodes: Record<string, number> } {
  return { type: 'roundrobin', nodes: { [up.node]: 1 } };
}

function route(id: string, uri: string, plugins: Record<string, unknown>, up: { node: string }): Record<string, unknown> {
  return { id, uri, plugins, upstream: nodesOf(up) };
}

const unique = () => `${process.pid}-${Date.now()}-${++generation}`;

/** No limit plugin threw: every failure the plugins expect is answered, never raised. */
function assertNoPluginFailures(gw: Gateway): void {
  assert.doesNotMatch(gw.output(), /plugin (limit-count|limit-req|limit-conn|api-breaker) failed/);
  assert.doesNotMatch(gw.output(), /uncaught|unhandled/i);
}

/** nginx's page for a bare 503, as APISIX sends it when a limit rejects without rejected_msg. */
const PAGE_503 = /<title>503 Service Temporarily Unavailable<\/title>/;

// ---------------------------------------------------------------------------------------------

describe('limit plugins on one node (local policy)', () => {
  let gw: Gateway;
  let up: HoldingUpstream;

  before(async () => {
    up = await startHoldingUpstream();
    gw = await startGateway();
  });
  after(async () => {
    up?.release();
    await gw?.stop();
    await up?.close();
  });

  describe('limit-count', () => {
    it('the reference example: count 2 in 60 s gives 200, 200, 503, 503 with the quota headers', async () => {
      await apply(gw, up, { routes: [route('ref', '/hello', { 'limit-count': { count: 2, time_window: 60, rejected_code: 503, key: 'remote_addr' } }, up)] });
      const replies: Reply[] = [];
      for (let i = 0; i < 4; i++) replies.push(await get(gw, '/hello'));
      assert.deepEqual(replies.map((r) => r.status), [200, 200, 503, 503]);
      assert.deepEqual(replies.map((r) => r.headers['x-ratelimit-limit']), ['2', '2', '2', '2']);
      assert.deepEqual(replies.map((r) => r.headers['x-ratelimit-remaining']), ['1', '0', '0', '0']);
      assert.equal(replies[0].headers['x-ratelimit-reset'], '60');
      for (const r of replies.slice(1)) {
        const reset = Number(r.headers['x-ratelimit-reset']);
        assert.ok(reset > 0 && reset <= 60, `reset ${reset}`);
      }
      assert.match(replies[2].body, PAGE_503);
      assert.match(String(replies[2].headers['content-type']), /text\/html/);
    });

    it('rejected_code and rejected_msg shape the rejection; show_limit_quota_header false hides the headers', async () => {
      await apply(gw, up, {
        routes: [route('msg', '/msg', { 'limit-count': { count: 1, time_window: 60, rejected_code: 429, rejected_msg: 'Requests are too frequent, please try again later.', show_limit_quota_header: false } }, up)],
      });
      const ok = await get(gw, '/msg');
      assert.equal(ok.status, 200);
      assert.equal(ok.headers['x-ratelimit-limit'], undefined);
      const no = await get(gw, '/msg');
      assert.equal(no.status, 429);
      assert.equal(no.body, '{"error_msg":"Requests are too frequent, please try again later."}\n');
      assert.equal(no.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(no.headers['x-ratelimit-remaining'], undefined);
    });

    it('key: one counter per value of the variable; a request without it counts by client address', async () => {
      await apply(gw, up, { routes: [route('by-user', '/by-user', { 'limit-count': { count: 1, time_window: 60, key: 'http_x_user' } }, up)] });
      assert.deepEqual(await statuses(gw, '/by-user', 2, { 'x-user': 'jack' }), [200, 503]);
      assert.deepEqual(await statuses(gw, '/by-user', 2, { 'x-user': 'rose' }), [200, 503]);
      assert.deepEqual(await statuses(gw, '/by-user', 2), [200, 503]);
    });

    it('key_type var_combination and constant', async () => {
      await apply(gw, up, {
        routes: [
          route('combo', '/combo', { 'limit-count': { count: 1, time_window: 60, key_type: 'var_combination', key: '$http_x_a $http_x_b' } }, up),
          route('const', '/const', { 'limit-count': { count: 2, time_window: 60, key_type: 'constant', key: 'everyone' } }, up),
        ],
      });
      assert.deepEqual(await statuses(gw, '/combo', 2, { 'x-a': '1', 'x-b': '1' }), [200, 503]);
      assert.deepEqual(await statuses(gw, '/combo', 1, { 'x-a': '1', 'x-b': '2' }), [200]);
      assert.deepEqual(await statuses(gw, '/combo', 1, { 'x-b': '1' }), [200]);
      // neither variable: the client address
      assert.deepEqual(await statuses(gw, '/combo', 2), [200, 503]);
      assert.equal((await get(gw, '/const', { 'x-user': 'a' })).status, 200);
      assert.equal((await get(gw, '/const', { 'x-user': 'b' })).status, 200);
      assert.equal((await get(gw, '/const', { 'x-user': 'c' })).status, 503);
    });

    it('group: routes of one group share one counter', async () => {
      const group = `grp-${unique()}`;
      const conf = { count: 2, time_window: 60, group };
      await apply(gw, up, { routes: [route('g1', '/g1', { 'limit-count': conf }, up), route('g2', '/g2', { 'limit-count': conf }, up)] });
      assert.equal((await get(gw, '/g1')).status, 200);
      assert.equal((await get(gw, '/g2')).status, 200);
      assert.equal((await get(gw, '/g1')).status, 503);
      assert.equal((await get(gw, '/g2')).status, 503);
    });

    it('on a global rule, one counter covers every route', async () => {
      await apply(gw, up, {
        routes: [route('plain-a', '/plain-a', {}, up), route('plain-b', '/plain-b', {}, up)],
        global_rules: [{ id: 'limit', plugins: { 'limit-count': { count: 2, time_window: 60, key_type: 'var', key: 'http_x_global' } } }],
      });
      const who = { 'x-global': unique() };
      assert.equal((await get(gw, '/plain-a', who)).status, 200);
      assert.equal((await get(gw, '/plain-b', who)).status, 200);
      assert.equal((await get(gw, '/plain-a', who)).status, 503);
      assert.equal((await get(gw, '/plain-b', who)).status, 503);
    });

    it('key consumer_name counts per consumer; a consumer can carry its own limit', async () => {
      await apply(gw, up, {
        routes: [
          route('by-consumer', '/by-consumer', { 'key-auth': {}, 'limit-count': { count: 1, time_window: 60, key: 'consumer_name' } }, up),
          route('consumer-own', '/consumer-own', { 'key-auth': {} }, up),
        ],
        consumers: [
          { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' }, 'limit-count': { count: 2, time_window: 60, rejected_code: 429 } } },
          { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } },
        ],
      });
      assert.deepEqual(await statuses(gw, '/by-consumer', 2, { apikey: 'rose-key' }), [200, 503]);
      assert.deepEqual(await statuses(gw, '/consumer-own', 3, { apikey: 'jack-key' }), [200, 200, 429]);
      assert.deepEqual(await statuses(gw, '/consumer-own', 3, { apikey: 'rose-key' }), [200, 200, 200]);
    });

    it('a changed conf starts a new counter; a change elsewhere in the route keeps it (t/plugin/limit-count.t TEST 6, 7)', async () => {
      await apply(gw, up, { routes: [route('conf', '/conf', { 'limit-count': { count: 2, time_window: 60 } }, up)] });
      assert.deepEqual(await statuses(gw, '/conf', 3), [200, 200, 503]);
      await apply(gw, up, { routes: [route('conf', '/conf', { 'limit-count': { count: 3, time_window: 60 } }, up)] });
      assert.deepEqual(await statuses(gw, '/conf', 4), [200, 200, 200, 503]);
      await apply(gw, up, { routes: [{ ...route('conf', '/conf', { 'limit-count': { count: 3, time_window: 60 } }, up), desc: 'renamed' }] });
      assert.deepEqual(await statuses(gw, '/conf', 1), [503]);
    });

    it('the window starts over when time_window has passed', async () => {
      await apply(gw, up, { routes: [route('win', '/win', { 'limit-count': { count: 1, time_window: 1 } }, up)] });
      assert.deepEqual(await statuses(gw, '/win', 2), [200, 503]);
      await waitFor(async () => (await get(gw, '/win')).status === 200, 5_000, 'the next window');
    });

    it('plugin_metadata renames the quota headers', async () => {
      await apply(gw, up, {
        routes: [route('meta', '/meta', { 'limit-count': { count: 1, time_window: 60 } }, up)],
        plugin_metadata: [{ id: 'limit-count', limit_header: 'X-Quota', remaining_header: 'X-Quota-Left', reset_header: 'X-Quota-Reset' }],
      });
      const ok = await get(gw, '/meta');
      assert.equal(ok.headers['x-quota'], '1');
      assert.equal(ok.headers['x-quota-left'], '0');
      assert.equal(ok.headers['x-quota-reset'], '60');
      assert.equal(ok.headers['x-ratelimit-limit'], undefined);
    });

    it('the standalone file refuses a bad conf and a group whose confs differ; the rest loads', async () => {
      const group = `grp-${unique()}`;
      const mark = gw.output().length;
      await apply(gw, up, {
        routes: [
          route('bad', '/bad', { 'limit-count': { time_window: 60 } }, up),
          route('ga', '/ga', { 'limit-count': { count: 1, time_window: 60, group } }, up),
          route('gb', '/gb', { 'limit-count': { count: 2, time_window: 60, group } }, up),
          route('fine', '/fine', { 'limit-count': { count: 1, time_window: 60 } }, up),
        ],
      });
      assert.equal((await get(gw, '/fine')).status, 200);
      assert.equal((await get(gw, '/ga')).status, 200);
      assert.equal((await get(gw, '/bad')).status, 404);
      assert.equal((await get(gw, '/gb')).status, 404);
      await waitFor(() => /routes\[0\] \(id bad\)[^\n]*failed to check the configuration of plugin limit-count err: property "count" is required/.test(gw.output().slice(mark)), 5_000, 'the refusal of route bad');
      await waitFor(() => /routes\[2\] \(id gb\)[^\n]*failed to check the configuration of plugin limit-count err: group conf mismatched/.test(gw.output().slice(mark)), 5_000, 'the refusal of route gb');
    });
  });

  describe('limit-req', () => {
    it('the first request always passes; with burst 0 the next one within 1/rate is rejected', async () => {
      await apply(gw, up, {
        routes: [
          route('req', '/req', { 'limit-req': { rate: 0.1, burst: 0, key: 'remote_addr' } }, up),
          route('req-msg', '/req-msg', { 'limit-req': { rate: 0.1, burst: 0, key: 'remote_addr', rejected_code: 429, rejected_msg: 'slow down' } }, up),
        ],
      });
      const replies = [await get(gw, '/req'), await get(gw, '/req')];
      assert.deepEqual(replies.map((r) => r.status), [200, 503]);
      assert.match(replies[1].body, PAGE_503);
      assert.equal((await get(gw, '/req-msg')).status, 200);
      const no = await get(gw, '/req-msg');
      assert.equal(no.status, 429);
      assert.equal(no.body, '{"error_msg":"slow down"}\n');
    });

    it('a request within the burst waits for its turn; nodelay lets it through at once', async () => {
      await apply(gw, up, {
        routes: [
          route('delay', '/delay', { 'limit-req': { rate: 2, burst: 1, key: 'remote_addr' } }, up),
          route('nodelay', '/nodelay', { 'limit-req': { rate: 0.1, burst: 2, key: 'remote_addr', nodelay: true } }, up),
        ],
      });
      assert.equal((await get(gw, '/delay')).status, 200);
      const started = Date.now();
      assert.equal((await get(gw, '/delay')).status, 200);
      // the bucket drains 2 a second: the second request waited about half a second
      assert.ok(Date.now() - started >= 400, `the burst request was not delayed (${Date.now() - started} ms)`);
      assert.deepEqual(await statuses(gw, '/nodelay', 4), [200, 200, 200, 503]);
    });

    it('key_type var_combination keeps one bucket per combination', async () => {
      await apply(gw, up, { routes: [route('req-combo', '/req-combo', { 'limit-req': { rate: 0.1, burst: 0, key_type: 'var_combination', key: '$http_x_a-$http_x_b' } }, up)] });
      assert.deepEqual(await statuses(gw, '/req-combo', 2, { 'x-a': '1' }), [200, 503]);
      assert.deepEqual(await statuses(gw, '/req-combo', 2, { 'x-a': '2' }), [200, 503]);
    });
  });

  describe('limit-conn', () => {
    it('rejects past conn + burst while requests are in flight, and frees the place when they end', async () => {
      await apply(gw, up, {
        routes: [
          route('conn', '/conn', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } }, up),
          route('conn-msg', '/conn-msg', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', rejected_code: 429, rejected_msg: 'busy' } }, up),
        ],
      });
      const first = await holdOne(gw, up, '/conn');
      const rejected = await get(gw, '/conn');
      assert.equal(rejected.status, 503);
      assert.match(rejected.body, PAGE_503);
      const firstMsg = await holdOne(gw, up, '/conn-msg');
      const busy = await get(gw, '/conn-msg');
      assert.equal(busy.status, 429);
      assert.equal(busy.body, '{"error_msg":"busy"}\n');
      up.release();
      assert.equal((await first.reply).status, 200);
      assert.equal((await firstMsg.reply).status, 200);
      await waitFor(async () => (await get(gw, '/conn')).status === 200, 5_000, 'the place to be given back');
    });

    it('delays requests within the burst by default_conn_delay', async () => {
      await apply(gw, up, { routes: [route('conn-burst', '/conn-burst', { 'limit-conn': { conn: 1, burst: 1, default_conn_delay: 0.5, only_use_default_delay: true, key: 'remote_addr' } }, up)] });
      const first = await holdOne(gw, up, '/conn-burst');
      const started = Date.now();
      assert.equal((await get(gw, '/conn-burst')).status, 200);
      assert.ok(Date.now() - started >= 400, `the burst request was not delayed (${Date.now() - started} ms)`);
      const second = await holdOne(gw, up, '/conn-burst');
      assert.equal((await get(gw, '/conn-burst')).status, 503);
      up.release();
      await Promise.all([first.reply, second.reply]);
    });

    it('a request the client abandons, or that fails upstream, gives its place back', async () => {
      const dead = await freePort();
      await apply(gw, up, {
        routes: [
          route('conn-abort', '/conn-abort', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } }, up),
          route('conn-dead', '/conn-dead', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } }, { node: `127.0.0.1:${dead}` }),
        ],
      });
      const held = up.held.length;
      const req = http.request(gw.url('/conn-abort'), { headers: { 'x-hold': '1' }, agent: false });
      req.on('error', () => {});
      req.end();
      await waitFor(() => up.held.length > held, 5_000, 'the request to reach the upstream');
      assert.equal((await get(gw, '/conn-abort')).status, 503);
      req.destroy();
      await waitFor(async () => (await get(gw, '/conn-abort')).status === 200, 5_000, 'the abandoned request to give its place back');
      assert.deepEqual(await statuses(gw, '/conn-dead', 3), [502, 502, 502]);
      up.release();
    });
  });

  describe('api-breaker', () => {
    const breaker = {
      break_response_code: 502,
      break_response_body: '{"message":"circuit open"}',
      break_response_headers: [
        { key: 'X-Breaker', value: 'open for $remote_addr' },
        { key: 'Content-Type', value: 'application/json' },
      ],
      max_breaker_sec: 3,
      unhealthy: { http_statuses: [500, 503], failures: 2 },
      healthy: { http_statuses: [200], successes: 2 },
    };

    it('opens after unhealthy.failures answers, answers for the upstream, and closes after healthy.successes', async () => {
      await apply(gw, up, { routes: [route('brk', '/brk', { 'api-breaker': breaker }, up)] });
      up.status = 500;
      try {
        assert.deepEqual(await statuses(gw, '/brk', 2), [500, 500]);
        // the breaker counts in the log phase, once each answer is over
        await waitFor(async () => (await get(gw, '/brk')).status === 502, 5_000, 'the breaker to open');
        const seen = up.seen.length;
        const open = await get(gw, '/brk');
        assert.equal(open.status, 502);
        assert.equal(open.body, '{"message":"circuit open"}');
        assert.equal(open.headers['x-breaker'], 'open for 127.0.0.1');
        assert.equal(open.headers['content-type'], 'application/json');
        assert.equal(up.seen.length, seen, 'the open breaker kept the request from the upstream');
        // 2^1 s later the breaker lets requests through; two healthy answers close it
        up.status = 200;
        await waitFor(async () => (await get(gw, '/brk')).status === 200, 6_000, 'the breaker to let requests through');
        await waitFor(async () => (await get(gw, '/brk')).status === 200, 5_000, 'a second healthy answer');
        // closed for good: its history is gone, so after one new failure the next request still
        // reaches the upstream (with the old count and opening time it would be refused)
        up.status = 500;
        assert.deepEqual(await statuses(gw, '/brk', 2), [500, 500]);
      } finally {
        up.status = 200;
      }
    });

    it('without break_response_body answers the bare code (headers are only sent with a body)', async () => {
      await apply(gw, up, { routes: [route('brk-bare', '/brk-bare', { 'api-breaker': { break_response_code: 503, break_response_headers: [{ key: 'X-Breaker', value: 'x' }], unhealthy: { failures: 1 } } }, up)] });
      up.status = 500;
      try {
        assert.equal((await get(gw, '/brk-bare')).status, 500);
        await waitFor(async () => (await get(gw, '/brk-bare')).status === 503, 5_000, 'the breaker to open');
        const open = await get(gw, '/brk-bare');
        assert.equal(open.status, 503);
        assert.match(open.body, PAGE_503);
        assert.equal(open.headers['x-breaker'], undefined);
      } finally {
        up.status = 200;
      }
    });

    it('statuses in neither list change nothing', async () => {
      await apply(gw, up, { routes: [route('brk-other', '/brk-other', { 'api-breaker': { break_response_code: 502, unhealthy: { failures: 1 } } }, up)] });
      up.status = 404;
      try {
        assert.deepEqual(await statuses(gw, '/brk-other', 3), [404, 404, 404]);
      } finally {
        up.status = 200;
      }
    });
  });

  it('no plugin failed on the way', () => assertNoPluginFailures(gw));
});

describe('limit plugins on a node with two workers: one counter per node', () => {
  let gw: Gateway;
  let up: HoldingUpstream;

  before(async () => {
    up = await startHoldingUpstream();
    gw = await startGateway({ workers: 2 });
    await apply(gw, up, {
      routes: [
        route('count', '/count', { 'limit-count': { count: 5, time_window: 60 } }, up),
        route('req', '/req', { 'limit-req': { rate: 0.1, burst: 2, nodelay: true, key: 'remote_addr' } }, up),
        route('conn', '/conn', { 'limit-conn': { conn: 2, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } }, up),
        route('brk', '/brk', { 'api-breaker': { break_response_code: 502, unhealthy: { failures: 2 } } }, up),
      ],
    });
  });
  after(async () => {
    up?.release();
    await gw?.stop();
    await up?.close();
  });

  it('limit-count: a limit of 5 allows exactly 5 however the connections spread over the workers', async () => {
    assert.deepEqual(await burst(gw, '/count', 12), { 200: 5, 503: 7 });
    assert.deepEqual(await statuses(gw, '/count', 4), [503, 503, 503, 503]);
  });

  it('limit-req: one bucket for the node', async () => {
    assert.deepEqual(await burst(gw, '/req', 12), { 200: 3, 503: 9 });
  });

  it('limit-conn: one count of requests in flight for the node', async () => {
    const held = [await holdOne(gw, up, '/conn'), await holdOne(gw, up, '/conn')];
    assert.deepEqual(await burst(gw, '/conn', 6), { 503: 6 });
    up.release();
    await Promise.all(held.map((h) => h.reply));
    await waitFor(async () => (await burst(gw, '/conn', 2))[200] === 2, 5_000, 'both places to be given back');
  });

  it('api-breaker: every worker sees the open breaker', async () => {
    up.status = 500;
    try {
      assert.deepEqual(await statuses(gw, '/brk', 2), [500, 500]);
      await waitFor(async () => (await get(gw, '/brk')).status === 502, 5_000, 'the breaker to open');
      assert.deepEqual(await burst(gw, '/brk', 8), { 502: 8 });
    } finally {
      up.status = 200;
    }
  });

  it('no plugin failed on the way', () => assertNoPluginFailures(gw));
});

describe('limit plugins shared by two nodes through Redis', () => {
  const PASSWORD = 'limits-secret';
  let redis: RedisServer;
  let cluster: { nodes: string[]; stop(): Promise<void> };
  let up: HoldingUpstream;
  let a: Gateway;
  let b: Gateway;
  let inspect: Redis;
  let deadPort: number;
  const group = `shared-${unique()}`;

  const viaRedis = () => ({ policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port, redis_password: PASSWORD, redis_database: 3 });
  const viaCluster = () => ({ policy: 'redis-cluster', redis_cluster_nodes: cluster.nodes.slice(0, 2), redis_cluster_name: 'limits' });
  const viaNothing = () => ({ policy: 'redis', redis_host: '127.0.0.1', redis_port: deadPort, redis_timeout: 300 });

  before(async () => {
    deadPort = await freePort();
    [redis, cluster, up] = await Promise.all([
      startRedisServer(['--requirepass', PASSWORD, '--user', 'alice', 'on', '>alice-pw', '~*', '&*', '+@all'], PASSWORD),
      startRedisCluster(),
      startHoldingUpstream(),
    ]);
    inspect = new Redis({ port: redis.port, password: PASSWORD, db: 3, lazyConnect: true });
    const routes = {
      routes: [
        route('count', '/count', { 'limit-count': { count: 3, time_window: 60, ...viaRedis() } }, up),
        route('count-group', '/count-group', { 'limit-count': { count: 2, time_window: 60, group, ...viaRedis() } }, up),
        route('count-acl', '/count-acl', { 'limit-count': { count: 1, time_window: 60, ...viaRedis(), redis_username: 'alice', redis_password: 'alice-pw' } }, up),
        route('count-badauth', '/count-badauth', { 'limit-count': { count: 1, time_window: 60, ...viaRedis(), redis_password: 'wrong' } }, up),
        route('req', '/req', { 'limit-req': { rate: 0.1, burst: 1, nodelay: true, key: 'remote_addr', ...viaRedis() } }, up),
        route('conn', '/conn', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', ...viaRedis() } }, up),
        route('c-count', '/c-count', { 'limit-count': { count: 3, time_window: 60, ...viaCluster() } }, up),
        route('c-req', '/c-req', { 'limit-req': { rate: 0.1, burst: 0, key: 'remote_addr', ...viaCluster() } }, up),
        route('c-conn', '/c-conn', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', ...viaCluster() } }, up),
        route('down-count', '/down-count', { 'limit-count': { count: 1, time_window: 60, ...viaNothing() } }, up),
        route('down-count-ok', '/down-count-ok', { 'limit-count': { count: 1, time_window: 60, allow_degradation: true, ...viaNothing() } }, up),
        route('down-req', '/down-req', { 'limit-req': { rate: 1, burst: 0, key: 'remote_addr', ...viaNothing() } }, up),
        route('down-req-ok', '/down-req-ok', { 'limit-req': { rate: 1, burst: 0, key: 'remote_addr', allow_degradation: true, ...viaNothing() } }, up),
        route('down-conn', '/down-conn', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', ...viaNothing() } }, up),
        route('down-conn-ok', '/down-conn-ok', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', allow_degradation: true, ...viaNothing() } }, up),
      ],
    };
    [a, b] = await Promise.all([startGateway(), startGateway()]);
    await Promise.all([apply(a, up, routes), apply(b, up, routes)]);
  });
  after(async () => {
    up?.release();
    inspect?.disconnect();
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([redis?.stop(), cluster?.stop(), up?.close()]);
  });

  it('limit-count (redis): two nodes count against one limit', async () => {
    const replies = [await get(a, '/count'), await get(b, '/count'), await get(a, '/count'), await get(b, '/count'), await get(a, '/count')];
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 503, 503]);
    assert.deepEqual(replies.map((r) => r.headers['x-ratelimit-remaining']), ['2', '1', '0', '0', '0']);
    assert.equal(replies[0].headers['x-ratelimit-reset'], '60');
  });

  it('limit-count (redis): a group counter under APISIX\'s key, in the configured database', async () => {
    assert.equal((await get(a, '/count-group')).status, 200);
    assert.equal(await inspect.get(`plugin-limit-count${group}:127.0.0.1`), '1');
    const ttl = await inspect.pttl(`plugin-limit-count${group}:127.0.0.1`);
    assert.ok(ttl > 0 && ttl <= 60_000, `ttl ${ttl}`);
    assert.equal((await get(b, '/count-group')).status, 200);
    assert.equal((await get(a, '/count-group')).status, 503);
  });

  it('limit-count (redis): redis_username authenticates with Redis ACLs; a wrong password fails the request', async () => {
    assert.deepEqual([(await get(a, '/count-acl')).status, (await get(b, '/count-acl')).status], [200, 503]);
    const failed = await get(a, '/count-badauth');
    assert.equal(failed.status, 500);
    assert.equal(failed.body, '{"error_msg":"failed to limit count"}\n');
  });

  it('limit-req (redis): one bucket for both nodes, under APISIX\'s hash-tagged keys', async () => {
    assert.deepEqual([(await get(a, '/req')).status, (await get(b, '/req')).status, (await get(a, '/req')).status], [200, 200, 503]);
    const keys = await inspect.keys('{limit_req:*}*');
    assert.ok(keys.some((k) => k.endsWith('}excess')) && keys.some((k) => k.endsWith('}last')), `keys ${keys.join(' ')}`);
  });

  it('limit-conn (redis): a request in flight on one node counts on the other', async () => {
    const held = await holdOne(a, up, '/conn');
    assert.equal((await get(b, '/conn')).status, 503);
    up.release();
    assert.equal((await held.reply).status, 200);
    await waitFor(async () => (await get(b, '/conn')).status === 200, 5_000, 'the place to be given back in Redis');
  });

  it('redis-cluster: limit-count, limit-req and limit-conn shared by both nodes', async () => {
    const counted = [await get(a, '/c-count'), await get(b, '/c-count'), await get(a, '/c-count'), await get(b, '/c-count')];
    assert.deepEqual(counted.map((r) => r.status), [200, 200, 200, 503]);
    assert.deepEqual([(await get(a, '/c-req')).status, (await get(b, '/c-req')).status], [200, 503]);
    const held = await holdOne(b, up, '/c-conn');
    assert.equal((await get(a, '/c-conn')).status, 503);
    up.release();
    assert.equal((await held.reply).status, 200);
    await waitFor(async () => (await get(a, '/c-conn')).status === 200, 5_000, 'the place to be given back in the cluster');
  });

  it('Redis unreachable: 500 unless allow_degradation lets the request through', async () => {
    const count = await get(a, '/down-count');
    assert.equal(count.status, 500);
    assert.equal(count.body, '{"error_msg":"failed to limit count"}\n');
    assert.equal((await get(a, '/down-count-ok')).status, 200);
    assert.equal((await get(a, '/down-req')).status, 500);
    assert.equal((await get(a, '/down-req-ok')).status, 200);
    assert.equal((await get(a, '/down-conn')).status, 500);
    assert.equal((await get(a, '/down-conn-ok')).status, 200);
  });

  it('no plugin failed on the way', () => {
    assertNoPluginFailures(a);
    assertNoPluginFailures(b);
  });
});

describe('limit plugins through the Admin API', () => {
  let gw: Gateway;
  let up: Upstream;
  let adminPort: number;
  let node: AdminGateway;

  before(async () => {
    up = await startUpstream();
    node = await startAdminGateway();
    ({ gw, adminPort } = node);
  });
  after(async () => {
    await node?.stop();
    await up?.close();
  });

  async function refused(plugin: string, conf: unknown, message: string, path = '/routes/bad'): Promise<void> {
    const body = path.startsWith('/services') ? { plugins: { [plugin]: conf }, upstream: nodesOf(up) } : { uri: '/bad', plugins: { [plugin]: conf }, upstream: nodesOf(up) };
    const res = await adminCall(adminPort, 'PUT', path, { body });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.text, JSON.stringify({ error_msg: `failed to check the configuration of plugin ${plugin} err: ${message}` }) + '\n');
  }

  it('a route created through the Admin API limits as the file does', async () => {
    const res = await adminCall(adminPort, 'PUT', '/routes/1', {
      body: { methods: ['GET'], uri: '/hello', plugins: { 'limit-count': { count: 2, time_window: 60, rejected_code: 503, key: 'remote_addr' } }, upstream: nodesOf(up) },
    });
    assert.ok(res.status === 200 || res.status === 201, res.text);
    await waitFor(async () => (await get(gw, '/hello')).status !== 404, 5_000, 'the route to serve');
    // the request waitFor made counted once
    assert.deepEqual(await statuses(gw, '/hello', 3), [200, 503, 503]);
  });

  it('limit-count: schema refusals in APISIX\'s words', async () => {
    await refused('limit-count', { time_window: 60, rejected_code: 503 }, 'property "count" is required');
    await refused('limit-count', { count: -100, time_window: 60, rejected_code: 503, key: 'remote_addr' }, 'property "count" validation failed: expected -100 to be greater than 0');
    await refused('limit-count', { count: -100, time_window: 60 }, 'property "count" validation failed: expected -100 to be greater than 0', '/services/bad');
    await refused('limit-count', { count: 1, time_window: 60, key_type: 'header' }, 'property "key_type" validation failed: matches none of the enum values');
    await refused('limit-count', { count: 1, time_window: 60, rejected_code: 600 }, 'property "rejected_code" validation failed: expected 600 to be at most 599');
    await refused('limit-count', { count: 1, time_window: 60, rejected_msg: '' }, 'property "rejected_msg" validation failed: string too short, expected at least 1, got 0');
    await refused('limit-count', { count: 1, time_window: 60, policy: 'memcached' }, 'property "policy" validation failed: matches none of the enum values');
    await refused('limit-count', { count: 1, time_window: 60, policy: 'redis' }, 'then clause did not match');
    await refused('limit-count', { count: 1, time_window: 60, policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:7000'] }, 'else clause did not match');
  });

  it('limit-count: a second route of a group with another conf is refused', async () => {
    const group = `grp-${unique()}`;
    const first = await adminCall(adminPort, 'PUT', '/routes/ga', { body: { uri: '/ga', plugins: { 'limit-count': { count: 1, time_window: 60, group } }, upstream: nodesOf(up) } });
    assert.ok(first.status === 200 || first.status === 201, first.text);
    const same = await adminCall(adminPort, 'PUT', '/routes/gb', { body: { uri: '/gb', plugins: { 'limit-count': { count: 1, time_window: 60, group } }, upstream: nodesOf(up) } });
    assert.ok(same.status === 200 || same.status === 201, same.text);
    await refused('limit-count', { count: 2, time_window: 60, group }, 'group conf mismatched', '/routes/gc');
  });

  it('limit-req, limit-conn and api-breaker: schema refusals in APISIX\'s words', async () => {
    await refused('limit-req', { rate: 0, burst: 0, key: 'remote_addr' }, 'property "rate" validation failed: expected 0 to be greater than 0');
    await refused('limit-req', { rate: 1, burst: -1, key: 'remote_addr' }, 'property "burst" validation failed: expected -1 to be at least 0');
    await refused('limit-req', { rate: 1, burst: 0 }, 'property "key" is required');
    await refused('limit-req', { rate: 1, burst: 0, key: 'remote_addr', key_type: 'constant' }, 'property "key_type" validation failed: matches none of the enum values');
    await refused('limit-conn', { conn: 1, burst: 0, key: 'remote_addr' }, 'property "default_conn_delay" is required');
    await refused('limit-conn', { conn: 0, burst: 0, default_conn_delay: 1, key: 'remote_addr' }, 'property "conn" validation failed: expected 0 to be greater than 0');
    await refused('limit-conn', { conn: 1.5, burst: 0, default_conn_delay: 1, key: 'remote_addr' }, 'property "conn" validation failed: wrong type: expected integer, got number');
    await refused('api-breaker', {}, 'property "break_response_code" is required');
    await refused('api-breaker', { break_response_code: 502, max_breaker_sec: 2 }, 'property "max_breaker_sec" validation failed: expected 2 to be at least 3');
    await refused('api-breaker', { break_response_code: 199 }, 'property "break_response_code" validation failed: expected 199 to be at least 200');
    await refused(
      'api-breaker',
      { break_response_code: 502, unhealthy: { http_statuses: [200] } },
      'property "unhealthy" validation failed: property "http_statuses" validation failed: failed to validate item 1: expected 200 to be at least 500',
    );
    await refused(
      'api-breaker',
      { break_response_code: 502, healthy: { http_statuses: [200, 200] } },
      'property "healthy" validation failed: property "http_statuses" validation failed: expected unique items but items 1 and 2 are equal',
    );
    await refused('api-breaker', { break_response_code: 502, break_response_headers: [{ key: 'X-A' }] }, 'property "break_response_headers" validation failed: failed to validate item 1: property "value" is required');
  });
});
