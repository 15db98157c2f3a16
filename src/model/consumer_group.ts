// The consumer group resource: plugins shared by the consumers that reference it with `group_id`.
import { createTimeSchema, descSchema, idSchema, labelsSchema, nameSchema, pluginsSchema, updateTimeSchema, type Metadata } from './common.ts';

export const consumerGroupSchema = {
  type: 'object',
  description: 'Plugins shared by every consumer whose `group_id` points here.',
  properties: {
    id: idSchema,
    name: nameSchema,
    desc: descSchema,
    labels: labelsSchema,
    plugins: { ...pluginsSchema, description: 'Plugin name → configuration applied to the group\'s consumers.' },
    create_time: createTimeSchema,
    update_time: updateTimeSchema,
  },
  required: ['id', 'plugins'],
  additionalProperties: false,
} as const;

export interface ConsumerGroup extends Metadata {
  plugins: Record<string, unknown>;
}
