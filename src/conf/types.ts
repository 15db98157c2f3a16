// Typed view of the merged node configuration. Keys keep config.yaml's snake_case spelling. A key is optional
// when it has no default or when a YAML null may remove it; open sections are plain records.

export type OpenMap = Record<string, unknown>;
export type DeepReadonly<T> = T extends (infer U)[]
  ? ReadonlyArray<DeepReadonly<U>>
  : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;
/** Durations in nginx_config stay as written ("60s"); see parseDurationSeconds. */
export type Duration = string | number;
/** Sizes in nginx_config stay as written ("10m", 0); see parseSizeBytes. */
export type Size = string | number;

export interface ListenAddress { ip?: string; port?: number }
export type NodeListen = number | Array<number | ListenAddress>;

export interface SslListen { ip?: string; port: number; enable_http3?: boolean }

export type StreamProxyTcpItem =
  | number
  | string
  | { addr: number | string; tls?: boolean; proxy_protocol?: boolean; proxy_protocol_to_upstream?: boolean };

export interface ProxyCacheZone {
  name: string;
  memory_size: string;
  disk_size?: string;
  disk_path?: string;
  cache_levels?: string;
}

export interface ApisixSection {
  node_listen: NodeListen;
  enable_admin: boolean;
  enable_dev_mode: boolean;
  enable_reuseport: boolean;
  show_upstream_status_in_response_header: boolean;
  enable_ipv6: boolean;
  enable_http2: boolean;
  enable_server_tokens: boolean;
  extra_lua_path?: string;
  /** Causeway: a directory of plugin modules (.ts/.js), relative to config.yaml's folder. */
  extra_plugin_dir?: string;
  extra_lua_cpath?: string;
  lua_module_hook?: string;
  proxy_protocol?: {
    listen_http_port?: number;
    listen_https_port?: number;
    enable_tcp_pp?: boolean;
    enable_tcp_pp_to_upstream?: boolean;
  };
  proxy_cache?: { cache_ttl?: Duration; zones?: ProxyCacheZone[] };
  delete_uri_tail_slash: boolean;
  normalize_uri_like_servlet: boolean;
  match_uri_encoded_slash: boolean;
  max_post_args_readable_size: number;
  router: { http: 'radixtree_host_uri' | 'radixtree_uri' | 'radixtree_uri_with_parameter'; ssl: 'radixtree_sni' };
  proxy_mode: 'http' | 'stream' | 'http&stream';
  stream_proxy?: { tcp?: StreamProxyTcpItem[]; udp?: Array<number | string> };
  dns_resolver?: string[];
  dns_resolver_valid?: number;
  resolver_timeout: number;
  enable_resolv_search_opt: boolean;
  ssl: {
    enable: boolean;
    listen: SslListen[];
    ssl_protocols: string;
    ssl_ciphers: string;
    ssl_session_tickets: boolean;
    ssl_trusted_certificate?: string;
    fallback_sni?: string;
    key_encrypt_salt?: string | string[];
  };
  enable_control: boolean;
  control?: { ip?: string; port?: number; router?: string };
  /** Status API; present by default in Causeway (`status: null` turns it off). */
  status?: { ip?: string; port?: number };
  disable_sync_configuration_during_start: boolean;
  worker_startup_time_threshold: number;
  data_encryption?: { enable_encrypt_fields?: boolean; keyring?: string[] };
  events?: { module?: 'lua-resty-events' | 'lua-resty-worker-events' };
  lru?: { secret?: { ttl?: number; count?: number; neg_ttl?: number; neg_count?: number } };
  trusted_addresses?: string[];
  disable_upstream_healthcheck: boolean;
  tracing: boolean;
}

export interface NginxConfigSection {
  user?: string;
  error_log: string;
  error_log_level: 'debug' | 'info' | 'notice' | 'warn' | 'error' | 'crit' | 'alert' | 'emerg';
  worker_processes: 'auto' | number;
  enable_cpu_affinity: boolean;
  worker_rlimit_nofile: number | string;
  worker_shutdown_timeout: Duration;
  max_pending_timers: number;
  max_running_timers: number;
  event: { worker_connections: number };
  envs?: string[];
  meta?: { lua_shared_dict?: Record<string, Size> };
  stream: {
    enable_access_log: boolean;
    access_log: string;
    access_log_format: string;
    access_log_format_escape: 'default' | 'json';
    lua_shared_dict?: Record<string, Size>;
  };
  main_configuration_snippet?: string;
  http_configuration_snippet?: string;
  http_server_configuration_snippet?: string;
  http_server_location_configuration_snippet?: string;
  http_admin_configuration_snippet?: string;
  http_end_configuration_snippet?: string;
  stream_configuration_snippet?: string;
  http: {
    enable_access_log: boolean;
    access_log: string;
    access_log_buffer: number;
    access_log_format: string;
    access_log_format_escape: 'default' | 'json';
    keepalive_timeout: Duration;
    client_header_timeout: Duration;
    client_body_timeout: Duration;
    client_max_body_size: Size;
    send_timeout: Duration;
    underscores_in_headers: 'on' | 'off';
    real_ip_header: string;
    real_ip_recursive: 'on' | 'off';
    real_ip_from: string[];
    proxy_ssl_server_name: boolean;
    upstream: { keepalive: number; keepalive_requests: number; keepalive_timeout: Duration };
    charset?: string;
    variables_hash_max_size?: number;
    lua_shared_dict?: Record<string, Size>;
    custom_lua_shared_dict?: Record<string, Size>;
  };
}

export interface AdminKey { name?: string; key: string; role?: 'admin' | 'viewer' }

export interface EtcdConfig {
  host: string[];
  prefix: string;
  timeout: number;
  watch_timeout: number;
  resync_delay: number;
  health_check_timeout: number;
  startup_retry: number;
  user?: string;
  password?: string;
  use_grpc?: boolean;
  tls?: { cert?: string; key?: string; verify?: boolean; sni?: string };
}

export type DeploymentRole = 'traditional' | 'control_plane' | 'data_plane';
export type TraditionalConfigProvider = 'embedded' | 'etcd' | 'yaml';
export type DataPlaneConfigProvider = 'etcd' | 'yaml' | 'json' | 'xds';

export interface DeploymentSection {
  role: DeploymentRole;
  role_traditional?: { config_provider?: TraditionalConfigProvider };
  role_control_plane?: { config_provider?: 'etcd' };
  role_data_plane?: { config_provider?: DataPlaneConfigProvider };
  admin?: {
    admin_key_required?: boolean;
    admin_key?: AdminKey[];
    enable_admin_cors?: boolean;
    enable_admin_ui?: boolean;
    /** Absent → every client address is allowed. */
    allow_admin?: string[];
    admin_listen: { ip: string; port: number };
    https_admin?: boolean;
    admin_api_mtls?: { admin_ssl_cert?: string; admin_ssl_cert_key?: string; admin_ssl_ca_cert?: string };
    admin_api_version?: string;
  };
  etcd?: EtcdConfig;
  /** Embedded store: `data_dir` (relative paths are taken from the config.yaml's folder). */
  embedded: { data_dir: string };
  certs?: { cert?: string; cert_key?: string; trusted_ca_cert?: string };
}

export interface NodeConfig {
  apisix: ApisixSection;
  nginx_config: NginxConfigSection;
  /** Enabled HTTP plugin names; empty by default (the plugin runtime supplies its default set). */
  plugins: string[];
  stream_plugins: string[];
  plugin_attr: Record<string, OpenMap>;
  deployment: DeploymentSection;
  graphql?: OpenMap & { max_size?: number };
  discovery?: Record<string, unknown>;
  wasm?: OpenMap;
  xrpc?: OpenMap;
  'ext-plugin'?: OpenMap;
}
