// The global rule resource: plugins run for every request, before route plugins.
import { createTimeSchema, idSchema, pluginsSchema, updateTimeSchema } from './common.ts';

export const globalRuleSchema = {
  type: 'object',
  description: 'Plugins run for every request; a plugin may appear in only one global rule.',
  properties: {
    id: idSchema,
    plugins: { ...pluginsSchema, description: 'Plugin name → configuration applied to all requests.' },
    create_time: createTimeSchema,
    update_time: updateTimeSchema,
  },
  required: ['id', 'plugins'],
  additionalProperties: false,
} as const;

export interface GlobalRule {
  id?: string | number;
  plugins: Record<string, unknown>;
  create_time?: number;
  update_time?: number;
}
