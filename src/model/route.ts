// The route resource: how a request is matched and where it goes.
import { hostSchema, idSchema, ipOrCidrSchema, metadataProperties, METHODS, pluginsSchema, timeoutSchema, type Metadata, type Timeout } from './common.ts';
import { upstreamSchema, type Upstream } from './upstream.ts';

export const routeSchema = {
  type: 'object',
  description: 'Matches requests and sends them through plugins to an upstream.',
  properties: {
    ...metadataProperties,
    uri: { type: 'string', minLength: 1, maxLength: 4096, description: 'Path: exact, `/prefix*`, or with `:param` / `*name`.' },
    uris: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 4096 } },
    host: hostSchema,
    hosts: { type: 'array', minItems: 1, uniqueItems: true, items: hostSchema },
    remote_addr: ipOrCidrSchema,
    remote_addrs: { type: 'array', minItems: 1, uniqueItems: true, items: ipOrCidrSchema },
    methods: { type: 'array', uniqueItems: true, items: { type: 'string', enum: METHODS } },
    priority: { type: 'integer', default: 0 },
    vars: { type: 'array', description: 'Expression over request variables (see docs/expressions.md).' },
    filter_func: { type: 'string', minLength: 10, pattern: '^function' },
    plugins: pluginsSchema,
    plugin_config_id: idSchema,
    service_id: idSchema,
    upstream_id: idSchema,
    script_id: idSchema,
    upstream: upstreamSchema,
    script: { type: 'string', minLength: 10, maxLength: 102400 },
    timeout: timeoutSchema,
    enable_websocket: { type: 'boolean' },
    status: { type: 'integer', enum: [1, 0], default: 1 },
  },
  allOf: [
    { oneOf: [{ required: ['uri'] }, { required: ['uris'] }] },
    { not: { required: ['host', 'hosts'] } },
    { not: { required: ['remote_addr', 'remote_addrs'] } },
    { anyOf: [{ required: ['plugins'] }, { required: ['upstream'] }, { required: ['upstream_id'] }, { required: ['service_id'] }, { required: ['script'] }, { required: ['plugin_config_id'] }] },
  ],
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
