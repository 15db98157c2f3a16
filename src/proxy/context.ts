// The per-request context: request facts computed once, and the request variables that routes,
// expressions, balancers and (later) plugins read through `get(name)`.
import { randomFillSync } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { Socket } from 'node:net';
import type { VarLookup } from '../expr/vars.ts';
import type { Consumer, ConsumerCredential, LogLevel, PluginContext, ResponseView, UpstreamTarget } from '../plugins/api.ts';
import type { MatchInput } from '../snapshot/index.ts';
import type { PluginState } from '../snapshot/plugins.ts';
import type { ServedSsl } from '../snapshot/ssl.ts';
import { log } from '../util/log.ts';
import { realClientAddr, type RealIpSettings } from './real-ip.ts';
import { HeaderList } from './response-headers.ts';
import { parseCookies, parseQuery } from './uri.ts';

/** A request body larger than client_max_body_size, met while a plugin read it. */
export class BodyTooLargeError extends Error {}

/** A header of the upstream request set (value) or removed (undefined) by a plugin. */
export interface HeaderEdit {
  name: string;
  /** One header line per value of a list. */
  value: string | readonly string[] | undefined;
}

class Response implements ResponseView {
  status = 0;
  fromGateway = false;
  readonly headers = new HeaderList([], true);
}

export interface ListenerInfo {
  scheme: 'http' | 'https';
  port: number;
  /** On TLS: the SSL object whose certificate this connection's server presents. */
  ssl?: ServedSsl;
}

/**
 * Also the router's input: routing reads the same facts, so a request allocates no separate match
 * object; and the PluginContext plugins see. Plugin-only state is created on first use.
 */
export class RequestContext implements VarLookup, MatchInput, PluginContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** The request-target as the client sent it (`$request_uri`). */
  readonly requestUri: string;
  /** Normalised path used for routing (`$uri`). */
  readonly uri: string;
  readonly queryString: string;
  /** Host without port, lower-case (`$host`). */
  readonly host: string;
  /** Host header as sent (`$http_host`). */
  readonly hostHeader: string;
  remoteAddr: string;
  remotePort: number;
  readonly listener: ListenerInfo;
  readonly startTime: number;
  /** Path parameters captured by the router. */
  params: Record<string, string> | undefined;
  routeId: string | undefined;
  routeName: string | undefined;
  /** The route path that matched, as written (`matched_uri`). */
  matchedUri: string | undefined;
  /** The route's host patterns, for `matched_host`. */
  routeHosts: readonly string[] | undefined;
  serviceId: string | undefined;
  serviceName: string | undefined;
  consumer: Consumer | undefined;
  credentialId: string | undefined;
  /** Consumers, metadata and indexes of the snapshot serving this request (set when plugins run). */
  runtime: PluginState | undefined;
  /** Request line sent upstream (plugins may rewrite them). */
  upstreamUri: string;
  upstreamMethod: string;
  upstreamHost: string | undefined;
  upstreamTarget: UpstreamTarget | undefined;
  /** Headers of the upstream request changed by plugins, by lower-case name. */
  headerEdits: Map<string, HeaderEdit> | undefined;
  /** The whole request body once a plugin read or replaced it. */
  bufferedBody: Buffer | undefined;
  /** An upgrade request's raw connection and the bytes read past its head (WebSocket routes tunnel them). */
  upgrade: { socket: Socket; head: Buffer } | undefined;
  /** client_max_body_size in bytes (0 = none), for plugins that read the body. */
  maxBodyBytes = 0;
  #bodyReading: Promise<Buffer> | undefined;
  #response: Response | undefined;
  #state: Map<string, unknown> | undefined;
  #requestId: string | undefined;
  /** The node picked for the current attempt. */
  balancerIp: string | undefined;
  balancerPort: number | undefined;
  upstreamStatus: number | undefined;
  /** `$upstream_status` when more than one try was made (`502, 200`); undefined after a single try. */
  upstreamStatusList: string | undefined;
  /** `performance.now()` when the current (or last) try's request started toward its node. */
  upstreamStartTime: number | undefined;
  /** Milliseconds from the last try's start to the upstream's response head / its end. */
  upstreamHeaderTime: number | undefined;
  upstreamResponseTime: number | undefined;
  /** Why the gateway ended the request itself (for the error log). */
  failureReason: string | undefined;
  /** Every node tried, `ip:port, ip:port` (`$upstream_addr`). */
  upstreamAddr: string | undefined;
  /** `http` or `https` toward the node (`$upstream_scheme`). */
  upstreamScheme: string | undefined;
  /** The Host header sent to the node (`$upstream_host`). */
  upstreamHostSent: string | undefined;
  /** Body bytes read from the client while streaming it upstream (`request_length`). */
  requestBodyBytes = 0;
  /** The connection's byte count when the request arrived: `bytes_sent` is what was written since. */
  readonly #writtenBefore: number;
  #args: Map<string, string | string[]> | undefined;
  #cookies: Map<string, string> | undefined;
  #underscoreNames: boolean | undefined;
  /** Variables set by plugins (`setVar`). */
  #vars: Map<string, string> | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, uri: string, queryString: string, listener: ListenerInfo, realIp: RealIpSettings | undefined) {
    this.req = req;
    this.res = res;
    this.method = req.method!;
    this.requestUri = req.url!;
    this.uri = uri;
    this.queryString = queryString;
    const hostHeader = req.headers.host ?? '';
    this.hostHeader = hostHeader;
    this.host = hostWithoutPort(hostHeader).toLowerCase();
    const socket = req.socket;
    this.remoteAddr = realClientAddr(unmapIpv4(socket.remoteAddress ?? ''), req.headers, realIp);
    this.remotePort = socket.remotePort ?? 0;
    // HTTP/2 streams share their connection's counter: their answer counts itself (H2Response).
    this.#writtenBefore = req.httpVersionMajor === 2 ? 0 : socket.bytesWritten;
    this.listener = listener;
    this.startTime = performance.now();
    this.upstreamUri = this.requestUri;
    this.upstreamMethod = this.method;
  }

  get scheme(): 'http' | 'https' {
    return this.listener.scheme;
  }

  get headers(): IncomingMessage['headers'] {
    return this.req.headers;
  }

  get response(): Response {
    return (this.#response ??= new Response());
  }

  /** The response state if a plugin touched it (no allocation otherwise). */
  get responseIfUsed(): Response | undefined {
    return this.#response;
  }

  get state(): Map<string, unknown> {
    return (this.#state ??= new Map());
  }

  setRemoteAddr(addr: string, port?: number): void {
    this.remoteAddr = addr;
    if (port !== undefined) this.remotePort = port;
  }

  setHeader(name: string, value: string | readonly string[] | undefined): void {
    const lower = name.toLowerCase();
    // Removing a header the client did not send and no plugin set changes nothing.
    if (value === undefined && this.req.headers[lower] === undefined && !this.headerEdits?.has(lower)) return;
    (this.headerEdits ??= new Map()).set(lower, { name, value });
    // Later reads (`http_*` variables, other plugins) see the change.
    if (value === undefined) delete this.req.headers[lower];
    else this.req.headers[lower] = typeof value === 'string' ? value : value.join(', ');
  }

  setVar(name: string, value: string | undefined): void {
    if (value === undefined) this.#vars?.delete(name);
    else (this.#vars ??= new Map()).set(name, value);
  }

  setUpstream(target: UpstreamTarget): void {
    this.upstreamTarget = target;
  }

  readBody(): Promise<Buffer> {
    if (this.bufferedBody) return Promise.resolve(this.bufferedBody);
    return (this.#bodyReading ??= new Promise<Buffer>((resolve, reject) => {
      const req = this.req;
      const h = req.headers;
      if (h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0')) {
        resolve((this.bufferedBody = Buffer.alloc(0)));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (this.maxBodyBytes > 0 && size > this.maxBodyBytes) {
          req.pause();
          reject(new BodyTooLargeError(`client intended to send too large body: more than ${this.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      req.once('end', () => resolve((this.bufferedBody = Buffer.concat(chunks))));
      req.once('error', reject);
    }));
  }

  setBody(body: Buffer | string): void {
    this.bufferedBody = typeof body === 'string' ? Buffer.from(body) : body;
  }

  get consumerName(): string | undefined {
    return this.consumer?.username;
  }

  attachConsumer(entry: ConsumerCredential<unknown>): void {
    this.consumer = entry.consumer;
    this.credentialId = entry.credentialId;
    this.setHeader('X-Consumer-Username', entry.consumer.username);
    this.setHeader('X-Credential-Identifier', entry.credentialId);
    this.setHeader('X-Consumer-Custom-Id', entry.consumer.labels?.custom_id);
  }

  findConsumer(username: string): Consumer | undefined {
    return this.runtime?.consumer(username);
  }

  consumerIndex<I>(pluginName: string): I | undefined {
    return this.runtime?.consumerIndex<I>(pluginName);
  }

  metadata<M = Record<string, unknown>>(pluginName: string): M | undefined {
    return this.runtime?.metadata<M>(pluginName);
  }

  log(level: LogLevel, message: string): void {
    log(level, message);
  }

  /** Balancers and the router read variables through `vars` (the context itself). */
  get vars(): VarLookup {
    return this;
  }

  /** MatchInput: the normalised path. */
  get path(): string {
    return this.uri;
  }

  /** MatchInput: the Host header as sent. */
  get hostWithPort(): string {
    return this.hostHeader;
  }

  /** MatchInput: the router hands pattern captures to the context before `vars` run. */
  get paramsSink(): this {
    return this;
  }

  get(name: string): string | undefined {
    const variable = RequestContext.variables.get(name);
    if (variable) return variable(this);
    if (name.startsWith('http_')) {
      const v = this.header(name.slice(5).replace(/_/g, '-'));
      return v !== undefined || !this.#hasUnderscoreHeader() ? v : this.#underscoreHeader(name);
    }
    if (name.startsWith('arg_')) {
      const v = this.args.get(name.slice(4));
      return Array.isArray(v) ? v[0] : v;
    }
    if (name.startsWith('cookie_')) return this.cookies.get(name.slice(7));
    if (name.startsWith('sent_http_')) return this.#response?.headers.get(name.slice(10).replace(/_/g, '-'));
    if (name.startsWith('uri_param_')) return this.params?.[name.slice(10)];
    return this.#vars?.get(name);
  }

  /** The named variables (`http_*`, `arg_*`, `cookie_*`, ... are worked out by prefix in `get`). */
  static readonly variables = new Map<string, (c: RequestContext) => string | undefined>([
    ['uri', (c) => c.uri],
    // APISIX replaces nginx's raw value with the normalised path and the query (apisix/init.lua),
    // so `vars` and plugins cannot be fooled by `/./` or `%2e` tricks; the raw one stays as real_request_uri.
    ['request_uri', (c) => c.queryString ? `${c.uri}?${c.queryString}` : c.uri],
    ['real_request_uri', (c) => c.requestUri],
    ['host', (c) => c.host],
    ['request_method', (c) => c.method],
    ['remote_addr', (c) => c.remoteAddr],
    ['realip_remote_addr', (c) => unmapIpv4(c.req.socket.remoteAddress ?? '')],
    ['remote_port', (c) => String(c.remotePort)],
    ['scheme', (c) => c.listener.scheme],
    ['server_port', (c) => String(c.listener.port)],
    ['server_addr', (c) => unmapIpv4(c.req.socket.localAddress ?? '')],
    ['server_protocol', (c) => `HTTP/${c.req.httpVersion}`],
    ['query_string', (c) => c.queryString],
    ['args', (c) => c.queryString],
    ['is_args', (c) => c.queryString ? '?' : ''],
    ['content_type', (c) => c.req.headers['content-type']],
    ['content_length', (c) => c.req.headers['content-length']],
    ['http_host', (c) => c.hostHeader],
    ['route_id', (c) => c.routeId],
    ['route_name', (c) => c.routeName],
    ['matched_uri', (c) => c.matchedUri],
    ['matched_host', (c) => c.routeHosts && matchedHost(c.routeHosts, c.host)],
    ['service_id', (c) => c.serviceId],
    ['service_name', (c) => c.serviceName],
    ['consumer_name', (c) => c.consumer?.username],
    ['consumer_group_id', (c) => c.consumer?.groupId],
    ['status', (c) => {
      const status = c.#response?.status || (c.res.headersSent ? c.res.statusCode : 0);
      return status ? String(status) : undefined;
    }],
    ['upstream_uri', (c) => c.upstreamUri],
    // nginx's seconds with millisecond resolution
    ['upstream_response_time', (c) => c.upstreamResponseTime === undefined ? undefined : (c.upstreamResponseTime / 1000).toFixed(3)],
    ['upstream_header_time', (c) => c.upstreamHeaderTime === undefined ? undefined : (c.upstreamHeaderTime / 1000).toFixed(3)],
    ['upstream_addr', (c) => c.upstreamAddr],
    ['upstream_scheme', (c) => c.upstreamScheme],
    ['upstream_host', (c) => c.upstreamHostSent],
    ['request', (c) => `${c.method} ${c.requestUri} HTTP/${c.req.httpVersion}`],
    ['remote_user', (c) => basicAuthUser(c.req.headers.authorization)],
    ['time_local', () => nginxLocalTime(Date.now())],
    ['time_iso8601', () => isoLocalTime(new Date())],
    ['msec', () => (Date.now() / 1000).toFixed(3)],
    ['apisix_request_id', (c) => c.get('request_id')],
    ['request_length', (c) => String(requestLength(c))],
    ['bytes_sent', (c) => String(c.#bytesSent())],
    ['body_bytes_sent', (c) => {
      const own = (c.res as { bodyBytes?: number }).bodyBytes;
      if (own !== undefined) return String(own);
      const head = (c.res as { _header?: string | null })._header;
      // the head is written as latin1: one byte per character
      return String(Math.max(0, c.#bytesSent() - (typeof head === 'string' ? head.length : 0)));
    }],
    ['request_time', (c) => ((performance.now() - c.startTime) / 1000).toFixed(3)],
    // nginx's $request_id: 16 random bytes as hex, fixed for the request.
    ['request_id', (c) => (c.#requestId ??= randomHex16())],
    ['balancer_ip', (c) => c.balancerIp],
    ['balancer_port', (c) => c.balancerPort === undefined ? undefined : String(c.balancerPort)],
    ['upstream_status', (c) => c.upstreamStatusList ?? (c.upstreamStatus === undefined ? undefined : String(c.upstreamStatus))],
    ['hostname', () => HOSTNAME],
  ]);

  /**
   * A getter for one variable, chosen once: log formats read the same variables for every request,
   * so they skip `get`'s name lookup.
   */
  static accessor(name: string): (ctx: RequestContext) => string | undefined {
    const named = RequestContext.variables.get(name);
    if (named) return named;
    if (name.startsWith('http_')) {
      const header = name.slice(5).replace(/_/g, '-');
      return (c) => c.header(header) ?? (c.#hasUnderscoreHeader() ? c.#underscoreHeader(name) : undefined);
    }
    return (c) => c.get(name);
  }

  /** What was written to the client for this request (its connection's count since the request began, for HTTP/1). */
  #bytesSent(): number {
    const own = (this.res as { sentBytes?: number }).sentBytes;
    return own ?? this.req.socket.bytesWritten - this.#writtenBefore;
  }

  /** Whether any request header name contains `_` (computed once per request, on the first miss). */
  #hasUnderscoreHeader(): boolean {
    if (this.#underscoreNames === undefined) {
      const raw = this.req.rawHeaders;
      let found = false;
      for (let i = 0; i < raw.length && !found; i += 2) found = raw[i].includes('_');
      this.#underscoreNames = found;
    }
    return this.#underscoreNames;
  }

  /**
   * nginx's `$http_<name>` for headers spelt with `_` (APISIX sets `underscores_in_headers on`):
   * a header matches when its name, lower-cased with `-` read as `_`, equals `<name>`. Only
   * reached when the `-` spelling is absent and some header name has a `_`.
   */
  #underscoreHeader(varName: string): string | undefined {
    const raw = this.req.rawHeaders;
    const want = varName.length - 5;
    let out: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const h = raw[i];
      if (h.length !== want || !h.includes('_')) continue;
      let j = 0;
      for (; j < want; j++) {
        let c = h.charCodeAt(j);
        if (c >= 65 && c <= 90) c |= 0x20;
        else if (c === 45) c = 95;
        if (c !== varName.charCodeAt(j + 5)) break;
      }
      if (j === want) out = out === undefined ? raw[i + 1] : `${out}, ${raw[i + 1]}`;
    }
    return out;
  }

  /** A request header by lower-case name; repeated headers are joined as nginx does. */
  header(lowerName: string): string | undefined {
    const v = this.req.headers[lowerName];
    return Array.isArray(v) ? v.join(', ') : v;
  }

  get args(): Map<string, string | string[]> {
    return (this.#args ??= parseQuery(this.queryString));
  }

  get cookies(): Map<string, string> {
    return (this.#cookies ??= parseCookies(this.req.headers.cookie));
  }
}

// Random bytes for request ids are drawn in blocks: one system call serves 256 ids.
const ID_POOL = Buffer.allocUnsafe(4096);
let idPoolOffset = ID_POOL.length;

/** 16 random bytes as 32 hex digits (nginx's `$request_id`). */
function randomHex16(): string {
  if (idPoolOffset === ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolOffset = 0;
  }
  idPoolOffset += 16;
  return ID_POOL.toString('hex', idPoolOffset - 16, idPoolOffset);
}

/** nginx's `$remote_user`: the user name of a Basic Authorization header. */
function basicAuthUser(authorization: string | undefined): string | undefined {
  if (!authorization || !/^basic /i.test(authorization)) return undefined;
  const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(0, colon);
}

/** The first of a route's host patterns that covers `host` (exact, or a `*.` wildcard). */
function matchedHost(patterns: readonly string[], host: string): string | undefined {
  return patterns.find((p) => {
    const pattern = p.toLowerCase();
    return pattern.startsWith('*') ? host.endsWith(pattern.slice(1)) : pattern === host;
  });
}

const HOSTNAME = hostname();

/**
 * nginx's `$request_length`: the request line, the header lines and the body as the client sent
 * them. The body counts by its Content-Length, or by what was read of a chunked one.
 */
function requestLength(ctx: RequestContext): number {
  const req = ctx.req;
  let n = ctx.method.length + ctx.requestUri.length + 12; // the space after the method, ` HTTP/1.1\r\n`
  const raw = req.rawHeaders;
  let declared: number | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    n += raw[i].length + raw[i + 1].length + 4;
    if (declared === undefined && raw[i].length === 14 && raw[i].toLowerCase() === 'content-length') declared = Number(raw[i + 1]) || 0;
  }
  return n + 2 + (declared ?? (req.headers['transfer-encoding'] !== undefined ? (ctx.bufferedBody?.length ?? ctx.requestBodyBytes) : 0));
}

const p2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** `+02:00` for the local zone at `d` (`getTimezoneOffset` is minutes west of UTC). */
function zoneOffset(d: Date, colon: boolean): string {
  const west = d.getTimezoneOffset();
  const abs = Math.abs(west);
  return `${west > 0 ? '-' : '+'}${p2(Math.floor(abs / 60))}${colon ? ':' : ''}${p2(abs % 60)}`;
}

/** nginx's `$time_iso8601`: local time with its offset (`2026-01-31T12:00:00+01:00`). */
function isoLocalTime(d: Date): string {
  return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}T${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}${zoneOffset(d, true)}`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

let localTimeCache = { second: -1, text: '' };

/** nginx's `$time_local` (`31/Jan/2026:12:00:00 +0100`), formatted once per second. */
function nginxLocalTime(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== localTimeCache.second) localTimeCache = { second, text: formatLocalTime(new Date(second * 1000)) };
  return localTimeCache.text;
}

function formatLocalTime(d: Date): string {
  return `${p2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${zoneOffset(d, false)}`;
}

export function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/** `::ffff:1.2.3.4` (dual-stack sockets) → `1.2.3.4`, as nginx reports `$remote_addr`. */
export function unmapIpv4(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}
