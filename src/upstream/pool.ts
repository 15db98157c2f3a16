// Keep-alive pools of upstream connections, one per node address and pool settings, shared by all
// upstreams on a worker that use the same node and settings (nginx's `keepalive` per upstream block).
import { createHash } from 'node:crypto';
import { UpstreamConnection, type ConnectTarget } from './connection.ts';

export interface PoolOptions {
  /** Idle connections kept (keepalive_pool.size). */
  size: number;
  /** Idle connections close after this many ms (keepalive_pool.idle_timeout). */
  idleTimeoutMs: number;
  /** A connection closes after serving this many requests (keepalive_pool.requests). */
  maxRequests: number;
}

export class NodePool {
  readonly target: ConnectTarget;
  readonly options: PoolOptions;
  /** Idle connections, oldest first; the most recently used one is reused first. */
  readonly #idle: UpstreamConnection[] = [];
  #open = 0;
  /** One timer per pool closes connections idle for longer than idle_timeout (no timer per request). */
  #sweeper: NodeJS.Timeout | undefined;

  constructor(target: ConnectTarget, options: PoolOptions) {
    this.target = target;
    this.options = options;
  }

  get idleCount(): number {
    return this.#idle.length;
  }

  get openCount(): number {
    return this.#open;
  }

  /** An idle connection (most recently used first), or a new one; `conn.reused` tells which. */
  acquire(): UpstreamConnection {
    const now = performance.now();
    for (let conn = this.#idle.pop(); conn; conn = this.#idle.pop()) {
      if (now - conn.idleSince <= this.options.idleTimeoutMs) {
        conn.reused = true;
        return conn;
      }
      conn.destroy();
    }
    return this.connectNew();
  }

  /** A fresh connection even if idle ones exist (after a reused one failed). */
  connectNew(): UpstreamConnection {
    this.#open++;
    return new UpstreamConnection(this.target, this);
  }

  release(conn: UpstreamConnection): void {
    if (conn.served >= this.options.maxRequests || this.#idle.length >= this.options.size) {
      conn.destroy();
      return;
    }
    conn.idleSince = performance.now();
    this.#idle.push(conn);
    if (!this.#sweeper) {
      this.#sweeper = setInterval(() => this.#sweep(), Math.max(100, Math.min(this.options.idleTimeoutMs, 5000)));
      this.#sweeper.unref();
    }
  }

  /** Closes idle connections past idle_timeout (the oldest are at the front). */
  #sweep(): void {
    const limit = performance.now() - this.options.idleTimeoutMs;
    let expired = 0;
    while (expired < this.#idle.length && this.#idle[expired].idleSince < limit) expired++;
    for (const conn of this.#idle.splice(0, expired)) conn.destroy();
    if (this.#idle.length === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  forget(conn: UpstreamConnection): void {
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
    if (!conn.counted) return;
    conn.counted = false;
    this.#open--;
  }

  /** Closes idle connections (on config removal or shutdown). */
  closeIdle(): void {
    for (const conn of this.#idle.splice(0)) conn.destroy();
  }
}

const pools = new Map<string, NodePool>();

/**
 * What tells connections to a node apart: the address, the server name and, over TLS, the client
 * certificate, the verification and the trusted CAs (connections made otherwise are not interchangeable).
 */
export function connectTargetKey(target: ConnectTarget): string {
  const tlsKey = target.tls ? `|${target.verify ? 'v' : ''}|${target.clientCert ? fingerprint(target.clientCert.cert) : ''}|${target.ca ? fingerprint(target.ca) : ''}` : '';
  return `${target.tls ? 's' : ''}${target.host}:${target.port}|${target.servername ?? ''}${tlsKey}`;
}

/** The shared pool for a node with these settings. */
export function poolFor(target: ConnectTarget, options: PoolOptions): NodePool {
  const key = `${connectTargetKey(target)}|${options.size}|${options.idleTimeoutMs}|${options.maxRequests}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = new NodePool(target, options);
    pools.set(key, pool);
  }
  return pool;
}

function fingerprint(pem: string): string {
  return createHash('sha1').update(pem).digest('hex').slice(0, 16);
}

/** Closes every idle upstream connection (graceful shutdown). */
export function closeAllIdle(): void {
  for (const pool of pools.values()) pool.closeIdle();
}
