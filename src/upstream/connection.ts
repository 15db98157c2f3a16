// One keep-alive connection to an upstream node. Socket listeners are bound once per connection
// and forward to whichever exchange currently owns it, so a request allocates no closures here.
import net from 'node:net';
import tls from 'node:tls';
import { ParseError, ResponseParser, type ResponseSink } from './response-parser.ts';

/** What a request driving a connection must handle besides the response itself. */
export interface ConnectionOwner extends ResponseSink {
  /** The socket failed or closed before the response ended. `gotResponse` is true when any response byte arrived. */
  onConnectionError(err: Error, gotResponse: boolean): void;
  /** The inactivity timer of the current phase (connect, send or read) fired. */
  onConnectionTimeout(): void;
  /** The socket's write buffer drained. */
  onConnectionDrain(): void;
  /** A new connection finished connecting (and its TLS handshake). */
  onConnected(): void;
}

export interface ConnectTarget {
  host: string;
  port: number;
  tls: boolean;
  servername?: string;
  /** The client certificate and key presented to the node (upstream `tls.client_cert`/`client_key`). */
  clientCert?: { cert: string; key: string };
  /** Verify the node's certificate (upstream `tls.verify`) against `ca` (the system store when undefined). */
  verify?: boolean;
  ca?: string;
  /** ALPN protocols offered over TLS; HTTP/1.1 when undefined (HTTP/2 sessions offer h2). */
  alpn?: string[];
}

/**
 * Opens a socket to a node: TLS with its server name, client certificate and verification settings
 * for `https` and `grpcs`, plain TCP otherwise. Ready on `secureConnect` / `connect` respectively.
 */
export function connectToNode(target: ConnectTarget): net.Socket {
  return target.tls
    ? tls.connect({
        host: target.host,
        port: target.port,
        servername: target.servername ?? (net.isIP(target.host) ? undefined : target.host),
        rejectUnauthorized: target.verify === true,
        ca: target.ca,
        cert: target.clientCert?.cert,
        key: target.clientCert?.key,
        ALPNProtocols: target.alpn ?? ['http/1.1'],
      })
    : net.connect({ host: target.host, port: target.port, noDelay: true });
}

export class UpstreamConnection {
  readonly socket: net.Socket;
  readonly parser = new ResponseParser();
  readonly pool: { release(conn: UpstreamConnection): void; forget(conn: UpstreamConnection): void };
  owner: ConnectionOwner | undefined;
  /** Requests completed on this connection (for keepalive_pool.requests). */
  served = 0;
  connected = false;
  gotBytes = false;
  closed = false;
  /** Still counted as open by its pool. */
  counted = true;
  /** When it last went back to the pool (performance.now()). */
  idleSince = 0;
  /** Taken from the pool's idle list rather than newly opened. */
  reused = false;
  /** The socket inactivity timeout currently set, to skip redundant setTimeout calls. */
  timeoutMs = 0;

  constructor(target: ConnectTarget, pool: UpstreamConnection['pool']) {
    this.pool = pool;
    this.socket = connectToNode(target);
    this.socket.on(target.tls ? 'secureConnect' : 'connect', this.#onConnect);
    this.socket.on('data', this.#onData);
    this.socket.on('drain', this.#onDrain);
    this.socket.on('timeout', this.#onTimeout);
    this.socket.on('error', this.#onError);
    this.socket.on('close', this.#onClose);
  }

  /** Starts a request on this connection. */
  attach(owner: ConnectionOwner, headOnly: boolean): void {
    this.owner = owner;
    this.gotBytes = false;
    this.parser.reset(owner, headOnly);
  }

  /** Ends ownership; the connection goes back to the pool when it can carry another request. */
  /** Sets the socket's inactivity timeout unless it already is that (a timer re-arm costs on every request). */
  setTimeout(ms: number): void {
    if (ms === this.timeoutMs) return;
    this.timeoutMs = ms;
    this.socket.setTimeout(ms);
  }

  /**
   * Ends ownership; the connection goes back to the pool when it can carry another request. Its
   * inactivity timeout stays armed while idle: a 'timeout' without an owner is ignored, and the pool
   * expires idle connections itself.
   */
  detach(reusable: boolean): void {
    this.owner = undefined;
    if (reusable && !this.closed && this.parser.done && this.parser.keepAlive) {
      this.served++;
      this.pool.release(this);
    } else {
      this.destroy();
    }
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool.forget(this);
    this.socket.destroy();
  }

  #onConnect = (): void => {
    this.connected = true;
    this.owner?.onConnected();
  };

  #onData = (data: Buffer): void => {
    const owner = this.owner;
    if (!owner) {
      // Bytes on an idle connection: the upstream broke the protocol; never reuse it.
      this.destroy();
      return;
    }
    this.gotBytes = true;
    try {
      this.parser.execute(data);
    } catch (err) {
      if (this.owner === owner) {
        this.owner = undefined;
        this.destroy();
        owner.onConnectionError(err instanceof ParseError ? err : new ParseError(String(err)), true);
      } else {
        throw err;
      }
    }
  };

  #onDrain = (): void => {
    this.owner?.onConnectionDrain();
  };

  #onTimeout = (): void => {
    this.owner?.onConnectionTimeout();
  };

  #onError = (err: Error): void => {
    const owner = this.owner;
    this.owner = undefined;
    this.destroy();
    owner?.onConnectionError(err, this.gotBytes);
  };

  #onClose = (): void => {
    const owner = this.owner;
    this.closed = true;
    this.pool.forget(this);
    if (!owner) return;
    // A body delimited by the connection close ends here; otherwise the response was cut short.
    if (this.parser.readsUntilClose) {
      this.parser.finish();
      return;
    }
    if (this.parser.done) return;
    this.owner = undefined;
    owner.onConnectionError(new Error('upstream closed the connection prematurely'), this.gotBytes);
  };
}
