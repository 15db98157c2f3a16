// The log entry of APISIX's loggers (apisix/utils/log-util.lua): the default entry (`get_full_log`)
// or a custom `log_format` from the plugin's conf or its plugin metadata, with request and response
// bodies when configured (`include_req_body` / `include_resp_body`, each gated by an optional
// `vars` expression and cut at `max_req_body_bytes` / `max_resp_body_bytes`).
//
// A `log_format` value that is a string starting with `$` is the variable of that name (the whole
// rest of the string: `$host` is the host, `$host:$port` a variable that does not exist); an object
// is a nested format (up to five levels, deeper objects are left out); anything else is logged as
// written. Besides the request variables, a format can name the default entry's parts: `$latency`,
// `$upstream_latency`, `$apisix_latency`, `$client_ip`, `$start_time`, `$hostname`, `$version`,
// `$request_method`, `$request_headers`, `$request_querystring`, `$request_body`, `$response_status`,
// `$response_headers`, `$response_size`, `$response_body`, `$upstream`, `$url`, `$consumer_username`,
// `$service_id`, `$route_id`.
import { hostname } from 'node:os';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { compileExpr, validateExpr, type Predicate } from '../../expr/index.ts';
import { VERSION } from '../../util/version.ts';
import type { JsonSchema, PluginContext } from '../api.ts';

const MAX_BODY_BYTES = 524288;
/** Levels of a custom format, the top one included; deeper objects are left out. */
const MAX_FORMAT_DEPTH = 5;
const HOST_NAME = hostname();
/** ctx.state key of the request body read for the loggers (shared: the body is the same for all). */
const REQUEST_BODY = 'log-util.request_body';

const EXPR_SCHEMA: JsonSchema = { type: 'array', minItems: 1, items: { type: 'array' } };

/** The entry options every logger shares (APISIX 3.x). */
export const LOG_SCHEMA_PROPERTIES: Record<string, JsonSchema> = {
  log_format: { type: 'object' },
  include_req_body: { type: 'boolean', default: false },
  include_req_body_expr: EXPR_SCHEMA,
  include_resp_body: { type: 'boolean', default: false },
  include_resp_body_expr: EXPR_SCHEMA,
  max_req_body_bytes: { type: 'integer', minimum: 1, default: MAX_BODY_BYTES },
  max_resp_body_bytes: { type: 'integer', minimum: 1, default: MAX_BODY_BYTES },
};

/** The `log_format` of a logger's plugin metadata. */
export const METADATA_LOG_FORMAT_SCHEMA: JsonSchema = { type: 'object' };

export interface LogEntryConf {
  log_format?: Record<string, unknown>;
  include_req_body?: boolean;
  include_req_body_expr?: unknown[];
  include_resp_body?: boolean;
  include_resp_body_expr?: unknown[];
  max_req_body_bytes?: number;
  max_resp_body_bytes?: number;
  /** file-logger: log only requests one of these expressions matches. */
  match?: unknown[];
}

/** The expression checks of log-util's `check_log_schema`, worded as APISIX words them. */
export function checkLogConf(conf: LogEntryConf): string | undefined {
  for (const key of ['include_req_body_expr', 'include_resp_body_expr'] as const) {
    if (conf[key] === undefined) continue;
    const err = validateExpr(conf[key]);
    if (err) return `failed to validate the '${key}' expression: ${err}`;
  }
  return undefined;
}

type FormatItem =
  | { key: string; kind: 'literal'; value: unknown }
  | { key: string; kind: 'var'; name: string }
  | { key: string; kind: 'nested'; items: FormatItem[] };

interface CompiledFormat {
  items: FormatItem[];
  /** Names `$request_body` somewhere: the body must be read in `access`. */
  wantsRequestBody: boolean;
}

function compileFormat(format: Record<string, unknown>): CompiledFormat {
  const out: CompiledFormat = { items: [], wantsRequestBody: false };
  out.items = compileItems(format, 1, out);
  return out;
}

function compileItems(format: Record<string, unknown>, level: number, out: CompiledFormat): FormatItem[] {
  const items: FormatItem[] = [];
  for (const [key, value] of Object.entries(format)) {
    if (typeof value === 'string' && value.startsWith('$')) {
      const name = value.slice(1);
      if (name === 'request_body') out.wantsRequestBody = true;
      items.push({ key, kind: 'var', name });
    } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      if (level < MAX_FORMAT_DEPTH) items.push({ key, kind: 'nested', items: compileItems(value as Record<string, unknown>, level + 1, out) });
    } else {
      items.push({ key, kind: 'literal', value });
    }
  }
  return items;
}

interface ResponseBody {
  chunks: Buffer[];
  size: number;
}

/** The entry parts a format can name as `$<name>` (log-util's `log_vars`). */
const LOG_VARS: Record<string, (ctx: PluginContext, b: LogEntryBuilder) => unknown> = {
  latency: (ctx) => latencyMs(ctx),
  upstream_latency: (ctx) => upstreamLatencyMs(ctx),
  apisix_latency: (ctx) => apisixLatencyMs(ctx, latencyMs(ctx), upstreamLatencyMs(ctx)),
  client_ip: (ctx) => ctx.remoteAddr,
  start_time: (ctx) => startTimeMs(ctx),
  hostname: () => HOST_NAME,
  version: () => VERSION,
  request_method: (ctx) => ctx.method,
  request_headers: (ctx) => requestHeaders(ctx),
  request_querystring: (ctx) => queryArgs(ctx.queryString),
  request_body: (ctx, b) => b.requestBody(ctx),
  response_status: (ctx) => responseStatus(ctx),
  response_headers: (ctx) => responseHeaders(ctx),
  response_size: (ctx) => numberVar(ctx, 'bytes_sent'),
  response_body: (ctx, b) => b.responseBody(ctx),
  upstream: (ctx) => ctx.get('upstream_addr'),
  url: (ctx) => requestUrl(ctx),
  consumer_username: (ctx) => ctx.consumer?.username,
  service_id: (ctx) => (ctx.routeId === undefined ? undefined : ctx.serviceId),
  route_id: (ctx) => ctx.routeId,
};

let builders = 0;

/**
 * Builds one plugin instance's log entries. `access`, `bodyFilter` and `entry` are called from the
 * plugin's phases of the same names.
 */
export class LogEntryBuilder {
  readonly plugin: string;
  readonly #conf: LogEntryConf;
  readonly #format: CompiledFormat | undefined;
  readonly #requestWhen: Predicate | undefined;
  readonly #responseWhen: Predicate | undefined;
  readonly #match: Predicate[] | undefined;
  /** ctx.state key of this instance's response body (two loggers on one request collect their own). */
  readonly #responseKey: string;
  /** Compiled metadata formats, by the metadata's `log_format` object. */
  readonly #metadataFormats = new WeakMap<object, CompiledFormat>();

  constructor(plugin: string, conf: LogEntryConf) {
    this.plugin = plugin;
    this.#conf = conf;
    this.#format = conf.log_format ? compileFormat(conf.log_format) : undefined;
    this.#requestWhen = conf.include_req_body_expr ? compileExpr(conf.include_req_body_expr) : undefined;
    this.#responseWhen = conf.include_resp_body_expr ? compileExpr(conf.include_resp_body_expr) : undefined;
    this.#match = conf.match?.map((rule) => compileExpr(rule));
    this.#responseKey = `log-util.response_body.${++builders}`;
  }

  /** The format in use: the conf's, else a non-empty one from the plugin metadata. */
  #activeFormat(ctx: PluginContext): CompiledFormat | undefined {
    if (this.#format) return this.#format;
    const format = ctx.metadata<{ log_format?: Record<string, unknown> }>(this.plugin)?.log_format;
    if (!format || Object.keys(format).length === 0) return undefined;
    let compiled = this.#metadataFormats.get(format);
    if (!compiled) this.#metadataFormats.set(format, (compiled = compileFormat(format)));
    return compiled;
  }

  /**
   * Reads the request body (it is still sent upstream) when it may be logged; the runtime waits
   * for the returned promise. Nothing to do otherwise.
   */
  access(ctx: PluginContext): Promise<undefined> | undefined {
    if (!this.#conf.include_req_body && !this.#activeFormat(ctx)?.wantsRequestBody) return undefined;
    if (ctx.state.has(REQUEST_BODY)) return undefined;
    return ctx.readBody().then((body) => {
      ctx.state.set(REQUEST_BODY, body);
      return undefined;
    });
  }

  /** Keeps the response body, up to `max_resp_body_bytes`, when it is to be logged. */
  bodyFilter(ctx: PluginContext, chunk: Buffer): undefined {
    if (!this.#conf.include_resp_body) return undefined;
    let held = ctx.state.get(this.#responseKey) as ResponseBody | false | undefined;
    if (held === undefined) {
      // As APISIX: the expression is evaluated once, on the first chunk (the status is known then).
      held = !this.#responseWhen || this.#responseWhen(ctx) ? { chunks: [], size: 0 } : false;
      ctx.state.set(this.#responseKey, held);
    }
    if (!held) return undefined;
    const room = (this.#conf.max_resp_body_bytes ?? MAX_BODY_BYTES) - held.size;
    if (room > 0 && chunk.length > 0) {
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      held.chunks.push(Buffer.from(part));
      held.size += part.length;
    }
    return undefined;
  }

  /** The request body read in `access`, cut at `max_req_body_bytes` (none for a request without one). */
  requestBody(ctx: PluginContext): string | undefined {
    const body = ctx.state.get(REQUEST_BODY) as Buffer | undefined;
    if (!body || body.length === 0) return undefined;
    const max = this.#conf.max_req_body_bytes ?? MAX_BODY_BYTES;
    return (body.length > max ? body.subarray(0, max) : body).toString('utf8');
  }

  /** The response body kept by `bodyFilter`, decoded when the upstream compressed it. */
  responseBody(ctx: PluginContext): string | undefined {
    const held = ctx.state.get(this.#responseKey) as ResponseBody | false | undefined;
    if (!held) return undefined;
    return decodeBody(Buffer.concat(held.chunks, held.size), ctx.response.headers.get('content-encoding')).toString('utf8');
  }

  /** The entry for this request, or undefined when `match` leaves it out. */
  entry(ctx: PluginContext): Record<string, unknown> | undefined {
    if (this.#match && !this.#match.some((holds) => holds(ctx))) return undefined;
    const format = this.#activeFormat(ctx);
    if (!format) return this.#fullEntry(ctx);
    const entry = this.#render(ctx, format.items);
    if (ctx.routeId !== undefined) {
      entry.service_id = ctx.serviceId;
      entry.route_id = ctx.routeId;
    }
    return entry;
  }

  #render(ctx: PluginContext, items: readonly FormatItem[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const item of items) {
      if (item.kind === 'literal') out[item.key] = item.value;
      else if (item.kind === 'nested') out[item.key] = this.#render(ctx, item.items);
      else {
        const special = LOG_VARS[item.name];
        out[item.key] = special ? special(ctx, this) : ctx.get(item.name);
      }
    }
    return out;
  }

  /** log-util's `get_full_log`. */
  #fullEntry(ctx: PluginContext): Record<string, unknown> {
    const conf = this.#conf;
    const matched = ctx.routeId !== undefined;
    const latency = latencyMs(ctx);
    const upstreamLatency = upstreamLatencyMs(ctx);
    const request: Record<string, unknown> = {
      url: requestUrl(ctx),
      uri: ctx.get('request_uri'),
      method: ctx.method,
      headers: requestHeaders(ctx),
      querystring: queryArgs(ctx.queryString),
      size: numberVar(ctx, 'request_length'),
    };
    const response: Record<string, unknown> = {
      status: responseStatus(ctx),
      headers: responseHeaders(ctx),
      size: numberVar(ctx, 'bytes_sent'),
    };
    if (conf.include_resp_body) response.body = this.responseBody(ctx);
    if (conf.include_req_body && (!this.#requestWhen || this.#requestWhen(ctx))) request.body = this.requestBody(ctx);
    const consumer = ctx.consumer;
    return {
      request,
      response,
      server: { hostname: HOST_NAME, version: VERSION },
      upstream: ctx.get('upstream_addr'),
      service_id: matched ? (ctx.serviceId ?? '') : ctx.host,
      route_id: ctx.routeId,
      consumer: consumer ? { username: consumer.username, group_id: consumer.groupId } : undefined,
      client_ip: ctx.remoteAddr,
      start_time: startTimeMs(ctx),
      latency,
      upstream_latency: upstreamLatency,
      apisix_latency: apisixLatencyMs(ctx, latency, upstreamLatency),
    };
  }
}

function latencyMs(ctx: PluginContext): number {
  return performance.now() - ctx.startTime;
}

function upstreamLatencyMs(ctx: PluginContext): number | undefined {
  const seconds = ctx.get('upstream_response_time');
  return seconds === undefined ? undefined : Number(seconds) * 1000;
}

/** The time spent in the gateway itself; never negative (the two clocks differ a little). */
function apisixLatencyMs(_ctx: PluginContext, latency: number, upstream: number | undefined): number {
  return Math.max(0, latency - (upstream ?? 0));
}

/** When the request arrived, in milliseconds since the epoch. */
function startTimeMs(ctx: PluginContext): number {
  return Math.floor(performance.timeOrigin + ctx.startTime);
}

function numberVar(ctx: PluginContext, name: string): number | undefined {
  const v = ctx.get(name);
  return v === undefined ? undefined : Number(v);
}

/** nginx's status of a request whose client went away before any answer is 499. */
function responseStatus(ctx: PluginContext): number {
  return ctx.response.status || 499;
}

function requestUrl(ctx: PluginContext): string {
  return `${ctx.scheme}://${ctx.host}:${ctx.get('server_port')}${ctx.get('request_uri')}`;
}

function requestHeaders(ctx: PluginContext): Record<string, unknown> {
  return { ...ctx.headers };
}

/** Response headers as `ngx.resp.get_headers()` gives them: lower-case names, repeated ones as lists. */
function responseHeaders(ctx: PluginContext): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of ctx.response.headers.entries()) {
    const key = name.toLowerCase();
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

/** `ngx.req.get_uri_args()`: an argument without `=` is `true`, a repeated one a list. */
function queryArgs(query: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!query) return out;
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = unescapeArg(eq === -1 ? part : part.slice(0, eq));
    if (name === '') continue;
    const value: unknown = eq === -1 ? true : unescapeArg(part.slice(eq + 1));
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}

function unescapeArg(text: string): string {
  if (!text.includes('%') && !text.includes('+')) return text;
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/** A compressed response body, decoded as APISIX's content-decode does; as is when that fails. */
function decodeBody(body: Buffer, encoding: string | undefined): Buffer {
  if (!encoding || body.length === 0) return body;
  try {
    switch (encoding.trim().toLowerCase()) {
      case 'gzip':
        return gunzipSync(body);
      case 'deflate':
        return inflateSync(body);
      case 'br':
        return brotliDecompressSync(body);
    }
  } catch {
    // not compressed after all (a gateway encoder sets the header before it compresses), or cut short
  }
  return body;
}
