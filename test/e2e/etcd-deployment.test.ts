// Nodes sharing one etcd: a control plane and a data plane as separate processes, a traditional node,
// etcd outages, restarts and compaction, and keys written the way APISIX writes them.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { etcdApi, etcdCompact, etcdPutRaw, etcdRevision, startEtcd, type EtcdProcess } from '../helpers/etcd.ts';
import { freePort, request, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

const KEY = 'etcd-deploy-admin-key-0123456789';

function etcdConfig(endpoint: string, prefix: string) {
  return { host: [endpoint], prefix, timeout: 2, startup_retry: 1 };
}

function admin(port: number, method: string, path: string, body?: unknown) {
  return request(`http://127.0.0.1:${port}/apisix/admin${path}`, {
    method,
    headers: { 'X-API-KEY': KEY, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function ready(gw: Gateway): Promise<number> {
  return (await request(`http://127.0.0.1:${gw.statusPort}/status/ready`)).status;
}

const route = (uri: string, up: Upstream) => ({ uri, upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } });

describe('several nodes sharing one etcd', () => {
  let etcd: EtcdProcess;
  let up: Upstream;
  let cp: Gateway;
  let dp: Gateway;
  let cpAdmin: number;
  const prefix = '/cp-dp';

  before(async () => {
    etcd = await startEtcd();
    up = await startUpstream();
    cpAdmin = await freePort();
    cp = await startGateway({
      config: {
        deployment: {
          role: 'control_plane',
          role_control_plane: { config_provider: 'etcd' },
          etcd: etcdConfig(etcd.endpoint, prefix),
          admin: { admin_listen: { ip: '127.0.0.1', port: cpAdmin }, admin_key: [{ name: 'admin', key: KEY, role: 'admin' }] },
        },
      },
    });
    dp = await startGateway({
      workers: 2,
      config: { deployment: { role: 'data_plane', role_data_plane: { config_provider: 'etcd' }, etcd: etcdConfig(etcd.endpoint, prefix) } },
    });
  });

  after(async () => {
    await dp?.stop();
    await cp?.stop();
    await up?.close();
    await etcd?.destroy();
  });

  it('the control plane serves no traffic and the data plane no Admin API', async () => {
    await assert.rejects(request(cp.url('/x'), { timeoutMs: 2000 }));
    assert.match(cp.output(), /started as control_plane: no proxy listeners/);
    assert.match(dp.output(), /started as data_plane: 2 worker\(s\)/);
  });

  it('a route written through the control plane is served by the data plane', async () => {
    assert.equal((await admin(cpAdmin, 'PUT', '/routes/1', route('/cpdp', up))).status, 201);
    await waitFor(async () => (await request(dp.url('/cpdp'))).status === 200, 5000, 'data plane serving the route');
  });

  it('consumers, credentials and plugins written on the control plane are enforced by the data plane', async () => {
    assert.equal((await admin(cpAdmin, 'PUT', '/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } })).status, 201);
    assert.equal((await admin(cpAdmin, 'PUT', '/consumers/jack/credentials/c1', { plugins: { 'key-auth': { key: 'cred-key' } } })).status, 201);
    const body = { ...route('/cpdp-auth', up), plugins: { 'key-auth': {}, 'proxy-rewrite': { headers: { set: { 'X-From': 'dp' } } } } };
    assert.equal((await admin(cpAdmin, 'PUT', '/routes/auth', body)).status, 201);
    await waitFor(async () => (await request(dp.url('/cpdp-auth'))).status === 401, 5000, 'data plane enforcing key-auth');
    const r = await request(dp.url('/cpdp-auth'), { headers: { apikey: 'cred-key' } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body).headers;
    assert.deepEqual([seen['x-consumer-username'], seen['x-credential-identifier'], seen['x-from']], ['jack', 'c1', 'dp']);
    // Deleting the credential on the control plane revokes its key on the data plane.
    assert.equal((await admin(cpAdmin, 'DELETE', '/consumers/jack/credentials/c1')).status, 200);
    await waitFor(async () => (await request(dp.url('/cpdp-auth'), { headers: { apikey: 'cred-key' } })).status === 401, 5000, 'the credential revoked');
    assert.equal((await request(dp.url('/cpdp-auth'), { headers: { apikey: 'jack-key' } })).status, 200);
  });

  it('stores APISIX keys and JSON values in etcd', async () => {
    const res = await etcdApi<{ kvs?: Array<{ key: string; value: string }> }>(etcd.endpoint, '/v3/kv/range', { key: Buffer.from(`${prefix}/routes/1`).toString('base64') });
    assert.equal(res.kvs?.length, 1);
    const value = JSON.parse(Buffer.from(res.kvs![0].value, 'base64').toString());
    assert.equal(value.uri, '/cpdp');
    assert.equal(value.id, '1');
  });

  it('serves resources written straight into etcd, as APISIX tools write them', async () => {
    await etcdPutRaw(etcd.endpoint, `${prefix}/routes/`, 'init_dir');
    await etcdPutRaw(etcd.endpoint, `${prefix}/upstreams/raw`, JSON.stringify({ id: 'raw', nodes: { [up.node]: 1 }, type: 'roundrobin' }));
    await etcdPutRaw(etcd.endpoint, `${prefix}/routes/raw`, JSON.stringify({ id: 'raw', uri: '/raw', upstream_id: 'raw' }));
    await waitFor(async () => (await request(dp.url('/raw'))).status === 200, 5000, 'raw route');
    // an invalid value is skipped and logged, the rest keeps serving
    await etcdPutRaw(etcd.endpoint, `${prefix}/routes/bad`, JSON.stringify({ id: 'bad', uri: '/bad', upstream: { nodes: { 'no-port-here:99999': 1 } } }));
    await waitFor(() => /routes\/bad: .*invalid port/.test(dp.output()), 5000, 'error log for the bad route');
    assert.equal((await request(dp.url('/raw'))).status, 200);
  });

  it('loses no change across an etcd restart', async () => {
    for (let i = 0; i < 10; i++) assert.equal((await admin(cpAdmin, 'PUT', `/routes/r${i}`, route(`/r/${i}`, up))).status, 201);
    await etcd.stop();
    // etcd down: the data plane keeps serving what it has, the control plane refuses writes with 503
    assert.equal((await request(dp.url('/r/9'))).status, 200);
    const refused = await admin(cpAdmin, 'PUT', '/routes/down', route('/down', up));
    assert.equal(refused.status, 503);
    assert.ok(JSON.parse(refused.body).error_msg);
    await waitFor(async () => (await ready(dp)) === 503, 8000, 'data plane not ready while etcd is down');
    await etcd.start();
    await waitFor(async () => (await ready(dp)) === 200, 15_000, 'data plane ready again');
    for (let i = 10; i < 20; i++) assert.equal((await admin(cpAdmin, 'PUT', `/routes/r${i}`, route(`/r/${i}`, up))).status, 201);
    for (let i = 0; i < 5; i++) assert.equal((await admin(cpAdmin, 'DELETE', `/routes/r${i}`)).status, 200);
    await waitFor(async () => (await request(dp.url('/r/19'))).status === 200 && (await request(dp.url('/r/4'))).status === 404, 10_000, 'changes after the restart');
    for (let i = 5; i < 20; i++) assert.equal((await request(dp.url(`/r/${i}`))).status, 200, `/r/${i}`);
    for (let i = 0; i < 5; i++) assert.equal((await request(dp.url(`/r/${i}`))).status, 404, `/r/${i} should be deleted`);
  });

  it('keeps following changes after etcd compacts its history', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await admin(cpAdmin, 'PUT', `/routes/c${i}`, route(`/c/${i}`, up))).status, 201);
    await etcdCompact(etcd.endpoint, await etcdRevision(etcd.endpoint));
    assert.equal((await admin(cpAdmin, 'PUT', '/routes/after-compact', route('/after-compact', up))).status, 201);
    await waitFor(async () => (await request(dp.url('/after-compact'))).status === 200, 5000, 'route after compaction');
    for (let i = 0; i < 5; i++) assert.equal((await request(dp.url(`/c/${i}`))).status, 200);
  });

  it('a plugin reload on the control plane writes /apisix/plugins, and the data plane follows it', async () => {
    const body = { ...route('/cpdp-reload', up), plugins: { 'proxy-rewrite': { headers: { set: { 'X-From': 'dp' } } } } };
    assert.equal((await admin(cpAdmin, 'PUT', '/routes/reload', body)).status, 201);
    await waitFor(async () => (await request(dp.url('/cpdp-reload'))).status === 200, 5000, 'the route on the data plane');
    assert.equal(JSON.parse((await request(dp.url('/cpdp-reload'))).body).headers['x-from'], 'dp');
    // The control plane drops proxy-rewrite from its list and reloads.
    const configPath = join(cp.dir, 'config.yaml');
    writeFileSync(configPath, readFileSync(configPath, 'utf8') + 'plugins:\n  - key-auth\n  - limit-count\n');
    assert.equal((await admin(cpAdmin, 'PUT', '/plugins/reload')).status, 200);
    await waitFor(async () => {
      const res = await etcdApi<{ kvs?: Array<{ value: string }> }>(etcd.endpoint, '/v3/kv/range', { key: Buffer.from(`${prefix}/plugins`).toString('base64') });
      return res.kvs?.length === 1 && Buffer.from(res.kvs[0].value, 'base64').toString() === '[{"name":"key-auth"},{"name":"limit-count"}]';
    }, 10_000, 'the list in etcd');
    // The data plane follows: proxy-rewrite is no longer enabled there, so the route serves without it.
    await waitFor(async () => JSON.parse((await request(dp.url('/cpdp-reload'))).body).headers['x-from'] === undefined, 10_000, 'the data plane without proxy-rewrite');
  });
});

describe('a traditional node on etcd', () => {
  let etcd: EtcdProcess;
  let up: Upstream;
  let gw: Gateway;
  let adminPort: number;

  before(async () => {
    etcd = await startEtcd();
    up = await startUpstream();
    adminPort = await freePort();
    gw = await startGateway({
      config: {
        deployment: {
          role: 'traditional',
          role_traditional: { config_provider: 'etcd' },
          etcd: etcdConfig(etcd.endpoint, '/apisix'),
          admin: { admin_listen: { ip: '127.0.0.1', port: adminPort }, admin_key: [{ name: 'admin', key: KEY, role: 'admin' }] },
        },
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
    await etcd?.destroy();
  });

  it('serves what its own Admin API writes, with etcd revisions as indexes', async () => {
    assert.equal((await admin(adminPort, 'PUT', '/routes/1', route('/t', up))).status, 201);
    await waitFor(async () => (await request(gw.url('/t'))).status === 200, 5000, 'route');
    const got = JSON.parse((await admin(adminPort, 'GET', '/routes/1')).body);
    assert.equal(got.key, '/apisix/routes/1');
    assert.ok(got.modifiedIndex >= got.createdIndex && got.createdIndex > 0);
    const post = await admin(adminPort, 'POST', '/upstreams', { nodes: { [up.node]: 1 } });
    assert.equal(post.status, 201);
    assert.match(JSON.parse(post.body).key, /^\/apisix\/upstreams\/\d{20}$/);
  });

  it('does not start when etcd cannot be reached', async () => {
    const dead = await freePort();
    const bad = await startGateway({
      noWait: true,
      config: { deployment: { role: 'data_plane', role_data_plane: { config_provider: 'etcd' }, etcd: { host: [`http://127.0.0.1:${dead}`], prefix: '/apisix', timeout: 1, startup_retry: 0 } } },
    });
    const code = await new Promise<number | null>((resolve) => bad.proc.once('exit', resolve));
    assert.equal(code, 1);
    assert.match(bad.output(), /failed to load the configuration from etcd/);
    await bad.stop();
  });
});
