// The consumer resource: an API caller identified by its username, with per-consumer plugins
// (apache/apisix: apisix/schema_def.lua `consumer`, apisix/admin/consumers.lua).
import { createTimeSchema, descSchema, idSchema, labelsSchema, pluginsSchema, updateTimeSchema, type Metadata } from './common.ts';

export const consumerSchema = {
  type: 'object',
  description: 'An API caller; authentication plugins identify requests as coming from it.',
  properties: {
    username: {
      type: 'string',
      minLength: 1,
      maxLength: 256,
      pattern: '^[a-zA-Z0-9_\\-]+$',
      description: 'Unique name of the consumer; also its id and etcd key.',
    },
    group_id: { ...idSchema, description: 'Id of the consumer group whose plugins apply to this consumer.' },
    plugins: { ...pluginsSchema, description: 'Plugin name → configuration, each checked against the plugin\'s consumer schema.' },
    id: { ...idSchema, description: 'Same as `username` (kept for compatibility).' },
    desc: descSchema,
    labels: labelsSchema,
    create_time: createTimeSchema,
    update_time: updateTimeSchema,
  },
  required: ['username'],
  additionalProperties: false,
} as const;

export interface Consumer extends Omit<Metadata, 'name'> {
  username: string;
  group_id?: string | number;
  plugins?: Record<string, unknown>;
}
