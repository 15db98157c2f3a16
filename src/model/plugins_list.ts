// The enabled-plugin list APISIX keeps at `/apisix/plugins` (written by worker 0 on reload).
export const pluginsListSchema = {
  type: 'array',
  description: 'The enabled plugins, as written on (re)load.',
  items: {
    type: 'object',
    description: 'One enabled plugin.',
    properties: {
      name: { type: 'string', minLength: 1, description: 'Plugin name.' },
      stream: { type: 'boolean', description: 'True for a stream (L4) plugin.' },
    },
    required: ['name'],
  },
} as const;

export interface PluginListEntry {
  name: string;
  stream?: boolean;
}
