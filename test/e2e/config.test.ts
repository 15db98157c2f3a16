// End-to-end tests of configuration handling: the standalone file (reload, bad files and items,
// ${{VAR}} substitution, apisix.json), the `validate` and `version` commands, signals, start-up
// failures and multi-worker reloads. The gateway runs as a real process on loopback ports.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO, request, runCli, sleep, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

const NOT_FOUND_BODY = '{"error_msg":"404 Route Not Found"}\n';

function upstreamOf(up: Upstream): Record<string, unknown> {
  return { type: 'roundrobin', nodes: { [up.node]: 1 } };
}

/** Port of the upstream that answered (from the echo body), or undefined. */
async function portOf(gw: Gateway, path: string, headers?: http.OutgoingHttpHeaders): Promise<number | undefined> {
  const res = await request(gw.url(path), { headers });
  if (res.status !== 200) return undefined;
  return (JSON.parse(res.body) as { port: number }).port;
}

let generation = 0;

/** Writes apisix.yaml plus a marker route `/__marker/<n>`, and waits until the marker is served. */
async function apply(gw: Gateway, marker: Upstream, content: Record<string, unknown> & { routes?: unknown[] }): Promise<void> {
  const n = ++generation;
  const routes = [...(content.routes ?? []), { id: `__marker_${n}`, uri: `/__marker/${n}`, upstream: upstreamOf(marker) }];
  gw.writeRoutes({ ...content, routes });
  await waitFor(async () => (await request(gw.url(`/__marker/${n}`))).status === 200, 5_000, `apisix.yaml version ${n} to load`);
}

/** Waits (bounded) until the gateway's output after `from` matches `re`; returns that part of the output. */
async function waitForLog(gw: Gateway, from: number, re: RegExp, timeoutMs = 3_000): Promise<string> {
  await waitFor(() => re.test(gw.output().slice(from)), timeoutMs, `log line matching ${re}`);
  return gw.output().slice(from);
}

/** Resolves with the exit code of a gateway process (bounded). */
function exitOf(gw: Gateway, timeoutMs = 15_000): Promise<number | null> {
  if (gw.proc.exitCode !== null || gw.proc.signalCode !== null) return Promise.resolve(gw.proc.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway did not exit in time')), timeoutMs);
    gw.proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Tries a TCP connection to 127.0.0.1:port: 'refused', 'connected' or 'error:<code>'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : `error:${err.code}`));
  });
}

/** Rewrites the gateway's config.yaml with `change` applied to the parsed document. */
function editConfig(gw: Gateway, change: (doc: Record<string, any>) => void): void {
  const path = join(gw.dir, 'config.yaml');
  const doc = parse(readFileSync(path, 'utf8')) as Record<string, any>;
  change(doc);
  writeFileSync(path + '.tmp', stringify(doc));
  renameSync(path + '.tmp', path);
}

describe('standalone apisix.yaml: reload and bad content', () => {
  let gw: Gateway;
  let a: Upstream;
  let b: Upstream;

  before(async () => {
    [a, b] = await Promise.all([startUpstream(), startUpstream()]);
    gw = await startGateway({ routes: { routes: [{ id: 'r', uri: '/reload', upstream: upstreamOf(a) }] } });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  it('serves the file it started with', async () => {
    assert.equal(await portOf(gw, '/reload'), a.port);
  });

  it('applies a change to the file within about a second', async () => {
    gw.writeRoutes({ routes: [{ id: 'r', uri: '/reload', upstream: upstreamOf(b) }, { id: 'n', uri: '/new', upstream: upstreamOf(a) }] });
    await waitFor(async () => (await portOf(gw, '/reload')) === b.port, 3_000, 'route r to move to upstream b');
    await waitFor(async () => (await portOf(gw, '/new')) === a.port, 3_000, 'route n to appear');
    gw.writeRoutes({ routes: [{ id: 'r', uri: '/reload', upstream: upstreamOf(b) }] });
    await waitFor(async () => (await request(gw.url('/new'))).status === 404, 3_000, 'route n to disappear');
    assert.equal((await request(gw.url('/new'))).body, NOT_FOUND_BODY);
  });

  it('no request fails while the file is swapped repeatedly', async () => {
    await apply(gw, a, { routes: [{ id: 'stable', uri: '/stable', upstream: upstreamOf(a) }] });
    let swapping = true;
    const failures: string[] = [];
    let done = 0;
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const client = async (agent: http.Agent | false) => {
      const deadline = Date.now() + 15_000;
      for (let i = 0; i < 2_000 && swapping && Date.now() < deadline; i++) {
        try {
          const res = await request(gw.url(`/stable?i=${i}`), { agent });
          if (res.status !== 200) failures.push(`${res.status} ${res.body}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
        done++;
      }
    };
    const clients = [client(false), client(false), client(keepAlive), client(keepAlive)];
    for (let i = 1; i <= 10; i++) {
      const target = i % 2 === 0 ? a : b;
      gw.writeRoutes({
        routes: [
          { id: 'stable', uri: '/stable', upstream: upstreamOf(target) },
          { id: `churn-${i}`, uri: `/churn/${i}`, upstream: upstreamOf(target) },
        ],
      });
      await sleep(300);
    }
    swapping = false;
    await Promise.all(clients);
    keepAlive.destroy();
    assert.deepEqual(failures, [], `${failures.length} of ${done} requests failed`);
    assert.ok(done >= 20, `only ${done} requests were made`);
    // the last version is live
    await waitFor(async () => (await request(gw.url('/churn/10'))).status === 200, 3_000, 'the last swap to load');
  });

  it('an unparsable file keeps the last good config and logs the problem', async () => {
    await apply(gw, a, { routes: [{ id: 'good', uri: '/good', upstream: upstreamOf(a) }] });
    const mark = gw.output().length;
    gw.writeRoutes('routes:\n  - id: good\n    uri: [/good\n    upstream: {nodes: {"127.0.0.1:1": 1}\n#END\n');
    // e.g. `[error] ... invalid <dir>/apisix.yaml: <parser message> at line 3 ...; keeping the last good config`
    await waitForLog(gw, mark, /\[error\][^\n]*apisix\.yaml[^\n]*(line|column|pars|syntax|unexpected)/i);
    await sleep(500);
    assert.equal(await portOf(gw, '/good'), a.port);
    // a good file afterwards loads again
    await apply(gw, a, { routes: [{ id: 'good', uri: '/good', upstream: upstreamOf(b) }] });
    assert.equal(await portOf(gw, '/good'), b.port);
  });

  it('an invalid item keeps its last good version; the log names the item and the field', async () => {
    await apply(gw, a, { routes: [{ id: 'keep', uri: '/keep', upstream: upstreamOf(a) }] });
    const mark = gw.output().length;
    await apply(gw, a, { routes: [{ id: 'keep', uri: '/keep', methods: ['FETCH'], upstream: upstreamOf(b) }, { id: 'other', uri: '/other', upstream: upstreamOf(b) }] });
    assert.equal(await portOf(gw, '/keep'), a.port);
    assert.equal(await portOf(gw, '/other'), b.port);
    const log = await waitForLog(gw, mark, /routes\[0\] \(id keep\)/);
    assert.match(log, /apisix\.yaml: routes\[0\] \(id keep\): [^\n]*methods[^\n]*; keeping its last good version/);
    // the item is fixed: the new version replaces the kept one
    await apply(gw, a, { routes: [{ id: 'keep', uri: '/keep', methods: ['GET'], upstream: upstreamOf(b) }] });
    assert.equal(await portOf(gw, '/keep'), b.port);
  });

  it('a new invalid item is skipped while the others load', async () => {
    const mark = gw.output().length;
    await apply(gw, a, {
      routes: [
        { id: 'fine', uri: '/fine', upstream: upstreamOf(a) },
        { id: 'broken', uri: '/broken', priority: 'high', upstream: upstreamOf(a) },
        { id: 'fine2', uri: '/fine2', upstream: upstreamOf(b) },
      ],
    });
    assert.equal(await portOf(gw, '/fine'), a.port);
    assert.equal(await portOf(gw, '/fine2'), b.port);
    const res = await request(gw.url('/broken'));
    assert.equal(res.status, 404);
    assert.equal(res.body, NOT_FOUND_BODY);
    const log = await waitForLog(gw, mark, /routes\[1\] \(id broken\)/);
    assert.match(log, /apisix\.yaml: routes\[1\] \(id broken\): [^\n]*priority[^\n]*; item skipped/);
  });

  it('an unknown plugin is ignored with a warning, as APISIX does (t/config-center-yaml/route.t TEST 5)', async () => {
    const mark = gw.output().length;
    await apply(gw, a, { routes: [{ id: 'plug', uri: '/plug', plugins: { 'x-rewrite': { uri: 1 } }, upstream: upstreamOf(a) }] });
    assert.equal(await portOf(gw, '/plug'), a.port);
    await waitForLog(gw, mark, /\[warn\][^\n]*unknown plugin \[x-rewrite\] is ignored/);
  });

  it('a route with an APISIX plugin this version lacks is refused, never served without it', async () => {
    const mark = gw.output().length;
    await apply(gw, a, { routes: [{ id: 'auth', uri: '/auth', plugins: { 'openid-connect': {} }, upstream: upstreamOf(a) }] });
    assert.equal((await request(gw.url('/auth'))).status, 404);
    await waitForLog(gw, mark, /routes\[0\] \(id auth\)[^\n]*plugin \[openid-connect\] is not available in this version/);
  });

  it('an unknown top-level key rejects the whole file', async () => {
    await apply(gw, a, { routes: [{ id: 'top', uri: '/top', upstream: upstreamOf(a) }] });
    const mark = gw.output().length;
    gw.writeRoutes({ routes: [{ id: 'top', uri: '/top', upstream: upstreamOf(b) }, { id: 'x', uri: '/x', upstream: upstreamOf(b) }], routez: [] });
    await waitForLog(gw, mark, /\[error\][^\n]*apisix\.yaml[^\n]*routez/);
    await sleep(500);
    assert.equal(await portOf(gw, '/top'), a.port);
    assert.equal((await request(gw.url('/x'))).status, 404);
  });

  it('the #END marker is optional', async () => {
    gw.writeRoutes(stringify({ routes: [{ id: 'noend', uri: '/noend', upstream: upstreamOf(b) }] }));
    await waitFor(async () => (await portOf(gw, '/noend')) === b.port, 3_000, 'a file without #END to load');
    gw.writeRoutes('routes:\n  - id: withend\n    uri: /withend\n    upstream:\n      nodes:\n        "' + a.node + '": 1\n#END\n');
    await waitFor(async () => (await portOf(gw, '/withend')) === a.port, 3_000, 'a file with #END to load');
  });
});

describe('${{VAR}} substitution', () => {
  let a: Upstream;
  const gateways: Gateway[] = [];

  before(async () => {
    a = await startUpstream();
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await a?.close();
  });

  it('in apisix.yaml: raw-text substitution, defaults, YAML quoting decides the type', async () => {
    const text = [
      'routes:',
      '  - id: env',
      '    uri: ${{CW_E2E_PATH}}',
      '    priority: ${{ CW_E2E_PRIO }}',
      '    upstream:',
      '      nodes:',
      '        "${{CW_E2E_NODE}}": 1',
      '  - id: dflt',
      '    uri: ${{CW_E2E_UNSET_VAR:=/defaulted}}',
      '    upstream:',
      '      nodes:',
      '        "${{CW_E2E_NODE}}": 1',
      '  - id: dollar',
      '    uri: /dollar',
      '    vars: [["arg_x", "==", "$host${x}"]]',
      '    upstream:',
      '      nodes:',
      '        "${{CW_E2E_NODE}}": 1',
      '  - id: quoted',
      '    uri: /quoted',
      '    priority: "${{CW_E2E_PRIO}}"',
      '    upstream:',
      '      nodes:',
      '        "${{CW_E2E_NODE}}": 1',
      '#END',
      '',
    ].join('\n');
    const gw = await startGateway({ routes: text, env: { CW_E2E_PATH: '/from-env', CW_E2E_PRIO: '5', CW_E2E_NODE: a.node } });
    gateways.push(gw);
    assert.equal(await portOf(gw, '/from-env'), a.port);
    assert.equal(await portOf(gw, '/defaulted'), a.port);
    assert.equal(await portOf(gw, `/dollar?x=${encodeURIComponent('$host${x}')}`), a.port, '$var and ${var} are left alone');
    // "5" (quoted) is a string: priority must be an integer, so the item is rejected
    assert.equal((await request(gw.url('/quoted'))).status, 404);
    assert.match(gw.output(), /routes\[3\] \(id quoted\)[^\n]*priority/);
    // substitution also applies to a re-read file
    gw.writeRoutes('routes:\n  - id: env2\n    uri: ${{CW_E2E_PATH}}/v2\n    upstream:\n      nodes:\n        "${{CW_E2E_NODE}}": 1\n#END\n');
    await waitFor(async () => (await portOf(gw, '/from-env/v2')) === a.port, 3_000, 'the re-read file to load');
  });

  it('in config.yaml: values (with defaults) are substituted and typed after parsing', async () => {
    const gw = await startGateway({
      config: { apisix: { router: { http: '${{CW_E2E_ROUTER}}' }, delete_uri_tail_slash: '${{CW_E2E_DTS:=true}}' } },
      env: { CW_E2E_ROUTER: 'radixtree_uri_with_parameter' },
      routes: {
        routes: [
          { id: 'param', uri: '/user/:name', upstream: upstreamOf(a) },
          { id: 'ts', uri: '/ts', upstream: upstreamOf(a) },
        ],
      },
    });
    gateways.push(gw);
    assert.equal(await portOf(gw, '/user/bob'), a.port, 'router.http came from CW_E2E_ROUTER');
    assert.equal(await portOf(gw, '/ts/'), a.port, 'delete_uri_tail_slash came from the default (a boolean)');
  });

  it('in config.yaml: a missing variable without a default stops the start', async () => {
    const gw = await startGateway({ config: { apisix: { router: { http: '${{CW_E2E_MISSING_VAR}}' } } }, noWait: true });
    gateways.push(gw);
    assert.equal(await exitOf(gw), 1);
    assert.match(gw.output(), /can't find environment variable CW_E2E_MISSING_VAR/);
  });
});

describe('apisix.json provider', () => {
  let gw: Gateway;
  let a: Upstream;
  let b: Upstream;

  const writeJson = (content: unknown) => {
    const path = join(gw.dir, 'apisix.json');
    writeFileSync(path + '.tmp', JSON.stringify(content));
    renameSync(path + '.tmp', path);
  };

  before(async () => {
    [a, b] = await Promise.all([startUpstream(), startUpstream()]);
    gw = await startGateway({
      config: { deployment: { role_data_plane: { config_provider: 'json' } } },
      // apisix.yaml (written by the harness) must be ignored with provider json
      routes: { routes: [{ id: 'yaml', uri: '/from-yaml', upstream: upstreamOf(a) }] },
      files: {
        'apisix.json': JSON.stringify({
          routes: [
            { id: 'j', uri: '/from-json', upstream: upstreamOf(a) },
            { id: 'jv', uri: '${{CW_E2E_JSON_PATH:=/json-default}}', upstream: upstreamOf(b) },
          ],
        }),
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([a?.close(), b?.close()]);
  });

  it('serves routes from apisix.json, not apisix.yaml', async () => {
    assert.equal(await portOf(gw, '/from-json'), a.port);
    assert.equal(await portOf(gw, '/json-default'), b.port);
    assert.equal((await request(gw.url('/from-yaml'))).status, 404);
  });

  it('re-reads apisix.json when it changes', async () => {
    writeJson({ routes: [{ id: 'j', uri: '/from-json', upstream: upstreamOf(b) }] });
    await waitFor(async () => (await portOf(gw, '/from-json')) === b.port, 3_000, 'apisix.json change to load');
    assert.equal((await request(gw.url('/json-default'))).status, 404);
  });
});

describe('causeway validate and version', () => {
  const dirs: string[] = [];
  const base = {
    apisix: { node_listen: [{ ip: '127.0.0.1', port: 19080 }], enable_ipv6: false },
    deployment: { role: 'data_plane', role_data_plane: { config_provider: 'yaml' } },
  };
  const route = (id: string, uri: string, extra: Record<string, unknown> = {}) => ({ id, uri, upstream: { nodes: { '127.0.0.1:1980': 1 } }, ...extra });

  function folder(config: unknown, routes: unknown): string {
    const dir = mkdtempSync(join(tmpdir(), 'causeway-validate-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'config.yaml'), typeof config === 'string' ? config : stringify(config));
    writeFileSync(join(dir, 'apisix.yaml'), typeof routes === 'string' ? routes : stringify(routes) + '#END\n');
    return join(dir, 'config.yaml');
  }

  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a good config and file: exit 0', async () => {
    const path = folder(base, { routes: [route('1', '/a'), route('2', '/b*')] });
    const res = await runCli(['validate', '-c', path]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
  });

  it('an unknown config.yaml key: exit 1, the message names the key path', async () => {
    const path = folder({ ...base, apisix: { ...base.apisix, node_listn: [9080] } }, { routes: [route('1', '/a')] });
    const res = await runCli(['validate', '-c', path]);
    assert.equal(res.code, 1);
    assert.match(res.stdout + res.stderr, /apisix\.node_listn/);
  });

  it('a bad route item: exit 1, the message names routes[i] and the field', async () => {
    const path = folder(base, { routes: [route('1', '/a'), route('2', '/b', { methods: ['FETCH'] })] });
    const res = await runCli(['validate', '-c', path]);
    assert.equal(res.code, 1);
    assert.match(res.stdout + res.stderr, /routes\[1\][^\n]*methods/);
  });

  it('plugin confs are checked with the node\'s plugins: builtins pass, a bad conf names the plugin', async () => {
    const good = folder(base, { routes: [route('1', '/a', { plugins: { 'key-auth': {}, 'limit-count': { count: 2, time_window: 60 } } })], consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'k' } } }] });
    let res = await runCli(['validate', '-c', good]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const bad = folder(base, { routes: [route('1', '/a', { plugins: { 'limit-count': { count: -1, time_window: 60 } } })] });
    res = await runCli(['validate', '-c', bad]);
    assert.equal(res.code, 1);
    assert.match(res.stdout, /routes\[0\][^\n]*failed to check the configuration of plugin limit-count err: property "count" validation failed/);
  });

  it('an unparsable apisix.yaml: exit 1', async () => {
    const path = folder(base, 'routes: [\n#END\n');
    const res = await runCli(['validate', '-c', path]);
    assert.equal(res.code, 1);
    assert.match(res.stdout + res.stderr, /apisix\.yaml/);
  });

  it('version prints "causeway <version>"', async () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    const res = await runCli(['version']);
    assert.equal(res.code, 0);
    assert.equal(res.stdout.trim(), `causeway ${pkg.version}`);
  });
});

describe('process lifecycle', () => {
  let a: Upstream;
  let b: Upstream;
  let slow: Upstream;
  let failing: Upstream;
  const gateways: Gateway[] = [];

  before(async () => {
    [a, b] = await Promise.all([startUpstream(), startUpstream()]);
    slow = await startUpstream((req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('slow done');
      }, 1_000);
    });
    failing = await startUpstream((req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('boom');
    });
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop('SIGKILL')));
    await Promise.all([a?.close(), b?.close(), slow?.close(), failing?.close()]);
  });

  it('SIGTERM: the in-flight request completes, new connections are refused, exit 0', async () => {
    const gw = await startGateway({ routes: { routes: [{ id: 'slow', uri: '/slow', upstream: upstreamOf(slow) }] } });
    gateways.push(gw);
    const exited = exitOf(gw, 15_000);
    let finished = false;
    const inflight = request(gw.url('/slow'), { timeoutMs: 10_000 }).finally(() => (finished = true));
    await waitFor(() => slow.seen.length >= 1, 3_000, 'the slow request to reach the upstream');
    gw.proc.kill('SIGTERM');
    await waitFor(async () => (await tryConnect(gw.port)) === 'refused', 800, 'new connections to be refused');
    assert.equal(finished, false, 'the slow request was still in flight when connections were refused');
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(res.body, 'slow done');
    assert.equal(await exited, 0);
  });

  it('SIGHUP applies show_upstream_status_in_response_header live', async () => {
    const gw = await startGateway({
      routes: {
        routes: [
          { id: 'ok', uri: '/ok', upstream: upstreamOf(a) },
          { id: 'err', uri: '/err', upstream: upstreamOf(failing) },
        ],
      },
    });
    gateways.push(gw);
    let res = await request(gw.url('/ok'));
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-apisix-upstream-status'], undefined);
    // 5xx from the upstream always carries the header
    res = await request(gw.url('/err'));
    assert.equal(res.status, 500);
    assert.equal(res.headers['x-apisix-upstream-status'], '500');

    editConfig(gw, (doc) => {
      doc.apisix.show_upstream_status_in_response_header = true;
    });
    gw.proc.kill('SIGHUP');
    await waitFor(async () => (await request(gw.url('/ok'))).headers['x-apisix-upstream-status'] === '200', 3_000, 'the header on 200 responses');
    assert.equal(gw.proc.exitCode, null, 'the gateway keeps running after SIGHUP');
    // the file is re-read too, and routes keep working
    assert.equal((await request(gw.url('/ok'))).status, 200);

    editConfig(gw, (doc) => {
      doc.apisix.show_upstream_status_in_response_header = false;
    });
    gw.proc.kill('SIGHUP');
    await waitFor(async () => (await request(gw.url('/ok'))).headers['x-apisix-upstream-status'] === undefined, 3_000, 'the header to go away');
  });

  it('SIGHUP also applies delete_uri_tail_slash', async () => {
    const gw = await startGateway({ routes: { routes: [{ id: 'ts', uri: '/ts', upstream: upstreamOf(a) }] } });
    gateways.push(gw);
    assert.equal((await request(gw.url('/ts/'))).status, 404);
    editConfig(gw, (doc) => {
      doc.apisix.delete_uri_tail_slash = true;
    });
    gw.proc.kill('SIGHUP');
    await waitFor(async () => (await request(gw.url('/ts/'))).status === 200, 3_000, '/ts/ to match /ts');
  });

  it('start with an unknown config.yaml key exits 1 naming the key', async () => {
    const gw = await startGateway({ config: { apisix: { node_listn: [9080] } }, noWait: true });
    gateways.push(gw);
    assert.equal(await exitOf(gw), 1);
    assert.match(gw.output(), /apisix\.node_listn/);
  });

  it('start with a bad config.yaml value exits 1 with a clear message', async () => {
    const gw = await startGateway({ config: { apisix: { router: { http: 'radixtree' } } }, noWait: true });
    gateways.push(gw);
    assert.equal(await exitOf(gw), 1);
    assert.match(gw.output(), /apisix\.router\.http/);
  });

  it('start with an unparsable config.yaml exits 1', async () => {
    // `files` is written after the harness's config.yaml, so this replaces it
    const gw = await startGateway({ noWait: true, files: { 'config.yaml': 'apisix:\n  node_listen: [1\n  bad: : :\n' } });
    gateways.push(gw);
    assert.equal(await exitOf(gw), 1);
    assert.match(gw.output(), /config\.yaml/);
  });

  it('two workers: both serve, and both apply file changes', async () => {
    const gw = await startGateway({ workers: 2, routes: { routes: [{ id: 'mw', uri: '/mw', upstream: upstreamOf(a) }] } });
    gateways.push(gw);
    const allOn = async (up: Upstream, n = 24) => {
      const ports = await Promise.all(Array.from({ length: n }, () => portOf(gw, '/mw')));
      return ports.every((p) => p === up.port);
    };
    assert.ok(await allOn(a), 'every request served by upstream a');
    gw.writeRoutes({ routes: [{ id: 'mw', uri: '/mw', upstream: upstreamOf(b) }] });
    await waitFor(() => allOn(b), 3_000, 'every fresh connection to see the new route');
    // stays consistent afterwards (no worker lagging behind)
    for (let i = 0; i < 3; i++) assert.ok(await allOn(b), 'every request served by upstream b');
  });
});
