// Starting the Admin API for roles that serve it, with APISIX's start-up rules for its token.
import { startAdminServer, type AdminServer } from '../admin/index.ts';
import type { NodeConfig } from '../conf/index.ts';
import { RESOURCE_KINDS } from '../model/index.ts';
import { checkResource } from '../snapshot/check.ts';
import type { ConfigStore } from '../store/types.ts';
import { SERVER_TOKEN } from '../proxy/responses.ts';
import { log } from '../util/log.ts';
import { VERSION } from '../util/version.ts';

const SERVED = new Set<string>(RESOURCE_KINDS);

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

export async function startAdmin(config: NodeConfig, store: ConfigStore, prefix: string): Promise<AdminServer> {
  checkAdminToken(config);
  const admin = config.deployment.admin!;
  const server = await startAdminServer({
    ip: admin.admin_listen.ip,
    port: admin.admin_listen.port,
    store,
    prefix,
    admin,
    pluginNames: () => [],
    log,
    streamEnabled: config.apisix.proxy_mode !== 'http',
    serverHeader: config.apisix.enable_server_tokens ? `${SERVER_TOKEN}/${VERSION}` : SERVER_TOKEN,
    // The data plane's own checks, so the Admin API accepts exactly what workers can serve.
    check: (kind, _id, value) => (SERVED.has(kind) ? checkResource(kind as (typeof RESOURCE_KINDS)[number], value) : undefined),
  });
  if (admin.admin_key_required === false) log('warn', 'Admin API token check is disabled (deployment.admin.admin_key_required: false)');
  if (server.apiKey) {
    // Printed once, like APISIX's generated token: it is not stored anywhere else.
    process.stdout.write(`Admin API key generated for this run (set deployment.admin.admin_key to keep one): ${server.apiKey}\n`);
  }
  return server;
}
