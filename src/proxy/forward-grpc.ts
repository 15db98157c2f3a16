// Proxying to `grpc` and `grpcs` upstreams (APISIX's `@grpc_pass`): the request goes to a node as a
// stream of a shared HTTP/2 session (upstream/h2-session.ts), whatever protocol the client spoke.
// Bodies stream both ways with backpressure, so unary calls and the three streaming kinds all
// work; the node's trailers (`grpc-status`, `grpc-message`, custom ones) reach the client as
// trailers; a client that cancels or resets its stream (a gRPC deadline, say) cancels the node's.
//
// The rest follows the HTTP path (forward.ts): the balancer picks the node, before_proxy runs on
// each try, the header and body filters run on the response, and failures retry or answer as
// nginx's grpc_pass does:
// - the connection to a node fails or times out, or the node refuses the stream: another node,
//   while `retries` and `retry_timeout` allow and nothing was answered yet; the request body goes
//   again when it was not read yet or fits the 64 KiB replay buffer;
// - once the request reached a node, POST (every gRPC call) is not sent again;
// - all tries failed → 502 (504 when the last one timed out), which gRPC clients report as
//   UNAVAILABLE; a failure once the answer started resets the client's stream.
//
// Headers: the client's, minus HTTP/1 connection headers, with plugins' edits; `:authority` follows
// `pass_host` as Host does; `te: trailers` and `content-type: application/grpc` as APISIX's
// location sets them. As there, no X-Real-IP / X-Forwarded-* are added.
import http2 from 'node:http2';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { UpstreamNode } from '../upstream/balancer/index.ts';
import type { ConnectTarget } from '../upstream/connection.ts';
import { h2PoolFor, type H2NodePool, type H2Session } from '../upstream/h2-session.ts';
import type { CompiledUpstream, TimeoutsMs } from '../snapshot/types.ts';
import type { RequestContext } from './context.ts';
import { upstreamHostHeader, type ForwardSettings } from './forward.ts';
import { connectionTokens, downstreamResponseHeaders } from './headers.ts';
import { resetResponse } from './http2.ts';
import { applyPendingHeaders, respondThroughPlugins, type BodyPipe, type PhaseExit, type PluginRun } from './phases.ts';
import { sendStatus } from './responses.ts';
import { ResponseFlow } from './response-flow.ts';
import { answerFailure, mayResend, ReplayBody, Tries } from './tries.ts';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM } = http2.constants;


/** Client headers never sent on an HTTP/2 stream (connection-specific, or set here). */
const H2_REQUEST_DROP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings',
  'host', 'content-length', 'expect',
]);

/** The upstream scheme speaks gRPC (HTTP/2 to the node). */
export function isGrpcUpstream(up: CompiledUpstream): boolean {
  const scheme = up.conf.scheme;
  return scheme === 'grpc' || scheme === 'grpcs';
}

/** Per upstream version, the HTTP/2 pool of each node (a new upstream version gets new lookups). */
const nodePools = new WeakMap<CompiledUpstream, Map<string, H2NodePool>>();

function poolOf(up: CompiledUpstream, node: UpstreamNode): H2NodePool {
  let byNode = nodePools.get(up);
  if (!byNode) nodePools.set(up, (byNode = new Map()));
  let pool = byNode.get(node.key);
  if (!pool) {
    const conf = up.conf;
    // The HTTP/1.1 pool of the node holds the settings shared by every upstream (trusted CAs, idle timeout).
    const http1 = up.pools.get(node.key);
    const target: ConnectTarget = {
      host: node.host,
      port: node.port,
      tls: conf.scheme === 'grpcs',
      servername: conf.pass_host === 'rewrite' ? conf.upstream_host : undefined,
      clientCert: conf.tls?.client_cert && conf.tls.client_key ? { cert: conf.tls.client_cert, key: conf.tls.client_key } : undefined,
      verify: conf.tls?.verify,
      ca: http1?.target.ca,
    };
    pool = h2PoolFor(target, http1?.options.idleTimeoutMs ?? 60_000);
    byNode.set(node.key, pool);
  }
  return pool;
}

export type GrpcDone = (ctx: RequestContext) => void;

/** One client request's trip to a gRPC upstream, across retries. */
export class GrpcExchange {
  readonly ctx: RequestContext;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly upstream: CompiledUpstream;
  readonly timeouts: TimeoutsMs;
  readonly settings: ForwardSettings;
  readonly onDone: GrpcDone | undefined;
  readonly run: PluginRun | undefined;
  readonly #tls: boolean;
  readonly #hasBody: boolean;
  readonly #tries: Tries;
  #node: UpstreamNode | undefined;
  #session: H2Session | undefined;
  #stream: http2.ClientHttp2Stream | undefined;
  #attemptStart = 0;
  #sentAt = 0;
  /** Body chunks kept for a retry; undefined once the body outgrew the replay limit. */
  /** What of the client's body another try can send again. */
  #replay = new ReplayBody();
  #bodyBytes = 0;
  #bodyComplete: boolean;
  #bodyFlowing = false;
  #responded = false;
  #finished = false;
  #pipe: BodyPipe | undefined;
  /** The node's body on its way to the client (backpressure, send_timeout), from the response head on. */
  #flow: ResponseFlow | undefined;
  /** The node's trailers, sent after the body. */
  #trailers: OutgoingHttpHeaders | undefined;
  /** The node's answer ended with its headers: the client's head waits for the end (see #endClient). */
  #headersOnly = false;
  #pendingHead: { status: number; headers: string[] } | undefined;

  constructor(ctx: RequestContext, upstream: CompiledUpstream, timeouts: TimeoutsMs, settings: ForwardSettings, onDone?: GrpcDone, run?: PluginRun) {
    this.ctx = ctx;
    this.req = ctx.req;
    this.res = ctx.res;
    this.upstream = upstream;
    this.timeouts = timeouts;
    this.settings = settings;
    this.onDone = onDone;
    this.run = run;
    this.#tls = upstream.conf.scheme === 'grpcs';
    this.#tries = new Tries(upstream);
    const buffered = ctx.bufferedBody;
    if (buffered) {
      // A plugin read or replaced the body: it is sent from memory, on every try.
      this.#hasBody = buffered.length > 0;
      this.#replay = new ReplayBody(buffered);
      this.#bodyComplete = true;
      return;
    }
    const h = this.req.headers;
    this.#hasBody = h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
    this.#bodyComplete = !this.#hasBody;
  }

  start(): void {
    this.#tries.start();
    this.res.on('close', this.#onClientClose);
    this.#attempt();
  }

  #attempt(): void {
    const tries = this.#tries;
    const node = tries.pick(this.ctx);
    if (!node) {
      this.#fail(tries.lastWasTimeout ? 504 : 502, tries.pickFailure);
      return;
    }
    this.ctx.balancerIp = node.host;
    this.ctx.balancerPort = node.port;
    const run = this.run;
    const outcome = run?.beforeProxy();
    if (outcome === undefined) this.#send(node);
    else if (outcome instanceof Promise) outcome.then((r) => (r ? this.#stopBeforeProxy(r) : this.#finished ? undefined : this.#send(node)));
    else this.#stopBeforeProxy(outcome);
  }

  #stopBeforeProxy(exit: PhaseExit): void {
    if (this.#finished) return;
    this.#finish();
    respondThroughPlugins(this.run!, this.res, exit.status, exit.body, exit.headers, this.settings.serverHeader);
  }

  #send(node: UpstreamNode): void {
    this.#node = node;
    const session = poolOf(this.upstream, node).acquire(this.timeouts.connect);
    this.#session = session;
    this.#attemptStart = performance.now();
    this.ctx.upstreamStartTime = this.#sentAt = this.#attemptStart;
    this.upstream.balancer.started?.(node);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(upstreamH2Headers(this.ctx, this.upstream, node, this.#tls), !this.#hasBody);
    } catch (err) {
      // The session went away between the pick and the request: nothing reached the node.
      this.upstream.balancer.finished?.(node, 0, true);
      this.#failed(`upstream error: ${(err as Error).message}`, 502, false);
      return;
    }
    this.#stream = stream;
    stream.on('response', (headers, flags) => {
      if (this.#stream === stream) this.#onResponse(headers, flags);
    });
    stream.on('data', (chunk: Buffer) => {
      if (this.#stream === stream) this.#onData(chunk);
    });
    stream.on('trailers', (trailers) => {
      if (this.#stream === stream) this.#trailers = Object.assign(this.#trailers ?? {}, forwardableTrailers(trailers));
    });
    stream.on('end', () => {
      if (this.#stream === stream) this.#onEnd();
    });
    stream.on('error', (err: Error) => {
      if (this.#stream === stream) this.#onStreamError(stream, err.message);
    });
    stream.on('close', () => {
      // A stream that closed without its end (a reset with no error, for one) failed.
      if (this.#stream === stream) this.#onStreamError(stream, `upstream reset the stream (code ${stream.rstCode})`);
    });
    session.whenConnected(() => {
      if (this.#stream !== stream) return;
      // From here the read timeout limits a quiet stream, in both directions.
      stream.setTimeout(this.timeouts.read, () => {
        if (this.#stream === stream) this.#onTimeout();
      });
      this.#startBody(stream);
    });
  }

  /**
   * The client's body is read only once the node's connection is up, so a node that cannot be
   * reached costs none of it; a retry first sends again what was read.
   */
  #startBody(stream: http2.ClientHttp2Stream): void {
    if (!this.#hasBody) return;
    for (const chunk of this.#replay.chunks ?? []) stream.write(chunk);
    if (this.#bodyComplete) {
      stream.end();
      return;
    }
    stream.on('drain', this.#onUpstreamDrain);
    if (this.#bodyFlowing) {
      this.req.resume();
      return;
    }
    this.#bodyFlowing = true;
    this.req.on('data', this.#onRequestData);
    this.req.on('end', this.#onRequestEnd);
  }

  #onRequestData = (chunk: Buffer): void => {
    this.#bodyBytes += chunk.length;
    if (this.settings.maxBodyBytes > 0 && this.#bodyBytes > this.settings.maxBodyBytes) {
      this.#bodyTooLarge();
      return;
    }
    this.#replay.add(chunk);
    const stream = this.#stream;
    if (!stream || this.#finished) return;
    if (!stream.write(chunk)) this.req.pause();
  };

  #onRequestEnd = (): void => {
    this.#bodyComplete = true;
    if (!this.#finished) this.#stream?.end();
  };

  #onUpstreamDrain = (): void => {
    if (!this.#bodyComplete && !this.#finished) this.req.resume();
  };

  /** A body grew past client_max_body_size: 413 if nothing was answered yet, else a reset. */
  #bodyTooLarge(): void {
    if (this.#finished) return;
    this.#dropStream();
    if (this.#responded) {
      this.#abortClient();
      return;
    }
    this.ctx.failureReason = `client intended to send too large body: more than ${this.settings.maxBodyBytes} bytes`;
    this.#finish();
    sendStatus(this.res, 413, undefined, { Connection: 'close' }, this.settings.serverHeader);
  }

  #onTimeout(): void {
    this.ctx.failureReason = 'upstream timed out';
    this.#dropStream();
    if (this.#responded) {
      this.#abortClient();
      return;
    }
    this.#tries.lastWasTimeout = true;
    this.#retryOrFail(504, 'upstream timed out', true);
  }

  #onStreamError(stream: http2.ClientHttp2Stream, message: string): void {
    const session = this.#session;
    this.#stream = undefined;
    if (this.#node) this.upstream.balancer.finished?.(this.#node, performance.now() - this.#attemptStart, true);
    if (this.#responded) {
      this.#abortClient();
      return;
    }
    if (this.#finished) return;
    if (session && !session.connected) {
      // The connection never came up: nothing reached the node.
      const timedOut = session.failure === 'connect-timeout';
      this.#failed(timedOut ? 'upstream connect timed out' : `upstream error: ${message}`, timedOut ? 504 : 502, false);
      return;
    }
    // A refused stream (or one past a GOAWAY's last stream) was never processed by the node.
    const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM;
    this.#failed(refused ? 'upstream refused the stream' : `upstream error: ${message}`, 502, !refused);
  }

  /** A try failed before any answer: another node when allowed, else the gateway's answer. */
  #failed(reason: string, status: number, sentToUpstream: boolean): void {
    this.#stream = undefined;
    this.#tries.lastWasTimeout = status === 504;
    this.#retryOrFail(status, reason, sentToUpstream);
  }

  #canResend(sentToUpstream: boolean): boolean {
    return mayResend(this.ctx.method, this.#hasBody, this.#replay, sentToUpstream);
  }

  #retryOrFail(status: number, reason: string, sentToUpstream: boolean): void {
    if (this.#tries.mayRetry && this.#canResend(sentToUpstream)) {
      this.#tries.retryAfter(this.#node!, status);
      if (this.#bodyFlowing && !this.#bodyComplete) this.req.pause();
      this.#attempt();
      return;
    }
    this.#fail(status, reason);
  }

  /** Every try failed (or none could be made): the gateway answers `status`. */
  #fail(status: number, reason: string): void {
    answerFailure(this.#tries, this.ctx, this.run, this.res, status, reason, this.settings.serverHeader, () => this.#finish());
  }

  #onResponse(h2headers: http2.IncomingHttpHeaders, flags: number): void {
    this.#responded = true;
    this.#flow = new ResponseFlow(this.res, this.settings.sendTimeoutMs, () => this.#stream, this.#onSendTimeout);
    this.ctx.upstreamHeaderTime = performance.now() - this.#sentAt;
    const status = Number(h2headers[':status']);
    this.ctx.upstreamStatus = status;
    const raw: string[] = [];
    for (const name in h2headers) {
      if (name.charCodeAt(0) === 58) continue; // pseudo-headers
      const value = h2headers[name];
      if (value === undefined) continue;
      if (typeof value === 'string') raw.push(name, value);
      else for (const v of value) raw.push(name, v);
    }
    const headers = downstreamResponseHeaders(raw);
    // A headers-only answer (gRPC's trailers-only: an error status with no message) stays one: its
    // head goes out with the end of the response, as one HEADERS frame on HTTP/2.
    this.#headersOnly = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    if (this.settings.serverHeader) headers.push('Server', this.settings.serverHeader);
    const list = this.#tries.answeredList(status);
    if (status >= 500 || this.settings.showUpstreamStatus) headers.push('X-APISIX-Upstream-Status', list ?? String(status));
    if (list !== undefined) this.ctx.upstreamStatusList = list;
    const res = this.res;
    const run = this.run;
    if (run) {
      const response = this.ctx.response;
      response.status = status;
      applyPendingHeaders(this.ctx, headers);
      run.headerFilter();
      this.#pipe = run.bodyPipe();
      this.#writeHead(response.status, response.headers.flat);
    } else {
      this.#writeHead(status, headers);
    }
  }

  #writeHead(status: number, headers: string[]): void {
    if (this.#headersOnly) this.#pendingHead = { status, headers };
    else this.res.writeHead(status, headers);
  }

  #onData(chunk: Buffer): void {
    const flow = this.#flow!;
    const pipe = this.#pipe;
    if (!pipe) {
      flow.write(chunk);
      return;
    }
    if (pipe.push(chunk, false, this.#pipeSink)) return;
    // An async body filter has the chunk: hold the node's stream until the filters caught up.
    flow.holdUntil(pipe.idle(), () => !this.#finished);
  }

  #pipeSink = (out: Buffer, eof: boolean): void => {
    if (eof) this.#endClient(out.length ? out : undefined);
    else if (out.length) this.#flow!.write(out);
  };

  #onSendTimeout = (): void => {
    if (this.#finished) return;
    this.ctx.failureReason = 'client timed out while reading the response';
    this.#dropStream();
    this.#abortClient();
  };

  #onEnd(): void {
    this.#stream = undefined;
    this.ctx.upstreamResponseTime = performance.now() - this.#sentAt;
    if (this.#node) this.upstream.balancer.finished?.(this.#node, performance.now() - this.#attemptStart, false);
    this.#finish();
    if (this.#pipe) this.#pipe.push(Buffer.alloc(0), true, this.#pipeSink);
    else this.#endClient(undefined);
  }

  /** Ends the client's response with the node's trailers. */
  #endClient(last: Buffer | undefined): void {
    const head = this.#pendingHead;
    if (head) {
      this.#pendingHead = undefined;
      const res = this.res;
      if (last?.length) {
        // a body filter made a body of the headers-only answer
        res.writeHead(head.status, head.headers);
      } else {
        res.statusCode = head.status;
        for (let i = 0; i < head.headers.length; i += 2) res.appendHeader(head.headers[i], head.headers[i + 1]);
      }
    }
    const trailers = this.#trailers;
    if (trailers) this.res.addTrailers(trailers);
    this.res.end(last);
  }

  #onClientClose = (): void => {
    if (this.#finished) return;
    // The client went away or reset its stream (a cancelled call, a deadline): the node's stream is cancelled.
    this.#dropStream();
    this.#finish();
  };

  #dropStream(): void {
    const stream = this.#stream;
    if (!stream) return;
    this.#stream = undefined;
    if (this.#node) this.upstream.balancer.finished?.(this.#node, performance.now() - this.#attemptStart, true);
    if (!stream.closed) stream.close(NGHTTP2_CANCEL);
  }

  #abortClient(): void {
    this.#finish();
    resetResponse(this.res);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#flow?.stop();
    if (this.#hasBody) {
      this.req.off('data', this.#onRequestData);
      this.req.off('end', this.#onRequestEnd);
      // Read what is left of the client's body so its connection (or stream) stays usable.
      if (!this.#bodyComplete) this.req.resume();
    }
    this.onDone?.(this.ctx);
  }
}

/**
 * The request headers for a node's HTTP/2 stream: pseudo-headers from the request line the
 * plugins left, the client's headers without connection-specific ones, plugins' edits, and what
 * gRPC needs (`te: trailers`, a gRPC content type).
 */
export function upstreamH2Headers(ctx: RequestContext, up: CompiledUpstream, node: UpstreamNode, tls: boolean): OutgoingHttpHeaders {
  const req = ctx.req;
  const out: OutgoingHttpHeaders = {
    ':method': ctx.upstreamMethod,
    ':path': ctx.upstreamUri,
    ':scheme': tls ? 'https' : 'http',
    ':authority': upstreamHostHeader(ctx, up, node, tls),
  };
  const edits = ctx.headerEdits;
  const extraDrop = connectionTokens(req.headers.connection as string | undefined);
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name.charCodeAt(0) === 58 || H2_REQUEST_DROP.has(name) || extraDrop?.has(name) || edits?.has(name)) continue;
    const prev = out[name] as string | undefined;
    out[name] = prev === undefined ? raw[i + 1] : `${prev}${name === 'cookie' ? '; ' : ', '}${raw[i + 1]}`;
  }
  if (edits) {
    for (const [lower, edit] of edits) {
      const value = edit.value;
      if (value === undefined || H2_REQUEST_DROP.has(lower)) continue;
      out[lower] = typeof value === 'string' ? value : value.join(', ');
    }
  }
  const length = ctx.bufferedBody ? String(ctx.bufferedBody.length) : req.headers['content-length'];
  if (length !== undefined) out['content-length'] = length;
  const te = req.headers.te as string | undefined;
  if (te !== undefined && /(^|[\s,])trailers($|[\s,;])/i.test(te)) out.te = 'trailers';
  // APISIX's gRPC location always says application/grpc; a gRPC subtype (+proto, +json) is kept.
  const type = out['content-type'] as string | undefined;
  if (type === undefined || !type.toLowerCase().startsWith('application/grpc')) out['content-type'] = 'application/grpc';
  return out;
}

/** The node's trailers without pseudo-headers and connection-specific fields. */
function forwardableTrailers(trailers: http2.IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in trailers) {
    if (name.charCodeAt(0) === 58 || H2_REQUEST_DROP.has(name)) continue;
    const value = trailers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
