// The tries of one request across an upstream's nodes, shared by the HTTP and gRPC exchanges: which
// nodes failed, the `retries` and `retry_timeout` budget, and nginx's `$upstream_status` list that
// APISIX sends back as X-APISIX-Upstream-Status.
import type { ServerResponse } from 'node:http';
import type { CompiledUpstream } from '../snapshot/types.ts';
import type { UpstreamNode } from '../upstream/balancer/index.ts';
import type { RequestContext } from './context.ts';
import { respondThroughPlugins, type PluginRun } from './phases.ts';
import { sendStatus } from './responses.ts';

/** Body bytes kept for another try; a longer body cannot be sent again once it started flowing. */
const REPLAY_LIMIT = 64 * 1024;
/** Methods nginx does not send to another node once the request reached one. */
const NON_IDEMPOTENT = new Set(['POST', 'PATCH', 'LOCK']);

/** The client's body as far as it can be sent again to another node. */
export class ReplayBody {
  /** The chunks read so far; undefined once the body outgrew the limit. */
  chunks: Buffer[] | undefined;
  #bytes = 0;

  /** `complete`: a body a plugin read or replaced, kept in memory for every try. */
  constructor(complete?: Buffer) {
    this.chunks = complete ? [complete] : [];
  }

  add(chunk: Buffer): void {
    if (!this.chunks) return;
    this.#bytes += chunk.length;
    if (this.#bytes <= REPLAY_LIMIT) this.chunks.push(chunk);
    else this.chunks = undefined;
  }
}

/**
 * nginx's rule for sending a request to another node after a failure: its body must still be at
 * hand, and a non-idempotent request must not have reached the node that failed.
 */
export function mayResend(method: string, hasBody: boolean, replay: ReplayBody, sentToUpstream: boolean): boolean {
  if (hasBody && !replay.chunks) return false;
  return !(sentToUpstream && NON_IDEMPOTENT.has(method));
}

export class Tries {
  readonly #upstream: CompiledUpstream;
  #tried: Set<string> | undefined;
  #retriesLeft: number;
  #firstAt = 0;
  /** `$upstream_status` of the failed tries so far (`502, 504, `); '' while none failed. */
  #failed = '';
  /** No node could be picked for the next try. */
  #pickFailed = false;
  /** The last failure was a timeout (the final answer is then 504, else 502). */
  lastWasTimeout = false;

  constructor(upstream: CompiledUpstream) {
    this.#upstream = upstream;
    this.#retriesLeft = upstream.retries;
  }

  start(): void {
    this.#firstAt = performance.now();
  }

  /** The node for the next try (never one that failed), or undefined when none is left. */
  pick(ctx: RequestContext): UpstreamNode | undefined {
    const node = this.#upstream.balancer.pick(ctx, this.#tried);
    if (!node) this.#pickFailed = true;
    return node;
  }

  /** Why no node could be picked, for the error log. */
  get pickFailure(): string {
    return this.#failed === '' ? 'failed to find valid upstream server, no valid upstream node' : 'no upstream node available';
  }

  /** Whether `retries` and `retry_timeout` allow another try. */
  get mayRetry(): boolean {
    const up = this.#upstream;
    return this.#retriesLeft > 0 && (up.retryTimeoutMs === 0 || performance.now() - this.#firstAt < up.retryTimeoutMs);
  }

  /** A try on `node` failed with `status` and another one follows. */
  retryAfter(node: UpstreamNode, status: number): void {
    this.#retriesLeft--;
    this.#failed += `${status}, `;
    (this.#tried ??= new Set()).add(node.key);
  }

  /** A node answered with `status`: the whole list when earlier tries failed, else undefined. */
  answeredList(status: number): string | undefined {
    return this.#failed === '' ? undefined : this.#failed + status;
  }

  /**
   * The gateway answers `status` after the last try failed: the `$upstream_status` list, or
   * undefined when nothing was tried at all (every weight 0), as APISIX then sends no header. When
   * no node could be picked for a retry, the list ends with the last try's status.
   */
  failedList(status: number): string | undefined {
    const failed = this.#failed;
    if (failed === '' && this.#pickFailed) return undefined;
    return failed === '' ? String(status) : this.#pickFailed ? failed.slice(0, -2) : failed + status;
  }
}

/** A response the gateway makes itself, through the plugins' filters when plugins run. */
export function gatewayAnswer(run: PluginRun | undefined, res: ServerResponse, status: number, headers: Record<string, string> | undefined, serverHeader: string | undefined): void {
  if (run) respondThroughPlugins(run, res, status, undefined, headers, serverHeader);
  else sendStatus(res, status, undefined, headers, serverHeader);
}

/**
 * The end of a request whose tries all failed: the reason for the log, the status list in the
 * context and in X-APISIX-Upstream-Status, and the gateway's answer.
 */
export function answerFailure(tries: Tries, ctx: RequestContext, run: PluginRun | undefined, res: ServerResponse, status: number, reason: string, serverHeader: string | undefined, finish: () => void): void {
  ctx.failureReason = reason;
  const list = tries.failedList(status);
  if (list !== undefined) {
    ctx.upstreamStatus = status;
    ctx.upstreamStatusList = list;
  }
  finish();
  gatewayAnswer(run, res, status, list === undefined ? undefined : { 'X-APISIX-Upstream-Status': list }, serverHeader);
}
