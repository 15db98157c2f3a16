// limit-req: a leaky bucket per key, as APISIX's limit-req (apache/apisix: apisix/plugins/limit-req.lua,
// lua-resty-limit-traffic's resty.limit.req). Requests drain at `rate` per second; up to `burst` more
// may wait in the bucket and are delayed until their turn (or let through at once with `nodelay`);
// beyond that a request is rejected. With `policy: local` the bucket is in the node's shared memory,
// so all workers fill the same bucket; `redis` and `redis-cluster` share it between nodes.
import { definePlugin, type PhaseExit } from '../../api.ts';
import { type KeyType, limiterState, type LimiterState, rejection, sleep, withRedisPolicy } from '../../lib/limit.ts';
import { closeRedisClients, LuaScript, redisFor, runScript, type RedisPolicyConf } from '../../lib/redis.ts';

const NAME = 'limit-req';

interface LimitReqConf extends RedisPolicyConf {
  rate: number;
  burst: number;
  key: string;
  key_type: Exclude<KeyType, 'constant'>;
  policy: 'local' | 'redis' | 'redis-cluster';
  rejected_code: number;
  rejected_msg?: string;
  nodelay: boolean;
  allow_degradation: boolean;
}

const schema = withRedisPolicy({
  type: 'object',
  properties: {
    rate: { type: 'number', exclusiveMinimum: 0 },
    burst: { type: 'number', minimum: 0 },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['redis', 'redis-cluster', 'local'], default: 'local' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    nodelay: { type: 'boolean', default: false },
    allow_degradation: { type: 'boolean', default: false },
  },
  required: ['rate', 'burst', 'key'],
});

// The bucket is kept in thousandths of a request, as resty.limit.req keeps it: `excess` is how far
// the bucket is above empty, `last` when it was last filled (ms). A request arriving `elapsed` ms
// later first drains rate*elapsed, then adds one request (1000).

/** `{delay in ms}` of an accepted request, or REJECTED. */
const REJECTED = -1;

interface State extends LimiterState<LimitReqConf> {
  /** rate and burst in thousandths of a request (per second / in the bucket). */
  rateMilli: number;
  burstMilli: number;
  /** How long an idle bucket is worth keeping: until it has fully drained. */
  idleMs: number;
}

function takeLocally(state: State, key: string): number {
  const { rateMilli, burstMilli } = state;
  return state.table!.update(
    key,
    (values, now) => {
      // values: [excess, last (ms), 1 when the bucket has been used]
      let excess = 0;
      if (values[2] === 1) {
        const elapsed = Math.abs(now - values[1]);
        excess = Math.max(values[0] - (rateMilli * elapsed) / 1000 + 1000, 0);
        if (excess > burstMilli) return REJECTED;
      }
      values[0] = excess;
      values[1] = now;
      values[2] = 1;
      return (excess / rateMilli) * 1000;
    },
    state.idleMs,
  );
}

/**
 * The same bucket in Redis, atomic, under APISIX's keys: `{limit_req:<key>}excess` and
 * `{limit_req:<key>}last` (the braces keep both in one cluster slot). They expire once the bucket
 * has drained. The server's clock is the one clock every node shares.
 * Returns the delay in ms, or -1 when rejected.
 */
const REDIS_TAKE = new LuaScript(`local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local excess = redis.call('get', KEYS[1])
local last = redis.call('get', KEYS[2])
if excess and last then
  local elapsed = math.abs(now - tonumber(last))
  excess = math.max(tonumber(excess) - rate * elapsed / 1000 + 1000, 0)
  if excess > burst then
    return -1
  end
else
  excess = 0
end
local ttl = math.ceil((excess + 1000) / rate * 1000) + 1000
redis.call('set', KEYS[1], tostring(excess), 'PX', ttl)
redis.call('set', KEYS[2], tostring(now), 'PX', ttl)
return tostring(excess / rate * 1000)`);

function pass(conf: LimitReqConf, delayMs: number): PhaseExit | undefined | Promise<undefined> {
  if (delayMs === REJECTED) return rejection(conf.rejected_code, conf.rejected_msg);
  // APISIX does not sleep for less than a millisecond.
  if (delayMs >= 1 && !conf.nodelay) return sleep(delayMs);
  return undefined;
}

async function takeInRedis(state: State, key: string): Promise<PhaseExit | undefined> {
  const conf = state.conf;
  state.redis ??= redisFor(NAME, conf, state.env.log);
  let delayMs: number;
  try {
    delayMs = Number(await runScript(state.redis, REDIS_TAKE, [`{limit_req:${key}}excess`, `{limit_req:${key}}last`], [state.rateMilli, state.burstMilli]));
  } catch (err) {
    state.logFailure('error', `failed to limit req: ${(err as Error).message}`);
    return conf.allow_degradation ? undefined : { status: 500 };
  }
  return pass(conf, delayMs);
}

export default definePlugin<LimitReqConf, State>({
  name: NAME,
  version: 0.1,
  priority: 1001,
  schema,
  compile(conf, env) {
    const rateMilli = conf.rate * 1000;
    const burstMilli = conf.burst * 1000;
    return {
      ...limiterState(NAME, conf, env),
      rateMilli,
      burstMilli,
      idleMs: Math.ceil(((burstMilli + 1000) / rateMilli) * 1000) + 1000,
    };
  },
  destroy() {
    return closeRedisClients(NAME);
  },
  phases: {
    access(ctx, conf, state) {
      const key = state.scope + state.keyOf(ctx);
      if (state.table) return pass(conf, takeLocally(state, key));
      return takeInRedis(state, key);
    },
  },
});
