// Helpers shared by the traffic-limiting plugins (limit-count, limit-req, limit-conn, api-breaker):
// the counter key a request falls under (`key_type` + `key`, as apache/apisix resolves them), the
// prefix that keeps one configured instance's counters apart from another's, and the redis_* part
// of their schemas (apache/apisix: apisix/utils/redis-schema.lua).
import { createHash } from 'node:crypto';
import type { CompileEnv, JsonSchema, PluginContext, SharedTable } from '../api.ts';
import type { RedisHandle } from './redis.ts';
import { compileTemplate } from './interpolate.ts';

export type KeyType = 'var' | 'var_combination' | 'constant';

// ---------------------------------------------------------------------------------------------
// The request's counter key

/**
 * How a request's counter key is read from `key_type`/`key`: `var` reads one variable, `var_combination`
 * renders a `$a $b` template, `constant` is the key itself. When the key says nothing about the request
 * (the variable is absent, or no variable of the combination has a value) the client address stands
 * in, as APISIX does.
 */
export function compileRequestKey(keyType: KeyType, key: string): (ctx: PluginContext) => string {
  if (keyType === 'constant') return () => key;
  if (keyType === 'var_combination') {
    const template = compileTemplate(key);
    // Counts the variables that had a value while the template renders (resolve_var's n_resolved).
    // One per key: a phase renders it to completion before the next request can.
    const counting = {
      ctx: undefined as PluginContext | undefined,
      resolved: 0,
      get(name: string): string | undefined {
        const value = this.ctx!.get(name);
        if (value !== undefined) this.resolved++;
        return value;
      },
    };
    return (ctx) => {
      counting.ctx = ctx;
      counting.resolved = 0;
      const text = template.render(counting);
      counting.ctx = undefined;
      return counting.resolved > 0 ? text : ctx.remoteAddr;
    };
  }
  return (ctx) => ctx.get(key) ?? ctx.remoteAddr;
}

// ---------------------------------------------------------------------------------------------
// One configured instance's counters

/** APISIX's resource keys are etcd paths; these are the kinds a plugin can be configured on. */
const RESOURCE_DIRS: Record<string, string> = {
  route: 'routes',
  service: 'services',
  consumer: 'consumers',
  consumer_group: 'consumer_groups',
  plugin_config: 'plugin_configs',
  global_rule: 'global_rules',
  global_rules: 'global_rules',
};

/** `/apisix/routes/1` for a plugin configured on route 1. */
export function resourceKey(owner: CompileEnv['owner']): string {
  return `/apisix/${RESOURCE_DIRS[owner.kind] ?? owner.kind}/${owner.id}`;
}

/**
 * A short fingerprint of the plugin's own conf (without `_meta`). Counters are keyed by it so a
 * changed conf starts fresh counters while a change elsewhere in the route keeps them, as APISIX's
 * plugin-level conf version does; every worker computes the same value from the same conf.
 */
export function confFingerprint(conf: object): string {
  const { _meta, ...own } = conf as Record<string, unknown>;
  void _meta;
  return createHash('sha1').update(stableJson(own)).digest('hex').slice(0, 16);
}

/** `<resource key>:<conf fingerprint>`: what keeps this instance's counters apart from the others'. */
export function instancePrefix(env: CompileEnv, conf: object): string {
  return `${resourceKey(env.owner)}:${confFingerprint(conf)}`;
}

/** JSON with object keys sorted, so equal confs give equal text whatever order they were written in. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

// ---------------------------------------------------------------------------------------------
// What every limiter's compiled state starts with

/** The parts of a limiter's state that limit-count, limit-req and limit-conn share. */
export interface LimiterState<C> {
  conf: C;
  /** The request's key (`key_type` / `key`). */
  keyOf: (ctx: PluginContext) => string;
  /** Put before the request's key: this instance's resource and conf. */
  scope: string;
  /** The node-wide table for `policy: local`; undefined for the Redis policies. */
  table: SharedTable | undefined;
  /** Created on first use by the Redis policies. */
  redis: RedisHandle | undefined;
  env: CompileEnv;
  logFailure: ReturnType<typeof throttledLog>;
}

export function limiterState<C extends { key_type: KeyType; key: string; policy: string }>(name: string, conf: C, env: CompileEnv): LimiterState<C> {
  return {
    conf,
    keyOf: compileRequestKey(conf.key_type, conf.key),
    scope: `${instancePrefix(env, conf)}:`,
    table: conf.policy === 'local' ? env.sharedTable(name) : undefined,
    redis: undefined,
    env,
    logFailure: throttledLog(env.log),
  };
}

// ---------------------------------------------------------------------------------------------
// Small things every limiter needs

/** Resolves after `ms` (the delay of a request let through within the burst). */
export function sleep(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(resolve, ms, undefined));
}

/** APISIX's rejection: the configured code, with `{"error_msg": rejected_msg}` when a message is set. */
export function rejection(code: number, message: string | undefined): { status: number; body?: object } {
  return message === undefined ? { status: code } : { status: code, body: { error_msg: message } };
}

/** Logs at most one line per `everyMs` for a recurring failure (a Redis outage hits every request). */
export function throttledLog(log: CompileEnv['log'], everyMs = 5_000): (level: Parameters<CompileEnv['log']>[0], message: string) => void {
  let lastAt = 0;
  let lastMessage = '';
  return (level, message) => {
    const now = Date.now();
    if (message === lastMessage && now - lastAt < everyMs) return;
    lastAt = now;
    lastMessage = message;
    log(level, message);
  };
}

// ---------------------------------------------------------------------------------------------
// The redis_* attributes (apache/apisix: apisix/utils/redis-schema.lua), required by `policy`

export const REDIS_POLICY_SCHEMAS: Record<'redis' | 'redis-cluster', JsonSchema> = {
  redis: {
    properties: {
      redis_host: { type: 'string', minLength: 2 },
      redis_port: { type: 'integer', minimum: 1, default: 6379 },
      redis_username: { type: 'string', minLength: 1 },
      redis_password: { type: 'string', minLength: 0 },
      redis_database: { type: 'integer', minimum: 0, default: 0 },
      redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
      redis_ssl: { type: 'boolean', default: false },
      redis_ssl_verify: { type: 'boolean', default: false },
    },
    required: ['redis_host'],
  },
  'redis-cluster': {
    properties: {
      redis_cluster_nodes: { type: 'array', minItems: 1, items: { type: 'string', minLength: 2, maxLength: 100 } },
      redis_password: { type: 'string', minLength: 0 },
      redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
      redis_cluster_name: { type: 'string' },
      redis_cluster_ssl: { type: 'boolean', default: false },
      redis_cluster_ssl_verify: { type: 'boolean', default: false },
    },
    required: ['redis_cluster_nodes', 'redis_cluster_name'],
  },
};

/**
 * A plugin schema with APISIX's policy switch: `policy: redis` brings the redis_* attributes (and
 * requires redis_host), `policy: redis-cluster` the redis_cluster_* ones. The conditions also
 * require `policy` because ajv tests `if` before it fills in the `local` default, and a missing
 * property would otherwise pass `enum` and demand redis_host.
 */
export function withRedisPolicy(schema: JsonSchema): JsonSchema {
  return {
    ...schema,
    if: { properties: { policy: { enum: ['redis'] } }, required: ['policy'] },
    then: REDIS_POLICY_SCHEMAS.redis,
    else: {
      if: { properties: { policy: { enum: ['redis-cluster'] } }, required: ['policy'] },
      then: REDIS_POLICY_SCHEMAS['redis-cluster'],
    },
  };
}
