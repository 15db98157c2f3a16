// proxy-rewrite: changes what goes upstream (path, method, Host, request headers).
// Contract: apache/apisix apisix/plugins/proxy-rewrite.lua (3.x). On the hot path: everything that
// can be decided from the config (escaped constant paths, parsed templates, compiled regexes, header
// operation lists) is decided in `compile`; the phase only reads variables and assigns.
import { definePlugin, type PluginContext } from '../../api.ts';
import { checkFlatHeaders, headerText, isOperationsForm } from '../../lib/header-ops.ts';
import { compileTemplate, type Captures, type Template } from '../../lib/interpolate.ts';
import { compileNgxRegex, compileReplacement, type NgxRegex, type Replacement } from '../../lib/pcre.ts';
import { escapeUri } from '../../lib/uri-escape.ts';

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'MKCOL', 'COPY', 'MOVE', 'PROPFIND', 'LOCK', 'UNLOCK', 'PATCH', 'TRACE'];

const headerValue = { oneOf: [{ type: 'string' }, { type: 'number' }] };

const schema = {
  type: 'object',
  properties: {
    uri: { description: 'new uri for upstream', type: 'string', minLength: 1, maxLength: 4096, pattern: '^\\/.*' },
    method: { description: 'proxy route method', type: 'string', enum: METHODS },
    regex_uri: {
      description: 'new uri that substitute from client uri for upstream, lower priority than uri property',
      type: 'array',
      minItems: 2,
      items: { description: 'regex uri', type: 'string' },
    },
    host: { description: 'new host for upstream', type: 'string', pattern: '^[0-9a-zA-Z-.]+(:\\d{1,5})?$' },
    headers: {
      description: 'new headers for request',
      oneOf: [
        {
          type: 'object',
          minProperties: 1,
          additionalProperties: false,
          properties: {
            add: { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } },
            set: { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } },
            remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
          },
        },
        { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } },
      ],
    },
    use_real_request_uri_unsafe: { description: 'use real_request_uri instead, THIS IS VERY UNSAFE.', type: 'boolean', default: false },
  },
  minProperties: 1,
};

interface HeadersConf {
  add?: Record<string, string | number>;
  set?: Record<string, string | number>;
  remove?: string[];
  [name: string]: unknown;
}

interface ProxyRewriteConf {
  uri?: string;
  method?: string;
  regex_uri?: string[];
  host?: string;
  headers?: HeadersConf;
  use_real_request_uri_unsafe: boolean;
}

interface RegexRule {
  regex: NgxRegex;
  replace: Replacement;
}

interface HeaderOp {
  name: string;
  lowerName: string;
  value: Template;
}

const UriMode = {
  /** Upstream path = the request's own (`$uri`, or `$real_request_uri` when unsafe). */
  KEEP: 0,
  /** `uri` without variables: escaped once here. */
  CONSTANT: 1,
  /** `uri` with variables. */
  TEMPLATE: 2,
  /** `regex_uri`. */
  REGEX: 3,
} as const;

interface ProxyRewriteState {
  mode: (typeof UriMode)[keyof typeof UriMode];
  unsafe: boolean;
  /** CONSTANT: the path as sent upstream, and what joins the client's query to it (`?` or `&`). */
  constantUri: string;
  constantJoiner: string;
  uriTemplate: Template | undefined;
  rules: RegexRule[];
  host: string | undefined;
  method: string | undefined;
  add: HeaderOp[];
  set: HeaderOp[];
  remove: string[];
}

/** A `?` inside a substituted variable must not start the query string (APISIX escapes the first one). */
const escapeSeparator = (value: string): string => value.replace('?', '%3F');

/** Header values may use `$1` captures of the matched regex_uri, then request variables. */
function headerOps(entries: Record<string, string | number> | undefined): HeaderOp[] {
  if (!entries) return [];
  return Object.entries(entries).map(([name, value]) => ({ name, lowerName: name.toLowerCase(), value: compileTemplate(headerText(value), { captures: true }) }));
}

/** Path escaped for upstream, keeping a literal query part; `index` is where the query starts (-1: none). */
function escapeUpstreamPath(uri: string, index: number): string {
  return index === -1 ? escapeUri(uri) : escapeUri(uri.slice(0, index)) + uri.slice(index);
}

export default definePlugin<ProxyRewriteConf, ProxyRewriteState>({
  name: 'proxy-rewrite',
  version: 0.1,
  priority: 1008,
  schema,

  check(conf) {
    const rules = conf.regex_uri;
    if (rules && rules.length > 0) {
      if (rules.length % 2 !== 0) return 'The length of regex_uri should be an even number';
      for (let i = 0; i < rules.length; i += 2) {
        try {
          compileNgxRegex(rules[i], 'jo');
          compileReplacement(rules[i + 1]);
        } catch (err) {
          return `invalid regex_uri(${rules[i]}, ${rules[i + 1]}): ${(err as Error).message}`;
        }
      }
    }
    if (conf.headers && !isOperationsForm(conf.headers)) return checkFlatHeaders(conf.headers, true);
    return undefined;
  },

  compile(conf) {
    const state: ProxyRewriteState = {
      mode: UriMode.KEEP,
      unsafe: conf.use_real_request_uri_unsafe === true,
      constantUri: '',
      constantJoiner: '?',
      uriTemplate: undefined,
      rules: [],
      host: conf.host,
      method: conf.method,
      add: [],
      set: [],
      remove: [],
    };
    if (conf.uri !== undefined) {
      const template = compileTemplate(conf.uri);
      if (template.constant !== undefined) {
        state.mode = UriMode.CONSTANT;
        const index = template.constant.indexOf('?');
        state.constantUri = state.unsafe ? template.constant : escapeUpstreamPath(template.constant, index);
        state.constantJoiner = index === -1 ? '?' : '&';
      } else {
        state.mode = UriMode.TEMPLATE;
        state.uriTemplate = template;
      }
    } else if (conf.regex_uri && conf.regex_uri.length > 0) {
      state.mode = UriMode.REGEX;
      for (let i = 0; i + 1 < conf.regex_uri.length; i += 2) {
        state.rules.push({ regex: compileNgxRegex(conf.regex_uri[i], 'jo'), replace: compileReplacement(conf.regex_uri[i + 1]) });
      }
    }
    const headers = conf.headers;
    if (headers) {
      if (isOperationsForm(headers)) {
        state.add = headerOps(headers.add);
        state.set = headerOps(headers.set);
        state.remove = headers.remove ?? [];
      } else {
        state.set = headerOps(headers as Record<string, string | number>);
      }
    }
    return state;
  },

  phases: {
    rewrite(ctx, _conf, state) {
      if (state.host !== undefined) ctx.upstreamHost = state.host;
      const captures = rewriteUri(ctx, state);
      if (state.add.length > 0) addHeaders(ctx, state.add, captures);
      for (const op of state.set) {
        const value = op.value.render(ctx, captures);
        // An empty value removes the header, as ngx.req.set_header does.
        ctx.setHeader(op.name, value === '' ? undefined : value);
      }
      for (const name of state.remove) ctx.setHeader(name, undefined);
      if (state.method !== undefined) ctx.upstreamMethod = state.method;
      return undefined;
    },
  },
});

/** Sets `ctx.upstreamUri`; returns the regex_uri match, whose captures header values may use. */
function rewriteUri(ctx: PluginContext, state: ProxyRewriteState): Captures | undefined {
  const args = ctx.queryString;
  if (state.mode === UriMode.CONSTANT) {
    ctx.upstreamUri = state.unsafe || args === '' ? state.constantUri : state.constantUri + state.constantJoiner + args;
    return undefined;
  }
  let upstream = state.unsafe ? ctx.requestUri : ctx.uri;
  // Whether a `?` in the result is the query separator (true) or part of the path (false).
  let separatorIsLiteral = false;
  let captures: Captures | undefined;
  if (state.mode === UriMode.TEMPLATE) {
    separatorIsLiteral = true;
    upstream = state.uriTemplate!.render(ctx, undefined, escapeSeparator);
  } else if (state.mode === UriMode.REGEX) {
    // A `?` already in the path came from a decoded `%3F`: it stays part of the path.
    separatorIsLiteral = !upstream.includes('?');
    for (const rule of state.rules) {
      const re = rule.regex.once;
      re.lastIndex = 0;
      const m = re.exec(upstream);
      if (!m) continue;
      captures = m;
      upstream = upstream.slice(0, m.index) + rule.replace(m) + upstream.slice(m.index + m[0].length);
      break;
    }
  }
  if (state.unsafe) {
    ctx.upstreamUri = upstream;
    return captures;
  }
  const index = separatorIsLiteral ? upstream.indexOf('?') : -1;
  const escaped = escapeUpstreamPath(upstream, index);
  ctx.upstreamUri = args === '' ? escaped : escaped + (index === -1 ? '?' : '&') + args;
  return captures;
}

/** `add` keeps what the client sent and appends the new value (one more header line in APISIX). */
function addHeaders(ctx: PluginContext, ops: readonly HeaderOp[], captures: Captures | undefined): void {
  for (const op of ops) {
    const value = op.value.render(ctx, captures);
    if (value === '') continue;
    const existing = ctx.headers[op.lowerName];
    if (existing === undefined) ctx.setHeader(op.name, value);
    else ctx.setHeader(op.name, [...(Array.isArray(existing) ? existing : [existing]), value]);
  }
}
