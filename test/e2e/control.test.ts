// The Control API (apisix.control): schemas, what the node serves, health checks (none configured
// here; see health-checks.test.ts) and plugin reloads, from a node on the declarative file.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

describe('Control API', () => {
  let up: Upstream;
  let gw: Gateway;
  const control = (path: string, method = 'GET') => request(`http://127.0.0.1:${gw.controlPort}${path}`, { method });

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      control: true,
      config: { plugins: ['key-auth', 'limit-count'] },
      routes: {
        routes: [{ id: 'r1', uri: '/a', upstream_id: 'u1', plugins: { 'key-auth': {} } }],
        upstreams: [{ id: 'u1', type: 'roundrobin', nodes: { [up.node]: 1 } }],
        services: [{ id: 's1', upstream_id: 'u1' }],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('GET /v1/schema: core schemas and the enabled plugins\' schemas', async () => {
    const r = await control('/v1/schema');
    assert.equal(r.status, 200);
    const schema = JSON.parse(r.body);
    assert.equal(schema.main.route.type, 'object');
    assert.ok(schema.main.upstream);
    assert.deepEqual(Object.keys(schema.plugins).sort(), ['key-auth', 'limit-count']);
    assert.equal(schema.plugins['key-auth'].type, 'auth');
    assert.ok(schema.plugins['limit-count'].schema.properties.count);
  });

  it('GET /v1/routes, /v1/route/{id}, /v1/upstreams, /v1/services: what the node serves', async () => {
    const routes = JSON.parse((await control('/v1/routes')).body);
    assert.deepEqual(routes.map((r: { key: string }) => r.key), ['/apisix/routes/r1']);
    assert.equal(routes[0].value.uri, '/a');
    const one = await control('/v1/route/r1');
    assert.equal(JSON.parse(one.body).value.plugins['key-auth'] !== undefined, true);
    assert.equal((await control('/v1/route/nope')).status, 404);
    assert.equal(JSON.parse((await control('/v1/upstream/u1')).body).value.nodes[up.node], 1);
    assert.deepEqual(JSON.parse((await control('/v1/services')).body).map((s: { key: string }) => s.key), ['/apisix/services/s1']);
  });

  it('GET /v1/healthcheck: no upstream with checks, an empty table as APISIX encodes it', async () => {
    const r = await control('/v1/healthcheck');
    assert.deepEqual([r.status, r.body], [200, '{}']);
  });

  it('PUT /v1/plugins/reload re-reads the plugins list', async () => {
    const configPath = join(gw.dir, 'config.yaml');
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace(/plugins:\n  - key-auth\n  - limit-count\n/, 'plugins:\n  - key-auth\n'));
    assert.equal((await control('/v1/plugins/reload', 'GET')).status, 405);
    const r = await control('/v1/plugins/reload', 'PUT');
    assert.deepEqual([r.status, r.body], [200, 'done\n']);
    await waitFor(async () => Object.keys(JSON.parse((await control('/v1/schema')).body).plugins).join() === 'key-auth', 10_000, 'the new plugin set');
  });
});
