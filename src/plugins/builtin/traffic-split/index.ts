// traffic-split: sends a share of a route's traffic to other upstreams, as APISIX's traffic-split
// (apache/apisix: apisix/plugins/traffic-split.lua). Rules are tried in order; a rule without
// `match` takes every request, one with `match` takes the request when any of its `vars`
// expressions holds. The chosen rule's `weighted_upstreams` share its requests by weighted round
// robin: an entry names an upstream by `upstream_id`, carries an inline `upstream`, or (weight
// only) stands for the route's own upstream. No rule taken: the route's upstream serves.
import { definePlugin, type CompileEnv, type PhaseOutcome, type PluginContext, type UpstreamHandle } from '../../api.ts';
import { compileExpr, validateExpr, type Predicate } from '../../../expr/index.ts';
import { WeightedRoundRobin } from './round-robin.ts';

const NAME = 'traffic-split';

interface WeightedUpstreamConf {
  upstream_id?: string | number;
  upstream?: Record<string, unknown>;
  weight: number;
}

interface RuleConf {
  match?: Array<{ vars?: unknown }>;
  weighted_upstreams: WeightedUpstreamConf[];
}

interface TrafficSplitConf {
  rules?: RuleConf[];
}

/** What a pick leads to: the route's own upstream, an upstream by id, an inline one, or an error. */
type Target =
  | { kind: 'route' }
  | { kind: 'id'; upstreamId: string }
  | { kind: 'inline'; upstream: UpstreamHandle }
  | { kind: 'broken'; error: string };

interface CompiledRule {
  /** undefined: no `match`, the rule takes every request. */
  match: Predicate[] | undefined;
  balancer: WeightedRoundRobin<Target>;
}

interface TrafficSplitState {
  rules: CompiledRule[] | undefined;
}

// APISIX's schema_def.id_schema.
const idSchema = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' },
    { type: 'integer', minimum: 1 },
  ],
};

const timeoutSchema = {
  type: 'object',
  properties: {
    connect: { type: 'number', exclusiveMinimum: 0 },
    send: { type: 'number', exclusiveMinimum: 0 },
    read: { type: 'number', exclusiveMinimum: 0 },
  },
  required: ['connect', 'send', 'read'],
};

// An inline upstream, validated as APISIX validates one (schema_def.upstream): the fields the plugin
// uses are checked in full, the ones it ignores (health checks, retries, discovery, labels) only by
// type, so a conf APISIX accepts is accepted here.
const inlineUpstreamSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    name: { type: 'string', minLength: 1, maxLength: 256 },
    desc: { type: 'string', maxLength: 256 },
    labels: { type: 'object' },
    type: { type: 'string', enum: ['roundrobin', 'chash', 'ewma', 'least_conn'], default: 'roundrobin' },
    nodes: {
      anyOf: [
        { type: 'object', patternProperties: { '.*': { type: 'integer', minimum: 0 } } },
        {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              host: { type: 'string', minLength: 1 },
              port: { type: 'integer', minimum: 1, maximum: 65535 },
              weight: { type: 'integer', minimum: 0 },
              priority: { type: 'integer', default: 0 },
              metadata: { type: 'object' },
            },
            required: ['host', 'weight'],
          },
        },
      ],
    },
    service_name: { type: 'string', minLength: 1, maxLength: 256 },
    discovery_type: { type: 'string' },
    discovery_args: { type: 'object' },
    hash_on: { type: 'string', enum: ['vars', 'header', 'cookie', 'consumer', 'vars_combinations'], default: 'vars' },
    key: { type: 'string' },
    retries: { type: 'integer', minimum: 0 },
    retry_timeout: { type: 'number', minimum: 0 },
    timeout: timeoutSchema,
    scheme: { type: 'string', enum: ['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls', 'udp', 'kafka'], default: 'http' },
    pass_host: { type: 'string', enum: ['pass', 'node', 'rewrite'], default: 'pass' },
    upstream_host: { type: 'string', pattern: '^\\*?[0-9a-zA-Z-._\\[\\]:]+$' },
    keepalive_pool: { type: 'object' },
    tls: { type: 'object' },
    checks: { type: 'object' },
  },
  oneOf: [{ required: ['nodes'] }, { required: ['service_name', 'discovery_type'] }],
  additionalProperties: false,
};

const schema = {
  type: 'object',
  properties: {
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          match: {
            type: 'array',
            items: { type: 'object', properties: { vars: { type: 'array' } } },
          },
          weighted_upstreams: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                upstream_id: idSchema,
                upstream: inlineUpstreamSchema,
                weight: {
                  description: 'used to split traffic between different upstreams for plugin configuration',
                  type: 'integer',
                  default: 1,
                  minimum: 0,
                },
              },
            },
            // Without upstreams the route's own upstream takes everything.
            default: [{ weight: 1 }],
            minItems: 1,
            maxItems: 20,
          },
        },
        additionalProperties: false,
      },
    },
  },
};

/**
 * The fields of an inline upstream the plugin keeps (apisix/plugins/traffic-split.lua
 * `set_upstream`): health checks, retries, keep-alive pool, TLS client settings and service
 * discovery are not supported here, as in APISIX.
 */
const KEPT_UPSTREAM_FIELDS = ['name', 'type', 'hash_on', 'pass_host', 'upstream_host', 'key', 'nodes', 'timeout', 'scheme'] as const;

function compileTarget(entry: WeightedUpstreamConf, env: CompileEnv): Target {
  if (entry.upstream_id !== undefined) return { kind: 'id', upstreamId: String(entry.upstream_id) };
  if (entry.upstream === undefined) return { kind: 'route' };
  const inline = entry.upstream;
  if (inline.nodes === undefined) return { kind: 'broken', error: 'invalid configuration: property "nodes" is required' };
  if (inline.pass_host === 'rewrite' && !inline.upstream_host) {
    return { kind: 'broken', error: "`upstream_host` can't be empty when `pass_host` is `rewrite`" };
  }
  const kept: Record<string, unknown> = {};
  for (const field of KEPT_UPSTREAM_FIELDS) if (inline[field] !== undefined) kept[field] = inline[field];
  try {
    return { kind: 'inline', upstream: env.compileUpstream(kept) };
  } catch (err) {
    return { kind: 'broken', error: (err as Error).message };
  }
}

/**
 * The round robin's entries. As in APISIX, entries are keyed by what they point at: several
 * weight-only entries, or several with the same `upstream_id`, are one target with the last weight.
 */
function compileBalancer(entries: WeightedUpstreamConf[], env: CompileEnv): WeightedRoundRobin<Target> {
  const shared = new Map<string, { target: Target; weight: number }>();
  const list: Array<{ target: Target; weight: number }> = [];
  for (const entry of entries) {
    const key = entry.upstream_id !== undefined ? `id:${entry.upstream_id}` : entry.upstream === undefined ? 'route' : undefined;
    const existing = key === undefined ? undefined : shared.get(key);
    if (existing) {
      existing.weight = entry.weight;
      continue;
    }
    const item = { target: compileTarget(entry, env), weight: entry.weight };
    if (key !== undefined) shared.set(key, item);
    list.push(item);
  }
  return new WeightedRoundRobin(list);
}

function route(ctx: PluginContext, target: Target): PhaseOutcome {
  switch (target.kind) {
    case 'route':
      return undefined;
    case 'id':
      ctx.setUpstream({ upstreamId: target.upstreamId });
      return undefined;
    case 'inline':
      ctx.setUpstream({ upstream: target.upstream });
      return undefined;
    case 'broken':
      ctx.log('error', `failed to validate generated upstream: ${target.error}`);
      return { status: 500, body: target.error };
  }
}

export default definePlugin<TrafficSplitConf, TrafficSplitState>({
  name: NAME,
  version: 0.1,
  priority: 966,
  schema,

  check(conf) {
    for (const rule of conf.rules ?? []) {
      for (const m of rule.match ?? []) {
        const err = validateExpr(m.vars);
        if (err !== undefined) return `failed to validate the 'vars' expression: ${err}`;
      }
    }
    return undefined;
  },

  compile(conf, env) {
    if (!conf.rules) return { rules: undefined };
    return {
      rules: conf.rules.map((rule) => ({
        match: rule.match?.map((m) => compileExpr(m.vars)),
        balancer: compileBalancer(rule.weighted_upstreams, env),
      })),
    };
  },

  phases: {
    access(ctx, _conf, state) {
      if (!state.rules) return undefined;
      // APISIX keeps one verdict across rules: a rule whose `match` is an empty list inherits the
      // previous rule's (true before the first rule).
      let passed = true;
      for (const rule of state.rules) {
        if (rule.match === undefined) return route(ctx, rule.balancer.pick());
        for (const predicate of rule.match) {
          passed = predicate(ctx);
          if (passed) break;
        }
        if (passed) return route(ctx, rule.balancer.pick());
      }
      return undefined;
    },
  },
});
