// Plugin metadata: settings shared by every instance of one plugin (e.g. a logger's `log_format`),
// stored at `/apisix/plugin_metadata/{plugin}`. The body is checked against the plugin's own
// `metadata_schema`; until plugins carry one, any object is accepted.
export const pluginMetadataSchema = {
  type: 'object',
  description: 'Settings shared by all instances of one plugin; the id is the plugin name. Fields are plugin-specific.',
} as const;

export type PluginMetadata = Record<string, unknown> & { id?: string };
