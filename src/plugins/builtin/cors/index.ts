// cors: answers CORS preflight requests itself and adds the Access-Control-* (and
// Timing-Allow-Origin) headers to every response of the route, the gateway's own error answers
// included. APISIX: apisix/plugins/cors.lua.
import { definePlugin, type PluginContext, type ResponseHeaders } from '../../api.ts';
import { checkPcreList, compileRegexList, type StringTest } from '../../lib/matchers.ts';

interface CorsConf {
  allow_origins: string;
  allow_methods: string;
  allow_headers: string;
  expose_headers?: string;
  max_age: number;
  allow_credential: boolean;
  allow_origins_by_regex?: string[];
  allow_origins_by_metadata?: string[];
  timing_allow_origins?: string;
  timing_allow_origins_by_regex?: string[];
}

interface CorsMetadata {
  allow_origins?: Record<string, string>;
}

/**
 * A parsed origins setting: `*` (any), `**` (echo the request's Origin), a comma-separated list,
 * or one value taken as is (`null` or a single origin).
 */
type OriginsRule = { kind: 'echo' } | { kind: 'list'; origins: ReadonlySet<string> } | { kind: 'value'; value: string };

interface CorsState {
  origins: OriginsRule;
  originsByRegex: StringTest | undefined;
  timingOrigins: OriginsRule | undefined;
  timingByRegex: StringTest | undefined;
  methods: string;
  maxAge: string;
  exposeHeaders: string | undefined;
}

const ALL_METHODS = 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE';
// `*`, `**`, `null`, or comma-separated `scheme://host[:port]` origins.
const ORIGINS_PATTERN = '^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$';
// Regex lists and metadata key lists share one shape.
const STRING_SET = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 4096 }, minItems: 1, uniqueItems: true };
/** Where rewrite keeps the request's Origin for header_filter (other plugins may change the header). */
const ORIGIN_KEY = 'cors:origin';

function parseOrigins(setting: string): OriginsRule {
  if (setting === '**') return { kind: 'echo' };
  if (setting.includes(',')) return { kind: 'list', origins: new Set(setting.split(',').filter((o) => o !== '')) };
  return { kind: 'value', value: setting };
}

/** The value the rule gives for this request's Origin, or undefined when the origin is not listed. */
function resolveOrigins(rule: OriginsRule, origin: string | undefined): string | undefined {
  switch (rule.kind) {
    case 'echo':
      return origin ?? '*';
    case 'list':
      return origin !== undefined && rule.origins.has(origin) ? origin : undefined;
    default:
      return rule.value;
  }
}

/** APISIX's `match_origins`: the value allows this Origin (an absent Origin matches an absent value). */
function allows(origin: string | undefined, value: string | undefined): boolean {
  return value === '*' || value === origin;
}

function byRegex(test: StringTest, origin: string | undefined): string | undefined {
  return origin !== undefined && test(origin) ? origin : undefined;
}

// Parsed `plugin_metadata.cors.allow_origins` entries, per metadata version (the object is replaced
// when the metadata changes).
const metadataRules = new WeakMap<object, Map<string, OriginsRule>>();

function metadataRule(map: Record<string, string>, key: string): OriginsRule | undefined {
  let rules = metadataRules.get(map);
  if (!rules) {
    rules = new Map();
    metadataRules.set(map, rules);
  }
  let rule = rules.get(key);
  if (rule === undefined) {
    const setting = map[key];
    if (typeof setting !== 'string') return undefined;
    rule = parseOrigins(setting);
    rules.set(key, rule);
  }
  return rule;
}

/** The request's Origin when one of the named metadata origin sets allows it. */
function byMetadata(ctx: PluginContext, keys: readonly string[] | undefined, origin: string | undefined): string | undefined {
  if (!keys) return undefined;
  const map = ctx.metadata<CorsMetadata>('cors')?.allow_origins;
  if (!map) return undefined;
  for (const key of keys) {
    const rule = metadataRule(map, key);
    if (rule && allows(origin, resolveOrigins(rule, origin))) return origin;
  }
  return undefined;
}

function setCorsHeaders(ctx: PluginContext, headers: ResponseHeaders, conf: CorsConf, state: CorsState, allowOrigin: string): void {
  headers.set('Access-Control-Allow-Origin', allowOrigin);
  headers.set('Access-Control-Allow-Methods', state.methods);
  headers.set('Access-Control-Max-Age', state.maxAge);
  if (state.exposeHeaders !== undefined) headers.set('Access-Control-Expose-Headers', state.exposeHeaders);
  // `**` echoes what the preflight asked for; without that header any upstream value is removed.
  headers.set('Access-Control-Allow-Headers', conf.allow_headers === '**' ? ctx.header('access-control-request-headers') : conf.allow_headers);
  if (conf.allow_credential) headers.set('Access-Control-Allow-Credentials', 'true');
}

export default definePlugin<CorsConf, CorsState>({
  name: 'cors',
  version: 0.1,
  priority: 4000,
  schema: {
    type: 'object',
    properties: {
      allow_origins: { type: 'string', pattern: ORIGINS_PATTERN, default: '*' },
      allow_methods: { type: 'string', default: '*' },
      allow_headers: { type: 'string', default: '*' },
      expose_headers: { type: 'string' },
      max_age: { type: 'integer', default: 5 },
      allow_credential: { type: 'boolean', default: false },
      allow_origins_by_regex: STRING_SET,
      allow_origins_by_metadata: STRING_SET,
      timing_allow_origins: { type: 'string', pattern: ORIGINS_PATTERN },
      timing_allow_origins_by_regex: STRING_SET,
    },
  },
  metadataSchema: {
    type: 'object',
    properties: {
      allow_origins: { type: 'object', additionalProperties: { type: 'string', pattern: ORIGINS_PATTERN } },
    },
  },

  check(conf, kind) {
    if (kind === 'metadata') return undefined;
    if (conf.allow_credential) {
      const wildcard = [conf.allow_origins, conf.allow_methods, conf.allow_headers, conf.expose_headers, conf.timing_allow_origins];
      if (wildcard.includes('*')) return "you can not set '*' for other option when 'allow_credential' is true";
    }
    return checkPcreList(conf.allow_origins_by_regex) ?? checkPcreList(conf.timing_allow_origins_by_regex);
  },

  compile(conf) {
    return {
      origins: parseOrigins(conf.allow_origins),
      originsByRegex: conf.allow_origins_by_regex ? compileRegexList(conf.allow_origins_by_regex) : undefined,
      timingOrigins: conf.timing_allow_origins !== undefined ? parseOrigins(conf.timing_allow_origins) : undefined,
      timingByRegex: conf.timing_allow_origins_by_regex ? compileRegexList(conf.timing_allow_origins_by_regex) : undefined,
      methods: conf.allow_methods === '**' ? ALL_METHODS : conf.allow_methods,
      maxAge: String(conf.max_age),
      exposeHeaders: conf.expose_headers === '' ? undefined : conf.expose_headers,
    };
  },

  phases: {
    rewrite(ctx) {
      ctx.state.set(ORIGIN_KEY, ctx.header('origin'));
      // Every OPTIONS request is taken as a preflight and answered here; the headers come from
      // header_filter, which also runs on this answer.
      return ctx.method === 'OPTIONS' ? { status: 200 } : undefined;
    },

    header_filter(ctx, conf, state) {
      const origin = ctx.state.get(ORIGIN_KEY) as string | undefined;
      const headers = ctx.response.headers;

      // Metadata origin sets first; the route's own origins are tried when they did not allow the
      // Origin, unless the route keeps the default `*` (then metadata alone decides).
      let allowOrigin: string | undefined;
      let tryOwn = true;
      if (conf.allow_origins_by_metadata) {
        allowOrigin = byMetadata(ctx, conf.allow_origins_by_metadata, origin);
        tryOwn = !allows(origin, allowOrigin) && conf.allow_origins !== '*';
      }
      if (tryOwn) {
        // allow_origins_by_regex, when set, replaces allow_origins.
        allowOrigin = state.originsByRegex ? byRegex(state.originsByRegex, origin) : resolveOrigins(state.origins, origin);
      }
      if (!allows(origin, allowOrigin)) allowOrigin = byMetadata(ctx, conf.allow_origins_by_metadata, origin);

      if (conf.allow_origins !== '*') headers.add('Vary', 'Origin');
      if (allowOrigin !== undefined) setCorsHeaders(ctx, headers, conf, state, allowOrigin);

      let timingOrigin: string | undefined;
      if (state.timingByRegex) timingOrigin = byRegex(state.timingByRegex, origin);
      else if (state.timingOrigins) timingOrigin = resolveOrigins(state.timingOrigins, origin);
      if (timingOrigin !== undefined && allows(origin, timingOrigin)) headers.set('Timing-Allow-Origin', timingOrigin);
    },
  },
});
