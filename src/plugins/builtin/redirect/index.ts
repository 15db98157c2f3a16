// redirect: answers with a redirect instead of proxying, as APISIX's redirect plugin
// (apache/apisix: apisix/plugins/redirect.lua). Exactly one of:
//   uri            a template (`$uri/index.html`, `https://$host$request_uri`) of the Location
//   regex_uri      [pattern, replacement]: the path rewritten by a regex (`$1`, `${1}`); a path the
//                  pattern does not match is proxied as usual
//   http_to_https  plain-HTTP requests go to the same URL over HTTPS (301 for GET and HEAD, 308
//                  otherwise), on `plugin_attr.redirect.https_port` when set
// `encode_uri` percent-encodes the path part of the Location as nginx's ngx_escape_uri does;
// `append_query_string` adds the request's query string.
import { definePlugin, type PhaseExit, type PluginContext } from '../../api.ts';
import { compileNgxRegex, compileReplacement, type NgxRegex, type Replacement } from '../../lib/pcre.ts';
import { escapeUri, URI_TEMPLATE_PATTERN, UriTemplate } from './uri-template.ts';

interface RedirectConf {
  ret_code: number;
  uri?: string;
  regex_uri?: [string, string];
  http_to_https?: boolean;
  encode_uri: boolean;
  append_query_string: boolean;
}

interface RedirectState {
  uri: UriTemplate | undefined;
  regex: { pattern: NgxRegex; replacement: Replacement } | undefined;
  /** Why regex_uri could not be compiled (answered as a 500, as APISIX does on a substitution error). */
  regexError: string | undefined;
  /** The https redirect target, with the port when it is not 443. */
  httpsTarget: UriTemplate | undefined;
}

const schema = {
  type: 'object',
  properties: {
    ret_code: { type: 'integer', minimum: 200, default: 302 },
    uri: { type: 'string', minLength: 2, pattern: URI_TEMPLATE_PATTERN },
    regex_uri: {
      description: 'params for generating new uri that substitute from client uri, first param is regular expression, the second one is uri template',
      type: 'array',
      maxItems: 2,
      minItems: 2,
      items: { description: 'regex uri', type: 'string' },
    },
    http_to_https: { type: 'boolean' },
    encode_uri: { type: 'boolean', default: false },
    append_query_string: { type: 'boolean', default: false },
  },
  oneOf: [{ required: ['uri'] }, { required: ['regex_uri'] }, { required: ['http_to_https'] }],
};

/** The port APISIX's default config listens for HTTPS on (apisix.ssl.listen). */
const DEFAULT_HTTPS_PORT = 9443;

function isSecretRef(value: string): boolean {
  return value.startsWith('$secret://') || value.startsWith('$env://');
}

/**
 * The HTTPS port of redirects: `plugin_attr.redirect.https_port`, else the node's HTTPS listener
 * (APISIX picks one of `apisix.ssl.listen`; the plugin API does not expose the node's listeners, so
 * the default one stands in). 443, 0 or an out-of-range port means none in the URL.
 */
function httpsTarget(attributes: Readonly<Record<string, unknown>> | undefined): UriTemplate {
  const configured = Number(attributes?.https_port);
  const port = Number.isFinite(configured) && attributes?.https_port !== undefined ? configured : DEFAULT_HTTPS_PORT;
  if (port === 443 || port <= 0 || port > 65535) return new UriTemplate('https://$host$request_uri');
  return new UriTemplate(`https://$host:${port}$request_uri`);
}

/**
 * Where the request goes: the rendered `uri`, the path rewritten by `regex_uri`, undefined when the
 * pattern does not match (the request goes on), or a 500 exit when `regex_uri` is broken.
 */
function redirectTarget(ctx: PluginContext, state: RedirectState): string | undefined | PhaseExit {
  if (state.uri) return state.uri.render(ctx);
  if (state.regex) {
    const re = state.regex.pattern.once;
    re.lastIndex = 0;
    const path = ctx.uri;
    const m = re.exec(path);
    if (!m) return undefined;
    return path.slice(0, m.index) + state.regex.replacement(m) + path.slice(m.index + m[0].length);
  }
  if (state.regexError !== undefined) {
    ctx.log('error', state.regexError);
    return { status: 500 };
  }
  return undefined;
}

export default definePlugin<RedirectConf, RedirectState>({
  name: 'redirect',
  version: 0.1,
  priority: 900,
  schema,

  check(conf) {
    if (conf.regex_uri) {
      const [pattern, replacement] = conf.regex_uri;
      if (!isSecretRef(pattern)) {
        try {
          compileNgxRegex(pattern, 'jo');
          if (!isSecretRef(replacement)) compileReplacement(replacement);
        } catch (err) {
          return `invalid regex_uri (${pattern}, ${replacement}), err:${(err as Error).message}`;
        }
      }
    }
    if (conf.http_to_https && conf.append_query_string) return 'only one of `http_to_https` and `append_query_string` can be configured.';
    return undefined;
  },

  compile(conf, env) {
    const state: RedirectState = { uri: undefined, regex: undefined, regexError: undefined, httpsTarget: undefined };
    if (conf.uri !== undefined) state.uri = new UriTemplate(conf.uri);
    if (conf.regex_uri) {
      const [pattern, replacement] = conf.regex_uri;
      try {
        state.regex = { pattern: compileNgxRegex(pattern, 'jo'), replacement: compileReplacement(replacement) };
      } catch (err) {
        state.regexError = `invalid regex_uri (${pattern}, ${replacement}), err:${(err as Error).message}`;
      }
    }
    if (conf.http_to_https) state.httpsTarget = httpsTarget(env.attributes);
    return state;
  },

  phases: {
    rewrite(ctx, conf, state) {
      let status = conf.ret_code;
      let target: string | undefined | PhaseExit;
      // A TLS-terminating proxy in front says how the client came in.
      const scheme = ctx.header('x-forwarded-proto') ?? ctx.scheme;
      if (state.httpsTarget && scheme !== 'https') {
        target = state.httpsTarget.render(ctx);
        status = ctx.method === 'GET' || ctx.method === 'HEAD' ? 301 : 308;
      } else {
        target = redirectTarget(ctx, state);
      }
      if (target === undefined || typeof target === 'object') return target;
      const query = target.indexOf('?');
      if (conf.encode_uri) target = query === -1 ? escapeUri(target) : escapeUri(target.slice(0, query)) + target.slice(query);
      if (conf.append_query_string && ctx.queryString !== '') target += (query === -1 ? '?' : '&') + ctx.queryString;
      return { status, headers: { Location: target } };
    },
  },
});
