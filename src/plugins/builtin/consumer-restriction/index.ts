// consumer-restriction: lets requests through or not by who made them (consumer name or consumer
// group, set by an auth plugin that ran before) or by where they go (route or service id), with a
// whitelist, a blacklist and per-consumer allowed methods. apache/apisix:
// apisix/plugins/consumer-restriction.lua.
import { definePlugin, type PhaseExit, type PluginContext } from '../../api.ts';

type RestrictionType = 'consumer_name' | 'service_id' | 'route_id' | 'consumer_group_id';

interface ConsumerRestrictionConf {
  type: RestrictionType;
  blacklist?: string[];
  whitelist?: string[];
  allowed_by_methods?: Array<{ user?: string; methods?: string[] }>;
  rejected_code: number;
  rejected_msg?: string;
}

interface ConsumerRestrictionState {
  blacklist: ReadonlySet<string> | undefined;
  whitelist: ReadonlySet<string> | undefined;
  /** Allowed methods per user (entries without `user` never match, as in APISIX). */
  methodsByUser: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  rejected: PhaseExit;
  /** The 401 when the request has no value of the configured type. */
  missing: PhaseExit;
}

const HTTP_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'];

function valueOf(ctx: PluginContext, type: RestrictionType): string | undefined {
  switch (type) {
    case 'consumer_name':
      return ctx.consumer?.username;
    case 'consumer_group_id':
      return ctx.consumer?.groupId;
    case 'route_id':
      return ctx.routeId;
    case 'service_id':
      return ctx.serviceId;
  }
}

/** The first `allowed_by_methods` entry naming the user decides; a user no entry names may use any method. */
function methodAllowed(methodsByUser: ReadonlyMap<string, ReadonlySet<string>>, user: string, method: string): boolean {
  const allowed = methodsByUser.get(user);
  return allowed === undefined || allowed.has(method);
}

export default definePlugin<ConsumerRestrictionConf, ConsumerRestrictionState>({
  name: 'consumer-restriction',
  version: 0.1,
  priority: 2400,
  schema: {
    type: 'object',
    properties: {
      type: {
        type: 'string',
        enum: ['consumer_name', 'service_id', 'route_id', 'consumer_group_id'],
        default: 'consumer_name',
      },
      blacklist: { type: 'array', minItems: 1, items: { type: 'string' } },
      whitelist: { type: 'array', minItems: 1, items: { type: 'string' } },
      allowed_by_methods: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            user: { type: 'string' },
            methods: {
              type: 'array',
              minItems: 1,
              items: { description: 'HTTP method', type: 'string', enum: HTTP_METHODS },
            },
          },
        },
      },
      rejected_code: { type: 'integer', minimum: 200, default: 403 },
      rejected_msg: { type: 'string' },
    },
    anyOf: [{ required: ['blacklist'] }, { required: ['whitelist'] }, { required: ['allowed_by_methods'] }],
  },
  compile(conf) {
    let methodsByUser: Map<string, ReadonlySet<string>> | undefined;
    if (conf.allowed_by_methods && conf.allowed_by_methods.length > 0) {
      methodsByUser = new Map();
      for (const entry of conf.allowed_by_methods) {
        if (entry.user !== undefined && !methodsByUser.has(entry.user)) methodsByUser.set(entry.user, new Set(entry.methods ?? []));
      }
    }
    return {
      blacklist: conf.blacklist?.length ? new Set(conf.blacklist) : undefined,
      whitelist: conf.whitelist?.length ? new Set(conf.whitelist) : undefined,
      methodsByUser,
      rejected: { status: conf.rejected_code, body: { message: conf.rejected_msg ?? `The ${conf.type} is forbidden.` } },
      missing: { status: 401, body: { message: `The request is rejected, please check the ${conf.type} for this request` } },
    };
  },
  phases: {
    access(ctx, conf, state) {
      const value = valueOf(ctx, conf.type);
      if (value === undefined) return { ...state.missing };
      if (state.blacklist?.has(value)) return { ...state.rejected };
      let whitelisted = false;
      let block = false;
      if (state.whitelist) {
        whitelisted = state.whitelist.has(value);
        block = !whitelisted;
      }
      if (state.methodsByUser && !whitelisted && !methodAllowed(state.methodsByUser, value, ctx.method)) block = true;
      return block ? { ...state.rejected } : undefined;
    },
  },
});
