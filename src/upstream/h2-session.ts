// HTTP/2 connections to upstream nodes, for `grpc` and `grpcs` upstreams. The requests of a worker
// share a node's connection (an HTTP/2 session) as streams; a node gets another session only when
// its sessions carry as many streams as the node allows (SETTINGS_MAX_CONCURRENT_STREAMS). A
// session that got GOAWAY, failed or closed takes no new streams and leaves the pool; one without
// streams for the pool's idle timeout is closed. TLS sessions (`grpcs`) offer h2 by ALPN with the
// upstream's server name, client certificate and verification, as HTTP/1.1 connections do.
import http2 from 'node:http2';
import net from 'node:net';
import type tls from 'node:tls';
import { connectToNode, type ConnectTarget } from './connection.ts';
import { connectTargetKey } from './pool.ts';

/** Streams per session until the node's SETTINGS say otherwise (RFC 9113 recommends at least 100). */
const DEFAULT_STREAM_LIMIT = 100;

/** Why a session failed before it could carry a stream. */
export type SessionFailure = 'connect-timeout' | 'error';

export class H2Session {
  readonly session: http2.ClientHttp2Session;
  /** The connection (and TLS handshake) is up. */
  connected = false;
  /** Set once the session failed to connect (the streams it carried fail with it). */
  failure: SessionFailure | undefined;
  /** Streams open on this session. */
  active = 0;
  /** Takes new streams: not closed, not told to go away. */
  usable = true;
  /** Called once the session connected (requests that wait for it to send their body). */
  #waiting: Array<() => void> | undefined = [];

  constructor(session: http2.ClientHttp2Session) {
    this.session = session;
  }

  get full(): boolean {
    const limit = this.connected ? (this.session.remoteSettings.maxConcurrentStreams ?? DEFAULT_STREAM_LIMIT) : DEFAULT_STREAM_LIMIT;
    return this.active >= limit;
  }

  /** Runs `fn` once connected (now, if it is); never when the session fails first. */
  whenConnected(fn: () => void): void {
    if (this.connected) fn();
    else this.#waiting?.push(fn);
  }

  markConnected(): void {
    this.connected = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting) for (const fn of waiting) fn();
  }

  markFailed(failure: SessionFailure): void {
    this.failure ??= failure;
    this.#waiting = undefined;
  }

  /** Opens a stream; throws when the session stopped taking streams in the meantime. */
  request(headers: http2.OutgoingHttpHeaders, endStream: boolean): http2.ClientHttp2Stream {
    const stream = this.session.request(headers, { endStream });
    this.active++;
    stream.once('close', () => this.active--);
    return stream;
  }
}

export class H2NodePool {
  readonly target: ConnectTarget;
  readonly idleTimeoutMs: number;
  readonly #sessions: H2Session[] = [];

  constructor(target: ConnectTarget, idleTimeoutMs: number) {
    this.target = target;
    this.idleTimeoutMs = idleTimeoutMs;
  }

  get sessionCount(): number {
    return this.#sessions.length;
  }

  /** A session with room for a stream, or a new one (connecting; its streams wait for it). */
  acquire(connectTimeoutMs: number): H2Session {
    for (const s of this.#sessions) if (s.usable && !s.full) return s;
    return this.#open(connectTimeoutMs);
  }

  #open(connectTimeoutMs: number): H2Session {
    const target = this.target;
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    const session = http2.connect(`${target.tls ? 'https' : 'http'}://${host}:${target.port}`, {
      createConnection: () => connectToNode({ ...target, alpn: ['h2'] }),
      settings: { enablePush: false },
    });
    const entry = new H2Session(session);
    this.#sessions.push(entry);
    const leave = (): void => {
      entry.usable = false;
      const i = this.#sessions.indexOf(entry);
      if (i !== -1) this.#sessions.splice(i, 1);
    };
    const timer = setTimeout(() => {
      if (entry.connected) return;
      entry.markFailed('connect-timeout');
      leave();
      session.destroy(new Error('upstream connect timed out'));
    }, connectTimeoutMs);
    session.once('connect', (_session: http2.ClientHttp2Session, socket: net.Socket | tls.TLSSocket) => {
      clearTimeout(timer);
      if (target.tls && (socket as tls.TLSSocket).alpnProtocol !== 'h2') {
        entry.markFailed('error');
        leave();
        session.destroy(new Error('the node does not speak HTTP/2 over TLS (no h2 by ALPN)'));
        return;
      }
      entry.markConnected();
    });
    session.on('error', () => {
      // The streams of the session report the error to their requests.
      if (!entry.connected) entry.markFailed('error');
      leave();
    });
    session.once('goaway', leave);
    session.once('close', () => {
      clearTimeout(timer);
      leave();
    });
    // Idle for the pool's idle_timeout with no stream: closed (the timer restarts with any traffic).
    session.setTimeout(this.idleTimeoutMs, () => {
      if (entry.active === 0) {
        leave();
        session.close();
      }
    });
    return entry;
  }

  /** Closes every session (open streams finish first). */
  close(): void {
    for (const s of this.#sessions.splice(0)) {
      s.usable = false;
      s.session.close();
    }
  }
}

const pools = new Map<string, H2NodePool>();

/** The shared HTTP/2 pool for a node with these settings (per worker). */
export function h2PoolFor(target: ConnectTarget, idleTimeoutMs: number): H2NodePool {
  const key = `${connectTargetKey(target)}|${idleTimeoutMs}`;
  let pool = pools.get(key);
  if (!pool) {
    pool = new H2NodePool(target, idleTimeoutMs);
    pools.set(key, pool);
  }
  return pool;
}

/** Closes every HTTP/2 upstream session (graceful shutdown). */
export function closeAllSessions(): void {
  for (const pool of pools.values()) pool.close();
}
