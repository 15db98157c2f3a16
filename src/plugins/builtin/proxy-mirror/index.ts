// proxy-mirror: sends a copy of requests to another server and ignores its answer, as APISIX's
// proxy-mirror (apache/apisix: apisix/plugins/proxy-mirror.lua and the `/proxy_mirror` location of
// its nginx.conf). The copy has the client's method, headers and body; its path is the request's
// (`$uri` plus the query string, or the upstream path an earlier plugin set), or `path` instead or
// in front of it (`path_concat_mode`). `sample_ratio` mirrors that share of requests.
//
// As nginx's `mirror` does, the copy leaves when the request is about to be proxied (a request a
// plugin answers itself is not mirrored); a request body is read in full first
// (`mirror_request_body`), then both the copy and the proxied request carry it.
// The copy never changes the client's response: its errors and timeouts are only logged.
// Timeouts come from `plugin_attr.proxy-mirror.timeout` (connect, send, read; 60s each).
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { definePlugin, type CompileEnv, type PluginContext } from '../../api.ts';
import { parseNginxTime } from './nginx-time.ts';

const NAME = 'proxy-mirror';
/** ctx.state keys: the mirror path decided in `rewrite`, taken (once) in `before_proxy`, and the body. */
const PENDING = 'proxy-mirror.uri';
const BODY = 'proxy-mirror.body';
/** Copies in flight per configured instance before new ones are dropped (a stuck mirror must not pile up). */
const MAX_IN_FLIGHT = 1000;

interface ProxyMirrorConf {
  host: string;
  path?: string;
  path_concat_mode: 'replace' | 'prefix';
  sample_ratio: number;
}

interface Timeouts {
  connectMs: number;
  sendMs: number;
  readMs: number;
}

interface MirrorState {
  protocol: 'http' | 'https' | 'grpc' | 'grpcs';
  hostname: string;
  port: number;
  /** `host:port` as written, for the HTTP/2 connection. */
  authority: string;
  timeouts: Timeouts;
  log: CompileEnv['log'];
  inFlight: number;
  /** The HTTP/2 connection gRPC copies share, opened on first use. */
  session: http2.ClientHttp2Session | undefined;
}

const schema = {
  type: 'object',
  properties: {
    host: {
      type: 'string',
      pattern: '^(http(s)?|grpc(s)?):\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?$',
    },
    path: { type: 'string', pattern: '^/[^?&]+$' },
    path_concat_mode: {
      type: 'string',
      default: 'replace',
      enum: ['replace', 'prefix'],
      description: 'the concatenation mode for custom path',
    },
    sample_ratio: { type: 'number', minimum: 0.00001, maximum: 1, default: 1 },
  },
  required: ['host'],
};

const DEFAULT_TIMEOUT_MS = 60_000;

function timeoutsFrom(attributes: Readonly<Record<string, unknown>> | undefined): Timeouts {
  const t = (attributes?.timeout ?? {}) as Record<string, unknown>;
  const ms = (v: unknown) => parseNginxTime(v) ?? DEFAULT_TIMEOUT_MS;
  return { connectMs: ms(t.connect), sendMs: ms(t.send), readMs: ms(t.read) };
}

// Keep-alive agents shared by every mirror of this worker; idle sockets do not hold the worker open.
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
// nginx does not verify the mirror's certificate (proxy_ssl_verify is off by default).
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 256, rejectUnauthorized: false });

/** Connection-level headers: they describe the client's connection, not the request. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'host', 'http2-settings']);

/** The path nginx would put on the mirror's request line; characters that cannot go there are escaped. */
function wireSafe(path: string): string {
  return path.replace(/[^\x21-\x7e]+/g, (run) => {
    try {
      return encodeURIComponent(run);
    } catch {
      return '';
    }
  });
}

/** The mirror's path, decided in `rewrite` as APISIX decides it. */
function mirrorPath(ctx: PluginContext, conf: ProxyMirrorConf): string {
  const args = ctx.queryString === '' ? '' : `?${ctx.queryString}`;
  // An upstream path set by an earlier plugin wins over the request's own.
  const requestPath = ctx.upstreamUri !== ctx.requestUri ? ctx.upstreamUri : ctx.uri + args;
  if (conf.path === undefined) return requestPath;
  return conf.path_concat_mode === 'prefix' ? conf.path + requestPath : conf.path + args;
}

function copyHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

function sendHttp1(state: MirrorState, method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer | undefined): void {
  const tls = state.protocol === 'https';
  if (body !== undefined) headers['content-length'] = body.length;
  const { connectMs, sendMs, readMs } = state.timeouts;
  let connectTimer: NodeJS.Timeout | undefined;
  const req = (tls ? https : http).request({
    host: state.hostname,
    port: state.port,
    method,
    path,
    headers,
    agent: tls ? httpsAgent : httpAgent,
  });
  state.inFlight++;
  let finished = false;
  const done = (err?: Error) => {
    if (finished) return;
    finished = true;
    state.inFlight--;
    clearTimeout(connectTimer);
    if (err) state.log('error', `${NAME}: mirror request to ${state.protocol}://${state.authority}${path} failed: ${err.message}`);
  };
  req.on('socket', (socket) => {
    if (!socket.connecting) {
      req.setTimeout(sendMs);
      return;
    }
    connectTimer = setTimeout(() => req.destroy(new Error(`connect timed out after ${connectMs} ms`)), connectMs);
    socket.once('connect', () => {
      clearTimeout(connectTimer);
      req.setTimeout(sendMs);
    });
  });
  // Sending is done: from now on the read timeout counts (time between two reads).
  req.on('finish', () => req.setTimeout(readMs));
  req.on('timeout', () => req.destroy(new Error('timed out')));
  req.on('response', (res) => {
    res.on('end', () => done());
    res.on('error', done);
    res.resume();
  });
  req.on('error', done);
  req.on('close', () => done());
  req.end(body);
}

function grpcSession(state: MirrorState): http2.ClientHttp2Session {
  if (state.session && !state.session.closed && !state.session.destroyed) return state.session;
  const scheme = state.protocol === 'grpcs' ? 'https' : 'http';
  const session = http2.connect(`${scheme}://${state.authority}`, { rejectUnauthorized: false });
  session.on('error', (err) => state.log('error', `${NAME}: mirror connection to ${state.authority} failed: ${err.message}`));
  session.on('close', () => {
    if (state.session === session) state.session = undefined;
  });
  // An idle shared connection is closed rather than kept forever.
  session.setTimeout(state.timeouts.readMs, () => session.close());
  session.unref();
  state.session = session;
  return session;
}

function sendGrpc(state: MirrorState, method: string, path: string, headers: OutgoingHttpHeaders, host: string | undefined, body: Buffer | undefined): void {
  const h2headers: http2.OutgoingHttpHeaders = { ...headers, ':method': method, ':path': path };
  if (host !== undefined) h2headers[':authority'] = host;
  let stream: http2.ClientHttp2Stream;
  try {
    stream = grpcSession(state).request(h2headers, { endStream: body === undefined || body.length === 0 });
  } catch (err) {
    state.log('error', `${NAME}: mirror request to ${state.protocol}://${state.authority}${path} failed: ${(err as Error).message}`);
    return;
  }
  state.inFlight++;
  let finished = false;
  const done = (err?: Error) => {
    if (finished) return;
    finished = true;
    state.inFlight--;
    if (err) state.log('error', `${NAME}: mirror request to ${state.protocol}://${state.authority}${path} failed: ${err.message}`);
  };
  stream.setTimeout(state.timeouts.readMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
  stream.on('error', done);
  stream.on('close', () => done());
  stream.resume();
  if (body !== undefined && body.length > 0) stream.end(body);
}

function sendCopy(ctx: PluginContext, state: MirrorState, path: string, body: Buffer | undefined): void {
  if (state.inFlight >= MAX_IN_FLIGHT) return;
  const headers = copyHeaders(ctx.headers);
  // nginx's `proxy_set_header Host $upstream_host`: the Host the upstream gets.
  const host = ctx.upstreamHost ?? ctx.headers.host;
  const safePath = wireSafe(path);
  try {
    if (state.protocol === 'grpc' || state.protocol === 'grpcs') {
      sendGrpc(state, ctx.method, safePath, headers, host, body);
    } else {
      if (host !== undefined) headers.host = host;
      sendHttp1(state, ctx.method, safePath, headers, body);
    }
  } catch (err) {
    state.log('error', `${NAME}: mirror request to ${state.protocol}://${state.authority}${safePath} failed: ${(err as Error).message}`);
  }
}

function hasBody(ctx: PluginContext): boolean {
  const h = ctx.headers;
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

export default definePlugin<ProxyMirrorConf, MirrorState>({
  name: NAME,
  version: 0.1,
  priority: 1010,
  schema,

  compile(conf, env) {
    const url = new URL(conf.host);
    const protocol = url.protocol.slice(0, -1) as MirrorState['protocol'];
    const tls = protocol === 'https' || protocol === 'grpcs';
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port === '' ? (tls ? 443 : 80) : Number(url.port);
    return {
      protocol,
      hostname,
      port,
      authority: conf.host.slice(conf.host.indexOf('//') + 2),
      timeouts: timeoutsFrom(env.attributes),
      log: env.log,
      inFlight: 0,
      session: undefined,
    };
  },

  phases: {
    rewrite(ctx, conf) {
      if (conf.sample_ratio === 1 || Math.random() < conf.sample_ratio) ctx.state.set(PENDING, mirrorPath(ctx, conf));
      return undefined;
    },

    // The body is read here, in access: by before_proxy the proxy has already decided how to send
    // the body upstream, and reads it from memory only when a plugin buffered it before.
    access(ctx) {
      if (!ctx.state.has(PENDING) || !hasBody(ctx)) return undefined;
      return ctx.readBody().then((body) => {
        ctx.state.set(BODY, body);
        return undefined;
      });
    },

    before_proxy(ctx, _conf, state) {
      const path = ctx.state.get(PENDING) as string | undefined;
      if (path === undefined) return undefined;
      // Once per request: a retry to another node is not mirrored again.
      ctx.state.delete(PENDING);
      sendCopy(ctx, state, path, ctx.state.get(BODY) as Buffer | undefined);
      return undefined;
    },
  },
});
