// limit-count: at most `count` requests per `time_window` seconds for each key (client address by
// default), as APISIX's limit-count (apache/apisix: apisix/plugins/limit-count.lua and
// limit-count/init.lua). The window is fixed: it opens with the first request and the counter starts
// over when it ends. With `policy: local` the counter lives in the node's shared memory, so every
// worker of the node counts against the same limit; `redis` and `redis-cluster` share it between
// nodes with one atomic script per request. Routes with the same `group` share one counter.
import { definePlugin, type PhaseExit, type PluginContext } from '../../api.ts';
import { type KeyType, limiterState, type LimiterState, REDIS_POLICY_SCHEMAS, rejection, stableJson, withRedisPolicy } from '../../lib/limit.ts';
import { closeRedisClients, LuaScript, redisFor, runScript, type RedisPolicyConf } from '../../lib/redis.ts';

const NAME = 'limit-count';

interface LimitCountConf extends RedisPolicyConf {
  count: number;
  time_window: number;
  group?: string;
  key: string;
  key_type: KeyType;
  rejected_code: number;
  rejected_msg?: string;
  policy: 'local' | 'redis' | 'redis-cluster';
  allow_degradation: boolean;
  show_limit_quota_header: boolean;
}

interface QuotaHeaderNames {
  limit_header: string;
  remaining_header: string;
  reset_header: string;
}

const DEFAULT_HEADERS: QuotaHeaderNames = {
  limit_header: 'X-RateLimit-Limit',
  remaining_header: 'X-RateLimit-Remaining',
  reset_header: 'X-RateLimit-Reset',
};

const properties = {
  count: { type: 'integer', exclusiveMinimum: 0 },
  time_window: { type: 'integer', exclusiveMinimum: 0 },
  group: { type: 'string' },
  key: { type: 'string', default: 'remote_addr' },
  key_type: { type: 'string', enum: ['var', 'var_combination', 'constant'], default: 'var' },
  rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
  rejected_msg: { type: 'string', minLength: 1 },
  policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster'], default: 'local' },
  allow_degradation: { type: 'boolean', default: false },
  show_limit_quota_header: { type: 'boolean', default: true },
};

const schema = withRedisPolicy({ type: 'object', properties, required: ['count', 'time_window'] });

const metadataSchema = {
  type: 'object',
  properties: {
    limit_header: { type: 'string', default: DEFAULT_HEADERS.limit_header },
    remaining_header: { type: 'string', default: DEFAULT_HEADERS.remaining_header },
    reset_header: { type: 'string', default: DEFAULT_HEADERS.reset_header },
  },
};

// ---------------------------------------------------------------------------------------------
// `group`: every route of a group must carry the same conf (the counter is one). APISIX remembers
// the first conf it saw for a group for five minutes (its plugin lrucache) and refuses a different
// one meanwhile; so does this.

const GROUP_MEMORY_MS = 5 * 60_000;
const groupConfs = new Map<string, { fingerprint: string; at: number }>();

function groupFingerprint(conf: LimitCountConf): string {
  const fields = new Set(Object.keys(properties));
  const extra = REDIS_POLICY_SCHEMAS[conf.policy as 'redis' | 'redis-cluster']?.properties as object | undefined;
  if (extra) for (const k of Object.keys(extra)) fields.add(k);
  const picked: Record<string, unknown> = {};
  for (const f of fields) picked[f] = (conf as unknown as Record<string, unknown>)[f];
  return stableJson(picked);
}

function checkGroup(conf: LimitCountConf): string | undefined {
  const group = conf.group!;
  const now = Date.now();
  const fingerprint = groupFingerprint(conf);
  const known = groupConfs.get(group);
  if (known && now - known.at < GROUP_MEMORY_MS) return known.fingerprint === fingerprint ? undefined : 'group conf mismatched';
  groupConfs.set(group, { fingerprint, at: now });
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Counting

/** What one count returns; one object per instance, filled in place (a phase runs to completion). */
interface Outcome {
  /** Requests left in the window, or -1 when this one is over the limit. */
  remaining: number;
  /** Seconds until the window ends. */
  reset: number;
}

interface State extends LimiterState<LimitCountConf> {
  windowMs: number;
  outcome: Outcome;
  countStep: (values: Float64Array, now: number) => void;
}

/**
 * The Redis side of a window (same keys and values as APISIX's, so mixed fleets count together on
 * a `group`): the key holds the requests counted so far and expires with the window.
 * Returns {counted, milliseconds left}.
 */
const REDIS_COUNT = new LuaScript(`local ttl = redis.call('pttl', KEYS[1])
if ttl < 0 then
  redis.call('set', KEYS[1], ARGV[3], 'EX', ARGV[2])
  return {tonumber(ARGV[3]), tonumber(ARGV[2]) * 1000}
end
return {redis.call('incrby', KEYS[1], ARGV[3]), ttl}`);

/**
 * The fixed-window step run under the shared entry's lock (values: [requests counted, window end
 * in ms]); made once per instance so a request allocates no closure. Writes into `outcome`.
 */
function windowCounter(count: number, windowMs: number, outcome: Outcome): (values: Float64Array, now: number) => void {
  return (values, now) => {
    if (values[1] <= now) {
      values[0] = 0;
      values[1] = now + windowMs;
    }
    outcome.reset = Math.ceil((values[1] - now) / 1000);
    if (values[0] >= count) {
      outcome.remaining = -1;
      return;
    }
    values[0] += 1;
    outcome.remaining = count - values[0];
  };
}

function countLocally(state: State, key: string): Outcome {
  state.table!.update(key, state.countStep, state.windowMs);
  return state.outcome;
}

function setQuotaHeaders(ctx: PluginContext, conf: LimitCountConf, remaining: number, reset: number): void {
  const names = ctx.metadata<QuotaHeaderNames>(NAME) ?? DEFAULT_HEADERS;
  const headers = ctx.response.headers;
  headers.set(names.limit_header, conf.count);
  headers.set(names.remaining_header, remaining);
  headers.set(names.reset_header, reset);
}

function finish(ctx: PluginContext, state: State, outcome: Outcome): PhaseExit | undefined {
  const conf = state.conf;
  const rejected = outcome.remaining < 0;
  if (conf.show_limit_quota_header) setQuotaHeaders(ctx, conf, rejected ? 0 : outcome.remaining, outcome.reset);
  return rejected ? rejection(conf.rejected_code, conf.rejected_msg) : undefined;
}

async function countInRedis(ctx: PluginContext, state: State, key: string): Promise<PhaseExit | undefined> {
  const conf = state.conf;
  state.redis ??= redisFor(NAME, conf, state.env.log);
  let counted: number;
  let ttlMs: number;
  try {
    const reply = (await runScript(state.redis, REDIS_COUNT, [`plugin-${NAME}${key}`], [conf.count, conf.time_window, 1])) as [number, number];
    counted = Number(reply[0]);
    ttlMs = Number(reply[1]);
  } catch (err) {
    state.logFailure('error', `failed to limit count: ${(err as Error).message}`);
    return conf.allow_degradation ? undefined : { status: 500, body: { error_msg: 'failed to limit count' } };
  }
  const remaining = conf.count - counted;
  return finish(ctx, state, { remaining: remaining < 0 ? -1 : remaining, reset: Math.max(0, Math.ceil(ttlMs / 1000)) });
}

export default definePlugin<LimitCountConf, State>({
  name: NAME,
  version: 0.4,
  priority: 1002,
  schema,
  metadataSchema,
  check(conf, kind) {
    if (kind === 'metadata' || conf.group === undefined) return undefined;
    return checkGroup(conf);
  },
  compile(conf, env) {
    const outcome = { remaining: 0, reset: 0 };
    const base = limiterState(NAME, conf, env);
    return {
      ...base,
      // A group shares one counter between every instance that names it.
      scope: conf.group !== undefined ? `${conf.group}:` : base.scope,
      windowMs: conf.time_window * 1000,
      outcome,
      countStep: windowCounter(conf.count, conf.time_window * 1000, outcome),
    };
  },
  destroy() {
    return closeRedisClients(NAME);
  },
  phases: {
    access(ctx, _conf, state) {
      const key = state.scope + state.keyOf(ctx);
      if (state.table) return finish(ctx, state, countLocally(state, key));
      return countInRedis(ctx, state, key);
    },
  },
});
