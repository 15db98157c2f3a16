// The plugin runtime through a running gateway and its Admin API, with test plugins loaded from a
// user plugin directory (test/fixtures/runtime-plugins): phase order, priorities, merge precedence,
// global rules, consumers, `_meta`, async phases and body filters, metadata, shared memory, schema
// errors and reload.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adminCall, startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { REPO, request, startGateway, startUpstream, waitFor, type Upstream } from '../helpers/gateway.ts';

const FIXTURES = join(REPO, 'test/fixtures/runtime-plugins');
const TEST_PLUGINS = ['test-auth', 'mark-high', 'mark-low', 'slow-upper', 'greeting'];

type Node = AdminGateway;

function startNode(plugins: string[], workers = 2): Promise<Node> {
  return startAdminGateway({ workers, config: { apisix: { extra_plugin_dir: FIXTURES }, plugins } });
}

const put = (node: Node, path: string, body: unknown) => node.put(path, body);
const del = (node: Node, path: string) => node.del(path);

function upstreamOf(up: Upstream) {
  return { type: 'roundrobin', nodes: { [up.node]: 1 } };
}

/** The X-Trace header the upstream received, from its JSON echo. */
function traceSeen(body: string): string | undefined {
  return JSON.parse(body).headers['x-trace'];
}

describe('plugin runtime', () => {
  let node: Node;
  let up: Upstream;

  before(async () => {
    up = await startUpstream();
    node = await startNode(['key-auth', 'limit-count', 'limit-conn', 'proxy-rewrite', ...TEST_PLUGINS]);
  });

  after(async () => {
    await node?.stop();
    await up?.close();
  });

  it('lists the enabled plugins by priority and serves their schemas with _meta', async () => {
    const list = await adminCall(node.adminPort, 'GET', '/plugins/list');
    assert.equal(list.status, 200);
    // key-auth 2500 and test-auth 2500 first, then limit-count 1002, proxy-rewrite 1008 ...
    assert.deepEqual(list.json.indexOf('mark-high') < list.json.indexOf('mark-low'), true);
    assert.ok(list.json.indexOf('proxy-rewrite') < list.json.indexOf('limit-count'));
    assert.ok(!list.json.includes('basic-auth'), 'only the plugins list in config.yaml is enabled');
    const schema = await adminCall(node.adminPort, 'GET', '/plugins/mark-low');
    assert.equal(schema.status, 200);
    assert.ok(schema.json.properties._meta, 'the runtime injects _meta');
    assert.equal(schema.json.properties.status.default, 403);
    const consumerSchema = await adminCall(node.adminPort, 'GET', '/plugins/test-auth?schema_type=consumer');
    assert.deepEqual(consumerSchema.json.required, ['key']);
  });

  it('refuses invalid plugin confs with the plugin named, and stores defaults', async () => {
    let r = await adminCall(node.adminPort, 'PUT', '/routes/bad', { body: { uri: '/bad', plugins: { 'mark-low': { status: 99 } }, upstream: upstreamOf(up) } });
    assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to check the configuration of plugin mark-low err: property "status" validation failed: expected 99 to be at least 200' }]);
    r = await adminCall(node.adminPort, 'PUT', '/routes/bad', { body: { uri: '/bad', plugins: { 'basic-auth': {} }, upstream: upstreamOf(up) } });
    assert.deepEqual([r.status, r.json], [400, { error_msg: 'unknown plugin [basic-auth]' }]);
    r = await adminCall(node.adminPort, 'PUT', '/routes/bad', { body: { uri: '/bad', plugins: { 'mark-low': { _meta: { filter: [['arg_x', 'bogus', '1']] } } }, upstream: upstreamOf(up) } });
    assert.equal(r.status, 400);
    assert.match(r.json.error_msg, /^failed to check the configuration of plugin mark-low err: failed to validate the 'filter' expression: /);
    // A disabled plugin's conf is not held to its schema.
    r = await put(node, '/routes/defaults', { uri: '/defaults', plugins: { 'mark-low': { tag: 'x' }, 'mark-high': { status: 1, _meta: { disable: true } } }, upstream: upstreamOf(up) });
    assert.deepEqual(r.json.value.plugins['mark-low'], { tag: 'x', status: 403 });
    r = await adminCall(node.adminPort, 'PUT', '/consumers/bad', { body: { username: 'bad', plugins: { 'test-auth': {} } } });
    assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugins configuration: failed to check the configuration of plugin test-auth err: property "key" is required' }]);
    await put(node, '/consumers/okc', { username: 'okc' });
    r = await adminCall(node.adminPort, 'PUT', '/consumers/okc/credentials/c1', { body: { plugins: { 'mark-low': {} } } });
    assert.deepEqual([r.status, r.json], [400, { error_msg: 'only supports auth type plugins in consumer credential' }]);
    r = await adminCall(node.adminPort, 'PUT', '/plugin_metadata/greeting', { body: { text: 1 } });
    assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid configuration: property "text" validation failed: wrong type: expected string, got number' }]);
    await del(node, '/consumers/okc');
    await del(node, '/routes/defaults');
  });

  it('runs rewrite, access and before_proxy by priority, and header_filter on the response', async () => {
    await put(node, '/routes/order', { uri: '/order', plugins: { 'mark-low': {}, 'mark-high': {} }, upstream: upstreamOf(up) });
    const r = await request(node.gw.url('/order'));
    assert.equal(r.status, 200);
    const trace = 'mark-high.rewrite,mark-low.rewrite,mark-high.access,mark-low.access,mark-high.before_proxy,mark-low.before_proxy';
    assert.equal(traceSeen(r.body), trace);
    assert.equal(r.headers['x-phases'], `mark-high.header_filter:${trace},mark-low.header_filter:${trace}`);
  });

  it('_meta.priority reorders one object, _meta.disable skips, _meta.filter decides per request', async () => {
    await put(node, '/routes/meta', {
      uri: '/meta',
      plugins: { 'mark-low': { _meta: { priority: 100 } }, 'mark-high': { _meta: { filter: [['arg_high', '==', 'yes']] } } },
      upstream: upstreamOf(up),
    });
    assert.equal(traceSeen((await request(node.gw.url('/meta'))).body), 'mark-low.rewrite,mark-low.access,mark-low.before_proxy');
    assert.equal(traceSeen((await request(node.gw.url('/meta?high=yes'))).body), 'mark-low.rewrite,mark-high.rewrite,mark-low.access,mark-high.access,mark-low.before_proxy,mark-high.before_proxy');
    await put(node, '/routes/meta', { uri: '/meta', plugins: { 'mark-low': { _meta: { disable: true } }, 'mark-high': {} }, upstream: upstreamOf(up) });
    assert.equal(traceSeen((await request(node.gw.url('/meta'))).body), 'mark-high.rewrite,mark-high.access,mark-high.before_proxy');
  });

  it('an exit stops the request, skips the upstream, and still runs header filters; _meta.error_response replaces its body', async () => {
    await put(node, '/routes/exit', { uri: '/exit', plugins: { 'mark-high': {}, 'mark-low': { exit_in: 'access', status: 451 } }, upstream: upstreamOf(up) });
    const before = up.seen.length;
    let r = await request(node.gw.url('/exit'));
    assert.equal(r.status, 451);
    assert.equal(r.body, '{"message":"stopped by mark-low"}\n');
    assert.match(String(r.headers['x-phases']), /^mark-high\.header_filter:.*,mark-low\.header_filter:/);
    assert.equal(up.seen.length, before, 'the upstream was not called');
    await put(node, '/routes/exit', { uri: '/exit', plugins: { 'mark-low': { exit_in: 'rewrite', _meta: { error_response: { code: 'denied' } } } }, upstream: upstreamOf(up) });
    r = await request(node.gw.url('/exit'));
    assert.deepEqual([r.status, JSON.parse(r.body)], [403, { code: 'denied' }]);
    await put(node, '/routes/exit', { uri: '/exit', plugins: { 'mark-low': { exit_in: 'before_proxy', status: 409 } }, upstream: upstreamOf(up) });
    r = await request(node.gw.url('/exit'));
    assert.equal(r.status, 409);
    assert.equal(up.seen.length, before, 'before_proxy stops before the upstream is called');
  });

  it('merges route over plugin config over service', async () => {
    await put(node, '/services/s1', { plugins: { 'mark-low': { tag: 'service' }, 'mark-high': { tag: 'service' } }, upstream: upstreamOf(up) });
    await put(node, '/plugin_configs/pc1', { plugins: { 'mark-low': { tag: 'config' } } });
    await put(node, '/routes/merge', { uri: '/merge', service_id: 's1', plugin_config_id: 'pc1' });
    assert.equal(traceSeen((await request(node.gw.url('/merge'))).body)!.split(',')[0], 'mark-high.rewrite:service');
    assert.match(traceSeen((await request(node.gw.url('/merge'))).body)!, /mark-low\.rewrite:config/);
    await put(node, '/routes/merge', { uri: '/merge', service_id: 's1', plugin_config_id: 'pc1', plugins: { 'mark-low': { tag: 'route' } } });
    assert.match(traceSeen((await request(node.gw.url('/merge'))).body)!, /mark-low\.rewrite:route/);
    // A plugin config change reaches the routes that use it.
    await put(node, '/routes/merge', { uri: '/merge', service_id: 's1', plugin_config_id: 'pc1' });
    await put(node, '/plugin_configs/pc1', { plugins: { 'mark-low': { tag: 'config2' } } });
    assert.match(traceSeen((await request(node.gw.url('/merge'))).body)!, /mark-low\.rewrite:config2/);
    await del(node, '/routes/merge');
    await del(node, '/plugin_configs/pc1');
    await del(node, '/services/s1');
  });

  it('a route whose plugin config is missing answers 503', async () => {
    await put(node, '/plugin_configs/gone', { plugins: {} });
    await put(node, '/routes/nopc', { uri: '/nopc', plugin_config_id: 'gone', upstream: upstreamOf(up) });
    // Forced deletion leaves the route pointing at nothing.
    const r = await adminCall(node.adminPort, 'DELETE', '/plugin_configs/gone?force=true');
    assert.equal(r.status, 200);
    await waitFor(async () => (await request(node.gw.url('/nopc'))).status === 503, 5000, '503 for a missing plugin config');
    await del(node, '/routes/nopc');
  });

  it('global rules run around the route: global rewrite, route rewrite, global access, route access; and on 404', async () => {
    await put(node, '/global_rules/g1', { plugins: { 'mark-low': { tag: 'global' } } });
    await put(node, '/routes/global', { uri: '/global', plugins: { 'mark-high': {} }, upstream: upstreamOf(up) });
    const r = await request(node.gw.url('/global'));
    assert.equal(traceSeen(r.body), 'mark-low.rewrite:global,mark-high.rewrite,mark-low.access:global,mark-high.access,mark-low.before_proxy:global,mark-high.before_proxy');
    // The same plugin on the route and in a global rule runs twice (no prefer_route).
    await put(node, '/routes/global', { uri: '/global', plugins: { 'mark-low': { tag: 'route' } }, upstream: upstreamOf(up) });
    assert.match(traceSeen((await request(node.gw.url('/global'))).body)!, /^mark-low\.rewrite:global,mark-low\.rewrite:route,/);
    // No route: the global rules run, then 404.
    const miss = await request(node.gw.url('/no-such-route'));
    assert.equal(miss.status, 404);
    assert.equal(miss.body, '{"error_msg":"404 Route Not Found"}\n');
    assert.equal(miss.headers['x-phases'], 'mark-low.header_filter:mark-low.rewrite:global,mark-low.access:global');
    const dup = await adminCall(node.adminPort, 'PUT', '/global_rules/g2', { body: { plugins: { 'mark-low': {} } } });
    assert.deepEqual([dup.status, dup.json], [400, { error_msg: "plugin 'mark-low' already exists in global rule with id 'g1'" }]);
    await del(node, '/global_rules/g1');
    await del(node, '/routes/global');
  });

  it('consumers: a key on the consumer or a credential authenticates; consumer > group > route plugins', async () => {
    await put(node, '/consumer_groups/gold', { plugins: { 'mark-low': { tag: 'group' }, 'mark-high': { tag: 'group' } } });
    await put(node, '/consumers/jack', { username: 'jack', group_id: 'gold', plugins: { 'test-auth': { key: 'jack-key' }, 'mark-low': { tag: 'consumer' } } });
    await put(node, '/consumers/jack/credentials/cred1', { plugins: { 'test-auth': { key: 'cred-key' } } });
    await put(node, '/consumers/rose', { username: 'rose', plugins: { 'test-auth': { key: 'rose-key' } } });
    await put(node, '/routes/auth', { uri: '/auth', plugins: { 'test-auth': {}, 'mark-high': { tag: 'route' } }, upstream: upstreamOf(up) });

    let r = await request(node.gw.url('/auth'));
    assert.deepEqual([r.status, r.body], [401, '{"message":"Missing key"}\n']);
    r = await request(node.gw.url('/auth'), { headers: { 'x-key': 'nope' } });
    assert.deepEqual([r.status, r.body], [401, '{"message":"Invalid key"}\n']);

    r = await request(node.gw.url('/auth'), { headers: { 'x-key': 'jack-key' } });
    let seen = JSON.parse(r.body).headers;
    assert.equal(seen['x-consumer'], 'jack');
    // mark-high's route rewrite ran before authentication; the group's conf replaces it for access on.
    // mark-low came with the consumer (consumer beats group): its rewrite runs after authentication.
    assert.equal(seen['x-trace'], 'mark-high.rewrite:route,mark-low.rewrite:consumer,mark-high.access:group,mark-low.access:consumer,mark-high.before_proxy:group,mark-low.before_proxy:consumer');

    r = await request(node.gw.url('/auth'), { headers: { 'x-key': 'cred-key' } });
    seen = JSON.parse(r.body).headers;
    assert.equal(seen['x-consumer'], 'jack/cred1');

    r = await request(node.gw.url('/auth'), { headers: { 'x-key': 'rose-key' } });
    seen = JSON.parse(r.body).headers;
    assert.equal(seen['x-consumer'], 'rose');
    assert.equal(seen['x-trace'], 'mark-high.rewrite:route,mark-high.access:route,mark-high.before_proxy:route');

    // A consumer change is seen at once (indexes are rebuilt).
    await put(node, '/consumers/rose', { username: 'rose', plugins: { 'test-auth': { key: 'rose-key-2' } } });
    assert.equal((await request(node.gw.url('/auth'), { headers: { 'x-key': 'rose-key' } })).status, 401);
    assert.equal((await request(node.gw.url('/auth'), { headers: { 'x-key': 'rose-key-2' } })).status, 200);
    await del(node, '/routes/auth');
    await del(node, '/consumers/jack/credentials/cred1');
    await del(node, '/consumers/jack');
    await del(node, '/consumers/rose');
    await del(node, '/consumer_groups/gold');
  });

  it('a plugin a consumer brings gets its log phase too (limit-conn frees its place)', async () => {
    await put(node, '/consumers/conn', { username: 'conn', plugins: { 'key-auth': { key: 'conn-key' }, 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'consumer_name' } } });
    await put(node, '/routes/conn', { uri: '/conn', plugins: { 'key-auth': {} }, upstream: upstreamOf(up) });
    // One at a time: each request's log phase gives its place back (it runs once the response is
    // done, so the next request may briefly race it); without the log phase the place stays taken.
    for (let i = 0; i < 5; i++) {
      await waitFor(async () => (await request(node.gw.url('/conn'), { headers: { apikey: 'conn-key' } })).status === 200, 3000, `request ${i + 1} admitted`);
    }
    await del(node, '/routes/conn');
    await del(node, '/consumers/conn');
  });

  it('async phases and async body filters keep order; exits from async phases work', async () => {
    const big = 'abcdefghij'.repeat(20_000);
    const bigUp = await startUpstream((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      // several chunks, so the filter sees many pieces
      for (let i = 0; i < 10; i++) res.write(big.slice(i * 20_000, (i + 1) * 20_000));
      res.end();
    });
    try {
      await put(node, '/routes/slow', { uri: '/slow', plugins: { 'slow-upper': {} }, upstream: upstreamOf(bigUp) });
      const r = await request(node.gw.url('/slow'));
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], undefined);
      assert.equal(r.body, big.toUpperCase());
      assert.equal(bigUp.seen.at(-1)!.headers['x-slow'], 'waited');
      await put(node, '/routes/slow', { uri: '/slow', plugins: { 'slow-upper': { delay_exit: true } }, upstream: upstreamOf(bigUp) });
      const exit = await request(node.gw.url('/slow'));
      // The exit body goes through the body filter too.
      assert.deepEqual([exit.status, exit.body], [429, 'SLOW DOWN']);
      await del(node, '/routes/slow');
    } finally {
      await bigUp.close();
    }
  });

  it('plugin metadata (with defaults) and the shared table are read at request time', async () => {
    await put(node, '/routes/greet', { uri: '/greet', plugins: { greeting: {} }, upstream: upstreamOf(up) });
    let seen = JSON.parse((await request(node.gw.url('/greet'))).body).headers;
    assert.equal(seen['x-greeting'], 'none');
    const meta = await put(node, '/plugin_metadata/greeting', { text: 'hi' });
    assert.deepEqual(meta.json.value, { id: 'greeting', text: 'hi', punctuation: '!' });
    seen = JSON.parse((await request(node.gw.url('/greet'))).body).headers;
    assert.equal(seen['x-greeting'], 'hi!');
    // Fresh connections spread over both workers; the count is one sequence for the node.
    const counts: number[] = [];
    for (let i = 0; i < 12; i++) counts.push(Number(JSON.parse((await request(node.gw.url('/greet'))).body).headers['x-count']));
    const first = counts[0];
    assert.deepEqual(counts, counts.map((_, i) => first + i));
    await del(node, '/routes/greet');
  });
});

describe('plugin runtime: reload and the standalone file', () => {
  let up: Upstream;

  before(async () => {
    up = await startUpstream();
  });

  after(async () => {
    await up?.close();
  });

  it('PUT /plugins/reload re-reads the plugins list and the plugin directory', async () => {
    const node = await startNode(['mark-high'], 1);
    try {
      let r = await adminCall(node.adminPort, 'PUT', '/routes/r', { body: { uri: '/r', plugins: { 'mark-low': {} }, upstream: upstreamOf(up) } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'unknown plugin [mark-low]' }]);
      const configPath = join(node.gw.dir, 'config.yaml');
      writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/plugins:\n  - mark-high\n/, 'plugins:\n  - mark-high\n  - mark-low\n'));
      r = await adminCall(node.adminPort, 'PUT', '/plugins/reload');
      assert.equal(r.status, 200);
      await waitFor(async () => (await adminCall(node.adminPort, 'GET', '/plugins/list')).json.includes('mark-low'), 10_000, 'mark-low enabled');
      await put(node, '/routes/r', { uri: '/r', plugins: { 'mark-low': {} }, upstream: upstreamOf(up) });
      await waitFor(async () => traceSeen((await request(node.gw.url('/r'))).body) === 'mark-low.rewrite,mark-low.access,mark-low.before_proxy', 10_000, 'workers run mark-low');
    } finally {
      await node?.stop();
    }
  });

  it('init runs once in the main thread and in each worker; a reload destroys and re-inits a user plugin', async () => {
    const logFile = join(mkdtempSync(join(tmpdir(), 'causeway-lifecycle-')), 'events');
    const gw = await startGateway({ workers: 2, env: { CW_LIFECYCLE_LOG: logFile }, config: { apisix: { extra_plugin_dir: FIXTURES }, plugins: ['lifecycle'] } });
    try {
      const lines = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n') : []);
      await waitFor(() => lines().length === 3, 5000, 'three inits');
      assert.equal(new Set(lines()).size, 3, 'one per thread');
      assert.ok(lines().every((l) => l.startsWith('init ')));
      gw.proc.kill('SIGHUP');
      await waitFor(() => lines().filter((l) => l.startsWith('destroy ')).length === 3 && lines().length === 9, 10_000, 'three destroys and three new inits');
    } finally {
      await gw.stop();
      rmSync(dirname(logFile), { recursive: true, force: true });
    }
  });

  it('SIGHUP reloads the plugins list on a node without the Admin API', async () => {
    const gw = await startGateway({
      config: { apisix: { extra_plugin_dir: FIXTURES }, plugins: ['mark-high'] },
      routes: { routes: [{ id: 'r', uri: '/r', plugins: { 'mark-high': {}, 'mark-low': {} }, upstream: upstreamOf(up) }] },
    });
    try {
      // mark-low is not enabled: skipped with a warning, the route serves with mark-high only.
      assert.equal(traceSeen((await request(gw.url('/r'))).body), 'mark-high.rewrite,mark-high.access,mark-high.before_proxy');
      const configPath = join(gw.dir, 'config.yaml');
      writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/plugins:\n  - mark-high\n/, 'plugins:\n  - mark-high\n  - mark-low\n'));
      gw.proc.kill('SIGHUP');
      await waitFor(async () => traceSeen((await request(gw.url('/r'))).body) === 'mark-high.rewrite,mark-low.rewrite,mark-high.access,mark-low.access,mark-high.before_proxy,mark-low.before_proxy', 10_000, 'mark-low after SIGHUP');
    } finally {
      await gw.stop();
    }
  });

  it('a plugins list in the standalone file replaces config.yaml\'s, and follows the file', async () => {
    const route = { id: 'r', uri: '/r', plugins: { 'mark-high': {}, 'mark-low': {} }, upstream: upstreamOf(up) };
    const gw = await startGateway({
      config: { apisix: { extra_plugin_dir: FIXTURES }, plugins: ['mark-high'] },
      routes: { routes: [route], plugins: [{ name: 'mark-low' }, { name: 'ip-restriction', stream: true }] },
    });
    try {
      assert.equal(traceSeen((await request(gw.url('/r'))).body), 'mark-low.rewrite,mark-low.access,mark-low.before_proxy');
      gw.writeRoutes({ routes: [route] });
      await waitFor(async () => traceSeen((await request(gw.url('/r'))).body) === 'mark-high.rewrite,mark-high.access,mark-high.before_proxy', 10_000, "config.yaml's list again");
    } finally {
      await gw.stop();
    }
  });

  it('the standalone file carries consumers, global rules and plugin metadata; a bad plugin conf is refused with its name', async () => {
    const gw = await startGateway({
      config: { apisix: { extra_plugin_dir: FIXTURES }, plugins: TEST_PLUGINS },
      env: { CW_TEST_TAG: 'from-env' },
      routes: {
        routes: [
          { id: 'env', uri: '/env', plugins: { 'mark-low': { tag: '$env://CW_TEST_TAG' } }, upstream: upstreamOf(up) },
          { id: 'a', uri: '/a', plugins: { 'test-auth': {}, greeting: {} }, upstream: upstreamOf(up) },
          { id: 'bad', uri: '/bad', plugins: { 'mark-low': { status: 'x' } }, upstream: upstreamOf(up) },
        ],
        consumers: [
          { username: 'jack', plugins: { 'test-auth': { key: 'k1' } } },
          { id: 'jack/credentials/c2', plugins: { 'test-auth': { key: 'k2' } } },
        ],
        global_rules: [{ id: 'g', plugins: { 'mark-high': {} } }],
        plugin_metadata: [{ id: 'greeting', text: 'hey' }],
      },
    });
    try {
      let r = await request(gw.url('/a'), { headers: { 'x-key': 'k2' } });
      assert.equal(r.status, 200, r.body);
      const seen = JSON.parse(r.body).headers;
      assert.equal(seen['x-consumer'], 'jack/c2');
      assert.equal(seen['x-greeting'], 'hey!');
      assert.equal(seen['x-trace'], 'mark-high.rewrite,mark-high.access,mark-high.before_proxy');
      // $env:// references in plugin confs are resolved.
      assert.equal(traceSeen((await request(gw.url('/env'))).body), 'mark-high.rewrite,mark-low.rewrite:from-env,mark-high.access,mark-low.access:from-env,mark-high.before_proxy,mark-low.before_proxy:from-env');
      r = await request(gw.url('/bad'));
      assert.equal(r.status, 404);
      await waitFor(() => /routes\[2\] \(id bad\): failed to check the configuration of plugin mark-low err: property "status" validation failed: wrong type: expected integer, got string/.test(gw.output()), 5000, 'the refusal in the log');
    } finally {
      await gw.stop();
    }
  });
});
