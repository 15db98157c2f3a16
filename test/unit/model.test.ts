import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  ADMIN_KIND_NAMES,
  ADMIN_KINDS,
  adminKindName,
  checkCredentialId,
  checkId,
  KIND_NAMES,
  keyOf,
  kindOfKey,
  RESOURCE_KINDS,
  SCHEMA_NAMES,
  SECRET_SCHEMAS,
  validateAdminResource,
  validateAdminSchema,
  validatePluginsList,
  validateResource,
  type AdminKind,
} from '../../src/model/index.ts';

/** A PEM block whose body is valid base64 (enough for the sanity check, not a real certificate). */
function pem(label: string, bytes = 200): string {
  const body = Buffer.alloc(bytes, 0x5a).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}
const CERT = pem('CERTIFICATE');
const KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const RSA_KEY = pem('RSA PRIVATE KEY', 600);
const UPSTREAM = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };
const ID_ERROR = 'invalid configuration: property "id" validation failed: object matches none of the required';

function valid(kind: AdminKind, id: string | undefined, value: unknown): void {
  assert.equal(validateAdminResource(kind, id, value), undefined, `${kind}/${id} ${JSON.stringify(value).slice(0, 120)}`);
}

describe('model: existing exports', () => {
  it('keeps the data-plane kinds and names', () => {
    assert.deepEqual([...RESOURCE_KINDS], ['routes', 'services', 'upstreams']);
    assert.deepEqual(KIND_NAMES, { routes: 'route', services: 'service', upstreams: 'upstream' });
  });

  it('validateAdminResource gives the same text as validateResource for routes/services/upstreams', () => {
    const cases: [AdminKind & ('routes' | 'services' | 'upstreams'), unknown][] = [
      ['routes', { uri: '/a', uris: ['/b'], upstream: UPSTREAM }],
      ['routes', { uri: '/a', host: 'a.com', hosts: ['b.com'], upstream: UPSTREAM }],
      ['routes', { uri: '/a', upstream: { nodes: { a: 1 }, service_name: 's', discovery_type: 'dns' } }],
      ['routes', { uri: '/a', upstream: UPSTREAM, bogus: 1 }],
      ['routes', { uri: '/a', timeout: { connect: 1, read: 1 }, upstream: UPSTREAM }],
      ['services', { upstream: { nodes: { '::1:80': 1 } } }],
      ['upstreams', { nodes: {}, service_name: 's', discovery_type: 'dns' }],
      ['upstreams', { nodes: {}, pass_host: 'rewrite' }],
    ];
    for (const [kind, value] of cases) {
      const text = validateResource(kind, value);
      assert.ok(text);
      assert.equal(validateAdminResource(kind, undefined, value), text);
    }
    assert.equal(
      validateResource('routes', { uri: '/a', uris: ['/b'], upstream: UPSTREAM }),
      'invalid configuration: allOf 1 failed: value should match only one schema, but matches both schemas 1 and 2',
    );
    assert.equal(
      validateResource('upstreams', { nodes: {}, service_name: 's', discovery_type: 'dns' }),
      'invalid configuration: value should match only one schema: exactly one of "nodes" and "service_name"+"discovery_type" is required',
    );
    assert.equal(validateResource('routes', { uri: '/a', upstream: UPSTREAM, bogus: 1 }), 'invalid configuration: additional properties forbidden, found bogus');
    assert.equal(validateResource('routes', { uri: '/a', timeout: { connect: 1, read: 1 }, upstream: UPSTREAM }), 'invalid configuration: property "timeout" validation failed: property "send" is required');
  });

  it('checks a body without id against the key id, as APISIX sets conf.id first', () => {
    valid('routes', '1', { uri: '/a', upstream: UPSTREAM });
    assert.match(validateAdminResource('routes', 'bad$id', { uri: '/a', upstream: UPSTREAM })!, /^invalid configuration: property "id" validation failed/);
    valid('plugin_configs', '1', { plugins: {} });
    assert.equal(validateAdminResource('plugin_configs', undefined, { plugins: {} }), 'invalid configuration: property "id" is required');
  });
});

describe('model: kind names', () => {
  it('has a schema word for every admin kind', () => {
    assert.deepEqual([...ADMIN_KINDS], [
      'routes', 'services', 'upstreams', 'consumers', 'consumer_groups', 'plugin_configs', 'global_rules',
      'plugin_metadata', 'ssls', 'secrets', 'stream_routes', 'protos',
    ]);
    assert.equal(ADMIN_KIND_NAMES.consumer_groups, 'consumer group');
    assert.equal(ADMIN_KIND_NAMES.plugin_configs, 'plugin config');
    assert.equal(ADMIN_KIND_NAMES.global_rules, 'global rule');
    assert.equal(ADMIN_KIND_NAMES.plugin_metadata, 'plugin_metadata');
    assert.equal(ADMIN_KIND_NAMES.stream_routes, 'stream route');
    assert.equal(ADMIN_KIND_NAMES.ssls, 'ssl');
    for (const kind of ADMIN_KINDS) assert.equal(typeof ADMIN_KIND_NAMES[kind], 'string');
  });

  it('names credentials under consumers', () => {
    assert.equal(adminKindName('consumers', 'jack'), 'consumer');
    assert.equal(adminKindName('consumers', 'jack/credentials/c1'), 'credential');
    assert.equal(adminKindName('routes', '1'), 'route');
  });
});

describe('model: consumers and credentials', () => {
  it('validates consumers', () => {
    valid('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: 'k' } }, group_id: 'g1', desc: 'd', labels: { team: 'a' } });
    assert.equal(validateAdminResource('consumers', 'jack', { plugins: {} }), 'invalid configuration: property "username" is required');
    assert.equal(
      validateAdminResource('consumers', 'jack', { username: 'ja ck' }),
      'invalid configuration: property "username" validation failed: failed to match pattern "^[a-zA-Z0-9_\\\\-]+$" with "ja ck"',
    );
    assert.equal(validateAdminResource('consumers', 'jack', { username: 'jack', name: 'x' }), 'invalid configuration: additional properties forbidden, found name');
  });

  it('dispatches `{username}/credentials/{id}` to the credential schema', () => {
    valid('consumers', 'jack/credentials/c1', { name: 'main', plugins: { 'key-auth': { key: 'k' } } });
    valid('consumers', 'jack/credentials/c1', { id: 'c1', plugins: {} });
    valid('consumers', 'jack/credentials/c1', { id: 'jack/credentials/c1' });
    // username is a consumer field, not a credential one
    assert.equal(validateAdminResource('consumers', 'jack/credentials/c1', { username: 'jack' }), 'invalid configuration: additional properties forbidden, found username');
    assert.equal(
      validateAdminResource('consumers', 'jack/credentials/c1', { plugins: { 'key-auth': {}, 'basic-auth': {} } }),
      'invalid configuration: property "plugins" validation failed: expect object to have at most 1 properties',
    );
    // and the consumer schema still applies to the consumer itself
    assert.equal(validateAdminResource('consumers', 'jack', { plugins: {} }), 'invalid configuration: property "username" is required');
  });
});

describe('model: consumer groups, plugin configs, global rules, plugin metadata', () => {
  it('requires id and plugins', () => {
    valid('consumer_groups', 'g1', { id: 'g1', name: 'gold', desc: 'd', labels: { tier: 'gold' }, plugins: { 'limit-count': {} } });
    valid('plugin_configs', '1', { id: 1, name: '', plugins: {} });
    valid('global_rules', '1', { id: '1', plugins: { prometheus: {} } });
    assert.equal(validateAdminResource('consumer_groups', 'g1', { id: 'g1' }), 'invalid configuration: property "plugins" is required');
    assert.equal(validateAdminResource('global_rules', '1', { plugins: {} , name: 'x' }), 'invalid configuration: additional properties forbidden, found name');
    assert.equal(validateAdminResource('consumer_groups', 'g1', { plugins: {}, name: '' }), 'invalid configuration: property "name" validation failed: string too short, expected at least 1, got 0');
    assert.equal(validateAdminResource('plugin_configs', '1', { plugins: [] }), 'invalid configuration: property "plugins" validation failed: wrong type: expected object, got table');
  });

  it('accepts any object as plugin metadata', () => {
    valid('plugin_metadata', 'http-logger', { log_format: { host: '$host' } });
    valid('plugin_metadata', 'http-logger', {});
    assert.equal(validateAdminResource('plugin_metadata', 'http-logger', ['x']), 'invalid configuration: wrong type: expected object, got table');
  });
});

describe('model: ssl', () => {
  it('accepts server and client certificates', () => {
    valid('ssls', '1', { cert: CERT, key: KEY, sni: 'test.com' });
    valid('ssls', '1', { cert: CERT, key: RSA_KEY, snis: ['*.test.com', 'test.com'], ssl_protocols: ['TLSv1.2', 'TLSv1.3'], status: 0 });
    valid('ssls', '1', { type: 'client', cert: CERT, key: KEY });
    valid('ssls', '1', { cert: CERT, key: KEY, sni: 't.com', certs: [CERT], keys: [KEY], client: { ca: CERT, depth: 2 } });
  });

  it('requires sni or snis for server certificates, and cert + key always', () => {
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: KEY }), 'invalid configuration: then clause did not match');
    assert.equal(validateAdminResource('ssls', '1', { key: KEY, snis: ['a.com'] }), 'invalid configuration: then clause did not match');
    assert.equal(validateAdminResource('ssls', '1', { type: 'client', cert: CERT }), 'invalid configuration: else clause did not match');
    assert.equal(
      validateAdminResource('ssls', '1', { cert: CERT, key: KEY, sni: 'a.com', snis: ['b.com'] }),
      'invalid configuration: then clause did not match',
    );
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: KEY, snis: [] }), 'invalid configuration: property "snis" validation failed: expect array to have at least 1 items');
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: KEY, sni: 'a.com', name: 'x' }), 'invalid configuration: additional properties forbidden, found name');
  });

  it('checks that cert and key look like PEM, as apisix/ssl.lua reports', () => {
    assert.equal(validateAdminResource('ssls', '1', { cert: 'x'.repeat(200), key: KEY, sni: 'a.com' }), 'failed to parse cert: PEM_read_bio_X509_AUX() failed');
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: 'y'.repeat(100), sni: 'a.com' }), 'failed to parse key: PEM_read_bio_PrivateKey() failed');
    const badBody = CERT.replace('WlpaWlpa', 'W!paWlpa');
    assert.equal(validateAdminResource('ssls', '1', { cert: badBody, key: KEY, sni: 'a.com' }), 'failed to parse cert: PEM_read_bio_X509_AUX() failed');
    assert.equal(validateAdminResource('ssls', '1', { cert: pem('PUBLIC KEY'), key: KEY, sni: 'a.com' }), 'failed to parse cert: PEM_read_bio_X509_AUX() failed');
    assert.equal(
      validateAdminResource('ssls', '1', { cert: CERT, key: KEY, sni: 't.com', certs: [CERT, 'z'.repeat(130)], keys: [KEY, KEY] }),
      'failed to handle cert-key pair[2]: failed to parse cert: PEM_read_bio_X509_AUX() failed',
    );
    assert.equal(
      validateAdminResource('ssls', '1', { cert: CERT, key: KEY, sni: 'a.com', client: { ca: 'q'.repeat(130) } }),
      'failed to validate client_cert: failed to parse cert: PEM_read_bio_X509_AUX() failed',
    );
  });

  it('skips the PEM check for $secret:// and $env:// references', () => {
    const ref = (s: string) => s + '/'.repeat(140);
    valid('ssls', '1', { cert: ref('$secret://vault/1/cert'), key: ref('$secret://vault/1/key'), sni: 'a.com' });
    valid('ssls', '1', { cert: ref('$env://CERT'), key: KEY, sni: 'a.com' });
    valid('ssls', '1', { cert: CERT, key: KEY, sni: 'a.com', certs: [ref('$ENV://C2')], keys: ['k'.repeat(70)] });
  });

  it('requires as many keys as certs (server certificates)', () => {
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: KEY, sni: 'a.com', certs: [CERT], keys: [] }), 'mismatched number of certs and keys');
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: KEY, sni: 'a.com', certs: [CERT] }), 'mismatched number of certs and keys');
  });

  it('decrypts stored keys when given a decryptor', () => {
    const stored = Buffer.from(KEY).toString('base64');
    const decryptKey = (s: string) => (s === stored ? KEY : undefined);
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: stored, sni: 'a.com' }), 'failed to parse key: PEM_read_bio_PrivateKey() failed');
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: stored, sni: 'a.com' }, { decryptKey }), undefined);
    assert.equal(validateAdminResource('ssls', '1', { cert: CERT, key: 'e'.repeat(80), sni: 'a.com' }, { decryptKey }), 'failed to decrypt previous encrypted key');
  });
});

describe('model: secrets', () => {
  it('chooses the schema from the manager in the id', () => {
    valid('secrets', 'vault/1', { uri: 'http://127.0.0.1:8200', prefix: 'kv/apisix', token: 'root', namespace: 'ns' });
    valid('secrets', 'aws/1', { access_key_id: 'a', secret_access_key: 's', region: 'eu-west-1', endpoint_url: 'https://sm.local:4566' });
    valid('secrets', 'gcp/1', { auth_config: { client_email: 'a@b.c', private_key: 'k', project_id: 'p' } });
    valid('secrets', 'gcp/2', { auth_file: '/etc/gcp.json', ssl_verify: false });
    // the same body is valid for one manager and not another
    assert.equal(validateAdminResource('secrets', 'aws/1', { uri: 'http://127.0.0.1:8200', prefix: 'kv', token: 't' }), 'invalid configuration: property "access_key_id" is required');
  });

  it('reports APISIX errors', () => {
    assert.equal(validateAdminResource('secrets', 'foo/1', { token: 't' }), 'invalid secret manager: foo');
    assert.equal(validateAdminResource('secrets', undefined, { token: 't' }), 'missing secret type');
    assert.equal(validateAdminResource('secrets', 'vault/1', { uri: 'http://127.0.0.1:8200', prefix: 'kv' }), 'invalid configuration: property "token" is required');
    assert.match(validateAdminResource('secrets', 'vault/1', { uri: '127.0.0.1:8200', prefix: 'kv', token: 't' })!, /^invalid configuration: property "uri" validation failed: failed to match pattern/);
    assert.equal(
      validateAdminResource('secrets', 'gcp/1', { auth_file: 'f', auth_config: { client_email: 'a', private_key: 'k', project_id: 'p' } }),
      'invalid configuration: value should match only one schema: exactly one of "auth_config" and "auth_file" is required',
    );
    assert.equal(validateAdminResource('secrets', 'gcp/1', { auth_config: { client_email: 'a' } }), 'invalid configuration: property "auth_config" validation failed: property "private_key" is required');
  });

  it('takes the manager from the body id when no id is given', () => {
    valid('secrets', undefined, { id: 'vault/1', uri: 'http://v:8200', prefix: 'kv', token: 't' });
  });
});

describe('model: stream routes and protos', () => {
  it('validates stream routes', () => {
    valid('stream_routes', '1', { server_addr: '127.0.0.1', server_port: 9100, remote_addr: '10.0.0.0/8', upstream: { nodes: { '127.0.0.1:6379': 1 } } });
    valid('stream_routes', '2', { sni: '*.test.com', upstream_id: 1, plugins: {} });
    valid('stream_routes', '3', {
      upstream_id: 1,
      protocol: { name: 'redis', superior_id: 1, conf: { faults: [] }, metric: { enable: true }, logger: [{ name: 'syslog', filter: [], conf: {} }] },
    });
    assert.equal(validateAdminResource('stream_routes', '1', { server_port: 70000 }), 'invalid configuration: property "server_port" validation failed: expected 70000 to be at most 65535');
    assert.equal(validateAdminResource('stream_routes', '1', { remote_addr: 'nope' }), 'invalid configuration: property "remote_addr" validation failed: object matches none of the required');
    assert.equal(validateAdminResource('stream_routes', '1', { protocol: {} }), 'invalid configuration: property "protocol" validation failed: property "name" is required');
    assert.equal(validateAdminResource('stream_routes', '1', { uri: '/a' }), 'invalid configuration: additional properties forbidden, found uri');
    assert.equal(
      validateAdminResource('stream_routes', '1', { protocol: { name: 'redis', logger: [{ name: 'syslog' }] } }),
      'invalid configuration: property "protocol" validation failed: property "logger" validation failed: failed to validate item 1: property "conf" is required when "name" is set',
    );
  });

  it('applies the upstream rules to inline upstreams and refuses a self superior', () => {
    assert.equal(validateAdminResource('stream_routes', '1', { upstream: { nodes: { '::1:6379': 1 } } }), "IPv6 address must be enclosed with '[' and ']'");
    assert.equal(validateAdminResource('stream_routes', '1', { upstream: { type: 'chash', nodes: { '127.0.0.1:1': 1 } } }), 'missing key');
    assert.equal(validateAdminResource('stream_routes', '7', { protocol: { name: 'redis', superior_id: 7 } }), 'stream route can not set itself as superior_id');
  });

  it('validates protos', () => {
    valid('protos', '1', { content: 'syntax = "proto3"; package helloworld;', name: 'hello', labels: { v: '1' } });
    assert.equal(validateAdminResource('protos', '1', {}), 'invalid configuration: property "content" is required');
    assert.equal(validateAdminResource('protos', '1', { content: '' }), 'invalid configuration: property "content" validation failed: string too short, expected at least 1, got 0');
  });

  it('validates the plugins list', () => {
    assert.equal(validatePluginsList([{ name: 'key-auth' }, { name: 'ip-restriction', stream: true }]), undefined);
    assert.equal(validatePluginsList([{ stream: true }]), 'invalid configuration: failed to validate item 1: property "name" is required');
    assert.equal(validatePluginsList({}), 'invalid configuration: wrong type: expected array, got table');
  });
});

describe('model: schema-only validation', () => {
  it('skips the semantic checks', () => {
    assert.equal(validateAdminSchema('ssls', '1', { cert: 'x'.repeat(200), key: 'y'.repeat(100), sni: 'a.com' }), undefined);
    assert.equal(validateAdminSchema('upstreams', '1', { nodes: {}, pass_host: 'rewrite' }), undefined);
    assert.equal(validateAdminSchema('secrets', 'foo/1', {}), 'invalid secret manager: foo');
  });
});

describe('model: schemas served by /apisix/admin/schema/{name}', () => {
  it('lists the core schemas', () => {
    assert.deepEqual(Object.keys(SCHEMA_NAMES).sort(), [
      'consumer', 'consumer_group', 'credential', 'global_rule', 'plugin_config', 'plugins', 'proto', 'route', 'service', 'ssl',
      'stream_route', 'upstream',
    ]);
    // plain JSON: survives a round trip unchanged
    for (const schema of Object.values(SCHEMA_NAMES)) assert.deepEqual(JSON.parse(JSON.stringify(schema)), schema);
  });

  it('describes every field', () => {
    const missing: string[] = [];
    const walk = (schema: unknown, path: string): void => {
      if (schema === null || typeof schema !== 'object') return;
      if (Array.isArray(schema)) return schema.forEach((s, i) => walk(s, `${path}[${i}]`));
      const s = schema as Record<string, unknown>;
      for (const group of ['properties', 'patternProperties'] as const) {
        const props = s[group] as Record<string, Record<string, unknown>> | undefined;
        if (!props || typeof props !== 'object') continue;
        for (const [name, sub] of Object.entries(props)) {
          if (typeof sub.description !== 'string' || sub.description === '') missing.push(`${path}.${name}`);
          walk(sub, `${path}.${name}`);
        }
      }
      for (const key of ['items', 'anyOf', 'oneOf', 'allOf', 'then', 'else']) walk(s[key], `${path}/${key}`);
    };
    for (const [name, schema] of Object.entries({ ...SCHEMA_NAMES, ...SECRET_SCHEMAS })) walk(schema, name);
    assert.deepEqual(missing, []);
  });
});

describe('model: ids', () => {
  it('accepts APISIX ids', () => {
    for (const id of ['1', 'a', 'route-1_v2.0', 'x'.repeat(64), 1, 99999999]) assert.equal(checkId(id), undefined, String(id));
  });

  it('refuses everything else with APISIX text', () => {
    for (const id of ['', 'x'.repeat(65), 'a$', 'a/b', 'a b', 'é', 0, -100, 1.5, null, undefined, {}, ['1'], true]) {
      assert.equal(checkId(id), ID_ERROR, JSON.stringify(id));
    }
  });

  it('accepts the long credential form only as a credential id', () => {
    assert.equal(checkCredentialId('jack/credentials/c1'), undefined);
    assert.equal(checkCredentialId('c1'), undefined);
    assert.equal(checkId('jack/credentials/c1'), ID_ERROR);
    assert.equal(checkCredentialId('a/credentials/'), ID_ERROR);
    assert.equal(checkCredentialId('ja.ck/credentials/c1'), ID_ERROR);
  });
});

describe('model: etcd keys', () => {
  const P = '/apisix';
  const pairs: [AdminKind, string, string][] = [
    ['routes', '1', '/apisix/routes/1'],
    ['services', '00000000000000000123', '/apisix/services/00000000000000000123'],
    ['consumers', 'jack', '/apisix/consumers/jack'],
    ['consumers', 'jack/credentials/c1', '/apisix/consumers/jack/credentials/c1'],
    ['secrets', 'vault/1', '/apisix/secrets/vault/1'],
    ['plugin_metadata', 'http-logger', '/apisix/plugin_metadata/http-logger'],
    ['ssls', '1', '/apisix/ssls/1'],
    ['stream_routes', '1', '/apisix/stream_routes/1'],
    ['protos', '1', '/apisix/protos/1'],
    ['consumer_groups', 'g', '/apisix/consumer_groups/g'],
    ['plugin_configs', '1', '/apisix/plugin_configs/1'],
    ['global_rules', '1', '/apisix/global_rules/1'],
    ['upstreams', '1', '/apisix/upstreams/1'],
  ];

  it('maps both ways', () => {
    for (const [kind, id, key] of pairs) {
      assert.equal(keyOf(kind, id, P), key);
      assert.deepEqual(kindOfKey(key, P), { kind, id });
    }
  });

  it('honours the prefix', () => {
    assert.equal(keyOf('routes', '1', '/custom/'), '/custom/routes/1');
    assert.deepEqual(kindOfKey('/custom/routes/1', '/custom'), { kind: 'routes', id: '1' });
    assert.deepEqual(kindOfKey('/custom/routes/1', '/custom/'), { kind: 'routes', id: '1' });
    assert.equal(kindOfKey('/apisix/routes/1', '/custom'), undefined);
    assert.equal(kindOfKey('/apisixx/routes/1', '/apisix'), undefined);
  });

  it('ignores keys that are not resources', () => {
    for (const key of [
      '/apisix/gen_id',
      '/apisix/plugins',
      '/apisix/routes/',
      '/apisix/routes',
      '/apisix/consumers/',
      '/apisix/consumers/jack/credentials/',
      '/apisix/consumers/jack/credentials',
      '/apisix/consumers/jack/other/c1',
      '/apisix/secrets/vault',
      '/apisix/secrets/vault/',
      '/apisix/secrets/vault/1/2',
      '/apisix/services/1/graphql_cost_decorations/2',
      '/apisix/routes/1/2',
      '/apisix/unknown/1',
      '/apisix/data_plane/server_info/x',
    ]) {
      assert.equal(kindOfKey(key, P), undefined, key);
    }
  });
});
