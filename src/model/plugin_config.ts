// The plugin config resource: a reusable plugin set that routes pull in with `plugin_config_id`.
import { createTimeSchema, descSchema, idSchema, labelsSchema, pluginsSchema, updateTimeSchema, type Metadata } from './common.ts';

export const pluginConfigSchema = {
  type: 'object',
  description: 'A reusable set of plugins, merged into the routes that reference it.',
  properties: {
    id: idSchema,
    name: { type: 'string', description: 'Human-readable name (any string).' },
    desc: descSchema,
    labels: labelsSchema,
    plugins: { ...pluginsSchema, description: 'Plugin name → configuration merged into referencing routes.' },
    create_time: createTimeSchema,
    update_time: updateTimeSchema,
  },
  required: ['id', 'plugins'],
  additionalProperties: false,
} as const;

export interface PluginConfig extends Metadata {
  plugins: Record<string, unknown>;
}
