// The worked example's own test (docs/plugin-development.md): a real gateway loads the plugin from
// examples/plugins and serves a route that uses it. Run with the project's test command, or alone:
//   node --test examples/plugins/test/tenant-guard.test.ts
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO, request, startGateway, startUpstream, type Gateway, type Upstream } from '../../../test/helpers/gateway.ts';

describe('tenant-guard (example plugin)', () => {
  let up: Upstream;
  let gw: Gateway;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      config: { apisix: { extra_plugin_dir: join(REPO, 'examples/plugins') }, plugins: ['tenant-guard'] },
      routes: {
        routes: [{ id: 'api', uri: '/api/*', plugins: { 'tenant-guard': { tenants: ['acme', 'globex'] } }, upstream: { nodes: { [up.node]: 1 } } }],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('refuses a request without the tenant header', async () => {
    const r = await request(gw.url('/api/orders'));
    assert.deepEqual([r.status, JSON.parse(r.body)], [403, { message: 'missing x-tenant-id' }]);
  });

  it('refuses a tenant that is not allowed', async () => {
    const r = await request(gw.url('/api/orders'), { headers: { 'x-tenant-id': 'initech' } });
    assert.deepEqual([r.status, JSON.parse(r.body)], [403, { message: 'tenant initech is not allowed' }]);
  });

  it('passes an allowed tenant upstream and echoes it on the response', async () => {
    const r = await request(gw.url('/api/orders'), { headers: { 'x-tenant-id': 'globex' } });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).headers['x-tenant'], 'globex');
    assert.equal(r.headers['x-tenant'], 'globex');
  });
});
