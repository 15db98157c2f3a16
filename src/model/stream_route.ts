// The stream route resource: matches L4 (TCP/UDP) connections and sends them to an upstream,
// optionally decoding an xRPC protocol (apache/apisix: apisix/schema_def.lua `stream_route`).
import { hostSchema, idSchema, ipOrCidrSchema, metadataProperties, pluginsSchema, type Metadata } from './common.ts';
import { upstreamSchema, type Upstream } from './upstream.ts';

const loggerSchema = {
  type: 'object',
  description: 'A logger plugin run at the end of each decoded request whose filter passes.',
  properties: {
    name: { type: 'string', description: 'Logger plugin name.' },
    filter: { type: 'array', description: 'Expression over request variables, e.g. `[["rpc_time", ">=", 0.01]]`.' },
    conf: { type: 'object', description: 'That logger plugin\'s configuration.' },
  },
  dependencies: { name: ['conf'] },
} as const;

const protocolSchema = {
  type: 'object',
  description: 'xRPC protocol decoded inside the connection. Extra keys (e.g. `metric`) are allowed.',
  properties: {
    name: { type: 'string', description: 'Protocol module name (listed in config.yaml `xrpc.protocols`).' },
    superior_id: { ...idSchema, description: 'Id of the superior stream route this one is subordinate to (same protocol).' },
    conf: { type: 'object', description: 'Protocol-specific configuration.' },
    logger: { type: 'array', items: loggerSchema, description: 'Per-request loggers.' },
  },
  required: ['name'],
} as const;

export const streamRouteSchema = {
  type: 'object',
  description: 'Matches L4 connections by client address, local address/port or SNI.',
  properties: {
    ...metadataProperties,
    remote_addr: { ...ipOrCidrSchema, description: 'Client address (IP or CIDR) to match.' },
    server_addr: { ...ipOrCidrSchema, description: 'Local address (IP or CIDR) the connection arrived on.' },
    server_port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Local port the connection arrived on.' },
    sni: { ...hostSchema, description: 'TLS SNI to match (needs a `tls: true` stream listener).' },
    upstream: upstreamSchema,
    upstream_id: { ...idSchema, description: 'Id of the upstream connections are sent to.' },
    service_id: { ...idSchema, description: 'Id of a service supplying a missing upstream or plugins.' },
    plugins: { ...pluginsSchema, description: 'Stream plugin name → configuration.' },
    protocol: protocolSchema,
  },
  additionalProperties: false,
} as const;

export interface StreamRoute extends Metadata {
  remote_addr?: string;
  server_addr?: string;
  server_port?: number;
  sni?: string;
  upstream?: Upstream;
  upstream_id?: string | number;
  service_id?: string | number;
  plugins?: Record<string, unknown>;
  protocol?: {
    name: string;
    superior_id?: string | number;
    conf?: Record<string, unknown>;
    logger?: { name?: string; filter?: unknown[]; conf?: Record<string, unknown> }[];
    [extra: string]: unknown;
  };
}

/** Checks beyond the schema that need only the route itself. */
export function checkStreamRoute(route: StreamRoute, id: string | undefined): string | undefined {
  const superior = route.protocol?.superior_id;
  const self = id ?? route.id;
  if (superior !== undefined && self !== undefined && String(superior) === String(self)) {
    return 'stream route can not set itself as superior_id';
  }
  return undefined;
}
