// The service resource: an upstream and plugins shared by several routes.
import { hostSchema, idSchema, metadataProperties, pluginsSchema, type Metadata } from './common.ts';
import { upstreamSchema, type Upstream } from './upstream.ts';

export const serviceSchema = {
  type: 'object',
  description: 'An upstream and plugins shared by the routes that reference it.',
  properties: {
    ...metadataProperties,
    plugins: pluginsSchema,
    upstream: upstreamSchema,
    upstream_id: { ...idSchema, description: 'Id of the upstream requests are sent to.' },
    script: { type: 'string', minLength: 10, maxLength: 102400, description: 'Lua script for plugin orchestration.' },
    enable_websocket: { type: 'boolean', description: 'Allow WebSocket upgrades on routes of this service.' },
    hosts: { type: 'array', minItems: 1, uniqueItems: true, items: hostSchema, description: 'Hosts inherited by routes that have none.' },
  },
  additionalProperties: false,
} as const;

export interface Service extends Metadata {
  plugins?: Record<string, unknown>;
  upstream?: Upstream;
  upstream_id?: string | number;
  script?: string;
  enable_websocket?: boolean;
  hosts?: string[];
}
