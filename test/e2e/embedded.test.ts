// The default deployment: traditional role, embedded store, Admin API and proxy in one process.
// Changes made through the Admin API are served by every worker, and survive restarts and kill -9.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, request, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

const KEY = 'edd1c9f034335f136f87ad84b625c8f1';

async function traditional(dataDir: string, adminPort: number, workers = 2): Promise<Gateway> {
  return startGateway({
    workers,
    config: {
      deployment: {
        role: 'traditional',
        role_traditional: { config_provider: 'embedded' },
        embedded: { data_dir: dataDir },
        admin: { admin_listen: { ip: '127.0.0.1', port: adminPort }, admin_key: [{ name: 'admin', key: KEY, role: 'admin' }] },
      },
    },
  });
}

function admin(port: number, method: string, path: string, body?: unknown) {
  return request(`http://127.0.0.1:${port}/apisix/admin${path}`, {
    method,
    headers: { 'X-API-KEY': KEY, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Requests on fresh connections, so the kernel spreads them over the workers. */
async function allServe(gw: Gateway, path: string, status: number, tries = 8): Promise<boolean> {
  for (let i = 0; i < tries; i++) if ((await request(gw.url(path))).status !== status) return false;
  return true;
}

describe('traditional role with the embedded store', () => {
  let dataDir: string;
  let adminPort: number;
  let gw: Gateway;
  let up: Upstream;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'causeway-data-'));
    adminPort = await freePort();
    up = await startUpstream();
    gw = await traditional(dataDir, adminPort);
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts with no routes and answers 404', async () => {
    const res = await request(gw.url('/anything'));
    assert.equal(res.status, 404);
    assert.equal(res.body, '{"error_msg":"404 Route Not Found"}\n');
  });

  it('serves a route created through the Admin API on every worker', async () => {
    const put = await admin(adminPort, 'PUT', '/routes/1', { uri: '/hello', upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } });
    assert.equal(put.status, 201);
    await waitFor(() => allServe(gw, '/hello', 200), 5000, 'route served by all workers');
    const res = await request(gw.url('/hello'));
    assert.equal(JSON.parse(res.body).url, '/hello');
  });

  it('applies an upstream change to routes that reference it', async () => {
    const other = await startUpstream();
    try {
      assert.equal((await admin(adminPort, 'PUT', '/upstreams/u1', { nodes: { [up.node]: 1 } })).status, 201);
      assert.equal((await admin(adminPort, 'PUT', '/routes/2', { uri: '/via-upstream', upstream_id: 'u1' })).status, 201);
      await waitFor(async () => JSON.parse((await request(gw.url('/via-upstream'))).body).port === up.port, 5000, 'first upstream');
      // A sub-path PATCH replaces the field (a whole-object PATCH would merge the node maps).
      assert.equal((await admin(adminPort, 'PATCH', '/upstreams/u1/nodes', { [other.node]: 1 })).status, 200);
      await waitFor(async () => {
        for (let i = 0; i < 6; i++) if (JSON.parse((await request(gw.url('/via-upstream'))).body).port !== other.port) return false;
        return true;
      }, 5000, 'patched upstream on every worker');
    } finally {
      await other.close();
    }
  });

  it('refuses what workers could not serve, and changes nothing', async () => {
    const bad = await admin(adminPort, 'PUT', '/routes/1', { uri: '/hello', plugins: { 'no-such-plugin': {} }, upstream: { nodes: { [up.node]: 1 } } });
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.body).error_msg, /unknown plugin \[no-such-plugin\]/);
    assert.equal((await request(gw.url('/hello'))).status, 200);
    const badVars = await admin(adminPort, 'PUT', '/routes/9', { uri: '/x', vars: [['arg_a', 'nope', '1']], upstream: { nodes: { [up.node]: 1 } } });
    assert.equal(badVars.status, 400);
    assert.match(JSON.parse(badVars.body).error_msg, /invalid operator 'nope'/);
  });

  it('stops serving a deleted route', async () => {
    assert.equal((await admin(adminPort, 'DELETE', '/routes/2')).status, 200);
    await waitFor(() => allServe(gw, '/via-upstream', 404), 5000, 'route removed on every worker');
  });

  it('reports every worker at the current config version', async () => {
    const st = JSON.parse((await request(`http://127.0.0.1:${gw.statusPort}/status/config`)).body);
    assert.equal(st.workers.length, 2);
    for (const w of st.workers) assert.equal(w.version, st.version);
    assert.equal((await request(`http://127.0.0.1:${gw.statusPort}/status/ready`)).status, 200);
  });

  it('keeps the configuration across a graceful restart', async () => {
    assert.equal(await gw.stop(), 0);
    gw = await traditional(dataDir, adminPort);
    assert.equal((await request(gw.url('/hello'))).status, 200);
    const got = await admin(adminPort, 'GET', '/routes/1');
    assert.equal(got.status, 200);
    assert.equal(JSON.parse(got.body).value.uri, '/hello');
  });

  it('keeps every acknowledged write across kill -9', async () => {
    for (let i = 0; i < 20; i++) {
      assert.equal((await admin(adminPort, 'PUT', `/routes/k${i}`, { uri: `/k/${i}`, upstream: { nodes: { [up.node]: 1 } } })).status, 201);
    }
    gw.proc.kill('SIGKILL');
    await new Promise((resolve) => gw.proc.once('exit', resolve));
    gw = await traditional(dataDir, adminPort);
    const list = JSON.parse((await admin(adminPort, 'GET', '/routes?page=1&page_size=100')).body);
    const ids = new Set(list.list.map((item: { value: { id: string } }) => item.value.id));
    for (let i = 0; i < 20; i++) assert.ok(ids.has(`k${i}`), `route k${i} lost`);
    assert.equal((await request(gw.url('/k/19'))).status, 200);
  });
});

describe('Admin API start-up rules', () => {
  it('refuses to start when the Admin API is open beyond loopback without a token', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'causeway-data-'));
    const gw = await startGateway({
      noWait: true,
      config: {
        deployment: {
          role: 'traditional',
          role_traditional: { config_provider: 'embedded' },
          embedded: { data_dir: dataDir },
          admin: { admin_listen: { ip: '127.0.0.1', port: await freePort() }, allow_admin: ['0.0.0.0/0'], admin_key: [{ name: 'admin', key: '', role: 'admin' }] },
        },
      },
    });
    const code = await new Promise<number | null>((resolve) => gw.proc.once('exit', resolve));
    assert.equal(code, 1);
    assert.match(gw.output(), /ERROR: missing valid Admin API token\./);
    await gw.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints a generated key once when none is configured, and that key works', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'causeway-data-'));
    const adminPort = await freePort();
    const gw = await startGateway({
      config: {
        deployment: {
          role: 'traditional',
          role_traditional: { config_provider: 'embedded' },
          embedded: { data_dir: dataDir },
          admin: { admin_listen: { ip: '127.0.0.1', port: adminPort }, admin_key: [{ name: 'admin', key: '', role: 'admin' }] },
        },
      },
    });
    try {
      await waitFor(() => /Admin API key generated/.test(gw.output()), 5000, 'generated key line');
      const key = /Admin API key generated[^:]*: (\S+)/.exec(gw.output())![1];
      const ok = await request(`http://127.0.0.1:${adminPort}/apisix/admin/routes`, { headers: { 'X-API-KEY': key } });
      assert.equal(ok.status, 200);
      const denied = await request(`http://127.0.0.1:${adminPort}/apisix/admin/routes`);
      assert.equal(denied.status, 401);
    } finally {
      await gw.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
