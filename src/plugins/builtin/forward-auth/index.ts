// forward-auth: asks an external authorization service about each request. The service gets the
// client request's scheme, method, host, URI and address as X-Forwarded-* headers (plus chosen
// client headers and `extra_headers`); a status below 300 lets the request through with chosen
// response headers copied onto it, any other status is answered to the client with the service's
// body and chosen headers. apache/apisix: apisix/plugins/forward-auth.lua.
import http from 'node:http';
import https from 'node:https';
import { definePlugin, type PhaseExit, type PhaseOutcome, type PluginContext } from '../../api.ts';

interface ForwardAuthConf {
  uri: string;
  allow_degradation: boolean;
  status_on_error: number;
  ssl_verify: boolean;
  request_method: 'GET' | 'POST';
  max_req_body_size: number;
  request_headers: string[];
  extra_headers?: Record<string, string>;
  upstream_headers: string[];
  client_headers: string[];
  timeout: number;
  keepalive: boolean;
  keepalive_timeout: number;
  keepalive_pool: number;
}

/** A header value template: literal text and request variables (`$name`, `${name}`). */
type Template = Array<{ text: string } | { variable: string }>;

interface ForwardAuthState {
  /** Where and how the authorization request goes (parsed once); undefined for an unusable `uri`. */
  target: http.RequestOptions | undefined;
  client: typeof http | typeof https;
  extraHeaders: Array<[name: string, value: Template]>;
}

/** `$var`, `${var}`; `\$` stays a literal dollar (APISIX core.utils.resolve_var). */
const VARIABLE = /\\\$|\$\{([\w.]+)\}|\$(\w+(?:\.\w+)*)/g;

export function compileTemplate(value: string): Template {
  const out: Template = [];
  let last = 0;
  for (const m of value.matchAll(VARIABLE)) {
    if (m.index > last) out.push({ text: value.slice(last, m.index) });
    out.push(m[0] === '\\$' ? { text: '$' } : { variable: m[1] ?? m[2] });
    last = m.index + m[0].length;
  }
  if (last < value.length) out.push({ text: value.slice(last) });
  return out;
}

function renderTemplate(ctx: PluginContext, template: Template): string {
  let out = '';
  for (const part of template) out += 'text' in part ? part.text : (ctx.get(part.variable) ?? '');
  return out;
}

/** Percent-encodes what a header value cannot carry as is (control and non-ASCII bytes of a decoded URI). */
function headerSafe(text: string): string {
  return /[^\x20-\x7e]/.test(text) ? text.replace(/[^\x20-\x7e]+/g, (run) => encodeURIComponent(run)) : text;
}

/** Headers sent to the authorization service, by lower-case name (first one set wins, as APISIX's table does). */
class AuthHeaders {
  readonly #byLower = new Map<string, [string, string]>();
  set(name: string, value: string | undefined, overwrite = true): void {
    if (value === undefined) return;
    const lower = name.toLowerCase();
    if (!overwrite && this.#byLower.has(lower)) return;
    this.#byLower.set(lower, [name, value]);
  }
  has(name: string): boolean {
    return this.#byLower.has(name.toLowerCase());
  }
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of this.#byLower.values()) out[name] = value;
    return out;
  }
}

interface AuthReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function callAuthService(state: ForwardAuthState, conf: ForwardAuthConf, headers: Record<string, string>, body: Buffer | undefined): Promise<AuthReply> {
  const target = state.target;
  if (!target) return Promise.reject(new Error(`invalid uri: ${conf.uri}`));
  return new Promise((resolve, reject) => {
    const req = state.client.request({ ...target, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(conf.timeout, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** A response header of the authorization service as the client or upstream gets it. */
function replyHeader(reply: AuthReply, name: string): string | string[] | undefined {
  return reply.headers[name.toLowerCase()];
}

function applyReply(ctx: PluginContext, conf: ForwardAuthConf, reply: AuthReply): PhaseOutcome {
  if (reply.status >= 300) {
    const headers: Record<string, string | string[]> = {};
    for (const name of conf.client_headers) {
      const value = replyHeader(reply, name);
      if (value !== undefined) headers[name] = value;
    }
    const exit: PhaseExit = { status: reply.status, body: reply.body, headers };
    return exit;
  }
  // A configured header the service did not send is removed, so a client cannot supply it.
  for (const name of conf.upstream_headers) {
    const value = replyHeader(reply, name);
    ctx.setHeader(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return undefined;
}

async function authorize(ctx: PluginContext, conf: ForwardAuthConf, state: ForwardAuthState): Promise<PhaseOutcome> {
  const headers = new AuthHeaders();
  headers.set('X-Forwarded-Proto', ctx.scheme);
  headers.set('X-Forwarded-Method', ctx.method);
  headers.set('X-Forwarded-Host', ctx.host);
  headers.set('X-Forwarded-Uri', headerSafe(ctx.queryString ? `${ctx.uri}?${ctx.queryString}` : ctx.uri));
  headers.set('X-Forwarded-For', ctx.remoteAddr);
  if (conf.request_method === 'POST') headers.set('Content-Encoding', ctx.header('content-encoding'));
  for (const [name, template] of state.extraHeaders) headers.set(name, headerSafe(renderTemplate(ctx, template)));
  for (const name of conf.request_headers) headers.set(name, ctx.header(name.toLowerCase()), false);

  let body: Buffer | undefined;
  if (conf.request_method === 'POST') {
    const declared = Number(ctx.header('content-length'));
    body = declared > conf.max_req_body_size ? undefined : await ctx.readBody();
    if (!body || body.length > conf.max_req_body_size) {
      ctx.log('error', 'failed to read request body: request size exceeds max_req_body_size');
      return { status: 413 };
    }
  }

  let reply: AuthReply;
  try {
    reply = await callAuthService(state, conf, headers.toObject(), body);
  } catch (err) {
    if (conf.allow_degradation) return undefined;
    ctx.log('warn', `failed to process forward auth, err: ${(err as Error).message}`);
    return { status: conf.status_on_error };
  }
  return applyReply(ctx, conf, reply);
}

export default definePlugin<ForwardAuthConf, ForwardAuthState>({
  name: 'forward-auth',
  version: 0.1,
  priority: 2002,
  schema: {
    type: 'object',
    properties: {
      uri: { type: 'string' },
      allow_degradation: { type: 'boolean', default: false },
      status_on_error: { type: 'integer', minimum: 200, maximum: 599, default: 403 },
      ssl_verify: { type: 'boolean', default: true },
      request_method: {
        type: 'string',
        default: 'GET',
        enum: ['GET', 'POST'],
        description: 'the method for client to request the authorization service',
      },
      max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
      request_headers: {
        type: 'array',
        default: [],
        items: { type: 'string' },
        description: 'client request header that will be sent to the authorization service',
      },
      extra_headers: {
        type: 'object',
        minProperties: 1,
        patternProperties: {
          '^[^:]+$': { type: 'string' },
        },
      },
      upstream_headers: {
        type: 'array',
        default: [],
        items: { type: 'string' },
        description: 'authorization response header that will be sent to the upstream',
      },
      client_headers: {
        type: 'array',
        default: [],
        items: { type: 'string' },
        description: 'authorization response header that will be sent to the client when authorizing failed',
      },
      timeout: { type: 'integer', minimum: 1, maximum: 60000, default: 3000, description: 'timeout in milliseconds' },
      keepalive: { type: 'boolean', default: true },
      keepalive_timeout: { type: 'integer', minimum: 1000, default: 60000 },
      keepalive_pool: { type: 'integer', minimum: 1, default: 5 },
    },
    required: ['uri'],
  },
  compile(conf, env) {
    const extraHeaders = Object.entries(conf.extra_headers ?? {}).map(([name, value]): [string, Template] => [name, compileTemplate(String(value))]);
    let url: URL | undefined;
    try {
      url = new URL(conf.uri);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      // APISIX accepts any string here and fails each request instead; so does this.
      env.log('error', `forward-auth: invalid uri ${conf.uri}`);
      return { target: undefined, client: http, extraHeaders };
    }
    const secure = url.protocol === 'https:';
    const agentOptions = conf.keepalive
      ? { keepAlive: true, maxFreeSockets: conf.keepalive_pool, timeout: conf.keepalive_timeout }
      : { keepAlive: false };
    const agent = secure ? new https.Agent({ ...agentOptions, rejectUnauthorized: conf.ssl_verify }) : new http.Agent(agentOptions);
    return {
      client: secure ? https : http,
      target: {
        protocol: url.protocol,
        hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: conf.request_method,
        agent,
      },
      extraHeaders,
    };
  },
  phases: {
    access(ctx, conf, state) {
      return authorize(ctx, conf, state);
    },
  },
});
