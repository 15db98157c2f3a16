// HTTP listeners of a worker. Every worker binds the same ports with SO_REUSEPORT, so the kernel
// spreads connections and no accept loop or IPC hop sits in front of the workers.
import http from 'node:http';
import https from 'node:https';
import net, { type Socket } from 'node:net';
import type tls from 'node:tls';
import { STATUS_CODES } from 'node:http';
import type { ServedSsl } from '../snapshot/ssl.ts';
import type { ListenerInfo } from './context.ts';
import type { RequestHandler } from './handler.ts';
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
}

export class ProxyServer {
  readonly #handler: RequestHandler;
  /** The listening servers: HTTP ones for plain ports, TCP fronts for TLS ports. */
  readonly #servers: net.Server[] = [];
  /** The plain HTTP listeners. */
  readonly #httpServers = new Set<http.Server>();
  readonly #limits: ServerLimits;
  readonly #sockets = new Set<Socket>();
  #draining = false;

  constructor(handler: RequestHandler, limits: ServerLimits) {
    this.#handler = handler;
    this.#limits = limits;
  }

  /**
   * Opens the plain listeners, and the TLS ones: a TLS listener reads each ClientHello and passes the
   * connection to the TLS server of the SSL the server name picks (see tls-front.ts).
   */
  async listen(addresses: readonly ListenAddress[], reusePort: boolean, tlsAddresses: readonly ListenAddress[] = [], tlsSettings: TlsSettings = DEFAULT_TLS): Promise<void> {
    const all = [...addresses.map((a) => [a, false] as const), ...tlsAddresses.map((a) => [a, true] as const)];
    for (const [addr, secure] of all) {
      const server = secure ? this.#createTlsListener(addr.port, tlsSettings) : this.#createServer({ scheme: 'http', port: addr.port });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: addr.ip, port: addr.port, reusePort, ipv6Only: addr.ip === '::' }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.#servers.push(server);
    }
  }

  /** A TLS port: plain TCP until the ClientHello was read, then the chosen SSL's TLS server. */
  #createTlsListener(port: number, settings: TlsSettings): net.Server {
    const front = new TlsFront(
      settings,
      (options, ssl) => this.#createServer({ scheme: 'https', port, ssl }, options) as unknown as tls.Server,
      () => this.#handler.snapshot.ssl,
      this.#limits.headerTimeoutMs,
      (level, message) => this.#handler.options.log(level, message),
    );
    const listener = net.createServer({ noDelay: true }, (socket) => front.accept(socket));
    this.#track(listener);
    return listener;
  }

  /** Sockets are tracked for the drain: plain ones as accepted, TLS ones once their handshake is done. */
  #track(server: net.Server | tls.Server, event: 'connection' | 'secureConnection' = 'connection'): void {
    server.on(event, (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  #createServer(listener: ListenerInfo, tlsOptions?: tls.TlsOptions): http.Server {
    const handler = this.#handler;
    const options: http.ServerOptions = {
      keepAliveTimeout: this.#limits.keepAliveTimeoutMs,
      headersTimeout: this.#limits.headerTimeoutMs,
      requestTimeout: 0, // bodies stream: a long upload is not an error
      connectionsCheckingInterval: Math.min(1000, this.#limits.headerTimeoutMs),
      maxHeaderSize: this.#limits.maxHeaderBytes,
      noDelay: true,
    };
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      // Draining: answer, then close, so keep-alive clients move to another worker cleanly.
      if (this.#draining) res.shouldKeepAlive = false;
      try {
        handler.handle(req, res, listener);
      } catch (err) {
        // A bug must cost one request, not the worker: answer 500 and log it.
        handler.options.log('error', `request ${req.method} ${req.url} failed: ${(err as Error).stack ?? err}`);
        sendStatus(res, 500, undefined, undefined, handler.options.serverHeader);
      }
    };
    const server = tlsOptions ? https.createServer({ ...options, ...tlsOptions }, onRequest) : http.createServer(options, onRequest);
    server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      try {
        handler.handleUpgrade(req, socket, head, listener);
      } catch (err) {
        handler.options.log('error', `upgrade ${req.method} ${req.url} failed: ${(err as Error).stack ?? err}`);
        socket.destroy();
      }
    });
    server.on('clientError', onClientError);
    // A handshake that failed (no certificate for the name, a protocol refused) ends that connection only.
    server.on('tlsClientError', (err: Error, socket: Socket) => {
      handler.options.log('info', `TLS handshake failed for ${socket.remoteAddress}: ${err.message}`);
      socket.destroy();
    });
    if (listener.ssl?.client) enforceDepth(server as unknown as tls.Server, listener.ssl);
    this.#track(server, tlsOptions ? 'secureConnection' : 'connection');
    // TLS servers are per SSL and never listen: only plain ones are kept (TLS sockets are tracked).
    if (!tlsOptions) this.#httpServers.add(server);
    return server;
  }

  /** Bound ports (for listeners opened on port 0). */
  get ports(): number[] {
    return this.#servers.map((s) => (s.address() as { port: number }).port);
  }

  /**
   * Stops accepting and drains: in-flight requests finish (up to `graceMs`), every further response on
   * a kept-alive connection says `Connection: close`, and connections left idle are closed once they
   * have been quiet for a moment, so a client is never cut while sending its next request.
   */
  async close(graceMs: number): Promise<void> {
    this.#draining = true;
    // net.Server's close, not http.Server's: the latter also drops idle keep-alive connections at once.
    for (const s of this.#servers) net.Server.prototype.close.call(s);
    // A connection is quiet when its byte counters stopped moving; the bookkeeping lives here, in the
    // drain, so serving a request costs nothing extra.
    const seen = new Map<Socket, { bytes: number; since: number }>();
    const deadline = performance.now() + graceMs;
    while (this.#sockets.size > 0 && performance.now() < deadline) {
      const now = performance.now();
      for (const socket of this.#sockets) {
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
    for (const s of this.#httpServers) s.closeAllConnections();
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
