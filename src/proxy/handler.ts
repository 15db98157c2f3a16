// The request path of a worker: context → route match → plugin phases → upstream.
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { UpstreamTarget } from '../plugins/api.ts';
import type { PluginChain } from '../plugins/chain.ts';
import type { CompiledRoute, CompiledUpstream, Snapshot } from '../snapshot/index.ts';
import type { UpstreamResolution } from '../snapshot/types.ts';
import { withClientCertificate } from '../snapshot/upstream.ts';
import { RequestContext, type ListenerInfo } from './context.ts';
import { Exchange, type ForwardSettings } from './forward.ts';
import { GrpcExchange, isGrpcUpstream } from './forward-grpc.ts';
import { PluginRun, respondThroughPlugins, type PhaseExit } from './phases.ts';
import { openWebSocketTunnel } from './websocket.ts';
import type { RealIpSettings } from './real-ip.ts';
import { ROUTE_NOT_FOUND, sendStatus } from './responses.ts';
import type { AccessLog } from '../observability/access-log.ts';
import { clientCertificateRefusal } from './tls-front.ts';
import { gatewayAnswer } from './tries.ts';
import { normalisePath, splitTarget } from './uri.ts';

/** Where a response keeps its request's context for the access log. */
const REQUEST_CONTEXT = Symbol('requestContext');

/** Longest request-target whose request line still fits nginx's 8 KiB line buffer. */
const MAX_REQUEST_TARGET = 8192 - 'PROPFIND  HTTP/1.1\r\n'.length;

export interface HandlerOptions extends ForwardSettings {
  /** Strip one trailing `/` before matching (apisix.delete_uri_tail_slash). */
  deleteUriTailSlash: boolean;
  /** Route on paths with `%2F` kept encoded (apisix.match_uri_encoded_slash). */
  matchUriEncodedSlash: boolean;
  /** apisix.ssl.fallback_sni: the server name of TLS clients that sent none. */
  fallbackSni?: string;
  /** nginx realip settings; undefined when off. */
  realIp: RealIpSettings | undefined;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export class RequestHandler {
  snapshot: Snapshot;
  readonly options: HandlerOptions;
  /** The access log, when nginx_config.http.enable_access_log is on. */
  accessLog: AccessLog<RequestContext> | undefined;

  constructor(snapshot: Snapshot, options: HandlerOptions) {
    this.snapshot = snapshot;
    this.options = options;
    const handler = this;
    // One listener for every response (`this` is the response), so logging allocates nothing per request.
    this.#logAccess = function (this: ServerResponse & { [REQUEST_CONTEXT]?: RequestContext }) {
      const ctx = this[REQUEST_CONTEXT];
      if (!ctx) return;
      // A throw here would also keep the response's later close listeners from running.
      try {
        handler.accessLog?.write(ctx);
      } catch (err) {
        handler.options.log('error', `access log: ${(err as Error).stack ?? err}`);
      }
    };
  }

  readonly #logAccess: (this: ServerResponse) => void;

  /**
   * A request with an `Upgrade` header (Node hands over its raw connection): a WebSocket upgrade on
   * a route with `enable_websocket` is tunnelled to a node; any other goes through the usual path
   * without the upgrade, as nginx proxies it, and the connection closes after the answer.
   */
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, listener: ListenerInfo): void {
    const res = new ServerResponse(req);
    res.assignSocket(socket);
    res.shouldKeepAlive = false;
    // Node's server does not manage this response: once answered (a refusal, a plain request), the
    // connection ends here, since its parser was handed over with the upgrade.
    res.once('finish', () => socket.end());
    socket.on('error', () => socket.destroy());
    this.handle(req, res, listener, { socket, head });
  }

  handle(req: IncomingMessage, res: ServerResponse, listener: ListenerInfo, upgrade?: { socket: Socket; head: Buffer }): void {
    if (req.url!.length > MAX_REQUEST_TARGET) {
      // nginx reads the request line into one 8 KiB buffer (large_client_header_buffers 4 8k).
      sendStatus(res, 414, undefined, { Connection: 'close' }, this.options.serverHeader);
      return;
    }
    const max = this.options.maxBodyBytes;
    if (max > 0 && Number(req.headers['content-length'] ?? 0) > max) {
      // nginx refuses a declared body over client_max_body_size before any route runs.
      this.options.log('error', `client intended to send too large body: ${req.headers['content-length']} bytes`);
      sendStatus(res, 413, undefined, { Connection: 'close' }, this.options.serverHeader);
      return;
    }
    const { path, query } = splitTarget(req.url!);
    let uri = normalisePath(path, this.options.matchUriEncodedSlash);
    if (uri === undefined) {
      sendStatus(res, 400, undefined, undefined, this.options.serverHeader);
      return;
    }
    if (this.options.deleteUriTailSlash && uri.length > 1 && uri.endsWith('/')) uri = uri.slice(0, -1);
    const ctx = new RequestContext(req, res, uri, query, listener, this.options.realIp);
    if (this.accessLog) {
      (res as ServerResponse & { [REQUEST_CONTEXT]?: RequestContext })[REQUEST_CONTEXT] = ctx;
      res.on('close', this.#logAccess);
    }
    const snapshot = this.snapshot;
    const ssl = listener.ssl;
    if (ssl && (ssl.client || snapshot.ssl.verifiesClients)) {
      const socket = req.socket as TLSSocket;
      const refusal = clientCertificateRefusal(socket, ssl, uri, ctx.host, snapshot.ssl, socket.servername || this.options.fallbackSni);
      if (refusal) {
        this.options.log('error', refusal);
        sendStatus(res, 400, undefined, undefined, this.options.serverHeader);
        return;
      }
    }
    if (upgrade && req.headers.upgrade?.toLowerCase() === 'websocket') ctx.upgrade = upgrade;
    const matched = snapshot.match(ctx);
    const global = snapshot.globalChain;
    if (!matched) {
      if (!global) {
        sendStatus(res, 404, ROUTE_NOT_FOUND, undefined, this.options.serverHeader);
        return;
      }
      // Global rules run for unmatched requests too, then 404 (apisix/init.lua).
      const run = this.#startPlugins(ctx, snapshot, global, undefined);
      this.#afterAccess(run.runAccess(), run, () => respondThroughPlugins(run, res, 404, ROUTE_NOT_FOUND, undefined, this.options.serverHeader));
      return;
    }
    const route = matched.value;
    ctx.params = matched.params;
    ctx.routeId = route.id;
    ctx.routeName = route.conf.name;
    ctx.matchedUri = matched.path;
    ctx.routeHosts = route.hosts;
    if (route.service) {
      ctx.serviceId = route.service.id;
      ctx.serviceName = route.service.conf.name;
    }
    if (route.missingPluginConfig !== undefined) {
      this.options.log('error', `route ${route.id}: failed to fetch plugin config by id: ${route.missingPluginConfig}`);
      sendStatus(res, 503, undefined, undefined, this.options.serverHeader);
      return;
    }
    if (!global && !route.plugins) {
      this.#proxy(ctx, route, undefined);
      return;
    }
    const run = this.#startPlugins(ctx, snapshot, global, route.plugins);
    this.#afterAccess(run.runAccess(), run, () => this.#proxy(ctx, route, run));
  }

  #startPlugins(ctx: RequestContext, snapshot: Snapshot, global: PluginChain | undefined, route: PluginChain | undefined): PluginRun {
    ctx.runtime = snapshot.plugins;
    ctx.maxBodyBytes = this.options.maxBodyBytes;
    return new PluginRun(ctx, global, route);
  }

  /** Continues after rewrite/access: a plugin's exit is sent, otherwise `next` runs. */
  #afterAccess(outcome: PhaseExit | undefined | Promise<PhaseExit | undefined>, run: PluginRun, next: () => void): void {
    const go = (exit: PhaseExit | undefined): void => {
      if (exit) respondThroughPlugins(run, run.ctx.res, exit.status, exit.body, exit.headers, this.options.serverHeader);
      else if (!run.ctx.res.destroyed) next();
    };
    if (outcome instanceof Promise) {
      outcome.then(go, (err: Error) => {
        this.options.log('error', `plugin phases failed: ${err.stack ?? err}`);
        respondThroughPlugins(run, run.ctx.res, 500, undefined, undefined, this.options.serverHeader);
      });
    } else {
      go(outcome);
    }
  }

  #proxy(ctx: RequestContext, route: CompiledRoute, run: PluginRun | undefined): void {
    const resolved = ctx.upstreamTarget ? this.#resolveTarget(ctx.upstreamTarget) : route.resolveUpstream();
    if (!resolved.ok) {
      this.options.log('error', `route ${route.id}: ${resolved.log}`);
      // core.response.exit(code) without a body: nginx's stock error page for the status.
      this.#respond(ctx, run, resolved.status);
      return;
    }
    let upstream = resolved.upstream;
    if (upstream.clientCertId !== undefined) {
      const certificate = this.snapshot.ssl.clientCertificate(upstream.clientCertId);
      if (typeof certificate !== 'object') {
        this.options.log('error', `failed to get ssl cert: ${certificate === 'wrongType' ? "ssl type should be 'client'" : `ssl id [${upstream.clientCertId}] not exits`}`);
        this.#respond(ctx, run, 502);
        return;
      }
      upstream = withClientCertificate(upstream, certificate);
    }
    if (upstream.nodes.length === 0) {
      this.options.log('error', `route ${route.id}: no valid upstream node`);
      this.#respond(ctx, run, 503);
      return;
    }
    const timeouts = route.timeouts ?? upstream.timeouts;
    if (ctx.upgrade && route.websocket) {
      openWebSocketTunnel(ctx, ctx.upgrade.socket, ctx.upgrade.head, upstream, timeouts, this.options, (status, reason) => {
        this.options.log('error', `${reason} while connecting the WebSocket ${ctx.requestUri} (route ${route.id}, node ${ctx.balancerIp}:${ctx.balancerPort})`);
        this.#respond(ctx, run, status);
      });
      return;
    }
    if (isGrpcUpstream(upstream)) new GrpcExchange(ctx, upstream, timeouts, this.options, this.#onExchangeDone, run).start();
    else new Exchange(ctx, upstream, timeouts, this.options, this.#onExchangeDone, run).start();
  }

  /** An upstream chosen by a plugin (traffic-split): by id from the current snapshot, or compiled by the plugin. */
  #resolveTarget(target: UpstreamTarget): UpstreamResolution {
    if ('upstream' in target) return { ok: true, upstream: target.upstream as unknown as CompiledUpstream };
    const upstream = this.snapshot.upstreams.get(target.upstreamId);
    return upstream ? { ok: true, upstream } : { ok: false, status: 502, log: `failed to find upstream by id: ${target.upstreamId}` };
  }

  #respond(ctx: RequestContext, run: PluginRun | undefined, status: number): void {
    gatewayAnswer(run, ctx.res, status, undefined, this.options.serverHeader);
  }

  #onExchangeDone = (ctx: RequestContext): void => {
    if (ctx.failureReason) {
      this.options.log('error', `${ctx.failureReason} while proxying ${ctx.method} ${ctx.requestUri} (route ${ctx.routeId}, node ${ctx.balancerIp}:${ctx.balancerPort}, client ${ctx.remoteAddr})`);
    }
  };
}
