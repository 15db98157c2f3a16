// End-to-end tests of the Admin API: the server runs in-process on a loopback port with a real
// embedded store (node:sqlite, in memory) and is exercised over real HTTP. Cases ported from
// apache/apisix t/admin/*.t keep APISIX's exact status codes and bodies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdminServer, type AdminServer, type AdminServerOptions } from '../../src/admin/index.ts';
import { ADMIN_KEY, adminCall, type AdminCallOptions, type AdminReply } from '../helpers/admin.ts';
import { checkResource } from '../../src/snapshot/check.ts';
import { EmbeddedStore } from '../../src/store/embedded.ts';
import { StoreUnavailableError, type ConfigStore, type PutOptions } from '../../src/store/types.ts';
import type { ResourceKind } from '../../src/model/index.ts';

const KEY = ADMIN_KEY;
const VIEWER_KEY = '4054f7cf07e344346cd3f287985e76a2';
const ROUTE_BODY = { methods: ['GET'], uri: '/index.html', upstream: { type: 'roundrobin', nodes: { '127.0.0.1:8080': 1 } } };
const UPSTREAM_BODY = { type: 'roundrobin', nodes: { '127.0.0.1:8080': 1 } };

type Reply = AdminReply;

/** One HTTP request to the Admin API on 127.0.0.1:port (path relative to /apisix/admin unless absolute). */
const call = (port: number, method: string, path: string, opts: AdminCallOptions = {}): Promise<Reply> => adminCall(port, method, path, opts);

const served = new Set<string>(['routes', 'services', 'upstreams']);

function baseOptions(store: ConfigStore, extra: Partial<AdminServerOptions> = {}): AdminServerOptions {
  return {
    ip: '127.0.0.1',
    port: 0,
    store,
    prefix: '/apisix',
    admin: {
      admin_key: [
        { name: 'admin', key: KEY, role: 'admin' },
        { name: 'viewer', key: VIEWER_KEY, role: 'viewer' },
      ],
      admin_listen: { ip: '127.0.0.1', port: 0 },
      allow_admin: ['127.0.0.0/24'],
      enable_admin_cors: true,
      admin_api_version: 'v3',
    },
    pluginNames: () => ['limit-count', 'key-auth', 'traffic-split', 'grpc-transcode', 'http-logger'],
    log: () => {},
    check: (kind, _id, value) => (served.has(kind) ? checkResource(kind as ResourceKind, value) : undefined),
    streamEnabled: true,
    ...extra,
  };
}

interface Instance {
  server: AdminServer;
  store: EmbeddedStore;
  api: (method: string, path: string, opts?: RequestOptions) => Promise<Reply>;
  stop: () => Promise<void>;
}

async function start(extra: Partial<AdminServerOptions> = {}, wrap?: (s: EmbeddedStore) => ConfigStore): Promise<Instance> {
  const store = new EmbeddedStore({ path: ':memory:', sweepIntervalMs: 100 });
  const server = await startAdminServer(baseOptions(wrap ? wrap(store) : store, extra));
  return {
    server,
    store,
    api: (method, path, opts) => call(server.port, method, path, opts),
    stop: async () => {
      await server.close();
      await store.close();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Self-signed certificate and key made by openssl, or undefined when openssl is missing. */
function makeCert(cn: string): { cert: string; key: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-admin-cert-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`,
      '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('admin API', () => {
  let inst: Instance;
  let api: Instance['api'];
  before(async () => {
    inst = await start();
    api = inst.api;
  });
  after(async () => {
    await inst.stop();
  });

  describe('routes CRUD (t/admin/routes.t)', () => {
    it('PUT creates (201), PUT again replaces (200), GET has indexes, DELETE removes', async () => {
      let r = await api('PUT', '/routes/1', { body: ROUTE_BODY });
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/routes/1');
      assert.deepEqual(r.json.value.methods, ['GET']);
      assert.equal(r.json.value.id, '1');
      assert.equal(typeof r.json.value.create_time, 'number');
      assert.equal(typeof r.json.value.update_time, 'number');
      assert.equal(r.json.createdIndex, undefined, 'PUT answers without indexes');
      assert.equal(r.headers['x-api-version'], 'v3');
      assert.equal(r.headers['content-type'], 'application/json');
      assert.ok(r.text.endsWith('}\n'));
      // Schema defaults are not persisted.
      assert.equal(r.json.value.priority, undefined);
      assert.equal(r.json.value.status, undefined);

      r = await api('PUT', '/routes/1', { body: ROUTE_BODY });
      assert.equal(r.status, 200);

      r = await api('GET', '/routes/1');
      assert.equal(r.status, 200);
      assert.equal(r.json.key, '/apisix/routes/1');
      assert.equal(r.json.value.uri, '/index.html');
      assert.equal(typeof r.json.createdIndex, 'number');
      assert.ok(r.json.modifiedIndex > r.json.createdIndex);

      r = await api('DELETE', '/routes/1');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { deleted: '1', key: '/apisix/routes/1' });

      r = await api('GET', '/routes/1');
      assert.equal(r.status, 404);
      assert.deepEqual(r.json, { message: 'Key not found' });
      r = await api('DELETE', '/routes/not_found');
      assert.equal(r.status, 404);
      assert.deepEqual(r.json, { message: 'Key not found' });
    });

    it('PUT keeps create_time and refreshes update_time', async () => {
      await api('PUT', '/routes/ct', { body: ROUTE_BODY });
      const first = (await api('GET', '/routes/ct')).json.value;
      await sleep(1100);
      await api('PUT', '/routes/ct', { body: { ...ROUTE_BODY, desc: 'again' } });
      const second = (await api('GET', '/routes/ct')).json.value;
      assert.equal(second.create_time, first.create_time);
      assert.ok(second.update_time > first.update_time);
      await api('DELETE', '/routes/ct');
    });

    it('POST generates a 20-digit id', async () => {
      const r = await api('POST', '/routes', { body: ROUTE_BODY });
      assert.equal(r.status, 201);
      assert.match(r.json.value.id, /^\d{20}$/);
      assert.equal(r.json.key, `/apisix/routes/${r.json.value.id}`);
      assert.equal(r.json.value.create_time, r.json.value.update_time);
      const again = await api('POST', '/routes', { body: ROUTE_BODY });
      assert.notEqual(again.json.value.id, r.json.value.id);
      assert.equal((await api('GET', `/routes/${r.json.value.id}`)).status, 200);
      await api('DELETE', `/routes/${r.json.value.id}`);
      await api('DELETE', `/routes/${again.json.value.id}`);
    });

    it('id rules', async () => {
      let r = await api('PUT', '/routes', { body: ROUTE_BODY });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing route id' }]);
      r = await api('PUT', '/routes/1', { body: { ...ROUTE_BODY, id: 3 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id' }]);
      // Compared as strings: 1 and "1" agree.
      r = await api('PUT', '/routes/7', { body: { ...ROUTE_BODY, id: 7 } });
      assert.equal(r.status, 201);
      // The id may come from the body alone.
      r = await api('PUT', '/routes', { body: { ...ROUTE_BODY, id: 'from-body' } });
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/routes/from-body');
      r = await api('POST', '/routes', { body: { ...ROUTE_BODY, id: 5 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id, do not need it' }]);
      r = await api('POST', '/routes/5', { body: ROUTE_BODY });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id, do not need it' }]);
      r = await api('PUT', '/routes/1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing configurations' }]);
      r = await api('PUT', '/routes/a$b', { body: ROUTE_BODY });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^invalid configuration: property "id"/);
      r = await api('PUT', `/routes/${'x'.repeat(65)}`, { body: ROUTE_BODY });
      assert.equal(r.status, 400);
      r = await api('DELETE', '/routes');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing route id' }]);
      r = await api('PATCH', '/routes', { body: { desc: 'x' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing route id' }]);
      assert.equal((await api('GET', '/routes/a$b')).status, 404);
      await api('DELETE', '/routes/7');
      await api('DELETE', '/routes/from-body');
    });

    it('create_time and update_time are forbidden in PUT and POST bodies', async () => {
      let r = await api('PUT', '/routes/1', { body: { ...ROUTE_BODY, create_time: 1602883670 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'the property is forbidden:  create_time' }]);
      r = await api('POST', '/routes', { body: { ...ROUTE_BODY, update_time: 1602883670 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'the property is forbidden:  update_time' }]);
      r = await api('PUT', '/routes/1', { body: { ...ROUTE_BODY, upstream: { ...UPSTREAM_BODY, create_time: 1 } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'the property is forbidden:  upstream.create_time' }]);
      r = await api('PUT', '/upstreams/1', { body: { ...UPSTREAM_BODY, update_time: 1 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'the property is forbidden:  update_time' }]);
      assert.equal((await api('GET', '/routes/1')).status, 404, 'a refused write stores nothing');
    });

    it('schema and data-plane checks answer 400 and write nothing', async () => {
      let r = await api('PUT', '/routes/1', { body: { ...ROUTE_BODY, methods: ['GET', 'invalid_method'] } });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^invalid configuration: /);
      r = await api('PUT', '/routes/1', { body: { uri: '/a' } });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^invalid configuration: /);
      r = await api('PUT', '/routes/1', { body: { ...ROUTE_BODY, plugins: { 'limit-count': {} } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'unknown plugin [limit-count]' }]);
      r = await api('PUT', '/routes/1', { body: { ...ROUTE_BODY, vars: [['arg_a', 'invalid-op', 1]] } });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^failed to validate the 'vars' expression: /);
      r = await api('PUT', '/routes/1', { body: [1, 2] });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^invalid configuration/);
      r = await api('PUT', '/routes/1', { body: 'a string' });
      assert.equal(r.status, 400);
      assert.equal((await api('GET', '/routes/1')).status, 404);
    });
  });

  describe('every kind: CRUD and the method matrix', () => {
    it('services', async () => {
      let r = await api('PUT', '/services/1', { body: { upstream: UPSTREAM_BODY, desc: 'svc' } });
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/services/1');
      r = await api('POST', '/services', { body: { upstream: UPSTREAM_BODY } });
      assert.equal(r.status, 201);
      const postId = r.json.value.id;
      r = await api('PATCH', '/services/1', { body: { name: 'patched' } });
      assert.equal(r.status, 200);
      assert.equal(r.json.value.name, 'patched');
      assert.equal(r.json.value.desc, 'svc');
      r = await api('GET', '/services');
      assert.equal(r.json.total, 2);
      assert.equal((await api('DELETE', '/services/1')).status, 200);
      assert.equal((await api('DELETE', `/services/${postId}`)).status, 200);
    });

    it('upstreams', async () => {
      let r = await api('PUT', '/upstreams/1', { body: UPSTREAM_BODY });
      assert.equal(r.status, 201);
      r = await api('PATCH', '/upstreams/1/nodes', { body: { '127.0.0.1:8081': 3 } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.value.nodes, { '127.0.0.1:8081': 3 });
      r = await api('PUT', '/upstreams/2', { body: { nodes: { '127.0.0.1:8080': 1 }, type: 'chash' } });
      assert.equal(r.status, 400);
      r = await api('POST', '/upstreams', { body: UPSTREAM_BODY });
      assert.equal(r.status, 201);
      await api('DELETE', `/upstreams/${r.json.value.id}`);
      assert.equal((await api('DELETE', '/upstreams/1')).status, 200);
    });

    it('consumers: username is the id, POST and PATCH are 405, DELETE removes credentials', async () => {
      let r = await api('PUT', '/consumers', { body: { username: 'jack', desc: 'hello' } });
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/consumers/jack');
      assert.equal(r.json.value.id, undefined);
      r = await api('PUT', '/consumers/jack', { body: { username: 'jack' } });
      assert.equal(r.status, 200);
      r = await api('PUT', '/consumers/jack', { body: { username: 'tom' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong username' }]);
      r = await api('PUT', '/consumers', { body: { desc: 'no name' } });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^invalid configuration: /);
      r = await api('POST', '/consumers', { body: { username: 'x' } });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `POST` method for consumer' }]);
      r = await api('PATCH', '/consumers/jack', { body: { desc: 'x' } });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `PATCH` method for consumer' }]);
      r = await api('PUT', '/consumers/jack', { body: { username: 'jack', plugins: { 'no-such': {} } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugins configuration: unknown plugin [no-such]' }]);
      r = await api('PUT', '/consumers/jack', { body: { username: 'jack', group_id: 'nope' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch consumer group info by consumer group id [nope], response code: 404' }]);

      // Credentials live under the consumer; lists of consumers do not show them.
      r = await api('PUT', '/consumers/jack/credentials/c1', { body: { plugins: { 'key-auth': { key: 'k' } } } });
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/consumers/jack/credentials/c1');
      assert.equal(r.json.value.id, 'c1');
      r = await api('GET', '/consumers');
      assert.equal(r.json.total, 1);
      assert.equal(r.json.list[0].key, '/apisix/consumers/jack');
      r = await api('GET', '/consumers/jack/credentials');
      assert.equal(r.json.total, 1);
      assert.equal(r.json.list[0].key, '/apisix/consumers/jack/credentials/c1');
      r = await api('GET', '/consumers/jack/credentials/c1');
      assert.equal(r.status, 200);

      r = await api('DELETE', '/consumers/jack');
      assert.deepEqual([r.status, r.json], [200, { deleted: '1', key: '/apisix/consumers/jack' }]);
      assert.equal((await api('GET', '/consumers/jack/credentials/c1')).status, 404);
    });

    it('credentials: parent must exist, POST/PATCH 405, id rules, at most one plugin', async () => {
      await api('PUT', '/consumers/rose', { body: { username: 'rose' } });
      let r = await api('PUT', '/consumers/nobody/credentials/c1', { body: { plugins: {} } });
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'consumer not found' }]);
      r = await api('PUT', '/consumers/rose/credentials', { body: { plugins: {} } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing credential id' }]);
      r = await api('PUT', '/consumers/rose/credentials/c1', { body: { id: 'c2', plugins: {} } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong credential id' }]);
      r = await api('POST', '/consumers/rose/credentials', { body: { plugins: {} } });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `POST` method for credential' }]);
      r = await api('PATCH', '/consumers/rose/credentials/c1', { body: { plugins: {} } });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `PATCH` method for credential' }]);
      r = await api('PUT', '/consumers/rose/credentials/c1', { body: { plugins: { 'key-auth': {}, 'limit-count': {} } } });
      assert.equal(r.status, 400);
      r = await api('PUT', '/consumers/rose/credentials/c1', { body: { plugins: { 'not-a-plugin': {} } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugins configuration: unknown plugin [not-a-plugin]' }]);
      r = await api('PUT', '/consumers/rose/credentials/c1', { body: { plugins: { 'key-auth': { key: 'r' } } } });
      assert.equal(r.status, 201);
      r = await api('DELETE', '/consumers/rose/credentials/c1');
      assert.deepEqual([r.status, r.json], [200, { deleted: '1', key: '/apisix/consumers/rose/credentials/c1' }]);
      r = await api('DELETE', '/consumers/rose/credentials');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing credential id' }]);
      await api('DELETE', '/consumers/rose');
    });

    it('consumer groups, plugin configs, global rules: POST 405, PATCH works', async () => {
      for (const [res, kind] of [['consumer_groups', 'consumer group'], ['plugin_configs', 'plugin config'], ['global_rules', 'global rule']]) {
        let r = await api('PUT', `/${res}/1`, { body: { plugins: { 'limit-count': { count: 2 } } } });
        assert.equal(r.status, 201, `${res}: ${r.text}`);
        r = await api('POST', `/${res}`, { body: { plugins: {} } });
        assert.deepEqual([r.status, r.json], [405, { error_msg: `not supported \`POST\` method for ${kind}` }]);
        r = await api('PATCH', `/${res}/1/plugins/limit-count/count`, { body: 5 });
        assert.equal(r.status, 200, `${res}: ${r.text}`);
        assert.deepEqual(r.json.value.plugins, { 'limit-count': { count: 5 } });
        r = await api('PUT', `/${res}/2`, { body: { plugins: { unknown: {} } } });
        assert.deepEqual([r.status, r.json], [400, { error_msg: 'unknown plugin [unknown]' }]);
        r = await api('PUT', `/${res}/2`, { body: {} });
        assert.equal(r.status, 400, `${res}: plugins is required`);
      }
      // A plugin may appear in only one global rule.
      let r = await api('PUT', '/global_rules/2', { body: { plugins: { 'limit-count': {} } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: "plugin 'limit-count' already exists in global rule with id '1'" }]);
      r = await api('PUT', '/global_rules/1', { body: { plugins: { 'limit-count': { count: 1 } } } });
      assert.equal(r.status, 200, 'the rule itself may be replaced');
      for (const res of ['consumer_groups', 'plugin_configs', 'global_rules']) assert.equal((await api('DELETE', `/${res}/1`)).status, 200);
    });

    it('plugin metadata: id is the plugin name, POST/PATCH 405', async () => {
      let r = await api('PUT', '/plugin_metadata/http-logger', { body: { log_format: { host: '$host' } } });
      assert.equal(r.status, 201);
      assert.equal(r.json.key, '/apisix/plugin_metadata/http-logger');
      assert.equal(r.json.value.id, 'http-logger');
      r = await api('PUT', '/plugin_metadata/no-such-plugin', { body: { a: 1 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid plugin name' }]);
      r = await api('PUT', '/plugin_metadata', { body: { a: 1 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing plugin name' }]);
      r = await api('POST', '/plugin_metadata', { body: {} });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `POST` method for plugin_metadata' }]);
      r = await api('PATCH', '/plugin_metadata/http-logger', { body: {} });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `PATCH` method for plugin_metadata' }]);
      assert.equal((await api('GET', '/plugin_metadata/http-logger')).status, 200);
      assert.equal((await api('DELETE', '/plugin_metadata/http-logger')).status, 200);
    });

    it('ssls: keys are never returned', async (t) => {
      const pair = makeCert('test.com');
      if (!pair) return t.skip('openssl is not available');
      let r = await api('PUT', '/ssls/1', { body: { cert: pair.cert, key: pair.key, sni: 'test.com' } });
      assert.equal(r.status, 201, r.text);
      r = await api('GET', '/ssls/1');
      assert.equal(r.status, 200);
      assert.equal(r.json.value.sni, 'test.com');
      assert.equal(r.json.value.key, undefined);
      assert.ok(r.json.value.cert.startsWith('-----BEGIN CERTIFICATE-----'));
      r = await api('GET', '/ssls');
      assert.equal(r.json.list[0].value.key, undefined);
      r = await api('PATCH', '/ssls/1', { body: { snis: ['a.test.com'], sni: null } });
      assert.equal(r.status, 200, r.text);
      r = await api('PUT', '/ssls/2', { body: { cert: 'not a certificate'.repeat(10), key: pair.key, sni: 'x.com' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to parse cert: PEM_read_bio_X509_AUX() failed' }]);
      r = await api('PUT', '/ssls/2', { body: { cert: pair.cert, key: pair.key, certs: [pair.cert], sni: 'x.com' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'mismatched number of certs and keys' }]);
      r = await api('POST', '/ssls', { body: { cert: pair.cert, key: pair.key, sni: 'post.com' } });
      assert.equal(r.status, 201);
      assert.equal(r.json.value.id.length, 20);
      await api('DELETE', `/ssls/${r.json.value.id}`);
      assert.equal((await api('DELETE', '/ssls/1')).status, 200);
    });

    it('secrets: id is manager/id, POST 405, manager checked', async () => {
      const vault = { uri: 'http://127.0.0.1:8200', prefix: 'kv/apisix', token: 'root' };
      let r = await api('PUT', '/secrets/vault/test1', { body: vault });
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.key, '/apisix/secrets/vault/test1');
      assert.equal(r.json.value.id, 'vault/test1');
      r = await api('PUT', '/secrets/vault/test1', { body: vault });
      assert.equal(r.status, 200);
      r = await api('GET', '/secrets/vault/test1');
      assert.equal(r.json.value.token, 'root');
      r = await api('PATCH', '/secrets/vault/test1', { body: { token: 'new' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.value.token, 'new');
      r = await api('PATCH', '/secrets/vault/test1/prefix', { body: 'kv/other' });
      assert.equal(r.json.value.prefix, 'kv/other');
      r = await api('PUT', '/secrets/foo/test1', { body: vault });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid secret manager: foo' }]);
      r = await api('POST', '/secrets/vault', { body: vault });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `POST` method for secret' }]);
      r = await api('PUT', '/secrets/vault/test2', { body: { uri: 'http://127.0.0.1:8200' } });
      assert.equal(r.status, 400);
      r = await api('GET', '/secrets');
      assert.equal(r.json.total, 1);
      r = await api('DELETE', '/secrets/vault/test1');
      assert.deepEqual([r.status, r.json], [200, { deleted: '1', key: '/apisix/secrets/vault/test1' }]);
    });

    it('stream routes: PATCH 405; protos: PATCH 405', async () => {
      let r = await api('PUT', '/stream_routes/1', { body: { server_port: 9100, upstream: UPSTREAM_BODY } });
      assert.equal(r.status, 201, r.text);
      r = await api('PATCH', '/stream_routes/1', { body: { server_port: 9101 } });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `PATCH` method for stream route' }]);
      r = await api('POST', '/stream_routes', { body: { server_port: 9102, upstream: UPSTREAM_BODY } });
      assert.equal(r.status, 201);
      await api('DELETE', `/stream_routes/${r.json.value.id}`);
      assert.equal((await api('DELETE', '/stream_routes/1')).status, 200);

      const content = 'syntax = "proto3";\npackage helloworld;\nservice Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }\nmessage HelloRequest { string name = 1; }\nmessage HelloReply { string message = 1; }';
      r = await api('PUT', '/protos/1', { body: { content } });
      assert.equal(r.status, 201, r.text);
      r = await api('PATCH', '/protos/1', { body: { content } });
      assert.deepEqual([r.status, r.json], [405, { error_msg: 'not supported `PATCH` method for proto' }]);
      r = await api('PUT', '/protos/2', { body: {} });
      assert.equal(r.status, 400);
      assert.equal((await api('DELETE', '/protos/1')).status, 200);
    });

    it('stream routes are refused when the stream proxy is off', async () => {
      const off = await start({ streamEnabled: false });
      try {
        for (const method of ['GET', 'PUT', 'DELETE']) {
          const r = await off.api(method, '/stream_routes/1', { body: method === 'PUT' ? { server_port: 1 } : undefined });
          assert.deepEqual([r.status, r.json], [400, { error_msg: 'stream mode is disabled, can not add stream routes' }]);
        }
      } finally {
        await off.stop();
      }
    });
  });

  describe('dispatcher errors', () => {
    it('unknown resource, unsupported module method, bad bodies, ttl', async () => {
      let r = await api('GET', '/foo');
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'Unsupported resource type: foo' }]);
      r = await api('PUT', '/foo/1', { body: {} });
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'Unsupported resource type: foo' }]);
      r = await api('POST', '/schema/route', { body: {} });
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'not found' }]);
      r = await api('PUT', '/plugins/limit-count', { body: {} });
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'not found' }]);

      r = await api('PUT', '/routes/1', { raw: '{"uri": "/index.html",' });
      assert.equal(r.status, 400);
      assert.deepEqual(r.json, { error_msg: 'invalid request body: Expected object key string but found T_END at character 23', req_body: '{"uri": "/index.html",' });
      r = await api('PUT', '/routes/1', { raw: 'invalid json' });
      assert.deepEqual(r.json, { error_msg: 'invalid request body: Expected value but found invalid token at character 1', req_body: 'invalid json' });
      r = await api('PUT', '/routes/1', { raw: '{"a":1}}' });
      assert.equal(r.json.error_msg, 'invalid request body: Expected the end but found T_OBJ_END at character 8');
      r = await api('PUT', '/routes/1', { raw: '[1 2]' });
      assert.equal(r.json.error_msg, 'invalid request body: Expected comma or array end but found T_NUMBER at character 4');
      r = await api('PUT', '/routes/1', { raw: '{"a" 1}' });
      assert.equal(r.json.error_msg, 'invalid request body: Expected colon but found T_NUMBER at character 6');
      r = await api('PUT', '/routes/1', { raw: '"abc' });
      assert.equal(r.json.error_msg, 'invalid request body: Expected value but found unexpected end of string at character 1');

      r = await api('PUT', '/routes/1?ttl=abc', { body: ROUTE_BODY });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid argument ttl: should be a number' }]);
      assert.equal((await api('GET', '/routes/1')).status, 404);
    });

    it('bodies over 1.5 MiB are refused', async () => {
      const big = JSON.stringify({ ...ROUTE_BODY, desc: 'x'.repeat(1024 * 1024 * 2) });
      const r = await api('PUT', '/routes/1', { raw: big });
      assert.equal(r.status, 400);
      assert.deepEqual(r.json, { error_msg: `invalid request body: request size ${Buffer.byteLength(big)} is greater than the maximum size 1572864 allowed` });
      // Chunked (no Content-Length): refused once the limit is passed.
      const chunked = await new Promise<Reply>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: inst.server.port, method: 'PUT', path: '/apisix/admin/routes/1', headers: { 'X-API-KEY': KEY, 'Transfer-Encoding': 'chunked' }, agent: false }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: JSON.parse(text) }));
        });
        req.on('error', reject);
        for (let i = 0; i < 4; i++) req.write('x'.repeat(512 * 1024));
        req.end();
      });
      assert.equal(chunked.status, 400);
      assert.match(chunked.json.error_msg, /^invalid request body: request size \d+ is greater than the maximum size 1572864 allowed$/);
      assert.equal((await api('GET', '/routes/1')).status, 404);
    });

    it('never crashes on hostile input', async () => {
      let r = await api('PUT', '/routes/1', { raw: '['.repeat(5000) + ']'.repeat(5000) });
      assert.equal(r.status, 400);
      assert.equal(r.json.error_msg, 'invalid request body: Found too many nested data structures (1001) at character 1001');
      r = await api('PUT', '/routes/%E0%A4%A', { body: ROUTE_BODY });
      assert.equal(r.status, 400);
      r = await api('PUT', '/routes/1', { raw: '{"__proto__": {"polluted": 1}, "uri": "/x", "upstream_id": "1"}' });
      assert.equal(r.status, 400);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      await api('PUT', '/routes/pp', { body: ROUTE_BODY });
      r = await api('PATCH', '/routes/pp', { raw: '{"__proto__": {"polluted": 1}}' });
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      r = await api('PATCH', '/routes/pp/__proto__/polluted', { body: 1 });
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      await api('DELETE', '/routes/pp?force=true');
      // Raw garbage on the socket gets a 400 and the server keeps serving.
      await new Promise<void>((resolve) => {
        const sock = net.connect(inst.server.port, '127.0.0.1', () => sock.end('GARBAGE\r\n\r\n'));
        sock.on('data', () => {});
        sock.on('close', () => resolve());
        sock.on('error', () => resolve());
      });
      assert.equal((await api('GET', '/routes')).status, 200);
    });

    it('paths outside the Admin API get nginx-style 404 pages; HEAD /apisix/admin is 200', async () => {
      let r = await api('HEAD', '/apisix/admin', { key: null });
      assert.equal(r.status, 200);
      assert.equal(r.text, '');
      r = await api('GET', '/apisix/other', { key: null });
      assert.equal(r.status, 404);
      assert.match(r.headers['content-type'] ?? '', /text\/html/);
      r = await api('HEAD', '/routes');
      assert.equal(r.status, 404);
      r = await api('GET', '/');
      assert.equal(r.status, 404);
    });
  });

  describe('authentication (t/admin/token.t)', () => {
    it('missing, wrong, viewer', async () => {
      let r = await api('GET', '/routes', { key: null });
      assert.deepEqual([r.status, r.json], [401, { error_msg: 'failed to check token', description: 'missing apikey' }]);
      r = await api('GET', '/routes', { key: 'wrong' });
      assert.deepEqual([r.status, r.json], [401, { error_msg: 'failed to check token', description: 'wrong apikey' }]);
      r = await api('GET', '/routes', { key: VIEWER_KEY });
      assert.equal(r.status, 200);
      r = await api('PUT', '/routes/1', { key: VIEWER_KEY, body: ROUTE_BODY });
      assert.deepEqual([r.status, r.json], [401, { error_msg: 'failed to check token', description: 'invalid method for role viewer' }]);
      r = await api('DELETE', '/routes/1', { key: VIEWER_KEY });
      assert.equal(r.status, 401);
      assert.equal((await api('GET', '/routes/1')).status, 404);
    });

    it('auth runs before resource parsing', async () => {
      let r = await api('GET', '/no-such-resource', { key: null });
      assert.equal(r.status, 401);
      r = await api('PUT', '/plugins/reload', { key: null });
      assert.equal(r.status, 401);
      r = await api('GET', '/plugins/list', { key: 'bad' });
      assert.equal(r.status, 401);
      r = await api('POST', '/configs/validate', { key: null, body: {} });
      assert.equal(r.status, 401);
      r = await api('POST', '/schema/validate/routes', { key: null, body: {} });
      assert.equal(r.status, 401);
    });

    it('token lookup order: query api_key, header X-API-KEY, cookie x_api_key', async () => {
      let r = await api('GET', `/routes?api_key=${KEY}`, { key: null });
      assert.equal(r.status, 200);
      r = await api('GET', '/routes', { key: null, headers: { Cookie: `a=b; x_api_key=${KEY}` } });
      assert.equal(r.status, 200);
      // The query wins over a good header.
      r = await api('GET', '/routes?api_key=wrong');
      assert.equal(r.json.description, 'wrong apikey');
      // The header wins over a good cookie.
      r = await api('GET', '/routes', { key: 'wrong', headers: { Cookie: `x_api_key=${KEY}` } });
      assert.equal(r.json.description, 'wrong apikey');
      // A viewer key in the query wins over an admin header.
      r = await api('PUT', `/routes/1?api_key=${VIEWER_KEY}`, { body: ROUTE_BODY });
      assert.equal(r.json.description, 'invalid method for role viewer');
    });

    it('admin_key_required: false, no admin_key at all, and a generated key', async () => {
      const open = await start({ admin: { admin_key_required: false, admin_key: [{ key: KEY, role: 'admin' }], admin_listen: { ip: '127.0.0.1', port: 0 } } });
      try {
        assert.equal((await open.api('GET', '/routes', { key: null })).status, 200);
        assert.equal(open.server.apiKey, undefined);
      } finally {
        await open.stop();
      }
      const keyless = await start({ admin: { admin_listen: { ip: '127.0.0.1', port: 0 } } });
      try {
        assert.equal((await keyless.api('PUT', '/routes/1', { key: null, body: ROUTE_BODY })).status, 201);
      } finally {
        await keyless.stop();
      }
      const generated = await start({ admin: { admin_key: [{ name: 'admin', key: '', role: 'admin' }], admin_listen: { ip: '127.0.0.1', port: 0 } } });
      try {
        const key = generated.server.apiKey;
        assert.ok(key && key.length >= 32);
        assert.equal((await generated.api('GET', '/routes', { key: null })).status, 401);
        assert.equal((await generated.api('GET', '/routes', { key: '' })).status, 401);
        assert.equal((await generated.api('GET', '/routes', { key })).status, 200);
      } finally {
        await generated.stop();
      }
    });

    it('allow_admin: other clients get 403', async () => {
      const closed = await start({
        admin: { admin_key: [{ key: KEY, role: 'admin' }], allow_admin: ['10.0.0.0/8', '::2'], admin_listen: { ip: '127.0.0.1', port: 0 } },
      });
      try {
        const r = await closed.api('GET', '/routes');
        assert.equal(r.status, 403);
        assert.match(r.text, /403 Forbidden/);
        assert.equal((await closed.api('HEAD', '/apisix/admin')).status, 403);
      } finally {
        await closed.stop();
      }
      const exact = await start({ admin: { admin_key: [{ key: KEY, role: 'admin' }], allow_admin: ['127.0.0.1'], admin_listen: { ip: '127.0.0.1', port: 0 } } });
      try {
        assert.equal((await exact.api('GET', '/routes')).status, 200);
      } finally {
        await exact.stop();
      }
    });
  });

  describe('headers', () => {
    it('X-API-VERSION and CORS on responses; OPTIONS preflight', async () => {
      let r = await api('GET', '/routes');
      assert.equal(r.headers['x-api-version'], 'v3');
      assert.equal(r.headers['access-control-allow-origin'], '*');
      assert.equal(r.headers['access-control-allow-credentials'], 'true');
      r = await api('GET', '/routes', { key: null });
      assert.equal(r.headers['x-api-version'], 'v3');
      assert.equal(r.headers['access-control-allow-origin'], '*');
      r = await api('OPTIONS', '/routes/1', { key: null });
      assert.equal(r.status, 200);
      assert.equal(r.headers['access-control-allow-methods'], 'POST, GET, PUT, OPTIONS, DELETE, PATCH');
      assert.equal(r.headers['access-control-allow-headers'], '*');

      const noCors = await start({ admin: { admin_key: [{ key: KEY, role: 'admin' }], enable_admin_cors: false, admin_listen: { ip: '127.0.0.1', port: 0 } } });
      try {
        r = await noCors.api('GET', '/routes');
        assert.equal(r.headers['access-control-allow-origin'], undefined);
        assert.equal((await noCors.api('OPTIONS', '/routes')).status, 404);
      } finally {
        await noCors.stop();
      }
    });

    it('admin_api_version other than v3 gives the v2 envelope', async () => {
      const v2 = await start({ admin: { admin_key: [{ key: KEY, role: 'admin' }], admin_api_version: 'default', admin_listen: { ip: '127.0.0.1', port: 0 } } });
      try {
        let r = await v2.api('PUT', '/routes/1', { body: ROUTE_BODY });
        assert.equal(r.status, 201);
        assert.equal(r.headers['x-api-version'], 'v2');
        assert.equal(r.json.action, 'set');
        assert.equal(r.json.node.key, '/apisix/routes/1');
        r = await v2.api('GET', '/routes');
        assert.equal(r.json.node.dir, true);
        assert.equal(r.json.node.nodes.length, 1);
        r = await v2.api('GET', '/routes/1');
        assert.equal(r.json.node.value.uri, '/index.html');
      } finally {
        await v2.stop();
      }
    });
  });

  describe('PATCH (t/admin/routes2.t, routes-array-nodes.t)', () => {
    it('merges objects, replaces arrays, deletes with null', async () => {
      await api('PUT', '/routes/p1', { body: { ...ROUTE_BODY, desc: 'old', labels: { a: '1', b: '2' } } });
      const before = (await api('GET', '/routes/p1')).json;
      let r = await api('PATCH', '/routes/p1', { body: { desc: null, labels: { b: '3', c: '4' }, methods: ['POST'], upstream: { nodes: { '127.0.0.1:8081': 2 } } } });
      assert.equal(r.status, 200);
      assert.equal(r.json.key, '/apisix/routes/p1');
      assert.equal(r.json.value.desc, undefined);
      assert.deepEqual(r.json.value.labels, { a: '1', b: '3', c: '4' });
      assert.deepEqual(r.json.value.methods, ['POST']);
      assert.deepEqual(r.json.value.upstream.nodes, { '127.0.0.1:8080': 1, '127.0.0.1:8081': 2 });
      assert.equal(r.json.value.upstream.type, 'roundrobin');
      assert.equal(r.json.value.create_time, before.value.create_time);
      const after = (await api('GET', '/routes/p1')).json;
      assert.ok(after.modifiedIndex > before.modifiedIndex);
      assert.equal(after.createdIndex, before.createdIndex);

      // An array on the stored side is replaced by an object (array nodes → hash nodes).
      await api('PUT', '/upstreams/arr', { body: { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: 8080, weight: 1 }] } });
      r = await api('PATCH', '/upstreams/arr', { body: { nodes: { '127.0.0.1:8082': 1 } } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.value.nodes, { '127.0.0.1:8082': 1 });
      await api('DELETE', '/upstreams/arr');

      // The patch body may set update_time; create_time is kept.
      r = await api('PATCH', '/routes/p1', { body: { update_time: 1700000000 } });
      assert.equal(r.json.value.update_time, 1700000000);
    });

    it('sub-path PATCH', async () => {
      let r = await api('PATCH', '/routes/p1/methods', { body: ['POST', 'DELETE'] });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.value.methods, ['POST', 'DELETE']);
      assert.notEqual(r.json.value.update_time, 1700000000, 'a sub-path PATCH always refreshes update_time');
      r = await api('PATCH', '/routes/p1/upstream/nodes', { body: { '127.0.0.1:9000': 1 } });
      assert.deepEqual(r.json.value.upstream.nodes, { '127.0.0.1:9000': 1 });
      r = await api('PATCH', '/routes/p1/labels/new', { body: 'v' });
      assert.equal(r.json.value.labels.new, 'v');
      r = await api('PATCH', '/routes/p1/uri/x', { body: 'v' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid sub-path: /uri' }]);
      r = await api('PATCH', '/routes/p1/methods', { body: ['BAD'] });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^invalid configuration: /);
      r = await api('PATCH', '/routes/p1/id', { body: 'other' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id' }]);
      r = await api('PATCH', '/routes/p1', { body: { id: 'other' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'wrong route id' }]);
    });

    it('PATCH errors', async () => {
      let r = await api('PATCH', '/routes/p1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'missing new configuration' }]);
      r = await api('PATCH', '/routes/p1', { body: 'a string' });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid configuration' }]);
      r = await api('PATCH', '/routes/p1', { body: [1] });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid configuration' }]);
      r = await api('PATCH', '/routes/missing', { body: { desc: 'x' } });
      assert.deepEqual([r.status, r.json], [404, { message: 'Key not found' }]);
      r = await api('PATCH', '/routes/p1', { body: { plugins: { 'no-such': {} } } });
      assert.equal(r.status, 400);
      r = await api('PATCH', '/routes/p1', { body: { upstream_id: 'nope' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch upstream info by upstream id [nope], response code: 404' }]);
      assert.deepEqual((await api('GET', '/routes/p1')).json.value.upstream_id, undefined);
      await api('DELETE', '/routes/p1');
    });
  });

  describe('TTL', () => {
    it('?ttl= expires the object', async () => {
      let r = await api('PUT', '/routes/ttl?ttl=1', { body: ROUTE_BODY });
      assert.equal(r.status, 201);
      r = await api('POST', '/upstreams?ttl=1', { body: UPSTREAM_BODY });
      assert.equal(r.status, 201);
      const postedId = r.json.value.id;
      assert.equal((await api('GET', '/routes/ttl')).status, 200);
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && (await api('GET', '/routes/ttl')).status === 200) await sleep(100);
      assert.equal((await api('GET', '/routes/ttl')).status, 404);
      assert.equal((await api('GET', `/upstreams/${postedId}`)).status, 404);
    });
  });

  describe('references (t/admin/routes.t, services.t, upstream.t, consumer-group.t)', () => {
    it('write-time references must exist', async () => {
      let r = await api('PUT', '/routes/1', { body: { service_id: '99999999999999', uri: '/index.html' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch service info by service id [99999999999999], response code: 404' }]);
      r = await api('PUT', '/routes/1', { body: { upstream_id: '99999999999999', uri: '/index.html' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch upstream info by upstream id [99999999999999], response code: 404' }]);
      r = await api('PUT', '/routes/1', { body: { ...ROUTE_BODY, plugin_config_id: 'nope' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch plugin config info by plugin config id [nope], response code: 404' }]);
      r = await api('PUT', '/services/1', { body: { upstream_id: 404 } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch upstream info by upstream id [404], response code: 404' }]);
      r = await api('PUT', '/upstreams/1', { body: { ...UPSTREAM_BODY, tls: { client_cert_id: 9999999 } } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch ssl info by ssl id [9999999], response code: 404' }]);
      r = await api('PUT', '/stream_routes/1', { body: { upstream_id: 'gone' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'failed to fetch upstream info by upstream id [gone], response code: 404' }]);
      assert.equal((await api('GET', '/routes/1')).status, 404);
    });

    it('delete is refused while referenced, unless force=true', async () => {
      assert.equal((await api('PUT', '/upstreams/u1', { body: UPSTREAM_BODY })).status, 201);
      assert.equal((await api('PUT', '/services/s1', { body: { upstream_id: 'u1' } })).status, 201);
      assert.equal((await api('PUT', '/routes/r1', { body: { uri: '/r1', service_id: 's1' } })).status, 201);
      assert.equal((await api('PUT', '/routes/r2', { body: { uri: '/r2', upstream_id: 'u1' } })).status, 201);
      assert.equal((await api('PUT', '/stream_routes/sr1', { body: { service_id: 's1' } })).status, 201);

      let r = await api('DELETE', '/services/s1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this service directly, route [r1] is still using it now' }]);
      r = await api('DELETE', '/upstreams/u1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this upstream, route [r2] is still using it now' }]);
      await api('DELETE', '/routes/r2');
      r = await api('DELETE', '/upstreams/u1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this upstream, service [s1] is still using it now' }]);
      await api('DELETE', '/routes/r1');
      r = await api('DELETE', '/services/s1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this service directly, stream_route [sr1] is still using it now' }]);
      r = await api('DELETE', '/services/s1?force=TRUE');
      assert.equal(r.status, 400, 'only the exact string true forces');
      r = await api('DELETE', '/services/s1?force=true');
      assert.equal(r.status, 200);
      await api('DELETE', '/stream_routes/sr1');

      // traffic-split in a plugin config names the upstream.
      await api('PUT', '/plugin_configs/pc1', { body: { plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'u1', weight: 1 }] }] } } } });
      r = await api('DELETE', '/upstreams/u1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this upstream, plugin in plugin_config [pc1] is still using it now' }]);
      await api('DELETE', '/plugin_configs/pc1');
      assert.equal((await api('DELETE', '/upstreams/u1')).status, 200);

      // Consumer groups, plugin configs.
      await api('PUT', '/consumer_groups/g1', { body: { plugins: {} } });
      await api('PUT', '/consumers/jack', { body: { username: 'jack', group_id: 'g1' } });
      r = await api('DELETE', '/consumer_groups/g1');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this consumer group, consumer [jack] is still using it now' }]);
      await api('DELETE', '/consumers/jack');
      assert.equal((await api('DELETE', '/consumer_groups/g1')).status, 200);

      await api('PUT', '/upstreams/u2', { body: UPSTREAM_BODY });
      await api('PUT', '/plugin_configs/pc2', { body: { plugins: {} } });
      r = await api('PUT', '/routes/r3', { body: { uri: '/r3', upstream_id: 'u2', plugin_config_id: 'pc2' } });
      assert.equal(r.status, 201);
      r = await api('DELETE', '/plugin_configs/pc2');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this plugin config, route [r3] is still using it now' }]);
      await api('DELETE', '/routes/r3');
      await api('DELETE', '/plugin_configs/pc2');
      await api('DELETE', '/upstreams/u2');

      // A stream route used as superior.
      await api('PUT', '/stream_routes/sup', { body: { upstream: UPSTREAM_BODY } });
      await api('PUT', '/stream_routes/sub', { body: { upstream: UPSTREAM_BODY, protocol: { name: 'redis', superior_id: 'sup' } } });
      r = await api('DELETE', '/stream_routes/sup');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'can not delete this stream route directly, stream route [sub] is still using it as superior_id' }]);
      await api('DELETE', '/stream_routes/sub');
      await api('DELETE', '/stream_routes/sup');
    });
  });

  describe('lists: paging and filters (t/admin/filter.t)', () => {
    before(async () => {
      for (let i = 1; i <= 25; i++) {
        const id = `f${String(i).padStart(2, '0')}`;
        const body: Record<string, unknown> = { uri: `/list/${i}`, name: `name-${i}`, upstream: UPSTREAM_BODY };
        if (i % 5 === 0) body.labels = { version: 'v1' };
        if (i === 7) body.uris = ['/extra/seven', '/x'], delete body.uri;
        await api('PUT', `/routes/${id}`, { body });
      }
      await api('PUT', '/upstreams/fu', { body: UPSTREAM_BODY });
      await api('PUT', '/routes/f-up', { body: { uri: '/up', upstream_id: 'fu', name: 'by-upstream' } });
    });
    after(async () => {
      for (let i = 1; i <= 25; i++) await api('DELETE', `/routes/f${String(i).padStart(2, '0')}`);
      await api('DELETE', '/routes/f-up');
      await api('DELETE', '/upstreams/fu');
    });

    it('page_size must be 10..500, plain text', async () => {
      let r = await api('GET', '/routes?page=1&page_size=2');
      assert.equal(r.status, 400);
      assert.equal(r.text, 'page_size must be between 10 and 500\n');
      r = await api('GET', '/routes?page=1&page_size=501');
      assert.equal(r.status, 400);
      // Paging only when both are numeric.
      r = await api('GET', '/routes?page_size=2');
      assert.equal(r.status, 200);
      assert.equal(r.json.list.length, 26);
      r = await api('GET', '/routes?page=x&page_size=2');
      assert.equal(r.status, 200);
    });

    it('pages in createdIndex order with the full total', async () => {
      let r = await api('GET', '/routes?page=1&page_size=10');
      assert.equal(r.json.total, 26);
      assert.equal(r.json.list.length, 10);
      assert.equal(r.json.list[0].key, '/apisix/routes/f01');
      r = await api('GET', '/routes?page=3&page_size=10');
      assert.equal(r.json.list.length, 6);
      assert.equal(r.json.list[5].key, '/apisix/routes/f-up');
      r = await api('GET', '/routes?page=0&page_size=10');
      assert.equal(r.json.list[0].key, '/apisix/routes/f01', 'page < 1 is page 1');
      r = await api('GET', '/routes?page=9&page_size=10');
      assert.deepEqual(r.json.list, []);
      assert.equal(r.json.total, 26);
    });

    it('name, label, uri, filter=', async () => {
      let r = await api('GET', '/routes?name=name-2');
      assert.deepEqual(r.json.list.map((i: any) => i.value.name).sort(), ['name-2', 'name-20', 'name-21', 'name-22', 'name-23', 'name-24', 'name-25']);
      assert.equal(r.json.total, 7);
      r = await api('GET', `/routes?name=${encodeURIComponent('^name-1$')}`);
      assert.equal(r.json.total, 1);
      r = await api('GET', '/routes?label=version');
      assert.equal(r.json.total, 5);
      r = await api('GET', '/routes?label=nope');
      assert.deepEqual(r.json, { list: [], total: 0 });
      r = await api('GET', '/routes?uri=seven');
      assert.equal(r.json.total, 1);
      assert.equal(r.json.list[0].value.id, 'f07');
      r = await api('GET', `/routes?uri=${encodeURIComponent('/list/1')}&label=version`);
      assert.deepEqual(r.json.list.map((i: any) => i.value.id), ['f10', 'f15']);
      r = await api('GET', `/routes?filter=${encodeURIComponent('upstream_id=fu')}`);
      assert.deepEqual(r.json.list.map((i: any) => i.value.id), ['f-up']);
      r = await api('GET', `/routes?filter=${encodeURIComponent('desc=x')}`);
      assert.equal(r.json.total, 26, 'unsupported filter fields are ignored');
      r = await api('GET', `/routes?name=${encodeURIComponent('name-(')}`);
      assert.equal(r.json.total, 0, 'an invalid pattern matches nothing');
      r = await api('GET', '/routes?name=name-&page=2&page_size=10');
      assert.equal(r.json.total, 25);
      assert.equal(r.json.list.length, 10);
      assert.equal(r.json.list[0].key, '/apisix/routes/f11');
    });

    it('empty lists', async () => {
      const r = await api('GET', '/protos');
      assert.deepEqual([r.status, r.json], [200, { list: [], total: 0 }]);
    });
  });

  describe('plugins and schema endpoints', () => {
    it('/plugins/list, /plugins/{name}, /plugins/reload', async () => {
      let r = await api('GET', '/plugins/list');
      assert.deepEqual([r.status, r.json], [200, ['limit-count', 'key-auth', 'traffic-split', 'grpc-transcode', 'http-logger']]);
      r = await api('GET', '/plugins/list?subsystem=stream');
      assert.deepEqual(r.json, []);
      r = await api('GET', '/plugins/list?subsystem=udp');
      assert.equal(r.status, 400);
      assert.equal(r.text, 'invalid subsystem passed\n');
      r = await api('GET', '/plugins/no-such');
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'plugin not found in subsystem http' }]);
      r = await api('GET', '/schema/plugins/no-such');
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'plugin not found in subsystem http' }]);
      r = await api('GET', '/plugins/limit-count?subsystem=x');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'unsupported subsystem: x' }]);
      r = await api('PUT', '/plugins/reload');
      assert.equal(r.status, 200);
      assert.equal(r.text, 'done\n');
      for (const method of ['GET', 'POST', 'DELETE', 'PATCH']) {
        r = await api(method, '/plugins/reload');
        assert.deepEqual([r.status, r.json], [405, { error_msg: `please use PUT method to reload the plugins, ${method} method is not allowed.` }]);
      }
    });

    it('/schema/{name}', async () => {
      for (const name of ['route', 'service', 'upstream', 'consumer', 'credential', 'consumer_group', 'plugin_config', 'global_rule', 'ssl', 'proto', 'stream_route']) {
        const r = await api('GET', `/schema/${name}`);
        assert.equal(r.status, 200, name);
        assert.equal(r.json.type, 'object', name);
      }
      // `/schema/plugins/...` is the plugin schema route, as in APISIX; without a name it is refused.
      let r = await api('GET', '/schema/plugins');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'not found plugin name' }]);
      r = await api('GET', '/schema/foo');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'not found schema: foo' }]);
      assert.equal((await api('GET', '/schema/toString')).status, 400);
    });

    it('POST /schema/validate/{resource}: schema only', async () => {
      let r = await api('POST', '/schema/validate/routes', { body: ROUTE_BODY });
      assert.equal(r.status, 200);
      assert.equal(r.text, '');
      // No reference checks: the upstream does not exist.
      r = await api('POST', '/schema/validate/routes', { body: { uri: '/a', upstream_id: 'nope' } });
      assert.equal(r.status, 200);
      r = await api('POST', '/schema/validate/routes', { body: { ...ROUTE_BODY, methods: ['BAD'] } });
      assert.equal(r.status, 400);
      assert.ok(r.json.error_msg && !r.json.error_msg.startsWith('invalid configuration'));
      r = await api('POST', '/schema/validate/upstreams', { body: UPSTREAM_BODY });
      assert.equal(r.status, 200);
      r = await api('POST', '/schema/validate/consumers', { body: { username: 'ok' } });
      assert.equal(r.status, 200);
      r = await api('POST', '/schema/validate/foo', { body: {} });
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'Unsupported resource type: foo' }]);
    });

    it('POST /configs/validate (§10)', async () => {
      let r = await api('POST', '/configs/validate', { body: { routes: [{ id: 'r1', uri: '/a', upstream_id: 'not-checked' }], upstreams: [{ id: 'u1', ...UPSTREAM_BODY }], routes_conf_version: 3 } });
      assert.deepEqual([r.status, r.json], [200, {}]);
      r = await api('POST', '/configs/validate', {
        body: {
          routes: [{ id: 'r1', uri: '/a', upstream_id: 'x' }, { id: 'r1', uri: '/b', upstream_id: 'x' }, { id: 'r3', uri: 5 }],
          consumers: [{ username: 'jack' }, { username: 'jack' }],
          upstreams_conf_version: 'abc',
        },
      });
      assert.equal(r.status, 400);
      assert.equal(r.json.error_msg, 'Configuration validation failed');
      const errors = r.json.errors as Array<Record<string, unknown>>;
      assert.ok(errors.some((e) => e.resource_type === 'routes' && e.index === 1 && e.error === 'found duplicate id r1 in routes'));
      assert.ok(errors.some((e) => e.resource_type === 'routes' && e.index === 2 && e.resource_id === 'r3' && String(e.error).startsWith('invalid routes at index 2, err: invalid configuration')));
      assert.ok(errors.some((e) => e.resource_type === 'consumers' && e.error === 'found duplicate username jack in consumers'));
      assert.ok(errors.some((e) => e.resource_type === 'upstreams' && e.index === undefined && e.error === 'upstreams_conf_version must be a number, got string'));

      r = await api('POST', '/configs/validate', { raw: 'routes:\n  - id: y1\n    uri: /y\n    upstream_id: u\n', headers: { 'Content-Type': 'application/yaml' } });
      assert.deepEqual([r.status, r.json], [200, {}]);
      r = await api('POST', '/configs/validate', { raw: 'routes: [unclosed', headers: { 'Content-Type': 'application/yaml' } });
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid request body: invalid yaml request body' }]);
      r = await api('POST', '/configs/validate');
      assert.deepEqual([r.status, r.json], [400, { error_msg: 'invalid request body: empty request body' }]);
      r = await api('POST', '/configs/validate', { raw: '{bad' });
      assert.equal(r.status, 400);
      assert.match(r.json.error_msg, /^invalid request body: Expected object key string/);
      r = await api('GET', '/configs/validate');
      assert.deepEqual([r.status, r.json], [404, { error_msg: 'Unsupported resource type: configs' }]);
      // Nothing was written.
      assert.equal((await api('GET', '/routes/r1')).status, 404);
    });
  });
});

describe('admin API: store failures', () => {
  /** The embedded store behind a switch that makes it fail as an unreachable etcd would. */
  class FlakyStore implements ConfigStore {
    down = false;
    beforePut?: () => Promise<void>;
    readonly inner: EmbeddedStore;
    constructor(inner: EmbeddedStore) {
      this.inner = inner;
    }
    get name() { return this.inner.name; }
    get healthy() { return !this.down; }
    private gate() { if (this.down) throw new StoreUnavailableError('connection refused'); }
    async get(key: string) { this.gate(); return this.inner.get(key); }
    async list(prefix: string) { this.gate(); return this.inner.list(prefix); }
    async put(key: string, value: unknown, options?: PutOptions) {
      this.gate();
      const hook = this.beforePut;
      this.beforePut = undefined;
      if (hook) await hook();
      return this.inner.put(key, value, options);
    }
    async delete(key: string) { this.gate(); return this.inner.delete(key); }
    async nextId() { this.gate(); return this.inner.nextId(); }
    watch(...args: Parameters<ConfigStore['watch']>) { return this.inner.watch(...args); }
    close() { return this.inner.close(); }
  }

  it('an unreachable store gives 503 with its error; a concurrent change fails the PATCH', async () => {
    let flaky!: FlakyStore;
    const inst = await start({}, (s) => (flaky = new FlakyStore(s)));
    try {
      assert.equal((await inst.api('PUT', '/routes/1', { body: ROUTE_BODY })).status, 201);
      flaky.down = true;
      for (const [method, path, body] of [['GET', '/routes/1'], ['GET', '/routes'], ['PUT', '/routes/2', ROUTE_BODY], ['POST', '/routes', ROUTE_BODY], ['DELETE', '/routes/1'], ['PATCH', '/routes/1', { desc: 'x' }]] as const) {
        const r = await inst.api(method, path, { body });
        assert.deepEqual([r.status, r.json], [503, { error_msg: 'connection refused' }], `${method} ${path}`);
      }
      flaky.down = false;

      flaky.beforePut = async () => {
        await inst.store.put('/apisix/routes/1', { ...ROUTE_BODY, id: '1', desc: 'concurrent' });
      };
      const r = await inst.api('PATCH', '/routes/1', { body: { desc: 'mine' } });
      assert.deepEqual([r.status, r.json], [503, { error_msg: 'value changed before overwritten' }]);
      assert.equal((await inst.api('GET', '/routes/1')).json.value.desc, 'concurrent');
    } finally {
      await inst.stop();
    }
  });

  it('a closed store gives 503, not a crash', async () => {
    const inst = await start();
    await inst.store.close();
    try {
      const r = await inst.api('GET', '/routes');
      assert.equal(r.status, 503);
      assert.match(r.json.error_msg, /closed/);
    } finally {
      await inst.server.close();
    }
  });
});
