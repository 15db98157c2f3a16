// api-breaker: a circuit breaker per API (host + path), as APISIX's api-breaker (apache/apisix:
// apisix/plugins/api-breaker.lua). Every `unhealthy.failures` upstream answers with an unhealthy
// status open the breaker: requests get `break_response_code` without reaching the upstream, for
// 2, 4, 8, ... seconds (doubling with each round of failures, at most `max_breaker_sec`). Once the
// breaker lets requests through again, `healthy.successes` healthy answers in a row close it for good.
// The state is in the node's shared memory, so every worker opens and closes the same breaker.
import { definePlugin, type PhaseExit, type PluginContext, type SharedTable } from '../../api.ts';
import { compileTemplate, type Template } from '../../lib/interpolate.ts';

const NAME = 'api-breaker';

interface ApiBreakerConf {
  break_response_code: number;
  break_response_body?: string;
  break_response_headers?: Array<{ key: string; value: string }>;
  max_breaker_sec: number;
  unhealthy: { http_statuses: number[]; failures: number };
  healthy: { http_statuses: number[]; successes: number };
}

const schema = {
  type: 'object',
  properties: {
    break_response_code: { type: 'integer', minimum: 200, maximum: 599 },
    break_response_body: { type: 'string' },
    break_response_headers: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          key: { type: 'string', minLength: 1 },
          value: { type: 'string', minLength: 1 },
        },
        required: ['key', 'value'],
      },
    },
    max_breaker_sec: { type: 'integer', minimum: 3, default: 300 },
    unhealthy: {
      type: 'object',
      properties: {
        http_statuses: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 500, maximum: 599 }, uniqueItems: true, default: [500] },
        failures: { type: 'integer', minimum: 1, default: 3 },
      },
      default: { http_statuses: [500], failures: 3 },
    },
    healthy: {
      type: 'object',
      properties: {
        http_statuses: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 200, maximum: 499 }, uniqueItems: true, default: [200] },
        successes: { type: 'integer', minimum: 1, default: 3 },
      },
      default: { http_statuses: [200], successes: 3 },
    },
  },
  required: ['break_response_code'],
};

// The shared entry of an API: [unhealthy answers so far, healthy answers in a row since the last
// unhealthy one, second the breaker last opened (0: never)]. It is kept an hour after the last
// unhealthy answer (APISIX keeps the count until the API recovers); a lookup alone never extends it.
const UNHEALTHY = 0;
const HEALTHY = 1;
const OPENED_AT = 2;
const STATE_TTL_MS = 3_600_000;
/** Passed when only reading or when nothing may need keeping: a new entry then lives a minute. */
const KEEP_TTL = 0;

interface State {
  conf: ApiBreakerConf;
  table: SharedTable;
  unhealthyStatuses: ReadonlySet<number>;
  healthyStatuses: ReadonlySet<number>;
  /** break_response_headers with their `$var` values compiled; only sent along with a body. */
  headers: Array<{ key: string; value: Template; isContentType: boolean }>;
}

/** APISIX's key: the API is the host and the path, whichever route serves them. */
function apiKey(ctx: PluginContext): string {
  return ctx.host + ctx.uri;
}

function isOpen(state: State, key: string): boolean {
  const { failures } = state.conf.unhealthy;
  const maxBreakerSec = state.conf.max_breaker_sec;
  return state.table.update(
    key,
    (values, now) => {
      const openedAt = values[OPENED_AT];
      const nowSec = Math.floor(now / 1000);
      // APISIX forgets when the breaker opened after max_breaker_sec.
      if (values[UNHEALTHY] === 0 || openedAt === 0 || nowSec - openedAt > maxBreakerSec) return false;
      const rounds = Math.max(1, Math.ceil(values[UNHEALTHY] / failures));
      const breakerSec = Math.min(2 ** rounds, maxBreakerSec);
      return openedAt + breakerSec >= nowSec;
    },
    KEEP_TTL,
  );
}

function breakResponse(ctx: PluginContext, state: State): PhaseExit {
  const conf = state.conf;
  if (conf.break_response_body === undefined) return { status: conf.break_response_code };
  for (const header of state.headers) {
    // Content-Type has one value (nginx keeps the last one set); the others add up as APISIX adds them.
    if (header.isContentType) ctx.response.headers.set(header.key, header.value.render(ctx));
    else ctx.response.headers.add(header.key, header.value.render(ctx));
  }
  return { status: conf.break_response_code, body: conf.break_response_body };
}

/** The status the upstream answered (the last try's), or undefined when no upstream answered. */
function upstreamStatus(ctx: PluginContext): number | undefined {
  const listed = ctx.get('upstream_status');
  if (listed !== undefined) {
    const status = Number(listed.slice(-3));
    return Number.isInteger(status) ? status : undefined;
  }
  return ctx.response.fromGateway || ctx.response.status === 0 ? undefined : ctx.response.status;
}

function recordUnhealthy(state: State, key: string): void {
  const { failures } = state.conf.unhealthy;
  state.table.update(
    key,
    (values, now) => {
      values[UNHEALTHY] += 1;
      values[HEALTHY] = 0;
      // Every `failures` unhealthy answers (re)open the breaker.
      if (values[UNHEALTHY] % failures === 0) values[OPENED_AT] = Math.floor(now / 1000);
    },
    STATE_TTL_MS,
  );
}

function recordHealthy(state: State, key: string): void {
  const { successes } = state.conf.healthy;
  state.table.update(
    key,
    (values) => {
      if (values[UNHEALTHY] === 0) return;
      values[HEALTHY] += 1;
      // Healthy enough in a row: the API is back to normal and its history is forgotten.
      if (values[HEALTHY] >= successes) values.fill(0);
    },
    KEEP_TTL,
  );
}

export default definePlugin<ApiBreakerConf, State>({
  name: NAME,
  version: 0.1,
  priority: 1005,
  schema,
  compile(conf, env) {
    return {
      conf,
      table: env.sharedTable(NAME),
      unhealthyStatuses: new Set(conf.unhealthy.http_statuses),
      healthyStatuses: new Set(conf.healthy.http_statuses),
      headers: (conf.break_response_headers ?? []).map((h) => ({ key: h.key, value: compileTemplate(h.value), isContentType: h.key.toLowerCase() === 'content-type' })),
    };
  },
  phases: {
    access(ctx, _conf, state) {
      return isOpen(state, apiKey(ctx)) ? breakResponse(ctx, state) : undefined;
    },
    log(ctx, _conf, state) {
      const status = upstreamStatus(ctx);
      if (status === undefined) return;
      if (state.unhealthyStatuses.has(status)) recordUnhealthy(state, apiKey(ctx));
      else if (state.healthyStatuses.has(status)) recordHealthy(state, apiKey(ctx));
    },
  },
});
