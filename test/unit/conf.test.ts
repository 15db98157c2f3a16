import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  DEFAULT_CONFIG,
  adminEnabled,
  httpListeners,
  loadNodeConfig,
  parseDurationSeconds,
  parseNodeConfig,
  parseSizeBytes,
  substituteEnvInText,
  substituteEnvInValue,
  workerCount,
} from '../../src/conf/index.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Parses with an empty environment so the host's variables never leak in. */
const parse = (text: string, env: NodeJS.ProcessEnv = {}) => parseNodeConfig(text, env);

function rejects(text: string, message: string | RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(() => parse(text, env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

describe('defaults', () => {
  test('an empty file yields the built-in defaults', () => {
    for (const text of ['', '# only a comment\n', '---\n']) {
      const c = parse(text);
      assert.deepEqual(c, DEFAULT_CONFIG);
      assert.notEqual(c, DEFAULT_CONFIG, 'the result is a copy');
    }
  });

  test('apisix defaults mirror apisix/cli/config.lua', () => {
    const a = DEFAULT_CONFIG.apisix;
    assert.deepEqual(a.node_listen, [9080]);
    assert.equal(a.enable_ipv6, true);
    assert.equal(a.enable_http2, true);
    assert.equal(a.enable_admin, true);
    assert.equal(a.enable_dev_mode, false);
    assert.deepEqual(a.router, { http: 'radixtree_host_uri', ssl: 'radixtree_sni' });
    assert.equal(a.proxy_mode, 'http');
    assert.equal(a.ssl.enable, true);
    assert.deepEqual(a.ssl.listen, [{ port: 9443, enable_http3: false }]);
    assert.equal(a.ssl.ssl_protocols, 'TLSv1.2 TLSv1.3');
    assert.match(a.ssl.ssl_ciphers, /^ECDHE-ECDSA-AES128-GCM-SHA256:.*:DHE-RSA-AES256-GCM-SHA384$/);
    assert.deepEqual(a.status, { ip: '127.0.0.1', port: 7085 }, 'Causeway difference: status on by default');
    assert.deepEqual(a.control, { ip: '127.0.0.1', port: 9090 });
    assert.equal(a.proxy_protocol, undefined);
    assert.equal(a.stream_proxy, undefined);
    assert.equal(a.ssl.fallback_sni, undefined);
    assert.deepEqual(a.data_encryption?.keyring, ['qeddd145sfvddff3', 'edd1c9f0985e76a2']);
    assert.equal(a.max_post_args_readable_size, 64);
  });

  test('nginx_config, plugins and deployment defaults', () => {
    const n = DEFAULT_CONFIG.nginx_config;
    assert.equal(n.worker_processes, 'auto');
    assert.equal(n.worker_shutdown_timeout, '240s');
    assert.equal(n.event.worker_connections, 10620);
    assert.equal(n.http.keepalive_timeout, '60s');
    assert.equal(n.http.send_timeout, '10s');
    assert.equal(n.http.client_max_body_size, 0);
    assert.deepEqual(n.http.real_ip_from, ['127.0.0.1', 'unix:']);
    assert.equal(n.http.upstream.keepalive, 320);
    assert.equal(n.http.lua_shared_dict?.['worker-events'], '10m');
    assert.match(n.http.access_log_format, /"\$apisix_request_id"$/);
    // APISIX's default list, highest priority first
    assert.equal(DEFAULT_CONFIG.plugins[0], 'real-ip');
    assert.ok(DEFAULT_CONFIG.plugins.includes('key-auth') && DEFAULT_CONFIG.plugins.includes('limit-count'));
    assert.ok(!DEFAULT_CONFIG.plugins.includes('opentelemetry'), 'not enabled by default in APISIX');
    assert.equal(DEFAULT_CONFIG.plugin_attr.prometheus.export_uri, '/apisix/prometheus/metrics');
    const d = DEFAULT_CONFIG.deployment;
    assert.equal(d.role, 'traditional');
    assert.deepEqual(d.role_traditional, { config_provider: 'embedded' }, 'Causeway difference: embedded store');
    assert.deepEqual(d.admin?.admin_listen, { ip: '0.0.0.0', port: 9180 });
    assert.deepEqual(d.admin?.allow_admin, ['127.0.0.0/24']);
    assert.deepEqual(d.admin?.admin_key, [{ name: 'admin', key: '', role: 'admin' }]);
    assert.deepEqual(d.etcd?.host, ['http://127.0.0.1:2379']);
    assert.equal(d.etcd?.prefix, '/apisix');
    assert.equal(d.etcd?.timeout, 30);
    assert.equal(d.etcd?.watch_timeout, 50);
  });

  test('DEFAULT_CONFIG is frozen and parsing never mutates it', () => {
    assert.ok(Object.isFrozen(DEFAULT_CONFIG.apisix.router));
    const c = parse('apisix:\n  router:\n    http: radixtree_uri\n  node_listen: [1, 2]\n');
    assert.equal(c.apisix.router.http, 'radixtree_uri');
    assert.equal(DEFAULT_CONFIG.apisix.router.http, 'radixtree_host_uri');
    assert.deepEqual(DEFAULT_CONFIG.apisix.node_listen, [9080]);
  });
});

describe('node_listen and listeners', () => {
  test('default: 0.0.0.0 and :: on 9080', () => {
    assert.deepEqual(httpListeners(parse('')), [{ ip: '0.0.0.0', port: 9080 }, { ip: '::', port: 9080 }]);
  });

  test('a bare port number', () => {
    const c = parse('apisix:\n  node_listen: 8080\n  enable_ipv6: false\n');
    assert.equal(c.apisix.node_listen, 8080);
    assert.deepEqual(httpListeners(c), [{ ip: '0.0.0.0', port: 8080 }]);
  });

  test('a list of ports and {ip, port} objects, de-duplicated', () => {
    const c = parse(`
apisix:
  enable_ipv6: false
  node_listen:
    - 9080
    - port: 9081
    - ip: 127.0.0.2
      port: 9082
    - 9080
`);
    assert.deepEqual(httpListeners(c), [
      { ip: '0.0.0.0', port: 9080 },
      { ip: '0.0.0.0', port: 9081 },
      { ip: '127.0.0.2', port: 9082 },
    ]);
  });

  test('an object without port listens on 9080, as in APISIX', () => {
    const c = parse('apisix:\n  enable_ipv6: false\n  node_listen:\n    - ip: 127.0.0.1\n');
    assert.deepEqual(httpListeners(c), [{ ip: '127.0.0.1', port: 9080 }]);
  });

  test('enable_ipv6 adds :: for each listener without an explicit ip', () => {
    const c = parse('apisix:\n  node_listen: [9080, {port: 9081}, {ip: 127.0.0.1, port: 9082}]\n');
    assert.deepEqual(httpListeners(c), [
      { ip: '0.0.0.0', port: 9080 },
      { ip: '::', port: 9080 },
      { ip: '0.0.0.0', port: 9081 },
      { ip: '::', port: 9081 },
      { ip: '127.0.0.1', port: 9082 },
    ]);
    const off = parse('apisix:\n  enable_ipv6: false\n  node_listen: 9080\n');
    assert.deepEqual(httpListeners(off).map((l) => l.ip), ['0.0.0.0']);
  });

  test('bad ports name the item path', () => {
    rejects('apisix:\n  node_listen: [9080, {port: 70000}]\n',
      'apisix.node_listen[1].port: must be an integer between 1 and 65535');
    rejects('apisix:\n  node_listen: [9080, 0]\n',
      'apisix.node_listen[1]: must be a port number or an {ip, port} object');
    rejects('apisix:\n  node_listen: 0\n',
      'apisix.node_listen: must be a port number or an array of ports / {ip, port} objects');
    rejects('apisix:\n  node_listen: []\n', 'apisix.node_listen: must have at least 1 item');
    rejects('apisix:\n  node_listen: [{ip: 1}]\n', 'apisix.node_listen[0].ip: must be a string');
  });

  test('per-port enable_http2 is rejected as since APISIX 3.9', () => {
    rejects('apisix:\n  node_listen: [{port: 9080, enable_http2: true}]\n',
      /^apisix\.node_listen\[0\]\.enable_http2: per-port enable_http2 was removed in APISIX 3\.9; use apisix\.enable_http2$/);
    rejects('apisix:\n  ssl:\n    listen: [{port: 9443, enable_http2: true}]\n', /^apisix\.ssl\.listen\[0\]\.enable_http2: /);
  });

  test('listener ports must not collide with admin, control or status ports', () => {
    rejects('apisix:\n  node_listen: 9180\n', 'http listen port 9180 conflicts with admin port');
    rejects('apisix:\n  node_listen: 7085\n', 'http listen port 7085 conflicts with status port');
    rejects('apisix:\n  ssl:\n    listen: [{port: 9090}]\n', 'https listen port 9090 conflicts with control port');
    rejects('apisix:\n  node_listen: 9443\n', 'https listen port 9443 conflicts with http listen port');
    // no admin on a data plane, no control when disabled, no status when removed
    parse('apisix:\n  node_listen: 9180\ndeployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: yaml\n');
    parse('apisix:\n  node_listen: 9090\n  enable_control: false\n');
    parse('apisix:\n  node_listen: 7085\n  status: null\n');
    parse('apisix:\n  ssl:\n    enable: false\n  node_listen: [9080, 9443]\n');
  });
});

describe('${{VAR}} substitution', () => {
  test('plain, default and whitespace forms', () => {
    const env = { HOST: 'example.com', EMPTY: '' };
    assert.equal(substituteEnvInValue('${{HOST}}', env), 'example.com');
    assert.equal(substituteEnvInValue('${{ HOST }}', env), 'example.com');
    assert.equal(substituteEnvInValue('http://${{HOST}}:${{PORT:=8080}}/x', env), 'http://example.com:8080/x');
    assert.equal(substituteEnvInValue('${{ MISSING := fallback value }}', env), 'fallback value');
    assert.equal(substituteEnvInValue('${{HOST:=other}}', env), 'example.com', 'the variable wins over the default');
    assert.equal(substituteEnvInValue('[${{EMPTY}}]', env), '[]', 'an empty variable is still set');
    assert.equal(substituteEnvInValue('$HOST ${HOST} $${{x', env), '$HOST ${HOST} $${{x', 'nginx forms untouched');
  });

  test('a missing variable without default fails', () => {
    assert.throws(() => substituteEnvInValue({ a: ['${{NOPE}}'] }, {}), (err: unknown) =>
      err instanceof ConfigError &&
      err.message === "failed to handle configuration: can't find environment variable NOPE");
    rejects('apisix:\n  node_listen: ${{APISIX_PORT}}\n',
      "failed to handle configuration: can't find environment variable APISIX_PORT");
  });

  test('substituted values that look like numbers or booleans are converted', () => {
    const env = { N: '9081', F: '1.5', T: 'true', B: 'false', S: 'yes', HEX: '0x10' };
    assert.equal(substituteEnvInValue('${{N}}', env), 9081);
    assert.equal(substituteEnvInValue('${{F}}', env), 1.5);
    assert.equal(substituteEnvInValue('${{HEX}}', env), 16);
    assert.equal(substituteEnvInValue('${{T}}', env), true);
    assert.equal(substituteEnvInValue('${{B}}', env), false);
    assert.equal(substituteEnvInValue('${{S}}', env), 'yes');
    assert.equal(substituteEnvInValue('${{N}}0', env), 90810);
    assert.equal(substituteEnvInValue('v${{N}}', env), 'v9081');
    assert.equal(substituteEnvInValue('${{X:=42}}', env), 42);
    assert.equal(substituteEnvInValue('9081', env), '9081', 'strings without a variable are left alone');
  });

  test('object keys are substituted and stay strings; non-strings pass through', () => {
    const out = substituteEnvInValue({ '${{K}}': { '${{N}}': '${{N}}' }, n: 1, b: true, z: null }, { K: 'key', N: '5' });
    assert.deepEqual(out, { key: { '5': 5 }, n: 1, b: true, z: null });
  });

  test('config.yaml: substitution after parsing, with conversion', () => {
    const c = parse(`
apisix:
  node_listen: \${{PORT}}
  enable_ipv6: "\${{IPV6}}"
  router:
    http: \${{ROUTER:=radixtree_uri}}
nginx_config:
  worker_processes: \${{WORKERS:=3}}
`, { PORT: '9100', IPV6: 'false' });
    assert.equal(c.apisix.node_listen, 9100);
    assert.equal(c.apisix.enable_ipv6, false, 'converted even when quoted in config.yaml');
    assert.equal(c.apisix.router.http, 'radixtree_uri');
    assert.equal(c.nginx_config.worker_processes, 3);
  });

  test('raw-text substitution (apisix.yaml): YAML quoting decides the type', () => {
    const text = 'a: ${{PORT}}\nb: "${{PORT}}"\nc: ${{ NAME := demo }}\n';
    assert.equal(substituteEnvInText(text, { PORT: '1980' }), 'a: 1980\nb: "1980"\nc: demo\n');
    assert.throws(() => substituteEnvInText('x: ${{GONE}}', {}),
      { name: 'ConfigError', message: "failed to handle configuration: can't find environment variable GONE" });
  });
});

describe('merge over defaults', () => {
  test('objects merge key by key', () => {
    const c = parse('apisix:\n  router:\n    http: radixtree_uri\nnginx_config:\n  http:\n    send_timeout: 30s\n');
    assert.equal(c.apisix.router.http, 'radixtree_uri');
    assert.equal(c.apisix.router.ssl, 'radixtree_sni', 'sibling default kept');
    assert.equal(c.nginx_config.http.send_timeout, '30s');
    assert.equal(c.nginx_config.http.keepalive_timeout, '60s');
    assert.equal(c.apisix.enable_ipv6, true);
  });

  test('arrays replace', () => {
    const c = parse(`
apisix:
  ssl:
    listen:
      - port: 8443
nginx_config:
  http:
    real_ip_from: [10.0.0.0/8]
plugins: [key-auth, limit-count]
deployment:
  admin:
    allow_admin: []
`);
    assert.deepEqual(c.apisix.ssl.listen, [{ port: 8443 }]);
    assert.deepEqual(c.nginx_config.http.real_ip_from, ['10.0.0.0/8']);
    assert.deepEqual(c.plugins, ['key-auth', 'limit-count']);
    assert.deepEqual(c.deployment.admin?.allow_admin, []);
  });

  test('null deletes a key, defaults included', () => {
    const c = parse('apisix:\n  status: null\n  stream_proxy: ~\ndeployment:\n  admin:\n    allow_admin: null\n');
    assert.equal(c.apisix.status, undefined);
    assert.ok(!('status' in c.apisix));
    assert.ok(!('stream_proxy' in c.apisix));
    assert.equal(c.deployment.admin?.allow_admin, undefined);
    assert.equal(c.deployment.admin?.admin_listen.port, 9180);
  });

  test('null on a key Causeway needs is reported', () => {
    rejects('apisix:\n  router:\n    http: null\n', 'apisix.router.http: is required (a YAML null removes the default)');
  });

  test('scalar where the default is a table fails with APISIX\'s message', () => {
    rejects('apisix:\n  node_listen: "9080"\n', 'failed to merge, path[apisix->node_listen] expect: table, but got: string');
    rejects('apisix: 1\n', 'failed to merge, path[apisix] expect: table, but got: number');
    rejects('deployment:\n  admin:\n    admin_listen: 9180\n',
      'failed to merge, path[deployment->admin->admin_listen] expect: table, but got: number');
    rejects('apisix:\n  enable_ipv6: "yes"\n', 'failed to merge, path[apisix->enable_ipv6] expect: boolean, but got: string');
    rejects('apisix:\n  router:\n    http:\n      a: 1\n', 'failed to merge, path[apisix->router->http] expect: string, but got: table');
  });

  test('per-path type allowances: node_listen number, nginx_config numbers and strings', () => {
    assert.equal(parse('apisix:\n  node_listen: 9000\n').apisix.node_listen, 9000);
    const c = parse('nginx_config:\n  worker_processes: 2\n  http:\n    client_max_body_size: 10m\n    keepalive_timeout: 75\n');
    assert.equal(c.nginx_config.worker_processes, 2);
    assert.equal(c.nginx_config.http.client_max_body_size, '10m');
    assert.equal(c.nginx_config.http.keepalive_timeout, 75);
  });
});

describe('validation', () => {
  test('unknown keys name the path and suggest the closest known key', () => {
    rejects('apisix:\n  node_listn: 9080\n', 'unknown key "apisix.node_listn" (did you mean "apisix.node_listen"?)');
    rejects('deployment:\n  admin:\n    admin_lsten:\n      port: 1\n',
      'unknown key "deployment.admin.admin_lsten" (did you mean "deployment.admin.admin_listen"?)');
    rejects('apisix:\n  node_listen: [{ip: 127.0.0.1, prot: 9080}]\n',
      'unknown key "apisix.node_listen[0].prot" (did you mean "apisix.node_listen[0].port"?)');
    rejects('apisixx:\n  a: 1\n', 'unknown key "apisixx" (did you mean "apisix"?)');
    rejects('apisix:\n  completely_unrelated: 1\n', 'unknown key "apisix.completely_unrelated"');
  });

  test('wrong types name the path', () => {
    rejects('apisix:\n  proxy_protocol:\n    listen_http_port: abc\n',
      'apisix.proxy_protocol.listen_http_port: must be an integer between 1 and 65535');
    rejects('apisix:\n  dns_resolver: [1.1.1.1, 8]\n', 'apisix.dns_resolver[1]: must be a string');
    rejects('apisix:\n  trusted_addresses: 10.0.0.1\n', 'apisix.trusted_addresses: must be an array of strings');
    rejects('nginx_config:\n  http:\n    keepalive_timeout: soon\n',
      'nginx_config.http.keepalive_timeout: must be a duration such as 60s, 500ms or 1m');
    rejects('nginx_config:\n  http:\n    client_max_body_size: 10x\n',
      'nginx_config.http.client_max_body_size: must be a size such as 0, 512k or 10m');
    rejects('deployment:\n  etcd:\n    host: [127.0.0.1:2379]\n',
      'deployment.etcd.host[0]: must be an http:// or https:// URL (got "127.0.0.1:2379")');
    rejects('apisix:\n  data_encryption:\n    keyring: [short]\n',
      'apisix.data_encryption.keyring[0]: must be a 16- or 32-character key (got "short")');
    rejects('apisix:\n  proxy_cache:\n    zones: [{name: z, memory_size: 1m, disk_size: 1G}]\n',
      'apisix.proxy_cache.zones[0]: a disk cache zone needs all of disk_size, disk_path, cache_levels (missing disk_path, cache_levels)');
  });

  test('enums', () => {
    for (const mode of ['radixtree_host_uri', 'radixtree_uri', 'radixtree_uri_with_parameter']) {
      assert.equal(parse(`apisix:\n  router:\n    http: ${mode}\n`).apisix.router.http, mode);
    }
    rejects('apisix:\n  router:\n    http: radixtree\n',
      'apisix.router.http: must be one of radixtree_host_uri, radixtree_uri, radixtree_uri_with_parameter (got "radixtree")');
    rejects('deployment:\n  role: standalone\n',
      'deployment.role: must be one of traditional, control_plane, data_plane (got "standalone")');
    rejects('deployment:\n  role_traditional:\n    config_provider: json\n',
      'deployment.role_traditional.config_provider: must be one of embedded, etcd, yaml (got "json")');
    rejects('deployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: control_plane\n',
      'deployment.role_data_plane.config_provider: must be one of etcd, yaml, json, xds (got "control_plane")');
    rejects('apisix:\n  proxy_mode: tcp\n', 'apisix.proxy_mode: must be one of http, stream, http&stream (got "tcp")');
    rejects('deployment:\n  admin:\n    admin_key: [{key: k, role: root}]\n',
      'deployment.admin.admin_key[0].role: must be one of admin, viewer (got "root")');
  });

  test('worker_processes: "auto" or an integer >= 1', () => {
    assert.equal(parse('nginx_config:\n  worker_processes: 4\n').nginx_config.worker_processes, 4);
    for (const bad of ['0', 'many', '1.5', '-2']) {
      rejects(`nginx_config:\n  worker_processes: ${bad}\n`, 'nginx_config.worker_processes: must be "auto" or an integer >= 1');
    }
  });

  test('role rules', () => {
    rejects('deployment:\n  role: data_plane\n',
      'deployment.role_data_plane.config_provider: is required when deployment.role is data_plane');
    rejects('deployment:\n  role: control_plane\n',
      'deployment.role_control_plane.config_provider: is required when deployment.role is control_plane');
    rejects('deployment:\n  role: control_plane\n  role_control_plane:\n    config_provider: etcd\n  etcd: null\n',
      'deployment.etcd: is required when deployment.role is control_plane');
    rejects('deployment:\n  role_traditional:\n    config_provider: etcd\n  etcd: null\n',
      'deployment.etcd: is required when the config provider is etcd');
    rejects('deployment:\n  etcd:\n    prefix: null\n', 'deployment.etcd.prefix: is required (a YAML null removes the default)');

    const dp = parse('deployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: json\n');
    assert.equal(dp.deployment.role_data_plane?.config_provider, 'json');
    assert.equal(adminEnabled(dp), false, 'data planes never serve the Admin API');
    const cp = parse('apisix:\n  enable_admin: false\ndeployment:\n  role: control_plane\n  role_control_plane:\n    config_provider: etcd\n');
    assert.equal(adminEnabled(cp), true, 'control planes always serve the Admin API');
    assert.equal(adminEnabled(parse('')), true);
    assert.equal(adminEnabled(parse('apisix:\n  enable_admin: false\n')), false);
    // embedded needs no etcd
    assert.equal(parse('deployment:\n  etcd: null\n').deployment.etcd, undefined);
  });

  test('open sections accept any keys', () => {
    const c = parse(`
plugin_attr:
  my-plugin:
    anything: [1, 2]
    nested: {deep: true}
discovery:
  dns:
    servers: ["127.0.0.1:8600"]
  kubernetes:
    - id: release
      service: {host: x}
nginx_config:
  envs: [MY_ENV]
  main_configuration_snippet: "worker_priority -1;"
  custom_future_configuration_snippet: "# ok"
  http:
    lua_shared_dict:
      my-dict: 1m
    custom_lua_shared_dict:
      ipc: 100m
wasm:
  plugins: [{name: w, file: w.wasm, priority: 1}]
xrpc:
  protocols: [{name: redis}]
graphql:
  max_size: 1
  extra: yes
stream_plugins: [ip-restriction]
ext-plugin:
  cmd: ["ls", "-l"]
`);
    assert.deepEqual(c.plugin_attr['my-plugin'], { anything: [1, 2], nested: { deep: true } });
    assert.equal(c.plugin_attr.prometheus.metric_prefix, 'apisix_', 'defaults of other plugins kept');
    assert.deepEqual(Object.keys(c.discovery ?? {}), ['dns', 'kubernetes']);
    assert.equal(c.nginx_config.http.lua_shared_dict?.['my-dict'], '1m');
    assert.equal(c.nginx_config.http.lua_shared_dict?.['worker-events'], '10m');
    assert.deepEqual(c.xrpc, { protocols: [{ name: 'redis' }] });
    assert.deepEqual(c['ext-plugin'], { cmd: ['ls', '-l'] });
    rejects('plugin_attr:\n  my-plugin: 1\n', 'plugin_attr.my-plugin: must be an object');
  });

  test('keys APISIX knows but Causeway does not act on are accepted', () => {
    const c = parse(`
apisix:
  enable_server_tokens: false
  extra_lua_path: /x/?.lua
  lua_module_hook: my_hook
  proxy_protocol: {listen_http_port: 9181, enable_tcp_pp: true}
  stream_proxy:
    tcp: [9100, "127.0.0.1:9101", {addr: 9102, tls: true}]
    udp: [9200]
  dns_resolver: [1.1.1.1]
  dns_resolver_valid: 30
  ssl:
    fallback_sni: example.com
    ssl_trusted_certificate: /etc/ssl/ca.pem
  events: {module: lua-resty-worker-events}
  trusted_addresses: [10.0.0.0/8]
  lru: {secret: {ttl: 10, count: 5}}
nginx_config:
  user: nobody
  error_log_level: info
  meta: {lua_shared_dict: {prometheus-metrics: 20m}}
deployment:
  admin:
    https_admin: true
    admin_api_mtls: {admin_ssl_cert: a.crt, admin_ssl_cert_key: a.key}
  etcd:
    user: root
    password: secret
    tls: {cert: c, key: k, verify: false, sni: etcd.local}
  certs: {cert: c, cert_key: k, trusted_ca_cert: ca}
`);
    assert.equal(c.apisix.ssl.fallback_sni, 'example.com');
    assert.deepEqual(c.apisix.stream_proxy?.tcp, [9100, '127.0.0.1:9101', { addr: 9102, tls: true }]);
    assert.equal(c.deployment.etcd?.tls?.verify, false);
    assert.equal(c.deployment.etcd?.prefix, '/apisix');
  });

  test('YAML syntax errors and non-mapping documents', () => {
    rejects('apisix: [\n', /^invalid config\.yaml file: /);
    rejects('apisix:\n  a: 1\n  a: 2\n', /^invalid config\.yaml file: Map keys must be unique/);
    rejects('- 1\n- 2\n', 'invalid config.yaml file: the top level must be a mapping');
  });
});

describe('worker count', () => {
  test('auto, fixed, dev mode and APISIX_WORKER_PROCESSES', () => {
    assert.equal(workerCount(parse(''), {}), availableParallelism());
    assert.equal(workerCount(parse('nginx_config:\n  worker_processes: 3\n'), {}), 3);
    assert.equal(workerCount(parse('apisix:\n  enable_dev_mode: true\nnginx_config:\n  worker_processes: 3\n'), {}), 1);
    assert.equal(workerCount(parse(''), { APISIX_WORKER_PROCESSES: '5' }), 5);
    assert.equal(workerCount(parse(''), { APISIX_WORKER_PROCESSES: 'x' }), availableParallelism());
  });
});

describe('units', () => {
  test('parseDurationSeconds', () => {
    assert.equal(parseDurationSeconds('60s'), 60);
    assert.equal(parseDurationSeconds('1m'), 60);
    assert.equal(parseDurationSeconds('500ms'), 0.5);
    assert.equal(parseDurationSeconds(60), 60);
    assert.equal(parseDurationSeconds('10'), 10);
    assert.equal(parseDurationSeconds('1h 30m'), 5400);
    assert.equal(parseDurationSeconds('1m30s'), 90);
    assert.equal(parseDurationSeconds('2d'), 172800);
    for (const bad of ['', 'abc', '10 20s', '5x', '-1s', -1]) {
      assert.throws(() => parseDurationSeconds(bad), ConfigError, String(bad));
    }
  });

  test('parseSizeBytes', () => {
    assert.equal(parseSizeBytes(0), 0);
    assert.equal(parseSizeBytes('512k'), 524288);
    assert.equal(parseSizeBytes('10m'), 10485760);
    assert.equal(parseSizeBytes('1G'), 1073741824);
    assert.throws(() => parseSizeBytes('1t'), ConfigError);
  });
});

describe('loadNodeConfig', () => {
  test('without a path: defaults, dir = <cwd>/conf', () => {
    const r = loadNodeConfig();
    assert.equal(r.path, undefined);
    assert.equal(r.dir, join(process.cwd(), 'conf'));
    assert.deepEqual(r.config, DEFAULT_CONFIG);
  });

  test('reads a file; dir is its folder; a missing file is a ConfigError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'causeway-conf-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, 'apisix:\n  node_listen: 9300\n');
      const r = loadNodeConfig(file);
      assert.equal(r.path, file);
      assert.equal(r.dir, dir);
      assert.equal(r.config.apisix.node_listen, 9300);
      assert.throws(() => loadNodeConfig(join(dir, 'nope.yaml')), /^ConfigError: failed to read config file .*nope\.yaml: ENOENT$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the shipped conf/config.yaml runs a traditional node on the embedded store, port 9080', () => {
    const r = loadNodeConfig(join(repoRoot, 'conf', 'config.yaml'));
    assert.equal(r.config.deployment.role, 'traditional');
    assert.equal(r.config.deployment.role_traditional?.config_provider, 'embedded');
    assert.deepEqual(r.config.deployment.admin?.admin_listen, { ip: '127.0.0.1', port: 9180 });
    assert.deepEqual(httpListeners(r.config).map((l) => l.port), [9080, 9080]);
    // the example declarative file beside it stays valid for the data-plane mode
    const standalone = readFileSync(join(r.dir, 'apisix.yaml'), 'utf8');
    assert.match(standalone, /uri: \/anything\*/);
  });
});
