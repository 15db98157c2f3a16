// The known key set of config.yaml (apache/apisix conf/config.yaml.example, apisix/cli/schema.lua and config.md).
// Keys Causeway does not act on yet are still listed so APISIX users' files load. Open sections accept any keys.
import { isDuration, isSize } from './units.ts';
import { arr, bool, int, map, num, obj, oneOf, port, req, str, union, type Spec } from './validate.ts';

const PER_PORT_HTTP2 = 'per-port enable_http2 was removed in APISIX 3.9; use apisix.enable_http2';

const duration = (): Spec => union('a duration such as 60s, 500ms or 1m', str({ refine: durationCheck }), num(0));
const size = (): Spec => union('a size such as 0, 512k or 10m', str({ refine: sizeCheck }), int(0));
const onOff = (): Spec => union('"on" or "off"', oneOf('on', 'off'), bool());
const sharedDicts = (): Spec => map(size());

function durationCheck(value: unknown): string | undefined {
  return isDuration(value) ? undefined : 'must be a duration such as 60s, 500ms or 1m';
}
function sizeCheck(value: unknown): string | undefined {
  return isSize(value) ? undefined : 'must be a size such as 0, 512k or 10m';
}

const listenAddress = obj({ ip: str(), port: port() }, { removed: { enable_http2: PER_PORT_HTTP2 } });

const proxyCacheZone = obj({
  name: req(str()),
  memory_size: req(str()),
  disk_size: str(),
  disk_path: str(),
  cache_levels: str(),
}, {
  refine: (value) => {
    const zone = value as Record<string, unknown>;
    const disk = ['disk_size', 'disk_path', 'cache_levels'];
    const set = disk.filter((k) => zone[k] !== undefined);
    return set.length === 0 || set.length === disk.length
      ? undefined
      : `a disk cache zone needs all of ${disk.join(', ')} (missing ${disk.filter((k) => !set.includes(k)).join(', ')})`;
  },
});

const apisix = obj({
  node_listen: req(union(
    'a port number or an array of ports / {ip, port} objects',
    port(),
    arr(union('a port number or an {ip, port} object', port(), listenAddress), { minItems: 1 }),
  )),
  enable_admin: req(bool()),
  enable_dev_mode: req(bool()),
  enable_reuseport: req(bool()),
  show_upstream_status_in_response_header: req(bool()),
  enable_ipv6: req(bool()),
  enable_http2: req(bool()),
  enable_server_tokens: req(bool()),
  extra_lua_path: str(),
  extra_plugin_dir: str(),
  extra_lua_cpath: str(),
  lua_module_hook: str({ pattern: /^[a-zA-Z._-]+$/, what: 'a Lua module name' }),
  proxy_protocol: obj({
    listen_http_port: port(),
    listen_https_port: port(),
    enable_tcp_pp: bool(),
    enable_tcp_pp_to_upstream: bool(),
  }),
  proxy_cache: obj({ cache_ttl: duration(), zones: arr(proxyCacheZone, { minItems: 1 }) }),
  delete_uri_tail_slash: req(bool()),
  normalize_uri_like_servlet: req(bool()),
  match_uri_encoded_slash: req(bool()),
  max_post_args_readable_size: req(int(0)),
  router: req(obj({
    http: req(oneOf('radixtree_host_uri', 'radixtree_uri', 'radixtree_uri_with_parameter')),
    ssl: req(oneOf('radixtree_sni')),
  })),
  proxy_mode: req(oneOf('http', 'stream', 'http&stream')),
  stream_proxy: obj({
    tcp: arr(union(
      'a port, an "ip:port" string or an {addr, tls} object',
      port(),
      str(),
      obj({
        addr: req(union('a port or an "ip:port" string', port(), str())),
        tls: bool(),
        proxy_protocol: bool(),
        proxy_protocol_to_upstream: bool(),
      }),
    ), { minItems: 1 }),
    udp: arr(union('a port or an "ip:port" string', port(), str()), { minItems: 1 }),
  }),
  dns_resolver: arr(str(), { minItems: 1 }),
  dns_resolver_valid: int(0),
  resolver_timeout: req(int(1)),
  enable_resolv_search_opt: req(bool()),
  ssl: req(obj({
    enable: req(bool()),
    listen: req(arr(obj(
      { ip: str(), port: req(port()), enable_http3: bool() },
      { removed: { enable_http2: PER_PORT_HTTP2 } },
    ))),
    ssl_protocols: req(str()),
    ssl_ciphers: req(str()),
    ssl_session_tickets: req(bool()),
    ssl_trusted_certificate: str(),
    fallback_sni: str(),
    key_encrypt_salt: union('a 16-character string or an array of them',
      str({ pattern: /^.{16}$/, what: 'a 16-character string' }),
      arr(str({ pattern: /^.{16}$/, what: 'a 16-character string' }), { minItems: 1 })),
  })),
  enable_control: req(bool()),
  control: obj({ ip: str(), port: port(), router: oneOf('radixtree_uri', 'radixtree_uri_with_parameter') }),
  status: obj({ ip: str(), port: port() }),
  disable_sync_configuration_during_start: req(bool()),
  worker_startup_time_threshold: req(int(0)),
  data_encryption: obj({
    enable_encrypt_fields: bool(),
    keyring: union('a key or an array of keys',
      str({ pattern: /^(?:.{16}|.{32})$/s, what: 'a 16- or 32-character key' }),
      arr(str({ pattern: /^(?:.{16}|.{32})$/s, what: 'a 16- or 32-character key' }))),
  }),
  events: obj({ module: oneOf('lua-resty-events', 'lua-resty-worker-events') }),
  lru: obj({ secret: obj({ ttl: int(0), count: int(1), neg_ttl: int(0), neg_count: int(1) }) }),
  trusted_addresses: arr(str()),
  disable_upstream_healthcheck: req(bool()),
  tracing: req(bool()),
});

const nginxConfig = obj({
  user: str(),
  error_log: req(str()),
  error_log_level: req(oneOf('debug', 'info', 'notice', 'warn', 'error', 'crit', 'alert', 'emerg')),
  worker_processes: req(union('"auto" or an integer >= 1', oneOf('auto'), int(1))),
  enable_cpu_affinity: req(bool()),
  worker_rlimit_nofile: req(union('an integer >= 1', int(1), str({ pattern: /^\d+$/ }))),
  worker_shutdown_timeout: req(duration()),
  max_pending_timers: req(int(1)),
  max_running_timers: req(int(1)),
  event: req(obj({ worker_connections: req(int(1)) })),
  envs: arr(str(), { minItems: 1 }),
  meta: obj({ lua_shared_dict: sharedDicts() }),
  stream: req(obj({
    enable_access_log: req(bool()),
    access_log: req(str()),
    access_log_format: req(str()),
    access_log_format_escape: req(oneOf('default', 'json')),
    lua_shared_dict: sharedDicts(),
  })),
  http: req(obj({
    enable_access_log: req(bool()),
    access_log: req(str()),
    access_log_buffer: req(int(0)),
    access_log_format: req(str()),
    access_log_format_escape: req(oneOf('default', 'json')),
    keepalive_timeout: req(duration()),
    client_header_timeout: req(duration()),
    client_body_timeout: req(duration()),
    client_max_body_size: req(size()),
    send_timeout: req(duration()),
    underscores_in_headers: req(onOff()),
    real_ip_header: req(str()),
    real_ip_recursive: req(onOff()),
    real_ip_from: req(arr(str())),
    proxy_ssl_server_name: req(bool()),
    upstream: req(obj({
      keepalive: req(int(0)),
      keepalive_requests: req(int(1)),
      keepalive_timeout: req(duration()),
    })),
    charset: str(),
    variables_hash_max_size: int(1),
    lua_shared_dict: sharedDicts(),
    custom_lua_shared_dict: sharedDicts(),
  })),
}, {
  // main_, http_, http_server_, http_server_location_, http_admin_, http_end_, stream_configuration_snippet, …
  patternProps: [[/^[a-z_]+_configuration_snippet$/, str()]],
});

const etcd = obj({
  host: req(arr(str({ pattern: /^https?:\/\//, what: 'an http:// or https:// URL' }), { minItems: 1 })),
  prefix: req(str()),
  timeout: req(int(1)),
  watch_timeout: req(int(1)),
  resync_delay: req(int(0)),
  health_check_timeout: req(int(1)),
  startup_retry: req(int(0)),
  user: str(),
  password: str(),
  use_grpc: bool(),
  tls: obj({ cert: str(), key: str(), verify: bool(), sni: str() }),
});

const deployment = obj({
  role: req(oneOf('traditional', 'control_plane', 'data_plane')),
  role_traditional: obj({ config_provider: oneOf('embedded', 'etcd', 'yaml') }),
  role_control_plane: obj({ config_provider: oneOf('etcd') }),
  role_data_plane: obj({ config_provider: oneOf('etcd', 'yaml', 'json', 'xds') }),
  admin: obj({
    admin_key_required: bool(),
    admin_key: arr(obj({ name: str(), key: req(str()), role: oneOf('admin', 'viewer') })),
    enable_admin_cors: bool(),
    enable_admin_ui: bool(),
    allow_admin: arr(str()),
    admin_listen: req(obj({ ip: req(str()), port: req(port()) })),
    https_admin: bool(),
    admin_api_mtls: obj({ admin_ssl_cert: str(), admin_ssl_cert_key: str(), admin_ssl_ca_cert: str() }),
    admin_api_version: oneOf('v3'),
  }),
  etcd,
  // Causeway's embedded store (config_provider: embedded): the SQLite file lives in data_dir.
  embedded: obj({ data_dir: req(str()) }),
  certs: obj({ cert: str(), cert_key: str(), trusted_ca_cert: str() }),
});

export const CONFIG_SCHEMA: Spec = obj({
  apisix: req(apisix),
  nginx_config: req(nginxConfig),
  plugins: req(arr(str())),
  stream_plugins: req(arr(str())),
  plugin_attr: req(map(map())),
  deployment: req(deployment),
  graphql: map(),
  discovery: map(),
  wasm: map(),
  xrpc: map(),
  'ext-plugin': map(),
});
