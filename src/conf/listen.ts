import { availableParallelism } from 'node:os';
import type { NodeConfig } from './types.ts';

export interface Listen { ip: string; port: number }

const DEFAULT_HTTP_PORT = 9080;

/**
 * HTTP listeners from apisix.node_listen, de-duplicated, in file order (apache/apisix: apisix/cli/ops.lua).
 * A bare port, or an item without `ip`, listens on 0.0.0.0 and, with apisix.enable_ipv6, also on "::".
 * An item with an explicit ip gets no IPv6 twin, as in APISIX; an item without port uses 9080.
 */
export function httpListeners(config: NodeConfig): Listen[] {
  const { node_listen: nodeListen, enable_ipv6: ipv6 } = config.apisix;
  const out: Listen[] = [];
  const seen = new Set<string>();
  const add = (ip: string, port: number): void => {
    const key = `${ip}|${port}`;
    if (!seen.has(key)) { seen.add(key); out.push({ ip, port }); }
  };
  for (const item of Array.isArray(nodeListen) ? nodeListen : [nodeListen]) {
    const port = typeof item === 'number' ? item : (item.port ?? DEFAULT_HTTP_PORT);
    const ip = typeof item === 'number' ? undefined : item.ip;
    add(ip ?? '0.0.0.0', port);
    if (ip === undefined && ipv6) add('::', port);
  }
  return out;
}

const DEFAULT_HTTPS_PORT = 9443;

/**
 * TLS listeners from apisix.ssl.listen when apisix.ssl.enable, by the same rules as node_listen
 * (an item without `ip` also listens on "::" with apisix.enable_ipv6; without port, 9443).
 */
export function sslListeners(config: NodeConfig): Listen[] {
  const ssl = config.apisix.ssl;
  if (!ssl?.enable) return [];
  const out: Listen[] = [];
  const seen = new Set<string>();
  for (const item of ssl.listen ?? []) {
    const port = item.port ?? DEFAULT_HTTPS_PORT;
    const ips = item.ip !== undefined ? [item.ip] : config.apisix.enable_ipv6 ? ['0.0.0.0', '::'] : ['0.0.0.0'];
    for (const ip of ips) {
      if (seen.has(`${ip}|${port}`)) continue;
      seen.add(`${ip}|${port}`);
      out.push({ ip, port });
    }
  }
  return out;
}

/**
 * Worker process count. As in apache/apisix: apisix/cli/ops.lua, apisix.enable_dev_mode gives 1, "auto" gives the
 * CPU count (os.availableParallelism()), and the APISIX_WORKER_PROCESSES environment variable, when it holds a
 * number >= 1, overrides both.
 */
export function workerCount(config: NodeConfig, env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = Math.floor(Number(env.APISIX_WORKER_PROCESSES));
  if (env.APISIX_WORKER_PROCESSES?.trim() && Number.isFinite(fromEnv) && fromEnv >= 1) return fromEnv;
  if (config.apisix.enable_dev_mode) return 1;
  const setting = config.nginx_config.worker_processes;
  return setting === 'auto' ? availableParallelism() : setting;
}
