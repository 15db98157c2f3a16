// Conformance cases drawn from apache/apisix t/admin/*.t, run against the in-process Admin API with
// a real embedded store. Only black-box cases that need no plugin: the plugin runtime is not built,
// so every plugin name is unknown here (`pluginNames: () => []`). Each case names its APISIX file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { ADMIN_KEY, adminCall, startTestAdmin, type AdminReply } from '../helpers/admin.ts';
import type { AdminServer } from '../../src/admin/index.ts';
import { EmbeddedStore } from '../../src/store/embedded.ts';

const KEY = ADMIN_KEY;
const UP = { nodes: { '127.0.0.1:8080': 1 }, type: 'roundrobin' };
const ROUTE = { methods: ['GET'], upstream: UP, desc: 'new route', uri: '/index.html' };

type Reply = AdminReply;

const call = (port: number, method: string, path: string, body?: unknown, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> =>
  adminCall(port, method, path, typeof body === 'string' ? { raw: body, headers } : { body, headers });

describe('admin API conformance (apache/apisix t/admin)', () => {
  let server: AdminServer;
  let store: EmbeddedStore;
  let api: (method: string, path: string, body?: unknown, headers?: http.OutgoingHttpHeaders) => Promise<Reply>;
  const err = (r: Reply) => r.json?.error_msg;

  before(async () => {
    store = new EmbeddedStore({ path: ':memory:' });
    server = await startTestAdmin(store);
    api = (method, path, body, headers) => call(server.port, method, path, body, headers);
  });
  after(async () => {
    await server.close();
    await store.close();
  });

  describe('routes.t / routes2.t / routes3.t', () => {
    it('CRUD, 404 on missing keys', async () => {
      let r = await api('PUT', '/routes/1', ROUTE);
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/routes/1');
      assert.equal(r.json.value.desc, 'new route');
      r = await api('GET', '/routes/1');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.value.upstream, UP);
      r = await api('DELETE', '/routes/1');
      assert.deepEqual([r.status, r.json], [200, { deleted: '1', key: '/apisix/routes/1' }]);
      r = await api('DELETE', '/routes/not_found');
      assert.deepEqual([r.status, r.json], [404, { message: 'Key not found' }]);
    });

    it('POST creates with a generated id, then DELETE it', async () => {
      const r = await api('POST', '/routes', { methods: ['GET'], upstream: UP, uri: '/index.html' });
      assert.equal(r.status, 201);
      const id = r.json.key.slice('/apisix/routes/'.length);
      assert.equal(r.json.value.id, id);
      assert.equal((await api('DELETE', `/routes/${id}`)).status, 200);
    });

    it('id rules: wrong id, id in body, POST with id', async () => {
      let r = await api('PUT', '/routes/1', { id: 3, uri: '/index.html', upstream: UP });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id' }]);
      r = await api('PUT', '/routes', { id: '1', uri: '/index.html', upstream: UP });
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/routes/1');
      // a numeric id in the URL and in the body agree (compared as strings); the URL's string wins
      r = await api('PUT', '/routes/1', { id: 1, uri: '/index.html', upstream: UP });
      assert.equal(r.status, 200);
      assert.equal(r.json.value.id, '1');
      // without a URL id the body's id is kept as sent (routes2.t "not unwanted data, PUT")
      r = await api('PUT', '/routes', { id: 7, uri: '/index.html', upstream: UP });
      assert.equal(r.json.value.id, 7);
      assert.equal(r.json.key, '/apisix/routes/7');
      r = await api('POST', '/routes', { id: 1, uri: '/index.html', upstream: UP });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id, do not need it' }]);
      r = await api('POST', '/routes/1', { uri: '/index.html', upstream: UP });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id, do not need it' }]);
      r = await api('PUT', '/routes', { uri: '/index.html', upstream: UP });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing route id' }]);
      await api('DELETE', '/routes/7');
    });

    it('references must exist', async () => {
      let r = await api('PUT', '/routes/1', { service_id: '99999999999999', uri: '/index.html' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch service info by service id [99999999999999], response code: 404' }]);
      r = await api('PUT', '/routes/1', { upstream_id: '99999999', uri: '/index.html' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch upstream info by upstream id [99999999], response code: 404' }]);
      r = await api('PUT', '/routes/1', { plugin_config_id: '99', upstream: UP, uri: '/index.html' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch plugin config info by plugin config id [99], response code: 404' }]);
    });

    it('per-kind rules and schema errors', async () => {
      let r = await api('PUT', '/routes/1', { uri: '/index.html', host: 'xxx.com', hosts: ['foo.com', '*.bar.com'], upstream: UP });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'only one of host or hosts is allowed' }]);
      r = await api('PUT', '/routes/1', { uri: '/index.html', upstream: UP, remote_addr: '127.0.0.1', remote_addrs: ['127.0.0.1'] });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'only one of remote_addr or remote_addrs is allowed' }]);
      r = await api('PUT', '/routes/1', { ...ROUTE, vars: [['remote_addr', '=', '127.0.0.1']] });
      assert.deepEqual([r.status, r.json], [400, { error_msg: "failed to validate the 'vars' expression: invalid operator '='" }]);
      r = await api('PUT', '/routes/1', { ...ROUTE, uri: '/', uris: ['/'] });
      assert.equal(r.status, 400);
      assert.match(err(r), /value should match only one schema/);
      for (const bad of [{ hosts: [], uri: '/' }, { uris: [] }, { remote_addrs: [], uri: '/' }]) {
        r = await api('PUT', '/routes/1', { methods: ['GET'], upstream: UP, ...bad });
        assert.equal(r.status, 400);
        assert.match(err(r), new RegExp(`^invalid configuration: property "${Object.keys(bad)[0]}" validation failed:`));
      }
      r = await api('PUT', '/routes/1', { methods: ['GET', 'GET'], upstream: UP, uri: '/index.html' });
      assert.equal(r.status, 400);
      assert.match(err(r), /^invalid configuration: property "methods" validation failed/);
      r = await api('PUT', '/routes/1', { remote_addr: '127.0.0.33333', upstream: UP, uri: '/index.html' });
      assert.equal(r.status, 400);
      assert.match(err(r), /^invalid configuration: property "remote_addr" validation failed/);
      r = await api('PUT', '/routes/1', { host: 'a.*.foo.com', upstream: UP, uri: '/index.html' });
      assert.match(err(r), /^invalid configuration: property "host" validation failed/);
    });

    // Wording produced by src/model (ajv), not src/admin: APISIX's api7/jsonschema checks properties
    // before the anyOf of required fields, and reports array items under the array's name.
    it('schema wording from src/model (routes.t TEST 10/11/15, routes2.t TEST 1/2)', { todo: 'src/model wording' }, async () => {
      let r = await api('PUT', '/routes/1', { methods: ['invalid_method'], uri: '/index.html' });
      assert.equal(err(r), 'invalid configuration: property "methods" validation failed: failed to validate item 1: matches none of the enum values');
      r = await api('PUT', '/routes', { id: -100, uri: '/index.html' });
      assert.match(err(r), /^invalid configuration: property "id" validation failed/);
      r = await api('PUT', '/routes/1', { methods: ['GET'], upstream: UP, uri: '/', remote_addrs: [''] });
      assert.match(err(r), /^invalid configuration: property "remote_addrs" validation failed:/);
    });

    it('accepted shapes: remote_addrs, all methods, hosts, Chinese labels', async () => {
      for (const extra of [
        { remote_addrs: ['::1/16', '::1', '::', '1.1.1.1', '1.1.1.1/32'] },
        { remote_addr: '127.0.0.0/24' },
        { methods: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'] },
        { hosts: ['foo.com', '*.bar.com'] },
        { host: '*.foo.com' },
        { labels: { 您好: '世界' } },
      ]) {
        const r = await api('PUT', '/routes/1', { ...ROUTE, ...extra });
        assert.ok(r.status < 300, `${JSON.stringify(extra)}: ${r.text}`);
        for (const [k, v] of Object.entries(extra)) assert.deepEqual(r.json.value[k], v);
      }
    });

    it('plugin confs get their defaults; unknown plugins and non-object plugin confs are refused', async () => {
      let r = await api('PUT', '/routes/1', { uri: '/index.html', plugins: { 'limit-count': { count: 2, time_window: 60 } } });
      assert.ok(r.status < 300, r.text);
      // The stored conf is the checked one, defaults included (t/admin/routes.t).
      assert.deepEqual(
        [r.json.value.plugins['limit-count'].rejected_code, r.json.value.plugins['limit-count'].key, r.json.value.plugins['limit-count'].policy],
        [503, 'remote_addr', 'local'],
      );
      r = await api('PUT', '/routes/1', { uri: '/index.html', plugins: { 'limit-count': { count: -1, time_window: 60 } } });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^failed to check the configuration of plugin limit-count err: property "count" validation failed/);
      r = await api('PUT', '/routes/1', { uri: '/index.html', plugins: { 'no-such-plugin': {} } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'unknown plugin [no-such-plugin]' }]);
      r = await api('PUT', '/routes/1', { uri: '/index.html', plugins: { foo: 1 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugin conf 1 for plugin [foo]' }]);
      r = await api('PUT', '/consumers', { username: 'pj', plugins: { foo: 'x' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugins configuration: invalid plugin conf "x" for plugin [foo]' }]);
    });

    it('PATCH: merge, null deletes, arrays replace, sub-paths, trailing slash (routes3.t)', async () => {
      await api('PUT', '/routes/1', ROUTE);
      const before = (await api('GET', '/routes/1')).json.value;
      await new Promise((res) => setTimeout(res, 1100));
      let r = await api('PATCH', '/routes/1', { uri: '/patch_test' });
      assert.equal(r.status, 200);
      assert.equal(r.json.value.uri, '/patch_test');
      assert.equal(r.json.value.create_time, before.create_time);
      assert.notEqual(r.json.value.update_time, before.update_time);
      r = await api('PATCH', '/routes/1', { methods: ['GET'], upstream: { nodes: { '127.0.0.1:8080': null, '127.0.0.2:8080': 1 } }, desc: 'new route' });
      assert.deepEqual(r.json.value.upstream, { nodes: { '127.0.0.2:8080': 1 }, type: 'roundrobin' });
      r = await api('PATCH', '/routes/1', { methods: ['GET', 'DELETE', 'PATCH', 'POST', 'PUT'] });
      assert.deepEqual(r.json.value.methods, ['GET', 'DELETE', 'PATCH', 'POST', 'PUT']);
      r = await api('PATCH', '/routes/1', { methods: ['GET', 'POST'] });
      assert.deepEqual(r.json.value.methods, ['GET', 'POST']);
      r = await api('PATCH', '/routes/1/methods', '["POST"]');
      assert.deepEqual(r.json.value.methods, ['POST']);
      r = await api('PATCH', '/routes/1/uri', '"/patch_uri_test"');
      assert.equal(r.json.value.uri, '/patch_uri_test');
      r = await api('PATCH', '/routes/1/', ROUTE);
      assert.equal(r.status, 200);
      assert.equal(r.json.value.uri, '/index.html');
      r = await api('PATCH', '/routes/1/desc/x', '1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid sub-path: /desc' }]);
      r = await api('PATCH', '/routes/1', '[1]');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid configuration' }]);
      r = await api('PATCH', '/routes/1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing new configuration' }]);
      r = await api('PATCH', '/routes/1', { id: '2' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id' }]);
      r = await api('PATCH', '/routes/not_found', { desc: 'x' });
      assert.deepEqual([r.status, r.json], [404, { message: 'Key not found' }]);
      r = await api('PATCH', '/routes', { desc: 'x' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing route id' }]);
    });

    it('create_time/update_time are forbidden in PUT/POST, allowed in PATCH', async () => {
      let r = await api('PUT', '/routes/1', { ...ROUTE, create_time: 1 });
      assert.deepEqual(r.json, { error_msg: 'the property is forbidden:  create_time' });
      r = await api('POST', '/routes', { ...ROUTE, upstream: { ...UP, update_time: 1 } });
      assert.deepEqual(r.json, { error_msg: 'the property is forbidden:  upstream.update_time' });
      r = await api('PATCH', '/routes/1', { create_time: 1700000000, update_time: 1700000001 });
      assert.equal(r.status, 200);
      assert.equal(r.json.value.create_time, 1700000000);
      assert.equal(r.json.value.update_time, 1700000001);
    });

    it('empty list (routes3.t TEST 1)', async () => {
      const r = await api('GET', '/stream_routes');
      assert.deepEqual([r.status, r.json], [200, { list: [], total: 0 }]);
    });
  });

  describe('services.t / upstream.t / delete-*.t', () => {
    it('delete is refused while referenced; force=true skips', async () => {
      await api('PUT', '/upstreams/1', UP);
      await api('PUT', '/services/1', { upstream_id: '1' });
      await api('PUT', '/routes/1', { uri: '/a', service_id: 1, upstream_id: 1 });
      let r = await api('DELETE', '/services/1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this service directly, route [1] is still using it now' }]);
      r = await api('DELETE', '/upstreams/1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this upstream, route [1] is still using it now' }]);
      await api('DELETE', '/routes/1');
      r = await api('DELETE', '/upstreams/1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this upstream, service [1] is still using it now' }]);
      r = await api('DELETE', '/upstreams/1?force=anything');
      assert.equal(r.status, 400);
      r = await api('DELETE', '/upstreams/1?force=true');
      assert.deepEqual([r.status, r.json], [200, { deleted: '1', key: '/apisix/upstreams/1' }]);
      await api('DELETE', '/services/1');
    });

    it('consumer groups in use', async () => {
      // (a route with plugin_config_id is refused by the data-plane check until plugins exist, so
      // delete-plugin-configs.t cannot be replayed here; admin.test.ts covers it with a stub check)
      let r: Reply;
      await api('PUT', '/consumer_groups/company_a', { plugins: {} });
      await api('PUT', '/consumers', { username: 'foobar', group_id: 'company_a' });
      r = await api('DELETE', '/consumer_groups/company_a');
      assert.deepEqual(r.json, { error_msg: 'can not delete this consumer group, consumer [foobar] is still using it now' });
      r = await api('PUT', '/consumers', { username: 'foobar', group_id: 'nope' });
      assert.deepEqual(r.json, { error_msg: 'failed to fetch consumer group info by consumer group id [nope], response code: 404' });
      await api('DELETE', '/consumers/foobar');
      assert.equal((await api('DELETE', '/consumer_groups/company_a')).status, 200);
    });

    it('upstream: string and numeric ids, POST', async () => {
      let r = await api('PUT', '/upstreams/up-a.1', UP);
      assert.equal(r.status, 201);
      r = await api('PUT', '/upstreams', { id: 11, ...UP });
      assert.equal(r.json.value.id, 11);
      r = await api('POST', '/upstreams', UP);
      assert.equal(r.status, 201);
      assert.match(r.json.value.id, /^\d{20}$/);
      r = await api('PUT', '/upstreams/x', { ...UP, id: 'y' });
      assert.deepEqual(r.json, { error_msg: 'wrong upstream id' });
    });
  });

  describe('consumers.t / credentials.t', () => {
    it('consumers: username is the id; POST/PATCH 405; wrong username', async () => {
      let r = await api('PUT', '/consumers', { username: 'jack', desc: 'new consumer' });
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/consumers/jack');
      assert.equal(r.json.value.id, undefined);
      r = await api('PUT', '/consumers/jack', { username: 'jack', desc: 'new consumer' });
      assert.equal(r.status, 200);
      r = await api('PUT', '/consumers/rose', { username: 'jack' });
      assert.deepEqual(r.json, { error_msg: 'wrong username' });
      r = await api('POST', '/consumers', { username: 'jack' });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `POST` method for consumer' }]);
      r = await api('PATCH', '/consumers/jack', { desc: 'x' });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `PATCH` method for consumer' }]);
      r = await api('PUT', '/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'auth-one' } } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.value.plugins, { 'key-auth': { key: 'auth-one' } });
      // One key, one consumer (t/admin/consumers.t, credentials.t).
      r = await api('PUT', '/consumers/rose', { username: 'rose', plugins: { 'key-auth': { key: 'auth-one' } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'duplicate key found with consumer: jack' }]);
      r = await api('PUT', '/consumers/jack/credentials/c1', { plugins: { 'key-auth': { key: 'auth-one' } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'duplicate key found with consumer: jack' }]);
      r = await api('PUT', '/consumers/jack/credentials/c1', { plugins: { 'key-auth': { key: 'auth-two' } } });
      assert.equal(r.status, 201);
      assert.equal((await api('PUT', '/consumers/jack/credentials/c1', { plugins: { 'key-auth': { key: 'auth-two' } } })).status, 200, 'rewriting a credential with its own key');
      assert.equal((await api('PUT', '/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'auth-one' } } })).status, 200, 'rewriting a consumer with its own key');
      assert.equal((await api('DELETE', '/consumers/jack/credentials/c1')).status, 200);
      r = await api('PUT', '/consumers/jack', { username: 'jack', plugins: { 'key-auth': {} } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugins configuration: failed to check the configuration of plugin key-auth err: property "key" is required' }]);
      r = await api('PUT', '/consumers/jack', { username: 'jack', plugins: { 'no-such-plugin': {} } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugins configuration: unknown plugin [no-such-plugin]' }]);
    });

    it('credentials: parent, ids, list, 404 once the consumer is gone', async () => {
      let r = await api('PUT', '/consumers/nobody/credentials/credential_a', { desc: 'x' });
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'consumer not found' }]);
      await api('PUT', '/consumers', { username: 'jack' });
      r = await api('PUT', '/consumers/jack/credentials/credential_a', { desc: 'a' });
      assert.equal(r.status, 201);
      assert.deepEqual([r.json.key, r.json.value.id], ['/apisix/consumers/jack/credentials/credential_a', 'credential_a']);
      r = await api('PUT', '/consumers/jack/credentials', { id: 'd79a5aa3', desc: 'b' });
      assert.equal(r.json.key, '/apisix/consumers/jack/credentials/d79a5aa3');
      r = await api('PUT', '/consumers/jack/credentials', { desc: 'c' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing credential id' }]);
      r = await api('PUT', '/consumers/jack/credentials/credential_b', { plugins: { 'key-auth': { key: 'k' } } });
      assert.equal(r.status, 201);
      r = await api('PUT', '/consumers/jack/credentials/credential_c', { plugins: { 'limit-count': { count: 1, time_window: 1 } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'only supports auth type plugins in consumer credential' }]);
      assert.equal((await api('DELETE', '/consumers/jack/credentials/credential_b')).status, 200);
      r = await api('POST', '/consumers/jack/credentials', { desc: 'c' });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `POST` method for credential' }]);

      r = await api('GET', '/consumers');
      assert.deepEqual(r.json.list.map((it: any) => it.key), ['/apisix/consumers/jack']);
      assert.equal(r.json.total, 1);
      r = await api('GET', '/consumers/jack/credentials');
      assert.deepEqual(r.json.list.map((it: any) => it.key), ['/apisix/consumers/jack/credentials/credential_a', '/apisix/consumers/jack/credentials/d79a5aa3']);
      assert.equal(r.json.total, 2);

      r = await api('DELETE', '/consumers/jack');
      assert.equal(r.status, 200);
      r = await api('GET', '/consumers/jack/credentials');
      assert.deepEqual([r.status, r.json], [404, { message: 'Key not found' }]);
      r = await api('GET', '/consumers/jack/credentials/credential_a');
      assert.equal(r.status, 404);
    });
  });

  describe('other kinds', () => {
    it('global rules, plugin configs, consumer groups: POST 405, plugins required', async () => {
      for (const [res, kind] of [['global_rules', 'global rule'], ['plugin_configs', 'plugin config'], ['consumer_groups', 'consumer group']]) {
        let r = await api('POST', `/${res}`, { plugins: {} });
        assert.deepEqual([r.status, r.json], [405, { error_msg: `not supported \`POST\` method for ${kind}` }]);
        r = await api('PUT', `/${res}/1`, { plugins: {} });
        assert.equal(r.status, 201);
        r = await api('PUT', `/${res}/1`, { plugins: { 'no-such-plugin': {} } });
        assert.deepEqual(r.json, { error_msg: 'unknown plugin [no-such-plugin]' });
        r = await api('PUT', `/${res}/1`, { plugins: { 'limit-count': {} } });
        assert.match(err(r), /^failed to check the configuration of plugin limit-count err: /);
        r = await api('PUT', `/${res}/1`, {});
        assert.match(err(r), /^invalid configuration: property "plugins" is required/);
        r = await api('PUT', `/${res}`, { plugins: {} });
        assert.deepEqual(r.json, { error_msg: `missing ${kind} id` });
        r = await api('PATCH', `/${res}/1`, { plugins: {} });
        assert.equal(r.status, 200);
        assert.equal((await api('DELETE', `/${res}/1`)).status, 200);
      }
    });

    it('plugin metadata (plugin-metadata.t): missing / invalid plugin name, 404 on delete', async () => {
      let r = await api('PUT', '/plugin_metadata', { k: 'v' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing plugin name' }]);
      r = await api('PUT', '/plugin_metadata/test', { k: 'v' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugin name' }]);
      r = await api('DELETE', '/plugin_metadata/not_found');
      assert.equal(r.status, 404);
      r = await api('POST', '/plugin_metadata/test', { k: 'v' });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `POST` method for plugin_metadata' }]);
    });

    it('secrets (secrets.t): manager checked, id is manager/id, POST 405', async () => {
      let r = await api('PUT', '/secrets/vault/test1', { uri: 'http://127.0.0.1:12800/get', prefix: 'apisix', token: 'apisix' });
      assert.equal(r.status, 201);
      assert.deepEqual([r.json.key, r.json.value.id], ['/apisix/secrets/vault/test1', 'vault/test1']);
      r = await api('GET', '/secrets/vault/test1');
      assert.equal(r.json.value.uri, 'http://127.0.0.1:12800/get');
      r = await api('PATCH', '/secrets/vault/test1', { uri: 'http://127.0.0.1:12800/get2' });
      assert.equal(r.json.value.uri, 'http://127.0.0.1:12800/get2');
      r = await api('PATCH', '/secrets/vault/test1/token', '"unknown"');
      assert.equal(r.json.value.token, 'unknown');
      r = await api('PUT', '/secrets/foo/test1', { uri: 'http://x' });
      assert.deepEqual(r.json, { error_msg: 'invalid secret manager: foo' });
      r = await api('POST', '/secrets/vault', { uri: 'http://x' });
      assert.equal(r.status, 405);
      r = await api('GET', '/secrets');
      assert.equal(r.json.total, 1);
      assert.deepEqual(await api('DELETE', '/secrets/vault/test1').then((x) => x.json), { deleted: '1', key: '/apisix/secrets/vault/test1' });
    });

    it('stream routes and protos: PATCH 405', async () => {
      let r = await api('PATCH', '/stream_routes/1', { remote_addr: '127.0.0.1' });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `PATCH` method for stream route' }]);
      r = await api('PATCH', '/protos/1', { content: 'x' });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `PATCH` method for proto' }]);
      r = await api('PUT', '/stream_routes/1', { remote_addr: '127.0.0.1', upstream: UP });
      assert.equal(r.status, 201);
      r = await api('PUT', '/stream_routes/1', { remote_addr: '127.0.0.1', upstream_id: 'nope' });
      assert.deepEqual(r.json, { error_msg: 'failed to fetch upstream info by upstream id [nope], response code: 404' });
      assert.equal((await api('DELETE', '/stream_routes/1')).status, 200);
    });
  });

  describe('filter.t / pagination.t', () => {
    it('page_size bounds, createdIndex order, pages', async () => {
      for (let i = 1; i <= 11; i++) await api('PUT', `/routes/${i}`, { upstream: UP, uri: `/hello${i}`, name: `r${i}`, labels: i % 2 ? { odd: 'yes' } : { even: 'yes' } });
      let r = await api('GET', '/routes?page=1&page_size=2');
      assert.deepEqual([r.status, r.text], [400, 'page_size must be between 10 and 500\n']);
      r = await api('GET', '/routes/?page=-1&page_size=10');
      assert.equal(r.json.list.length, 10);
      assert.equal(r.json.total, 11);
      for (let i = 0; i < r.json.list.length - 1; i++) assert.ok(r.json.list[i].createdIndex < r.json.list[i + 1].createdIndex);
      assert.equal((await api('GET', '/routes?page=2&page_size=10')).json.list.length, 1);
      assert.equal((await api('GET', '/routes?page=3&page_size=10')).json.list.length, 0);
      r = await api('GET', '/routes?name=r1');
      assert.equal(r.json.total, 3); // r1, r10, r11
      r = await api('GET', '/routes?label=even');
      assert.equal(r.json.total, 5);
      r = await api('GET', '/routes?uri=hello1&label=odd');
      assert.equal(r.json.total, 2); // hello1, hello11
      for (let i = 1; i <= 11; i++) await api('DELETE', `/routes/${i}`);
    });
  });

  describe('dispatcher, headers, endpoints (api.t, schema.t, plugins.t, token.t)', () => {
    it('X-API-VERSION, Server, CORS, OPTIONS preflight', async () => {
      let r = await api('GET', '/routes');
      assert.equal(r.headers['x-api-version'], 'v3');
      assert.match(String(r.headers.server), /^Causeway\/.+/);
      assert.equal(r.headers['access-control-allow-origin'], '*');
      r = await api('OPTIONS', '/routes', undefined, { 'X-API-KEY': '' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['access-control-allow-methods'], 'POST, GET, PUT, OPTIONS, DELETE, PATCH');
      assert.equal(r.text, '');
    });

    it('auth: missing, wrong key; runs before resource parsing', async () => {
      let r = await call(server.port, 'GET', '/apisix/admin/routes', undefined, { 'X-API-KEY': 'wrong' });
      assert.deepEqual([r.status, r.json], [401, { error_msg: 'failed to check token', description: 'wrong apikey' }]);
      r = await new Promise<Reply>((resolve) => {
        http.get({ host: '127.0.0.1', port: server.port, path: '/apisix/admin/foo', agent: false }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text, json: JSON.parse(text) }));
        });
      });
      assert.deepEqual([r.status, r.json], [401, { error_msg: 'failed to check token', description: 'missing apikey' }]);
    });

    it('unknown resources, methods and paths', async () => {
      let r = await api('GET', '/foo');
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'Unsupported resource type: foo' }]);
      r = await api('PUT', '/schema/service', {});
      assert.equal(r.status, 404);
      r = await api('POST', '/schema/service', {});
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'not found' }]);
      r = await api('HEAD', '/apisix/admin');
      assert.equal(r.status, 200);
      r = await api('GET', '/routes/1?ttl=x');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid argument ttl: should be a number' }]);
      r = await api('PUT', '/routes/1', '{"uri": "/a", ');
      assert.equal(r.status, 400);
      assert.match(err(r), /^invalid request body: /);
      assert.equal(r.json.req_body, '{"uri": "/a", ');
      r = await api('PUT', '/routes/1', '');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing configurations' }]);
    });

    it('/schema/{name} (schema.t)', async () => {
      let r = await api('GET', '/schema/route');
      assert.equal(r.status, 200);
      assert.match(r.text, /"plugins":\{"type":"object"\}/);
      r = await api('GET', '/schema/service');
      assert.equal(r.json.anyOf, undefined);
      r = await api('GET', '/schema/noexits');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'not found schema: noexits' }]);
      for (const name of ['upstream', 'consumer', 'credential', 'consumer_group', 'plugin_config', 'global_rule', 'ssl', 'proto', 'stream_route']) {
        r = await api('GET', `/schema/${name}`);
        assert.equal(r.status, 200, name);
        assert.equal(r.json.type, 'object', name);
      }
    });

    it('plugins endpoints', async () => {
      let r = await api('GET', '/plugins/list');
      assert.equal(r.status, 200);
      for (const name of ['key-auth', 'limit-count', 'proxy-rewrite', 'cors']) assert.ok(r.json.includes(name), name);
      // highest priority first
      assert.ok(r.json.indexOf('real-ip') < r.json.indexOf('cors') && r.json.indexOf('cors') < r.json.indexOf('key-auth'));
      r = await api('GET', '/plugins/list?subsystem=xx');
      assert.deepEqual([r.status, r.text], [400, 'invalid subsystem passed\n']);
      r = await api('GET', '/plugins/limit-count');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.required, ['count', 'time_window']);
      assert.ok(r.json.properties._meta);
      r = await api('GET', '/plugins/key-auth?schema_type=consumer');
      assert.deepEqual(r.json.required, ['key']);
      r = await api('GET', '/plugins?all=true');
      assert.deepEqual([r.json['key-auth'].priority, r.json['key-auth'].type, r.json['key-auth'].consumer_schema.required], [2500, 'auth', ['key']]);
      assert.ok(r.json['limit-count'].schema.properties._meta);
      r = await api('GET', '/plugins/no-such-plugin');
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'plugin not found in subsystem http' }]);
      r = await api('GET', '/schema/plugins/no-exist');
      assert.equal(r.status, 404);
      r = await api('GET', '/plugins/limit-count?subsystem=xx');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'unsupported subsystem: xx' }]);
      r = await api('PUT', '/plugins/reload');
      assert.deepEqual([r.status, r.text], [200, 'done\n']);
      r = await api('POST', '/plugins/reload');
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'please use PUT method to reload the plugins, POST method is not allowed.' }]);
    });

    it('/schema/validate/{resource} (schema-validate.t)', async () => {
      let r = await api('POST', '/schema/validate/routes', { uri: '/a', upstream: UP });
      assert.deepEqual([r.status, r.text], [200, '']);
      r = await api('POST', '/schema/validate/routes', { uri: '/a', upstream: UP, host: 'a', hosts: ['b'] });
      assert.equal(r.status, 400);
      r = await api('POST', '/schema/validate/foo', {});
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'Unsupported resource type: foo' }]);
    });
  });
});
