// The upstream resource: nodes, balancer, retries, timeouts, host handling, keep-alive pool.
import { hostSchema, metadataProperties, timeoutSchema, type Metadata, type Timeout, withHint } from './common.ts';

const nodeArrayItem = {
  type: 'object',
  properties: {
    host: { type: 'string', minLength: 1, description: 'Node host name or IP address.' },
    port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Node port (default: by scheme).' },
    weight: { type: 'integer', minimum: 0, description: 'Balancer weight; 0 takes the node out of rotation.' },
    priority: { type: 'integer', default: 0, description: 'Lower-priority nodes are used only when all higher ones fail.' },
    metadata: { type: 'object', description: 'Free-form node metadata.' },
  },
  required: ['host', 'weight'],
} as const;

const healthStatuses = (defaults: readonly number[]) =>
  ({ type: 'array', minItems: 1, uniqueItems: true, items: { type: 'integer', minimum: 200, maximum: 599 }, default: defaults, description: 'HTTP status codes (200-599).' }) as const;

const HTTP_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'] as const;

// apisix/schema_def.lua `health_checker`; the defaults are the ones lua-resty-healthcheck applies.
const activeCheck = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: ['http', 'https', 'tcp'], default: 'http', description: 'Probe type.' },
    timeout: { type: 'number', default: 1, description: 'Probe timeout in seconds.' },
    concurrency: { type: 'integer', default: 10, description: 'Targets probed at the same time.' },
    host: { ...hostSchema, description: 'Host header of HTTP probes (default: the node address).' },
    port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Probe port (default: the node port).' },
    http_path: { type: 'string', default: '/', description: 'Path of HTTP probes.' },
    http_method: { type: 'string', enum: HTTP_METHODS, default: 'GET', description: 'Method of HTTP probes.' },
    http_req_body: { type: 'string', default: '', description: 'Body of HTTP probes.' },
    https_verify_certificate: { type: 'boolean', default: true, description: 'Verify the node certificate on https probes.' },
    req_headers: { type: 'array', minItems: 1, items: { type: 'string', uniqueItems: true }, description: 'Extra probe headers, `Name: value`.' },
    healthy: {
      type: 'object',
      description: 'When an unhealthy node counts as healthy again.',
      properties: {
        interval: { type: 'integer', minimum: 1, default: 1, description: 'Seconds between probes of healthy nodes.' },
        http_statuses: healthStatuses([200, 302]),
        successes: { type: 'integer', minimum: 1, maximum: 254, default: 2, description: 'Successes that mark a node healthy.' },
      },
    },
    unhealthy: {
      type: 'object',
      description: 'When a node counts as unhealthy.',
      properties: {
        interval: { type: 'integer', minimum: 1, default: 1, description: 'Seconds between probes of unhealthy nodes.' },
        http_statuses: healthStatuses([429, 404, 500, 501, 502, 503, 504, 505]),
        http_failures: { type: 'integer', minimum: 1, maximum: 254, default: 5, description: 'HTTP failures that mark a node unhealthy.' },
        tcp_failures: { type: 'integer', minimum: 1, maximum: 254, default: 2, description: 'TCP failures that mark a node unhealthy.' },
        timeouts: { type: 'integer', minimum: 1, maximum: 254, default: 3, description: 'Timeouts that mark a node unhealthy.' },
      },
    },
  },
  description: 'Active health checks (probes).',
} as const;

const passiveCheck = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: ['http', 'https', 'tcp'], default: 'http', description: 'Traffic type observed.' },
    healthy: {
      type: 'object',
      description: 'When live traffic marks a node healthy.',
      properties: {
        http_statuses: healthStatuses([200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308]),
        successes: { type: 'integer', minimum: 0, maximum: 254, default: 5, description: 'Successful responses that mark a node healthy (0: not counted).' },
      },
    },
    unhealthy: {
      type: 'object',
      description: 'When live traffic marks a node unhealthy.',
      properties: {
        http_statuses: healthStatuses([429, 500, 503]),
        tcp_failures: { type: 'integer', minimum: 0, maximum: 254, default: 2, description: 'TCP failures that mark a node unhealthy (0: not counted).' },
        timeouts: { type: 'integer', minimum: 0, maximum: 254, default: 7, description: 'Timeouts that mark a node unhealthy (0: not counted).' },
        http_failures: { type: 'integer', minimum: 0, maximum: 254, default: 5, description: 'HTTP failures that mark a node unhealthy (0: not counted).' },
      },
    },
  },
  description: 'Passive health checks (from live traffic).',
} as const;

export const upstreamSchema = withHint({
  type: 'object',
  description: 'A set of backend nodes and how to reach them.',
  properties: {
    ...metadataProperties,
    type: { type: 'string', enum: ['roundrobin', 'chash', 'ewma', 'least_conn'], default: 'roundrobin', description: 'Load balancer.' },
    nodes: {
      anyOf: [
        { type: 'object', patternProperties: { '.*': { type: 'integer', minimum: 0, description: 'Node weight.' } }, description: '`"host:port": weight` map.' },
        { type: 'array', items: nodeArrayItem, description: 'Nodes with weight and priority tiers.' },
      ],
      description: 'Backend nodes: a `"host:port": weight` map or an array of node objects.',
    },
    service_name: { type: 'string', minLength: 1, maxLength: 256, description: 'Service name looked up in service discovery.' },
    discovery_type: { type: 'string', description: 'Service discovery backend (dns, consul, nacos, kubernetes, …).' },
    discovery_args: { type: 'object', description: 'Backend-specific discovery arguments (`namespace_id`, `group_name`).' },
    hash_on: { type: 'string', enum: ['vars', 'header', 'cookie', 'consumer', 'vars_combinations'], default: 'vars', description: 'What the chash `key` refers to.' },
    key: { type: 'string', description: 'chash key (a variable, header or cookie name, or a `$var` template).' },
    retries: { type: 'integer', minimum: 0, description: 'Retries on another node; default: number of nodes - 1.' },
    retry_timeout: { type: 'number', minimum: 0, default: 0, description: 'Total time budget for retries in seconds (0 = none).' },
    timeout: timeoutSchema,
    scheme: { type: 'string', enum: ['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls', 'udp', 'kafka'], default: 'http', description: 'Protocol spoken to the nodes.' },
    pass_host: { type: 'string', enum: ['pass', 'node', 'rewrite'], default: 'pass', description: 'Host header sent upstream: the client\'s, the node\'s, or `upstream_host`.' },
    upstream_host: { ...hostSchema, description: 'Host header used when `pass_host` is `rewrite`.' },
    keepalive_pool: {
      type: 'object',
      description: 'Idle upstream connections kept for reuse.',
      properties: {
        size: { type: 'integer', minimum: 1, default: 320, description: 'Idle connections kept per pool.' },
        idle_timeout: { type: 'number', minimum: 0, default: 60, description: 'Seconds an idle connection is kept.' },
        requests: { type: 'integer', minimum: 1, default: 1000, description: 'Requests served by one connection before it is closed.' },
      },
      additionalProperties: false,
    },
    tls: {
      type: 'object',
      description: 'TLS client settings towards the nodes.',
      properties: {
        client_cert_id: { anyOf: [{ type: 'string' }, { type: 'integer' }], description: 'Id of an SSL object of type `client`.' },
        client_cert: { type: 'string', minLength: 128, maxLength: 65536, description: 'Client certificate (PEM).' },
        client_key: { type: 'string', minLength: 64, maxLength: 65536, description: 'Client private key (PEM).' },
        verify: { type: 'boolean', default: false, description: 'Verify the server certificate (kafka only).' },
      },
      dependencies: { client_cert: ['client_key'], client_key: ['client_cert'] },
    },
    checks: {
      type: 'object',
      description: 'Health checks.',
      properties: { active: activeCheck, passive: passiveCheck },
      additionalProperties: false,
      anyOf: [{ required: ['active'] }, { required: ['active', 'passive'] }],
    },
  },
  oneOf: [{ required: ['nodes'] }, { required: ['service_name', 'discovery_type'] }],
  additionalProperties: false,
} as const, 'should match only one schema: exactly one of "nodes" and "service_name"+"discovery_type" is required');

export interface UpstreamNodeSpec {
  host: string;
  port?: number;
  weight: number;
  priority?: number;
  metadata?: Record<string, unknown>;
}

export interface Upstream extends Metadata {
  type?: 'roundrobin' | 'chash' | 'ewma' | 'least_conn';
  nodes?: Record<string, number> | UpstreamNodeSpec[];
  service_name?: string;
  discovery_type?: string;
  hash_on?: 'vars' | 'header' | 'cookie' | 'consumer' | 'vars_combinations';
  key?: string;
  retries?: number;
  retry_timeout?: number;
  timeout?: Timeout;
  scheme?: 'http' | 'https' | 'grpc' | 'grpcs' | 'tcp' | 'tls' | 'udp' | 'kafka';
  pass_host?: 'pass' | 'node' | 'rewrite';
  upstream_host?: string;
  keepalive_pool?: { size?: number; idle_timeout?: number; requests?: number };
  tls?: { client_cert_id?: string | number; client_cert?: string; client_key?: string; verify?: boolean };
  checks?: HealthChecks;
}

/** `checks` (health checks); see `activeCheck` and `passiveCheck` above for the meaning and defaults. */
export interface HealthChecks {
  active?: {
    type?: 'http' | 'https' | 'tcp';
    timeout?: number;
    concurrency?: number;
    host?: string;
    port?: number;
    http_path?: string;
    http_method?: (typeof HTTP_METHODS)[number];
    http_req_body?: string;
    https_verify_certificate?: boolean;
    req_headers?: string[];
    healthy?: { interval?: number; http_statuses?: number[]; successes?: number };
    unhealthy?: { interval?: number; http_statuses?: number[]; http_failures?: number; tcp_failures?: number; timeouts?: number };
  };
  passive?: {
    type?: 'http' | 'https' | 'tcp';
    healthy?: { http_statuses?: number[]; successes?: number };
    unhealthy?: { http_statuses?: number[]; http_failures?: number; tcp_failures?: number; timeouts?: number };
  };
}

const CHASH_VARS_KEY = /^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$/;
const CHASH_HEADER_KEY = /^[a-zA-Z0-9-_]+$/;

/** Checks APISIX applies beyond the JSON schema (apache/apisix: apisix/upstream.lua). */
export function checkUpstream(up: Upstream): string | undefined {
  if (up.pass_host === 'rewrite' && !up.upstream_host) return '`upstream_host` can\'t be empty when `pass_host` is `rewrite`';
  if (up.nodes && !Array.isArray(up.nodes)) {
    for (const addr of Object.keys(up.nodes)) {
      const err = checkNodeAddress(addr);
      if (err) return err;
    }
  }
  if (up.type === 'chash') {
    const hashOn = up.hash_on ?? 'vars';
    if (hashOn !== 'consumer' && !up.key) return 'missing key';
    // apisix/upstream.lua checks the key against a one-pattern schema, so the text is a pattern failure.
    const keyPattern = hashOn === 'vars' ? CHASH_VARS_KEY : hashOn === 'header' || hashOn === 'cookie' ? CHASH_HEADER_KEY : undefined;
    if (keyPattern && !keyPattern.test(up.key!)) return `invalid configuration: failed to match pattern "${keyPattern.source}" with "${up.key}"`;
  }
  return undefined;
}

/** Splits a `host:port` node key; IPv6 hosts must be bracketed. */
export function parseNodeAddress(addr: string): { host: string; port: number | undefined } {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    const rest = addr.slice(end + 1);
    return { host: addr.slice(1, end), port: rest.startsWith(':') ? Number(rest.slice(1)) : undefined };
  }
  const colon = addr.lastIndexOf(':');
  if (colon === -1) return { host: addr, port: undefined };
  return { host: addr.slice(0, colon), port: Number(addr.slice(colon + 1)) };
}

function checkNodeAddress(addr: string): string | undefined {
  if (!addr.startsWith('[') && addr.indexOf(':') !== addr.lastIndexOf(':')) return 'IPv6 address must be enclosed with \'[\' and \']\'';
  if (addr.startsWith('[') && addr.indexOf(']') === -1) return 'IPv6 address must be enclosed with \'[\' and \']\'';
  const { port } = parseNodeAddress(addr);
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) return `invalid port ${addr.slice(addr.lastIndexOf(':') + 1)}`;
  return undefined;
}
