// HTTP listeners of a worker. Every worker binds the same ports with SO_REUSEPORT, so the kernel
// spreads connections and no accept loop or IPC hop sits in front of the workers.
//
// With apisix.enable_http2 (the default, as in APISIX 3.9+), a TLS listener offers h2 and http/1.1
// by ALPN on one port, and a plain listener serves HTTP/1.1 and prior-knowledge h2c on one port
// (the client's first bytes tell them apart, as nginx's `http2 on` does). Both protocols reach the
// same handler through Node's compatibility API.
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net, { type Socket } from 'node:net';
import type tls from 'node:tls';
import { STATUS_CODES } from 'node:http';
import type { ConnectionMetrics } from '../observability/connection-metrics.ts';
import type { ServedSsl } from '../snapshot/ssl.ts';
import type { ListenerInfo } from './context.ts';
import type { RequestHandler } from './handler.ts';
import { H2Response, isHttp2Request, prepareHttp2Request, routeByPreface } from './http2.ts';
import { htmlErrorPage, sendStatus } from './responses.ts';
import { chainDepth, DEFAULT_TLS, TlsFront, type TlsSettings } from './tls-front.ts';

export type { TlsSettings } from './tls-front.ts';

export interface ListenAddress {
  ip: string;
  port: number;
}

export interface ServerLimits {
  /** Idle keep-alive connections close after this (nginx keepalive_timeout). */
  keepAliveTimeoutMs: number;
  /** A client must send its request head within this (nginx client_header_timeout). */
  headerTimeoutMs: number;
  /** Request line + headers larger than this are refused. */
  maxHeaderBytes: number;
  /** HTTP/2 on the listeners (apisix.enable_http2): ALPN h2 on TLS, prior-knowledge h2c on plain ports. */
  http2: boolean;
}

/** nginx's http2_max_concurrent_streams. */
const MAX_CONCURRENT_STREAMS = 128;

/** A bound port and the servers behind it. */
interface Listener {
  /** The server bound to the port. */
  server: net.Server;
  /** HTTP/1 and h2c servers fed by a plain listener that tells them apart (they never listen themselves). */
  http1?: http.Server;
  h2?: http2.Http2Server;
}

type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;

export class ProxyServer {
  readonly #handler: RequestHandler;
  readonly #listeners: Listener[] = [];
  readonly #limits: ServerLimits;
  /** Client connections (TLS ones once their handshake is done), for the drain. */
  readonly #sockets = new Set<Socket>();
  /** TLS connections still in their handshake (and the TCP sockets under TLS ones): closed only at the end of a drain. */
  readonly #rawTls = new Set<Socket>();
  /** Connections speaking HTTP/2: their sessions drain by GOAWAY, not by the idle check. */
  readonly #h2Sockets = new WeakSet<Socket>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  #draining = false;

  readonly #metrics: ConnectionMetrics | undefined;

  /** `metrics`: connection and request counts for the prometheus exporter; undefined when it is off. */
  constructor(handler: RequestHandler, limits: ServerLimits, metrics?: ConnectionMetrics) {
    this.#handler = handler;
    this.#limits = limits;
    this.#metrics = metrics;
  }

  /**
   * Opens the plain listeners, and the TLS ones: a TLS listener reads each ClientHello and passes the
   * connection to the TLS server of the SSL the server name picks (see tls-front.ts).
   */
  async listen(addresses: readonly ListenAddress[], reusePort: boolean, tlsAddresses: readonly ListenAddress[] = [], tlsSettings?: TlsSettings): Promise<void> {
    const all = [...addresses.map((a) => [a, false] as const), ...tlsAddresses.map((a) => [a, true] as const)];
    for (const [addr, secure] of all) {
      const info: ListenerInfo = { scheme: secure ? 'https' : 'http', port: addr.port };
      const listener = secure ? this.#createTlsListener(info, tlsSettings ?? DEFAULT_TLS) : this.#createPlainListener(info);
      const server = listener.server;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: addr.ip, port: addr.port, reusePort, ipv6Only: addr.ip === '::' }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.#listeners.push(listener);
    }
  }

  /** HTTP/1 server options (nginx's client limits). */
  #http1Options(): http.ServerOptions {
    return {
      keepAliveTimeout: this.#limits.keepAliveTimeoutMs,
      headersTimeout: this.#limits.headerTimeoutMs,
      requestTimeout: 0, // bodies stream: a long upload is not an error
      connectionsCheckingInterval: Math.min(1000, this.#limits.headerTimeoutMs),
      maxHeaderSize: this.#limits.maxHeaderBytes,
      noDelay: true,
    };
  }

  /** HTTP/2 session options: nginx's stream limit, and room for more header lines than Node's default 128. */
  #http2Options(): http2.ServerOptions {
    return {
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
      maxHeaderListPairs: 1024,
      Http2ServerResponse: H2Response as typeof http2.Http2ServerResponse,
    };
  }

  #onRequest(listener: ListenerInfo): (req: AnyRequest, res: AnyResponse) => void {
    const handler = this.#handler;
    return (req, res) => {
      if (isHttp2Request(req)) {
        prepareHttp2Request(req);
      } else if (this.#draining) {
        // Draining: answer, then close, so keep-alive clients move to another worker cleanly.
        (res as http.ServerResponse).shouldKeepAlive = false;
      }
      this.#metrics?.request(res);
      try {
        // The compatibility API gives HTTP/2 requests the reading and writing methods the request path uses.
        handler.handle(req as http.IncomingMessage, res as http.ServerResponse, listener);
      } catch (err) {
        // A bug must cost one request, not the worker: answer 500 and log it.
        handler.options.log('error', `request ${req.method} ${req.url} failed: ${(err as Error).stack ?? err}`);
        sendStatus(res as http.ServerResponse, 500, undefined, undefined, handler.options.serverHeader);
      }
    };
  }

  /** WebSocket and other upgrades (HTTP/1.1 only) and malformed HTTP/1 requests. */
  #onHttp1Events(server: net.Server, listener: ListenerInfo): void {
    const handler = this.#handler;
    server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      try {
        handler.handleUpgrade(req, socket, head, listener);
      } catch (err) {
        handler.options.log('error', `upgrade ${req.method} ${req.url} failed: ${(err as Error).stack ?? err}`);
        socket.destroy();
      }
    });
    server.on('clientError', onClientError);
  }

  #track(socket: Socket, set = this.#sockets): void {
    set.add(socket);
    socket.once('close', () => set.delete(socket));
  }

  /** An HTTP/2 connection: GOAWAY on drain, closed after keepalive_timeout without streams. */
  #onSession(session: http2.ServerHttp2Session): void {
    this.#sessions.add(session);
    session.once('close', () => this.#sessions.delete(session));
    let open = 0;
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      open++;
      stream.once('close', () => open--);
    });
    // nginx's keepalive_timeout for HTTP/2: a connection with no stream for that long is closed.
    session.setTimeout(this.#limits.keepAliveTimeoutMs, () => {
      if (open === 0) session.close();
    });
    if (this.#draining) session.close();
  }

  #createPlainListener(listener: ListenerInfo): Listener {
    const onRequest = this.#onRequest(listener);
    const http1 = http.createServer(this.#http1Options(), onRequest);
    this.#onHttp1Events(http1, listener);
    if (!this.#limits.http2) {
      http1.on('connection', (socket: Socket) => {
        this.#track(socket);
        this.#metrics?.accepted(socket);
      });
      return { server: http1 };
    }
    const h2 = http2.createServer(this.#http2Options(), onRequest);
    h2.on('session', (session: http2.ServerHttp2Session) => this.#onSession(session));
    // The HTTP/1 server never listens: start its connection bookkeeping (header and keep-alive timeouts) by hand.
    http1.emit('listening');
    const front = net.createServer({ noDelay: true }, (socket) => {
      this.#track(socket);
      this.#metrics?.accepted(socket);
      routeByPreface(socket, this.#limits.headerTimeoutMs, (s) => http1.emit('connection', s), (s) => {
        this.#h2Sockets.add(s);
        h2.emit('connection', s);
      });
    });
    return { server: front, http1, h2 };
  }

  /** A TLS port: plain TCP until the ClientHello was read, then the chosen SSL's TLS server. */
  #createTlsListener(listener: ListenerInfo, settings: TlsSettings): Listener {
    const front = new TlsFront(
      settings,
      (options, ssl) => this.#createTlsServer({ ...listener, ssl }, options),
      () => this.#handler.snapshot.ssl,
      this.#limits.headerTimeoutMs,
      (level, message) => this.#handler.options.log(level, message),
    );
    const server = net.createServer({ noDelay: true }, (socket) => {
      this.#track(socket, this.#rawTls);
      this.#metrics?.accepted(socket);
      front.accept(socket);
    });
    return { server };
  }

  /** The TLS server of one SSL certificate (made by the front, never listening itself). */
  #createTlsServer(listener: ListenerInfo, tlsOptions: tls.TlsOptions): tls.Server {
    const handler = this.#handler;
    const onRequest = this.#onRequest(listener);
    let server: tls.Server;
    if (this.#limits.http2) {
      // ALPN: h2 or http/1.1, whichever the client prefers, on the same port.
      const h2 = http2.createSecureServer({ ...this.#http1Options(), ...this.#http2Options(), ...tlsOptions, allowHTTP1: true }, onRequest);
      h2.on('session', (session: http2.ServerHttp2Session) => this.#onSession(session));
      // http2's own handler turns handshake failures into clientError (an HTTP/1 answer): ours below ends them.
      h2.removeAllListeners('tlsClientError');
      server = h2;
    } else {
      server = https.createServer({ ...this.#http1Options(), ...tlsOptions, ALPNProtocols: ['http/1.1'] }, onRequest);
    }
    this.#onHttp1Events(server, listener);
    // A handshake that failed (a protocol refused, a client certificate missing) ends that connection only.
    server.on('tlsClientError', (err: Error, socket: Socket) => {
      handler.options.log('info', `TLS handshake failed for ${socket.remoteAddress}: ${err.message}`);
      socket.destroy();
    });
    if (listener.ssl?.client) enforceDepth(server, listener.ssl);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      // From here on the TLS socket is the connection the drain watches (HTTP/1 marks it busy).
      this.#track(socket);
      if (socket.alpnProtocol === 'h2') this.#h2Sockets.add(socket);
    });
    return server;
  }

  /** Bound ports (for listeners opened on port 0). */
  get ports(): number[] {
    return this.#listeners.map((l) => (l.server.address() as { port: number }).port);
  }

  /**
   * Stops accepting and drains: in-flight requests finish (up to `graceMs`), every further response on
   * a kept-alive HTTP/1 connection says `Connection: close`, HTTP/2 connections get GOAWAY (their open
   * streams finish), and HTTP/1 connections left idle are closed once they have been quiet for a
   * moment, so a client is never cut while sending its next request.
   */
  async close(graceMs: number): Promise<void> {
    this.#draining = true;
    // net.Server's close, not http.Server's: the latter also drops idle keep-alive connections at once.
    for (const l of this.#listeners) net.Server.prototype.close.call(l.server);
    for (const session of this.#sessions) session.close();
    // A connection is quiet when its byte counters stopped moving; the bookkeeping lives here, in the
    // drain, so serving a request costs nothing extra.
    const seen = new Map<Socket, { bytes: number; since: number }>();
    const deadline = performance.now() + graceMs;
    while (this.#sockets.size > 0 && performance.now() < deadline) {
      const now = performance.now();
      for (const socket of this.#sockets) {
        if (this.#h2Sockets.has(socket)) continue;
        const bytes = socket.bytesRead + socket.bytesWritten;
        const last = seen.get(socket);
        if (!last || last.bytes !== bytes) {
          seen.set(socket, { bytes, since: now });
          continue;
        }
        const busy = (socket as Socket & { _httpMessage?: unknown })._httpMessage;
        if (!busy && now - last.since > IDLE_BEFORE_CLOSE_MS) socket.end();
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const socket of this.#sockets) socket.destroy();
    for (const socket of this.#rawTls) socket.destroy();
    for (const session of this.#sessions) session.destroy();
    for (const l of this.#listeners) {
      const http1 = l.http1 ?? (l.server instanceof http.Server ? l.server : undefined);
      http1?.closeAllConnections();
      // The HTTP/1 server behind a plain HTTP/2 listener stops its connection checks here.
      l.http1?.close();
    }
  }
}

/**
 * `client.depth`: a verified chain longer than allowed counts as unverified; without
 * skip_mtls_uri_regex that ends the connection, as a failed handshake would.
 */
function enforceDepth(server: tls.Server, ssl: ServedSsl): void {
  const client = ssl.client!;
  server.prependListener('secureConnection', (socket: tls.TLSSocket) => {
    if (!socket.authorized || chainDepth(socket, client.caCertificates) <= client.depth) return;
    socket.authorized = false;
    // Node reports verification failures as OpenSSL's code names, in a field typed as an Error.
    (socket as { authorizationError: unknown }).authorizationError = 'CERT_CHAIN_TOO_LONG';
    if (!client.skip) socket.destroy();
  });
}

/** An idle kept-alive connection closes during a drain once quiet this long. */
const IDLE_BEFORE_CLOSE_MS = 300;

/** Malformed requests get nginx's answer (400, 414 for an oversized request line, 408 on header timeout) and the connection closes. */
function onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number }, socket: Socket): void {
  if (!socket.writable || (err.code === 'ECONNRESET')) {
    socket.destroy();
    return;
  }
  let status = 400;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') status = 408;
  else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = overflowIsRequestLine(err.rawPacket, err.bytesParsed) ? 414 : 400;
  }
  const body = htmlErrorPage(status);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * nginx answers 414 when the request line overflows, 400 when a header does. The parser hands over
 * the chunk in which the limit was crossed and the offset where it stopped: the line around that
 * offset is the one that overflowed.
 */
function overflowIsRequestLine(chunk: Buffer | undefined, stoppedAt: number | undefined): boolean {
  if (!chunk) return false;
  const at = Math.min(stoppedAt ?? chunk.length, chunk.length);
  const lineStart = chunk.lastIndexOf('\r\n', Math.max(0, at - 1));
  // A line break before the overflow point: the overflowing line is a header line.
  if (lineStart !== -1) return false;
  if (/^[A-Z]+ \S/.test(chunk.toString('latin1', 0, 24))) return true;
  // The line began in an earlier chunk: it is the request line if it ends like one.
  const lineEnd = chunk.indexOf('\r\n');
  return lineEnd !== -1 && / HTTP\/\d\.\d$/.test(chunk.toString('latin1', Math.max(0, lineEnd - 9), lineEnd));
}
