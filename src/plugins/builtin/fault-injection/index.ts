// fault-injection: delays requests and/or answers them itself with a chosen status, as APISIX's
// fault-injection (apache/apisix: apisix/plugins/fault-injection.lua). Each fault applies to a
// `percentage` of the requests (all when unset) and, with `vars`, only to requests for which one
// of the expressions holds. The delay comes first; an aborted request never reaches the upstream.
// `abort.body` and string header values may use request variables (`$remote_addr`, `${uri}`).
import { definePlugin, type PhaseExit, type PluginContext } from '../../api.ts';
import { compileExpr, validateExpr, type Predicate } from '../../../expr/index.ts';
import { compileTemplate, type Template } from '../../lib/interpolate.ts';

interface FaultInjectionConf {
  abort?: {
    http_status: number;
    body?: string;
    headers?: Record<string, string | number>;
    percentage?: number;
    vars?: unknown[];
  };
  delay?: {
    duration: number;
    percentage?: number;
    vars?: unknown[];
  };
}

interface FaultInjectionState {
  /** undefined: no `vars`, the fault applies to every request (subject to `percentage`). */
  abortWhen: Predicate[] | undefined;
  delayWhen: Predicate[] | undefined;
  abortBody: Template | undefined;
  /** Header values: a template for strings, the number's text as is. */
  abortHeaders: Array<[string, Template | string]>;
}

const varsSchema = { type: 'array', maxItems: 20, items: { type: 'array' } };

const schema = {
  type: 'object',
  properties: {
    abort: {
      type: 'object',
      properties: {
        http_status: { type: 'integer', minimum: 200 },
        body: { type: 'string', minLength: 0 },
        headers: {
          type: 'object',
          minProperties: 1,
          patternProperties: { '^[^:]+$': { oneOf: [{ type: 'string' }, { type: 'number' }] } },
        },
        percentage: { type: 'integer', minimum: 0, maximum: 100 },
        vars: varsSchema,
      },
      required: ['http_status'],
    },
    delay: {
      type: 'object',
      properties: {
        duration: { type: 'number', minimum: 0 },
        percentage: { type: 'integer', minimum: 0, maximum: 100 },
        vars: varsSchema,
      },
      required: ['duration'],
    },
  },
  minProperties: 1,
};

/** A fault applies to `percentage`% of requests: Lua's `math.random(1, 100) <= percentage`. */
function sampleHit(percentage: number | undefined): boolean {
  if (percentage === undefined) return true;
  return Math.floor(Math.random() * 100) + 1 <= percentage;
}

/** One of the expressions holds. An empty `vars` list never holds, as in APISIX. */
function anyHolds(predicates: Predicate[] | undefined, ctx: PluginContext): boolean {
  if (predicates === undefined) return true;
  for (const p of predicates) if (p(ctx)) return true;
  return false;
}

function abortExit(ctx: PluginContext, conf: NonNullable<FaultInjectionConf['abort']>, state: FaultInjectionState): PhaseExit {
  const exit: PhaseExit = { status: conf.http_status };
  if (state.abortBody) exit.body = state.abortBody.render(ctx);
  if (state.abortHeaders.length > 0) {
    const headers: Record<string, string> = {};
    for (const [name, value] of state.abortHeaders) headers[name] = typeof value === 'string' ? value : value.render(ctx);
    exit.headers = headers;
  }
  return exit;
}

export default definePlugin<FaultInjectionConf, FaultInjectionState>({
  name: 'fault-injection',
  version: 0.1,
  priority: 11000,
  schema,

  check(conf) {
    for (const rule of [...(conf.abort?.vars ?? []), ...(conf.delay?.vars ?? [])]) {
      const err = validateExpr(rule);
      if (err !== undefined) return err;
    }
    return undefined;
  },

  compile(conf) {
    const abort = conf.abort;
    return {
      abortWhen: abort?.vars?.map((rule) => compileExpr(rule)),
      delayWhen: conf.delay?.vars?.map((rule) => compileExpr(rule)),
      abortBody: abort?.body === undefined ? undefined : compileTemplate(abort.body),
      abortHeaders: Object.entries(abort?.headers ?? {}).map(([name, value]) => [name, typeof value === 'number' ? String(value) : compileTemplate(value)]),
    };
  },

  phases: {
    rewrite(ctx, conf, state) {
      // Both conditions are read before the delay, as APISIX reads them.
      const abortMatches = conf.abort !== undefined && anyHolds(state.abortWhen, ctx);
      const delayMatches = conf.delay !== undefined && anyHolds(state.delayWhen, ctx);
      const abortNow = () => (abortMatches && sampleHit(conf.abort!.percentage) ? abortExit(ctx, conf.abort!, state) : undefined);
      if (delayMatches && sampleHit(conf.delay!.percentage) && conf.delay!.duration > 0) {
        return new Promise<PhaseExit | undefined>((resolve) => setTimeout(() => resolve(abortNow()), conf.delay!.duration * 1000));
      }
      return abortNow();
    },
  },
});
