// Starting the Admin API for roles that serve it, with APISIX's start-up rules for its token.
import { startAdminServer, type AdminServer, type AdminServerOptions } from '../admin/index.ts';
import type { PluginCatalog } from '../plugins/registry.ts';
import type { NodeConfig } from '../conf/index.ts';
import { isServedKind } from '../model/index.ts';
import { checkResource } from '../snapshot/check.ts';
import type { ConfigStore } from '../store/types.ts';
import { SERVER_TOKEN } from '../proxy/responses.ts';
import { log } from '../util/log.ts';
import type { PluginHost } from './plugins.ts';
import { VERSION } from '../util/version.ts';

export class AdminTokenError extends Error {}

/**
 * APISIX refuses to start when the Admin API is reachable from beyond the default allow-list and
 * no token is set (a generated one would be printed to whoever reads the log).
 */
export function checkAdminToken(config: NodeConfig): void {
  const admin = config.deployment.admin;
  if (!admin || admin.admin_key_required === false) return;
  const allow = admin.allow_admin;
  const defaultAllow = allow !== undefined && allow.length === 1 && allow[0] === '127.0.0.0/24';
  const hasKey = (admin.admin_key ?? []).some((k) => k.key);
  if (!defaultAllow && !hasKey) throw new AdminTokenError('ERROR: missing valid Admin API token.');
}

/** What the Admin API asks of the enabled plugins: names, schemas, conf checks (the catalogue may be replaced by a reload). */
export function adminPluginHooks(catalog: () => PluginCatalog): Pick<AdminServerOptions, 'pluginNames' | 'pluginSchema' | 'pluginInfo' | 'plugins'> {
  return {
    pluginInfo: (name) => {
      const plugin = catalog().get(name);
      if (!plugin) return undefined;
      const def = plugin.def;
      return {
        schema: plugin.schema,
        ...(def.consumerSchema ? { consumer_schema: def.consumerSchema } : {}),
        ...(def.metadataSchema ? { metadata_schema: def.metadataSchema } : {}),
        ...(def.type ? { type: def.type } : {}),
        ...(def.scope ? { scope: def.scope } : {}),
        priority: def.priority,
        version: def.version,
      };
    },
    pluginNames: () => catalog().names(),
    pluginSchema: (name, type) => {
      const plugin = catalog().get(name);
      if (!plugin) return undefined;
      return type === 'consumer' ? (plugin.def.consumerSchema ?? plugin.schema) : type === 'metadata' ? plugin.def.metadataSchema : plugin.schema;
    },
    plugins: {
      check: (name, conf, kind) => catalog().get(name)?.check(conf, kind),
      isAuth: (name) => catalog().get(name)?.def.type === 'auth',
    },
  };
}

export async function startAdmin(config: NodeConfig, store: ConfigStore, prefix: string, plugins: PluginHost): Promise<AdminServer> {
  checkAdminToken(config);
  const admin = config.deployment.admin!;
  const server = await startAdminServer({
    ip: admin.admin_listen.ip,
    port: admin.admin_listen.port,
    store,
    prefix,
    admin,
    ...adminPluginHooks(() => plugins.catalog),
    // Nodes sharing the store follow the list this node writes (APISIX's `/apisix/plugins` key).
    onPluginsReload: () => void plugins.reloadFromConfig((list) => store.put(`${prefix.replace(/\/+$/, '')}/plugins`, list)).catch((err) => log('error', `plugins reload: ${(err as Error).message}`)),
    log,
    streamEnabled: config.apisix.proxy_mode !== 'http',
    serverHeader: config.apisix.enable_server_tokens ? `${SERVER_TOKEN}/${VERSION}` : SERVER_TOKEN,
    // The data plane's own checks, so the Admin API accepts exactly what workers can serve.
    check: (kind, id, value) => (isServedKind(kind) ? checkResource(kind, value, { catalog: plugins.catalog, id }) : undefined),
  });
  if (admin.admin_key_required === false) log('warn', 'Admin API token check is disabled (deployment.admin.admin_key_required: false)');
  if (server.apiKey) {
    // Printed once, like APISIX's generated token: it is not stored anywhere else.
    process.stdout.write(`Admin API key generated for this run (set deployment.admin.admin_key to keep one): ${server.apiKey}\n`);
  }
  return server;
}
