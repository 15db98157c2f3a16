// Admin API v3 (see docs/admin-api.md).
export { startAdminServer, type AdminServer, type AdminServerOptions, type AdminLogLevel } from './server.ts';
export type { PluginSchemaLookup, PluginSchemaType } from './schema.ts';
