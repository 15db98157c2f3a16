// Redis for the limit plugins' `redis` and `redis-cluster` policies: one ioredis client per plugin and
// distinct connection config in each worker (confs that point at the same server share it), and Lua scripts
// run with EVALSHA, falling back to EVAL when the server does not know the script yet. Every call is
// bounded by `redis_timeout`, also while the server is unreachable, so a Redis outage costs a request
// at most that long (then `allow_degradation` decides).
import { createHash } from 'node:crypto';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { CompileEnv } from '../api.ts';

/** The redis_* attributes of a limit plugin's conf (apache/apisix: apisix/utils/redis-schema.lua). */
export interface RedisPolicyConf {
  policy?: string;
  redis_host?: string;
  redis_port?: number;
  redis_username?: string;
  redis_password?: string;
  redis_database?: number;
  redis_timeout?: number;
  redis_ssl?: boolean;
  redis_ssl_verify?: boolean;
  redis_cluster_nodes?: string[];
  redis_cluster_name?: string;
  redis_cluster_ssl?: boolean;
  redis_cluster_ssl_verify?: boolean;
}

export type RedisClient = Redis | Cluster;

/** A Lua script and its SHA1, computed once. */
export class LuaScript {
  readonly source: string;
  readonly sha: string;

  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

/** A client and the timeout its conf asks for. */
export interface RedisHandle {
  client: RedisClient;
  timeoutMs: number;
  /** `redis 127.0.0.1:6379` / `redis-cluster <name>`, for log lines. */
  label: string;
}

const clients = new Map<string, RedisHandle>();
const owners = new WeakMap<RedisHandle, string>();

/** The connection part of a conf: equal text means one client can serve both. */
function connectionId(plugin: string, conf: RedisPolicyConf): string {
  if (conf.policy === 'redis-cluster') {
    return JSON.stringify([plugin, 'cluster', conf.redis_cluster_name, conf.redis_cluster_nodes, conf.redis_password ?? '', conf.redis_timeout, conf.redis_cluster_ssl, conf.redis_cluster_ssl_verify]);
  }
  return JSON.stringify([plugin, 'single', conf.redis_host, conf.redis_port, conf.redis_username, conf.redis_password ?? '', conf.redis_database, conf.redis_timeout, conf.redis_ssl, conf.redis_ssl_verify]);
}

/** `host:port`, `[v6]:port` or a bare host (port 6379). */
function parseNode(node: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(node) ?? /^([^:]+)(?::(\d+))?$/.exec(node);
  if (!m) return { host: node, port: 6379 };
  return { host: m[1], port: m[2] ? Number(m[2]) : 6379 };
}

/**
 * The client `plugin` uses for a conf's `redis` or `redis-cluster` policy, created on first use in
 * this worker (connecting in the background) and shared by the plugin's confs with the same
 * connection attributes.
 */
export function redisFor(plugin: string, conf: RedisPolicyConf, log: CompileEnv['log']): RedisHandle {
  const id = connectionId(plugin, conf);
  const cached = clients.get(id);
  if (cached) return cached;
  const timeoutMs = conf.redis_timeout ?? 1000;
  // APISIX only authenticates when a password is set; an empty one means none.
  const password = conf.redis_password ? conf.redis_password : undefined;
  const common: RedisOptions = {
    password,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    // A request never waits for reconnections: one try, then the caller's degradation rule.
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 100, 2_000),
  };
  let handle: RedisHandle;
  if (conf.policy === 'redis-cluster') {
    const tls = conf.redis_cluster_ssl ? { rejectUnauthorized: conf.redis_cluster_ssl_verify === true } : undefined;
    const options: ClusterOptions = {
      redisOptions: { ...common, tls },
      slotsRefreshTimeout: timeoutMs,
      clusterRetryStrategy: (times) => Math.min(times * 100, 2_000),
    };
    const client = new Cluster((conf.redis_cluster_nodes ?? []).map(parseNode), options);
    handle = { client, timeoutMs, label: `redis-cluster ${conf.redis_cluster_name ?? ''}` };
  } else {
    const tls = conf.redis_ssl ? { rejectUnauthorized: conf.redis_ssl_verify === true } : undefined;
    const client = new Redis({
      ...common,
      host: conf.redis_host,
      port: conf.redis_port ?? 6379,
      username: password !== undefined ? conf.redis_username : undefined,
      db: conf.redis_database ?? 0,
      tls,
    });
    handle = { client, timeoutMs, label: `redis ${conf.redis_host}:${conf.redis_port ?? 6379}` };
  }
  // Without a listener an unreachable server would be an uncaught 'error' event; requests report
  // their own failures, so one line per outage burst is enough here.
  let lastLogged = 0;
  handle.client.on('error', (err: Error) => {
    const now = Date.now();
    if (now - lastLogged < 5_000) return;
    lastLogged = now;
    log('warn', `${handle.label}: ${err.message}`);
  });
  clients.set(id, handle);
  owners.set(handle, plugin);
  return handle;
}

/** Runs `script` (EVALSHA, then EVAL when the server lacks it), failing after the conf's timeout. */
export function runScript(handle: RedisHandle, script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
  const { client } = handle;
  const call = client.evalsha(script.sha, keys.length, ...keys, ...args).catch((err: Error) => {
    if (!String(err?.message).startsWith('NOSCRIPT')) throw err;
    return client.eval(script.source, keys.length, ...keys, ...args);
  });
  return withTimeout(call, handle.timeoutMs);
}

/** Rejects with `timeout` after `ms` unless `promise` settles first. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout')), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Closes `plugin`'s clients in this worker (the plugin is unloaded). */
export async function closeRedisClients(plugin: string): Promise<void> {
  const closing: RedisHandle[] = [];
  for (const [id, handle] of clients) {
    if (owners.get(handle) !== plugin) continue;
    clients.delete(id);
    closing.push(handle);
  }
  await Promise.allSettled(closing.map((h) => h.client.quit()));
}
