// The route resource: how a request is matched and where it goes.
import { hostSchema, idSchema, ipOrCidrSchema, metadataProperties, METHODS, pluginsSchema, timeoutSchema, type Metadata, type Timeout } from './common.ts';
import { upstreamSchema, type Upstream } from './upstream.ts';

function atMostOne(a: string, b: string) {
  return { oneOf: [{ not: { anyOf: [{ required: [a] }, { required: [b] }] } }, { required: [a] }, { required: [b] }] };
}

export const routeSchema = {
  type: 'object',
  description: 'Matches requests and sends them through plugins to an upstream.',
  properties: {
    ...metadataProperties,
    uri: { type: 'string', minLength: 1, maxLength: 4096, description: 'Path: exact, `/prefix*`, or with `:param` / `*name`.' },
    uris: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 4096 }, description: 'Several paths; the route matches any of them.' },
    host: { ...hostSchema, description: 'Host to match (`*.example.com` wildcards allowed).' },
    hosts: { type: 'array', minItems: 1, uniqueItems: true, items: hostSchema, description: 'Hosts to match; any of them.' },
    remote_addr: { ...ipOrCidrSchema, description: 'Client address (IP or CIDR) to match.' },
    remote_addrs: { type: 'array', minItems: 1, uniqueItems: true, items: ipOrCidrSchema, description: 'Client addresses (IP or CIDR); any of them.' },
    methods: { type: 'array', uniqueItems: true, items: { type: 'string', enum: METHODS }, description: 'HTTP methods to match (default: all).' },
    priority: { type: 'integer', default: 0, description: 'Higher wins when several routes match the same path.' },
    vars: { type: 'array', description: 'Expression over request variables (see docs/expressions.md).' },
    filter_func: { type: 'string', minLength: 10, pattern: '^function', description: 'Lua function source (`function(vars) … end`) deciding the match.' },
    plugins: pluginsSchema,
    plugin_config_id: { ...idSchema, description: 'Id of a plugin config whose plugins are merged in.' },
    service_id: { ...idSchema, description: 'Id of the service supplying defaults (upstream, plugins, hosts).' },
    upstream_id: { ...idSchema, description: 'Id of the upstream requests are sent to.' },
    script_id: { ...idSchema, description: 'Id of a stored script (dashboard plugin orchestration).' },
    upstream: upstreamSchema,
    script: { type: 'string', minLength: 10, maxLength: 102400, description: 'Lua script for plugin orchestration (excludes `plugins`).' },
    timeout: { ...timeoutSchema, description: 'Upstream timeouts for this route, in seconds.' },
    enable_websocket: { type: 'boolean', description: 'Allow WebSocket upgrades.' },
    status: { type: 'integer', enum: [1, 0], default: 1, description: '1 = enabled, 0 = removed from the router.' },
  },
  // The same combinators as APISIX's route schema, in its order, so the errors read the same
  // (errors.ts): exactly one of uri and uris, at most one of host/hosts and of remote_addr/remote_addrs,
  // a target (plugins, upstream, upstream_id, service_id, script) with uri or uris, and script never
  // beside plugins or plugin_config_id.
  allOf: [
    { oneOf: [{ required: ['uri'] }, { required: ['uris'] }] },
    atMostOne('host', 'hosts'),
    atMostOne('remote_addr', 'remote_addrs'),
  ],
  anyOf: [
    ...['uri', 'uris'].flatMap((path) => ['plugins', 'upstream', 'upstream_id', 'service_id'].map((target) => ({ required: [target, path] }))),
    { required: ['script', 'uri'] },
    { required: ['script', 'uris'] },
  ],
  not: { anyOf: [{ required: ['script', 'plugins'] }, { required: ['script', 'plugin_config_id'] }] },
  additionalProperties: false,
} as const;

export interface Route extends Metadata {
  uri?: string;
  uris?: string[];
  host?: string;
  hosts?: string[];
  remote_addr?: string;
  remote_addrs?: string[];
  methods?: string[];
  priority?: number;
  vars?: unknown[];
  filter_func?: string;
  plugins?: Record<string, unknown>;
  plugin_config_id?: string | number;
  service_id?: string | number;
  upstream_id?: string | number;
  upstream?: Upstream;
  script?: string;
  script_id?: string | number;
  timeout?: Timeout;
  enable_websocket?: boolean;
  status?: 0 | 1;
}
