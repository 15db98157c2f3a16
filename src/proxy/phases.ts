// The plugin phase driver for one request, in APISIX's order (apisix/init.lua): global rules'
// rewrite, the route's rewrite, the consumer's plugins merged in (their rewrite runs for the ones
// they added), global access, route access; then per upstream try before_proxy; then
// header_filter, body_filter and log, global rules first in each. A phase that returns a result
// ends the request with it. Phases run synchronously until one returns a promise; only then does
// the rest of the sequence wait for it.
import type { ServerResponse } from 'node:http';
import type { PhaseExit, PhaseOutcome } from '../plugins/api.ts';
import type { PluginChain, PluginInstance } from '../plugins/chain.ts';
import { log } from '../util/log.ts';
import { BodyTooLargeError, type RequestContext } from './context.ts';
import { HeaderList } from './response-headers.ts';
import { gatewayBody } from './responses.ts';

export type { PhaseExit } from '../plugins/api.ts';

type Outcome = PhaseExit | undefined;
type MaybeOutcome = Outcome | Promise<Outcome>;
type CallPhase = 'rewrite' | 'access' | 'before_proxy';

const NONE: readonly PluginInstance[] = [];

function isPromise<T>(value: unknown): value is Promise<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}

export class PluginRun {
  readonly ctx: RequestContext;
  readonly global: PluginChain | undefined;
  /** The route's chain; replaced by the consumer-merged chain once a consumer is attached. */
  route: PluginChain | undefined;
  /** `_meta.filter` results, evaluated once per request and instance. */
  #filtered: Map<PluginInstance, boolean> | undefined;

  #logHooked = false;

  constructor(ctx: RequestContext, global: PluginChain | undefined, route: PluginChain | undefined) {
    this.ctx = ctx;
    this.global = global;
    this.route = route;
    this.#hookLog();
  }

  get hasBodyFilters(): boolean {
    return (this.global?.body_filter.length ?? 0) + (this.route?.body_filter.length ?? 0) > 0;
  }

  /** The log phase runs once the response is done (or the client went away), when some plugin has one. */
  #hookLog(): void {
    if (this.#logHooked || (this.global?.log.length ?? 0) + (this.route?.log.length ?? 0) === 0) return;
    this.#logHooked = true;
    // `$bytes_sent` counts what the connection carried from here on.
    this.ctx.bytesSentBase = this.ctx.req.socket?.bytesWritten ?? 0;
    this.ctx.res.once('close', () => this.logPhase());
  }

  /** rewrite and access for every chain; a result ends the request. */
  runAccess(): MaybeOutcome {
    return this.#fromStep(0);
  }

  #fromStep(step: number): MaybeOutcome {
    for (; step < 5; step++) {
      const result = this.#step(step);
      if (result === undefined) continue;
      if (isPromise<Outcome>(result)) {
        const next = step + 1;
        return result.then((r) => r ?? this.#fromStep(next));
      }
      return result;
    }
    return undefined;
  }

  #step(step: number): MaybeOutcome {
    switch (step) {
      case 0:
        return this.global ? this.#runList(this.global.rewrite, 'rewrite', 0, true) : undefined;
      case 1:
        return this.route ? this.#runList(this.route.rewrite, 'rewrite', 0, false) : undefined;
      case 2: {
        const consumer = this.ctx.consumer;
        if (!consumer || !this.route) return undefined;
        const merged = this.route.withConsumer(consumer);
        this.route = merged.chain;
        this.#hookLog();
        return merged.addedRewrite.length ? this.#runList(merged.addedRewrite, 'rewrite', 0, false) : undefined;
      }
      case 3:
        return this.global ? this.#runList(this.global.access, 'access', 0, true) : undefined;
      default:
        return this.route ? this.#runList(this.route.access, 'access', 0, false) : undefined;
    }
  }

  /** before_proxy of the global rules then the route, for each upstream try. */
  beforeProxy(): MaybeOutcome {
    const globalList = this.global?.before_proxy;
    const first = globalList?.length ? this.#runList(globalList, 'before_proxy', 0, true) : undefined;
    const routeList = this.route?.before_proxy;
    if (!routeList?.length) return first;
    if (first === undefined) return this.#runList(routeList, 'before_proxy', 0, false);
    if (isPromise<Outcome>(first)) return first.then((r) => r ?? this.#runList(routeList, 'before_proxy', 0, false));
    return first;
  }

  #runList(list: readonly PluginInstance[], phase: CallPhase, start: number, isGlobal: boolean): MaybeOutcome {
    const ctx = this.ctx;
    for (let i = start; i < list.length; i++) {
      const inst = list[i];
      if (!this.#active(inst, isGlobal)) continue;
      let result: PhaseOutcome | Promise<PhaseOutcome>;
      try {
        result = inst[phase]!(ctx, inst.conf, inst.state);
      } catch (err) {
        return this.#crashed(inst, phase, err);
      }
      if (!result) continue;
      if (isPromise<PhaseOutcome>(result)) {
        return result.then(
          (r) => (r ? this.#exit(inst, r) : this.#runList(list, phase, i + 1, isGlobal)),
          (err) => this.#crashed(inst, phase, err),
        );
      }
      return this.#exit(inst, result);
    }
    return undefined;
  }

  /** Filtered out by `_meta.filter`, or a global copy skipped for `prefer_route`. */
  #active(inst: PluginInstance, isGlobal: boolean): boolean {
    if (isGlobal && inst.plugin.def.runPolicy === 'prefer_route' && this.route?.names.has(inst.name)) return false;
    if (!inst.filter) return true;
    const seen = (this.#filtered ??= new Map());
    let pass = seen.get(inst);
    if (pass === undefined) {
      pass = inst.filter(this.ctx);
      seen.set(inst, pass);
    }
    return pass;
  }

  #exit(inst: PluginInstance, result: PhaseExit): PhaseExit {
    if (result.status >= 400 && inst.errorResponse !== undefined) return { ...result, body: inst.errorResponse };
    return result;
  }

  #crashed(inst: PluginInstance, phase: string, err: unknown): PhaseExit {
    if (err instanceof BodyTooLargeError) {
      log('error', err.message);
      return { status: 413, headers: { Connection: 'close' } };
    }
    log('error', `plugin ${inst.name} failed in ${phase} (route ${this.ctx.routeId ?? '-'}): ${(err as Error)?.stack ?? err}`);
    return { status: 500 };
  }

  /** header_filter of every chain over the response about to be sent (synchronous). */
  headerFilter(): void {
    this.#eachFilter('header_filter');
  }

  /** log of every chain, once the response is done; failures are logged, never raised. */
  logPhase(): void {
    this.#eachFilter('log');
  }

  #eachFilter(phase: 'header_filter' | 'log'): void {
    const ctx = this.ctx;
    for (const inst of this.#filterOrder(phase)) {
      try {
        const r = inst[phase]!(ctx, inst.conf, inst.state);
        if (isPromise(r)) r.catch((err) => log('error', `plugin ${inst.name} failed in ${phase}: ${(err as Error)?.stack ?? err}`));
      } catch (err) {
        log('error', `plugin ${inst.name} failed in ${phase}: ${(err as Error)?.stack ?? err}`);
      }
    }
  }

  /**
   * The active instances of a response phase: global rules first, then the route; output encoders
   * (gzip) after all of them.
   */
  #filterOrder(phase: 'header_filter' | 'body_filter' | 'log'): readonly PluginInstance[] {
    const globalList = this.global?.[phase];
    const routeList = this.route?.[phase];
    if (!globalList?.length && !routeList?.length) return NONE;
    const out: PluginInstance[] = [];
    let encoders: PluginInstance[] | undefined;
    for (const [chain, isGlobal] of [[this.global, true], [this.route, false]] as const) {
      if (!chain) continue;
      for (const inst of chain[phase]) {
        if (!this.#active(inst, isGlobal)) continue;
        if (inst.plugin.def.outputFilter && phase !== 'log') (encoders ??= []).push(inst);
        else out.push(inst);
      }
    }
    if (encoders) out.push(...encoders);
    return out;
  }

  /** The body filters of every chain, in order, as one pipe; undefined when there are none. */
  bodyPipe(): BodyPipe | undefined {
    if (!this.hasBodyFilters) return undefined;
    const list = this.#filterOrder('body_filter');
    return list.length ? new BodyPipe(this.ctx, list) : undefined;
  }
}

/**
 * Response body chunks through the body filters, in order. A filter may answer with a promise;
 * later chunks then wait behind it, so the client gets the bytes in order.
 */
export class BodyPipe {
  readonly #ctx: RequestContext;
  readonly #filters: readonly PluginInstance[];
  #queue: Promise<void> | undefined;

  constructor(ctx: RequestContext, filters: readonly PluginInstance[]) {
    this.#ctx = ctx;
    this.#filters = filters;
  }

  /** Sends `chunk` through the filters to `sink`; returns false while an async filter holds it back. */
  push(chunk: Buffer, eof: boolean, sink: (out: Buffer, eof: boolean) => void): boolean {
    const pending = this.#queue ? this.#queue.then(() => this.#run(chunk, eof, sink, 0)) : this.#run(chunk, eof, sink, 0);
    if (!pending) return true;
    const queued: Promise<void> = pending.then(() => {
      if (this.#queue === queued) this.#queue = undefined;
    });
    this.#queue = queued;
    return false;
  }

  /** Resolves once every chunk pushed so far went to the sink. */
  idle(): Promise<void> {
    return this.#queue ?? Promise.resolve();
  }

  #run(chunk: Buffer, eof: boolean, sink: (out: Buffer, eof: boolean) => void, from: number): Promise<void> | undefined {
    let data = chunk;
    for (let i = from; i < this.#filters.length; i++) {
      const inst = this.#filters[i];
      let r: Buffer | undefined | Promise<Buffer | undefined>;
      try {
        r = inst.body_filter!(this.#ctx, inst.conf, inst.state, data, eof);
      } catch (err) {
        log('error', `plugin ${inst.name} failed in body_filter: ${(err as Error)?.stack ?? err}`);
        continue;
      }
      if (isPromise<Buffer | undefined>(r)) {
        const next = i + 1;
        const current = data;
        return r.then(
          (out) => this.#run(out ?? current, eof, sink, next),
          (err) => {
            log('error', `plugin ${inst.name} failed in body_filter: ${(err as Error)?.stack ?? err}`);
            return this.#run(current, eof, sink, next);
          },
        );
      }
      if (r) data = r;
    }
    sink(data, eof);
    return undefined;
  }
}

/**
 * Sends a response the gateway makes itself (a plugin's exit, 404, 5xx) through the header and
 * body filters: APISIX runs them for `core.response.exit` too (cors headers on a 401, say).
 */
export function respondThroughPlugins(run: PluginRun, res: ServerResponse, status: number, body: string | Buffer | object | undefined, headers: Record<string, string | string[]> | undefined, serverHeader: string | undefined): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const ctx = run.ctx;
  const { bytes, type } = gatewayBody(status, body);
  const base = ['Content-Type', type, 'Content-Length', String(bytes.length)];
  if (serverHeader) base.push('Server', serverHeader);
  const response = ctx.response;
  response.status = status;
  response.fromGateway = true;
  response.headers.applyTo(base);
  if (headers) for (const name in headers) response.headers.set(name, headers[name]);
  run.headerFilter();
  const pipe = run.bodyPipe();
  const head = (): void => {
    res.writeHead(response.status, response.headers.flat);
  };
  const headOnly = ctx.method === 'HEAD';
  if (!pipe) {
    head();
    res.end(headOnly ? undefined : bytes);
    return;
  }
  // A filter that changes the body removes Content-Length in its header_filter; then it is chunked.
  head();
  pipe.push(bytes, true, (out) => res.end(headOnly ? undefined : out));
}

/** The response headers plugins set before the upstream answered, replayed over the upstream's. */
export function applyPendingHeaders(ctx: RequestContext, upstreamHeaders: string[]): HeaderList | undefined {
  const response = ctx.responseIfUsed;
  if (!response) return undefined;
  response.headers.applyTo(upstreamHeaders);
  return response.headers;
}
