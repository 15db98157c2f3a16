// The node's response body on its way to the client, shared by the HTTP and gRPC exchanges: when
// the client reads slower than the node sends, or an async body filter still holds a chunk, the
// node is paused until they caught up; a client that stops reading for send_timeout is cut, as
// nginx does.
import type { ServerResponse } from 'node:http';

/** What the flow pauses: the node's socket or stream of the current try. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export class ResponseFlow {
  readonly #res: ServerResponse;
  readonly #sendTimeoutMs: number;
  readonly #upstream: () => Pausable | undefined;
  readonly #onSendTimeout: () => void;
  /** Paused because the client's buffer is full. */
  #clientFull = false;
  /** Paused because an async body filter holds a chunk. */
  #held = false;
  #sendTimer: NodeJS.Timeout | undefined;

  /** `upstream` gives the node's socket or stream of the moment (undefined once it is gone). */
  constructor(res: ServerResponse, sendTimeoutMs: number, upstream: () => Pausable | undefined, onSendTimeout: () => void) {
    this.#res = res;
    this.#sendTimeoutMs = sendTimeoutMs;
    this.#upstream = upstream;
    this.#onSendTimeout = onSendTimeout;
  }

  /** The node is paused for the client (the caller reports it as backpressure). */
  get clientFull(): boolean {
    return this.#clientFull;
  }

  /** Writes to the client; false (and the node paused until the client drains) when its buffer is full. */
  write(chunk: Buffer): boolean {
    if (this.#res.write(chunk)) return true;
    if (!this.#clientFull) {
      this.#clientFull = true;
      this.#upstream()?.pause();
      this.#res.once('drain', this.#onDrain);
      if (this.#sendTimeoutMs > 0) this.#sendTimer = setTimeout(this.#timedOut, this.#sendTimeoutMs);
    }
    return false;
  }

  /** An async body filter took a chunk: the node waits until `idle` settles, unless `wanted` says the request ended. */
  holdUntil(idle: Promise<void>, wanted: () => boolean): void {
    if (this.#held) return;
    this.#held = true;
    this.#upstream()?.pause();
    idle.then(() => {
      this.#held = false;
      if (!this.#clientFull && wanted()) this.#upstream()?.resume();
    });
  }

  /** The node's answer ended: nothing holds it any more (a pooled connection must go back flowing). */
  release(): void {
    const wasPaused = this.#clientFull || this.#held;
    this.#resumeForClient();
    this.#held = false;
    if (wasPaused) this.#upstream()?.resume();
  }

  /** The request is over: no timer may fire. */
  stop(): void {
    if (this.#sendTimer) clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
  }

  #onDrain = (): void => {
    if (this.#resumeForClient() && !this.#held) this.#upstream()?.resume();
  };

  /** Ends the client-side pause; true when there was one. */
  #resumeForClient(): boolean {
    if (!this.#clientFull) return false;
    this.#clientFull = false;
    this.stop();
    this.#res.off('drain', this.#onDrain);
    return true;
  }

  #timedOut = (): void => {
    this.#sendTimer = undefined;
    this.#onSendTimeout();
  };
}
