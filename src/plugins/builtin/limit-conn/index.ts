// limit-conn: at most `conn` requests in flight per key, as APISIX's limit-conn (apache/apisix:
// apisix/plugins/limit-conn.lua and limit-conn/init.lua, lua-resty-limit-traffic's resty.limit.conn).
// Up to `burst` more are let in after a delay; beyond `conn + burst` a request is rejected. The count
// goes up in `access` and back down in `log`, when the request is over. With `policy: local` it lives
// in the node's shared memory (one count for all workers); `redis` and `redis-cluster` keep a sorted
// set per key shared by every node, whose entries also expire after `key_ttl` should a node die
// with requests in flight.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { definePlugin, type PhaseExit, type PluginContext } from '../../api.ts';
import { type KeyType, limiterState, type LimiterState, rejection, sleep, withRedisPolicy } from '../../lib/limit.ts';
import { closeRedisClients, LuaScript, redisFor, runScript, withTimeout, type RedisPolicyConf } from '../../lib/redis.ts';

const NAME = 'limit-conn';

interface LimitConnConf extends RedisPolicyConf {
  conn: number;
  burst: number;
  default_conn_delay: number;
  only_use_default_delay: boolean;
  key: string;
  key_type: Exclude<KeyType, 'constant'>;
  policy: 'local' | 'redis' | 'redis-cluster';
  key_ttl: number;
  rejected_code: number;
  rejected_msg?: string;
  allow_degradation: boolean;
}

const schema = withRedisPolicy({
  type: 'object',
  properties: {
    conn: { type: 'integer', exclusiveMinimum: 0 },
    burst: { type: 'integer', minimum: 0 },
    default_conn_delay: { type: 'number', exclusiveMinimum: 0 },
    only_use_default_delay: { type: 'boolean', default: false },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['redis', 'redis-cluster', 'local'], default: 'local' },
    key_ttl: { type: 'integer', default: 3600 },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    allow_degradation: { type: 'boolean', default: false },
  },
  required: ['conn', 'burst', 'default_conn_delay', 'key'],
});

interface State extends LimiterState<LimitConnConf> {
  ttlMs: number;
  /**
   * The expected time (s) one request holds its place; excess requests wait a multiple of it. It
   * starts at `default_conn_delay` and follows the measured latency unless `only_use_default_delay`
   * (kept per worker, as APISIX keeps it per nginx worker).
   */
  unitDelay: number;
}

/** A place taken by a request, given back in `log`. */
interface Taken {
  state: State;
  key: string;
  /** Seconds the request was made to wait. */
  delay: number;
  /** The request's member of the Redis set. */
  member?: string;
}

const REJECTED = -1;
const TAKEN = 'limit-conn';

// ---------------------------------------------------------------------------------------------
// Counting

/** Takes a place; returns the number of requests in flight with this one, or REJECTED. */
function enterLocally(state: State, key: string): number {
  const limit = state.conf.conn + state.conf.burst;
  return state.table!.update(
    key,
    (values) => {
      if (values[0] >= limit) return REJECTED;
      values[0] += 1;
      return values[0];
    },
    state.ttlMs,
  );
}

function leaveLocally(state: State, key: string): void {
  state.table!.update(
    key,
    (values) => {
      // An entry that expired meanwhile starts at zero: never count below it.
      values[0] = Math.max(0, values[0] - 1);
    },
    state.ttlMs,
  );
}

/**
 * Redis: one sorted set per key, a member per request in flight scored with when it stops counting
 * (now + key_ttl), so members of a node that died go away by themselves. Returns {1, in flight} when
 * the request got a place, {0, in flight} when not.
 */
const REDIS_ENTER = new LuaScript(`local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local now = tonumber(redis.call('time')[1])
redis.call('zremrangebyscore', KEYS[1], 0, now)
local count = redis.call('zcard', KEYS[1])
if count >= limit then
  return {0, count}
end
redis.call('zadd', KEYS[1], now + ttl, ARGV[3])
redis.call('expire', KEYS[1], ttl)
return {1, count + 1}`);

function redisKey(key: string): string {
  return `limit_conn:${key}`;
}

// ---------------------------------------------------------------------------------------------
// Phases

/** Records the place and delays the request when it is one of the burst. */
function admitted(ctx: PluginContext, state: State, key: string, inFlight: number, member?: string): Promise<undefined> | undefined {
  const max = state.conf.conn;
  const delay = inFlight > max ? state.unitDelay * Math.floor((inFlight - 1) / max) : 0;
  let taken = ctx.state.get(TAKEN) as Taken[] | undefined;
  if (!taken) ctx.state.set(TAKEN, (taken = []));
  taken.push({ state, key, delay, member });
  return delay >= 0.001 ? sleep(delay * 1000) : undefined;
}

async function enterInRedis(ctx: PluginContext, state: State, key: string): Promise<PhaseExit | undefined> {
  const conf = state.conf;
  state.redis ??= redisFor(NAME, conf, state.env.log);
  const member = randomUUID();
  let reply: [number, number];
  try {
    reply = (await runScript(state.redis, REDIS_ENTER, [redisKey(key)], [conf.conn + conf.burst, conf.key_ttl, member])) as [number, number];
  } catch (err) {
    state.logFailure('error', `failed to limit conn: ${(err as Error).message}`);
    return conf.allow_degradation ? undefined : { status: 500 };
  }
  if (Number(reply[0]) === 0) return rejection(conf.rejected_code, conf.rejected_msg);
  return admitted(ctx, state, key, Number(reply[1]), member);
}

/** How long the request took, for the adaptive delay: the upstream's time when it was proxied. */
function latencyOf(ctx: PluginContext, delay: number): number {
  const upstream = ctx.get('upstream_response_time');
  if (upstream !== undefined && !ctx.response.fromGateway) {
    // nginx lists one time per try ("0.004, 0.010"); APISIX reads the number it can.
    const last = Number(upstream.split(',').pop());
    if (Number.isFinite(last)) return last;
  }
  return (performance.now() - ctx.startTime) / 1000 - delay;
}

/**
 * Gives back every place the request took. The first limit-conn `log` of the request does it for all
 * of them (a global rule's and the route's), as APISIX does; later calls find nothing left.
 */
function leave(ctx: PluginContext): void {
  const taken = ctx.state.get(TAKEN) as Taken[] | undefined;
  if (!taken || taken.length === 0) return;
  ctx.state.delete(TAKEN);
  for (const place of taken) {
    const state = place.state;
    if (!state.conf.only_use_default_delay) {
      const latency = latencyOf(ctx, place.delay);
      if (latency >= 0) state.unitDelay = (latency + state.unitDelay) / 2;
    }
    if (state.table) {
      leaveLocally(state, place.key);
    } else if (state.redis && place.member) {
      withTimeout(state.redis.client.zrem(redisKey(place.key), place.member), state.redis.timeoutMs).catch((err: Error) =>
        state.logFailure('error', `failed to record the connection leaving request: ${err.message}`),
      );
    }
  }
}

export default definePlugin<LimitConnConf, State>({
  name: NAME,
  version: 0.1,
  priority: 1003,
  schema,
  compile(conf, env) {
    return {
      ...limiterState(NAME, conf, env),
      ttlMs: Math.max(conf.key_ttl, 1) * 1000,
      unitDelay: conf.default_conn_delay,
    };
  },
  destroy() {
    return closeRedisClients(NAME);
  },
  phases: {
    access(ctx, conf, state) {
      const key = state.scope + state.keyOf(ctx);
      if (!state.table) return enterInRedis(ctx, state, key);
      const inFlight = enterLocally(state, key);
      if (inFlight === REJECTED) return rejection(conf.rejected_code, conf.rejected_msg);
      return admitted(ctx, state, key, inFlight);
    },
    log(ctx) {
      leave(ctx);
    },
  },
});
