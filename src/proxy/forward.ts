// Proxying one request to its upstream: node choice, keep-alive connection, request and response
// streaming with backpressure, timeouts and retries with nginx/APISIX's rules.
//
// Retry rules (nginx `proxy_next_upstream error timeout` as APISIX configures it):
// - a failed connection, a reset before any response byte, or a timeout move to another node while
//   `retries` and `retry_timeout` allow, and only before anything was sent to the client;
// - once request bytes reached an upstream, non-idempotent methods (POST, PATCH, LOCK) are not retried;
// - the client body is read only once a node is connected (a refused connection costs none of it); once
//   flowing it is replayable while it fits the replay buffer; past that, no retry after sending;
// - a stale keep-alive connection that fails before answering is retried once on a fresh connection
//   to the same node without using up a retry.
// All nodes failed → 502 (504 when the last failure was a timeout).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { UpstreamNode } from '../upstream/balancer/index.ts';
import { reportPassive } from '../upstream/health/index.ts';
import type { ConnectionOwner, UpstreamConnection } from '../upstream/connection.ts';
import type { CompiledUpstream, TimeoutsMs } from '../snapshot/types.ts';
import type { RequestContext } from './context.ts';
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import { applyPendingHeaders, respondThroughPlugins, type BodyPipe, type PhaseExit, type PluginRun } from './phases.ts';
import { sendStatus } from './responses.ts';
import { ResponseFlow } from './response-flow.ts';
import { answerFailure, mayResend, ReplayBody, Tries } from './tries.ts';
import type { IpMatcher } from '../util/ip.ts';


export interface ForwardSettings {
  trustedAddresses: IpMatcher | undefined;
  serverHeader: string | undefined;
  /** Always send X-APISIX-Upstream-Status (otherwise only for 5xx). */
  showUpstreamStatus: boolean;
  /** Largest request body accepted, in bytes; 0 = no limit (nginx client_max_body_size). */
  maxBodyBytes: number;
  /** Longest pause between two reads of the client's body (nginx client_body_timeout). */
  clientBodyTimeoutMs: number;
  /** Longest time a write to a slow client may stay blocked (nginx send_timeout). */
  sendTimeoutMs: number;
}

export interface ForwardDone {
  (ctx: RequestContext, exchange: Exchange): void;
}

/** One client request's trip to the upstream, across retries. Implements the connection callbacks. */
export class Exchange implements ConnectionOwner {
  readonly ctx: RequestContext;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly upstream: CompiledUpstream;
  readonly timeouts: TimeoutsMs;
  readonly settings: ForwardSettings;
  readonly onDone: ForwardDone | undefined;
  /** The request's plugins (before_proxy, header and body filters); undefined when none run. */
  readonly run: PluginRun | undefined;
  #pipe: BodyPipe | undefined;
  /** The node's body on its way to the client (backpressure, send_timeout), from the response head on. */
  #flow: ResponseFlow | undefined;
  readonly #hasBody: boolean;
  readonly #chunkedBody: boolean;
  readonly #headOnly: boolean;
  readonly #tries: Tries;
  #node: UpstreamNode | undefined;
  #conn: UpstreamConnection | undefined;
  #reusedConn = false;
  #freshRetryUsed = false;
  /** Body chunks kept for a retry; undefined once the body outgrew the replay limit. */
  /** What of the client's body another try can send again. */
  #replay = new ReplayBody();
  #bodyComplete = false;
  #bodySentThisAttempt = false;
  #responded = false;
  #finished = false;
  #bodyBytes = 0;
  #bodyFlowing = false;
  #attemptStart = 0;
  /** When the current try was started (for `$upstream_response_time`). */
  #sentAt = 0;

  constructor(ctx: RequestContext, upstream: CompiledUpstream, timeouts: TimeoutsMs, settings: ForwardSettings, onDone?: ForwardDone, run?: PluginRun) {
    this.ctx = ctx;
    this.req = ctx.req;
    this.res = ctx.res;
    this.upstream = upstream;
    this.timeouts = timeouts;
    this.settings = settings;
    this.onDone = onDone;
    this.run = run;
    this.#tries = new Tries(upstream);
    this.#headOnly = ctx.method === 'HEAD';
    const buffered = ctx.bufferedBody;
    if (buffered) {
      // A plugin read or replaced the body: it is sent from memory, on every try.
      this.#chunkedBody = false;
      this.#hasBody = buffered.length > 0;
      this.#replay = new ReplayBody(buffered);
      this.#bodyComplete = true;
      return;
    }
    const h = this.req.headers;
    this.#chunkedBody = h['transfer-encoding'] !== undefined;
    this.#hasBody = this.#chunkedBody || (h['content-length'] !== undefined && h['content-length'] !== '0');
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
    const run = this.run;
    if (!run) {
      this.#connect(node, false);
      return;
    }
    this.ctx.balancerIp = node.host;
    this.ctx.balancerPort = node.port;
    const outcome = run.beforeProxy();
    if (outcome === undefined) this.#connect(node, false);
    else if (outcome instanceof Promise) outcome.then((r) => (r ? this.#stopBeforeProxy(r) : this.#finished ? undefined : this.#connect(node, false)));
    else this.#stopBeforeProxy(outcome);
  }

  /** A before_proxy phase ended the request. */
  #stopBeforeProxy(exit: PhaseExit): void {
    if (this.#finished) return;
    this.#finish();
    respondThroughPlugins(this.run!, this.res, exit.status, exit.body, exit.headers, this.settings.serverHeader);
  }

  #connect(node: UpstreamNode, forceNew: boolean): void {
    this.#node = node;
    const ctx = this.ctx;
    if (!forceNew) ctx.upstreamAddr = ctx.upstreamAddr === undefined ? node.key : `${ctx.upstreamAddr}, ${node.key}`;
    ctx.upstreamScheme = this.upstream.tls ? 'https' : 'http';
    this.ctx.balancerIp = node.host;
    this.ctx.balancerPort = node.port;
    const pool = this.upstream.pools.get(node.key)!;
    const conn = forceNew ? pool.connectNew() : pool.acquire();
    this.#reusedConn = conn.reused;
    this.#conn = conn;
    // only latency-aware balancers (ewma) read it
    if (this.upstream.balancer.finished) this.#attemptStart = performance.now();
    this.#bodySentThisAttempt = false;
    this.upstream.balancer.started?.(node);
    conn.attach(this, this.#headOnly);
    // connect timeout until connected, then send timeout while the body streams, then read timeout.
    conn.setTimeout(!conn.connected ? this.timeouts.connect : this.#bodyComplete ? this.timeouts.read : this.#sendPhaseTimeout());
    ctx.upstreamStartTime = this.#sentAt = performance.now();
    this.#writeHead(conn, node);
    if (conn.connected) this.#startBody();
  }

  /**
   * The client's body is read only once a connection to a node is up, so a node that refuses the
   * connection costs nothing of the body and the next node gets all of it, whatever its size.
   */
  #startBody(): void {
    if (!this.#hasBody || this.#bodyComplete) return;
    if (this.#bodyFlowing) {
      // a retry: the body was paused while no node was connected
      this.req.resume();
      return;
    }
    this.#bodyFlowing = true;
    this.req.on('data', this.#onRequestData);
    this.req.on('end', this.#onRequestEnd);
    if (this.settings.clientBodyTimeoutMs > 0) this.req.setTimeout(this.settings.clientBodyTimeoutMs, this.#onClientBodyTimeout);
  }

  /** The client stopped sending its body: 408 as nginx answers, or a cut connection once answered. */
  #onClientBodyTimeout = (): void => {
    if (this.#bodyComplete || this.#finished) return;
    this.#dropConnection();
    if (this.#responded) {
      this.#abortClient();
      return;
    }
    this.ctx.failureReason = 'client timed out while sending the request body';
    this.#finish();
    sendStatus(this.res, 408, undefined, { Connection: 'close' }, this.settings.serverHeader);
  };

  #writeHead(conn: UpstreamConnection, node: UpstreamNode): void {
    const ctx = this.ctx;
    let head = upstreamRequestHead(ctx, this.upstream, node, this.settings);
    const length = ctx.bufferedBody ? String(ctx.bufferedBody.length) : this.req.headers['content-length'];
    if (this.#chunkedBody) head += 'Transfer-Encoding: chunked\r\n';
    else if (length !== undefined) head += `Content-Length: ${length}\r\n`;
    head += '\r\n';
    const socket = conn.socket;
    if (!this.#hasBody) {
      socket.write(head);
      this.#bodySentThisAttempt = true;
      return;
    }
    socket.cork();
    socket.write(head);
    // Replay what a previous attempt already read from the client.
    for (const chunk of this.#replay.chunks ?? []) this.#writeBodyChunk(chunk);
    if (this.#bodyComplete) this.#writeBodyEnd();
    socket.uncork();
  }

  #writeBodyChunk(chunk: Buffer): boolean {
    const socket = this.#conn!.socket;
    if (!this.#chunkedBody) return socket.write(chunk);
    socket.write(`${chunk.length.toString(16)}\r\n`);
    socket.write(chunk);
    return socket.write('\r\n');
  }

  #writeBodyEnd(): void {
    const conn = this.#conn!;
    if (this.#chunkedBody) conn.socket.write('0\r\n\r\n');
    this.#bodySentThisAttempt = true;
    if (conn.connected) conn.setTimeout(this.timeouts.read);
  }

  #onRequestData = (chunk: Buffer): void => {
    this.#bodyBytes += chunk.length;
    this.ctx.requestBodyBytes = this.#bodyBytes;
    if (this.settings.maxBodyBytes > 0 && this.#bodyBytes > this.settings.maxBodyBytes) {
      this.#bodyTooLarge();
      return;
    }
    this.#replay.add(chunk);
    const conn = this.#conn;
    if (!conn || this.#finished) return;
    if (!this.#writeBodyChunk(chunk)) this.req.pause();
  };

  /** A streamed body grew past client_max_body_size: 413 if nothing was answered yet, else cut. */
  #bodyTooLarge(): void {
    if (this.#finished) return;
    this.#dropConnection();
    if (this.#responded) {
      this.#abortClient();
      return;
    }
    this.ctx.failureReason = `client intended to send too large body: more than ${this.settings.maxBodyBytes} bytes`;
    this.#finish();
    sendStatus(this.res, 413, undefined, { Connection: 'close' }, this.settings.serverHeader);
  }

  #onRequestEnd = (): void => {
    this.#bodyComplete = true;
    if (this.settings.clientBodyTimeoutMs > 0) {
      this.req.setTimeout(0);
      this.req.off('timeout', this.#onClientBodyTimeout);
    }
    if (this.#conn && !this.#finished) this.#writeBodyEnd();
  };

  onConnected(): void {
    this.#conn?.setTimeout(this.#bodyComplete ? this.timeouts.read : this.#sendPhaseTimeout());
    this.#startBody();
  }

  /**
   * While the client's body streams, a quiet upstream connection may just mean a slow client: that is
   * client_body_timeout's call (408), so the upstream side waits a little longer than it.
   */
  #sendPhaseTimeout(): number {
    return Math.max(this.timeouts.send, this.settings.clientBodyTimeoutMs + 1000);
  }

  onConnectionDrain(): void {
    if (this.#hasBody && !this.#bodyComplete) this.req.resume();
  }

  onConnectionTimeout(): void {
    const conn = this.#conn!;
    const connecting = !conn.connected;
    this.#dropConnection();
    if (this.#responded) {
      // Timed out mid-body: nothing can be signalled but a cut connection.
      this.#abortClient();
      return;
    }
    this.#tries.lastWasTimeout = true;
    reportPassive(this.upstream, this.#node!, 'timeout');
    this.#retryOrFail(504, connecting ? 'upstream connect timed out' : 'upstream timed out', !connecting);
  }

  onConnectionError(err: Error, gotResponse: boolean): void {
    const conn = this.#conn;
    this.#conn = undefined;
    if (this.#node) this.upstream.balancer.finished?.(this.#node, performance.now() - this.#attemptStart, true);
    if (this.#responded) {
      this.#abortClient();
      return;
    }
    if (this.#finished) return;
    const sent = conn?.connected ?? false;
    // A keep-alive connection the upstream closed while idle: try once more on a fresh one.
    if (this.#reusedConn && !gotResponse && !this.#freshRetryUsed && this.#canResend(true)) {
      this.#freshRetryUsed = true;
      if (this.#bodyFlowing && !this.#bodyComplete) this.req.pause();
      this.#connect(this.#node!, true);
      return;
    }
    this.#tries.lastWasTimeout = false;
    if (!gotResponse) reportPassive(this.upstream, this.#node!, 'tcp');
    this.#retryOrFail(502, `upstream error: ${err.message}`, sent || gotResponse);
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

  onResponseHead(status: number, statusText: string, rawHeaders: string[], _keepAlive: boolean): void {
    this.#responded = true;
    this.#flow = new ResponseFlow(this.res, this.settings.sendTimeoutMs, () => this.#conn?.socket, this.#onSendTimeout);
    this.ctx.upstreamHeaderTime = performance.now() - this.#sentAt;
    this.ctx.upstreamStatus = status;
    reportPassive(this.upstream, this.#node!, status);
    const res = this.res;
    const headers = downstreamResponseHeaders(rawHeaders);
    if (this.settings.serverHeader) headers.push('Server', this.settings.serverHeader);
    const list = this.#tries.answeredList(status);
    if (status >= 500 || this.settings.showUpstreamStatus) headers.push('X-APISIX-Upstream-Status', list ?? String(status));
    if (list !== undefined) this.ctx.upstreamStatusList = list;
    const run = this.run;
    if (run) {
      const response = this.ctx.response;
      response.status = status;
      applyPendingHeaders(this.ctx, headers);
      run.headerFilter();
      this.#pipe = run.bodyPipe();
      if (response.status !== status) statusText = '';
      res.writeHead(response.status, statusText || undefined, response.headers.flat);
    } else {
      res.writeHead(status, statusText || undefined, headers);
    }
    this.#conn!.setTimeout(this.timeouts.read);
  }

  onResponseBody(chunk: Buffer): boolean {
    const flow = this.#flow!;
    const pipe = this.#pipe;
    if (!pipe) return flow.write(chunk);
    if (pipe.push(chunk, false, this.#pipeSink)) return !flow.clientFull;
    // An async body filter has the chunk: hold the upstream until the filters caught up.
    flow.holdUntil(pipe.idle(), () => !this.#finished);
    return false;
  }

  #pipeSink = (out: Buffer, eof: boolean): void => {
    if (eof) this.res.end(out.length ? out : undefined);
    else if (out.length) this.#flow!.write(out);
  };

  /** A client that stopped reading for send_timeout is cut, as nginx does. */
  #onSendTimeout = (): void => {
    if (this.#finished) return;
    this.ctx.failureReason = 'client timed out while reading the response';
    this.#dropConnection();
    this.#abortClient();
  };

  onResponseEnd(_trailers: string[] | undefined): void {
    // A connection goes back to the pool flowing, never paused by this response's backpressure or an
    // async body filter.
    this.#flow?.release();
    const conn = this.#conn!;
    this.#conn = undefined;
    this.ctx.upstreamResponseTime = performance.now() - this.#sentAt;
    if (this.#node) this.upstream.balancer.finished?.(this.#node, performance.now() - this.#attemptStart, false);
    // The connection can carry another request only if our request went out completely.
    conn.detach(this.#bodySentThisAttempt);
    this.#finish();
    if (this.#pipe) this.#pipe.push(Buffer.alloc(0), true, this.#pipeSink);
    else this.res.end();
  }

  #onClientClose = (): void => {
    if (this.#finished) return;
    // The client went away before the response ended: the upstream connection is in an unknown state.
    this.#dropConnection();
    this.#finish();
  };

  #dropConnection(): void {
    const conn = this.#conn;
    if (!conn) return;
    this.#conn = undefined;
    if (this.#node) this.upstream.balancer.finished?.(this.#node, performance.now() - this.#attemptStart, true);
    conn.owner = undefined;
    conn.destroy();
  }

  #abortClient(): void {
    this.#finish();
    this.res.destroy();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#flow?.stop();
    if (this.#hasBody) {
      this.req.off('data', this.#onRequestData);
      this.req.off('end', this.#onRequestEnd);
      // Drain what is left of the client's body so the connection stays usable.
      if (!this.#bodyComplete) this.req.resume();
    }
    this.onDone?.(this.ctx, this);
  }
}

/**
 * The request line and headers sent to a node (without body framing and the blank line): the
 * client's headers with plugins' edits, the Host that `pass_host` picks, and X-Real-IP /
 * X-Forwarded-*. Shared by proxied requests and WebSocket upgrades.
 */
export function upstreamRequestHead(ctx: RequestContext, up: CompiledUpstream, node: UpstreamNode, settings: ForwardSettings): string {
  const edits = ctx.headerEdits;
  const host = upstreamHostHeader(ctx, up, node, up.tls);
  const req = ctx.req;
  ctx.upstreamHostSent = host;
  return `${ctx.upstreamMethod} ${ctx.upstreamUri} HTTP/1.1\r\n${upstreamRequestHeaders(req.rawHeaders, req.headers, host, {
    remoteAddr: ctx.remoteAddr,
    scheme: ctx.listener.scheme,
    host: ctx.host || node.host,
    port: ctx.listener.port,
    trusted: settings.trustedAddresses,
  }, edits)}`;
}

/**
 * The Host (HTTP/2: `:authority`) sent to a node. A plugin's Host (proxy-rewrite `host`) replaces the
 * client's; the upstream's `pass_host: node` or `rewrite` still decide over it, as in APISIX's balancer.
 */
export function upstreamHostHeader(ctx: RequestContext, up: CompiledUpstream, node: UpstreamNode, tls: boolean): string {
  if (up.passHost === 'pass') return ctx.upstreamHost ?? firstValue(ctx.headerEdits?.get('host')?.value) ?? (ctx.hostHeader || node.host);
  return up.passHost === 'node' ? hostForNode(node, tls) : up.upstreamHost!;
}

function firstValue(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

/** `pass_host: node`: the node's host, with its port unless it is the scheme's default (as APISIX). */
function hostForNode(node: UpstreamNode, tls: boolean): string {
  const host = node.host.includes(':') ? `[${node.host}]` : node.host;
  return node.port === (tls ? 443 : 80) ? host : `${host}:${node.port}`;
}
