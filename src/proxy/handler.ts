// The request path of a worker: context → route match → plugin phases → upstream.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Snapshot } from '../snapshot/index.ts';
import { RequestContext, type ListenerInfo } from './context.ts';
import { Exchange, type ForwardSettings } from './forward.ts';
import { runAccessPhases } from './phases.ts';
import type { RealIpSettings } from './real-ip.ts';
import { ROUTE_NOT_FOUND, sendStatus } from './responses.ts';
import { normalisePath, splitTarget } from './uri.ts';

/** Longest request-target whose request line still fits nginx's 8 KiB line buffer. */
const MAX_REQUEST_TARGET = 8192 - 'PROPFIND  HTTP/1.1\r\n'.length;

export interface HandlerOptions extends ForwardSettings {
  /** Strip one trailing `/` before matching (apisix.delete_uri_tail_slash). */
  deleteUriTailSlash: boolean;
  /** Route on paths with `%2F` kept encoded (apisix.match_uri_encoded_slash). */
  matchUriEncodedSlash: boolean;
  /** nginx realip settings; undefined when off. */
  realIp: RealIpSettings | undefined;
  log: (level: 'warn' | 'error', message: string) => void;
}

export class RequestHandler {
  snapshot: Snapshot;
  readonly options: HandlerOptions;

  constructor(snapshot: Snapshot, options: HandlerOptions) {
    this.snapshot = snapshot;
    this.options = options;
  }

  handle(req: IncomingMessage, res: ServerResponse, listener: ListenerInfo): void {
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
    const matched = this.snapshot.match(ctx);
    if (!matched) {
      sendStatus(res, 404, ROUTE_NOT_FOUND, undefined, this.options.serverHeader);
      return;
    }
    const route = matched.value;
    ctx.params = matched.params;
    ctx.routeId = route.id;
    ctx.routeName = route.conf.name;
    if (route.service) {
      ctx.serviceId = route.service.id;
      ctx.serviceName = route.service.conf.name;
    }
    const stop = runAccessPhases(ctx, route);
    if (stop) {
      sendStatus(res, stop.status, stop.body, stop.headers, this.options.serverHeader);
      return;
    }
    const resolved = route.resolveUpstream();
    if (!resolved.ok) {
      this.options.log('error', `route ${route.id}: ${resolved.log}`);
      // core.response.exit(code) without a body: nginx's stock error page for the status.
      sendStatus(res, resolved.status, undefined, undefined, this.options.serverHeader);
      return;
    }
    const upstream = resolved.upstream;
    if (upstream.nodes.length === 0) {
      this.options.log('error', `route ${route.id}: no valid upstream node`);
      sendStatus(res, 503, undefined, undefined, this.options.serverHeader);
      return;
    }
    new Exchange(ctx, upstream, route.timeouts ?? upstream.timeouts, this.options, this.#onExchangeDone).start();
  }

  #onExchangeDone = (ctx: RequestContext): void => {
    if (ctx.failureReason) {
      this.options.log('error', `${ctx.failureReason} while proxying ${ctx.method} ${ctx.requestUri} (route ${ctx.routeId}, node ${ctx.balancerIp}:${ctx.balancerPort}, client ${ctx.remoteAddr})`);
    }
  };
}
