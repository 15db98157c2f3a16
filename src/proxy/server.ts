// HTTP listeners of a worker. Every worker binds the same ports with SO_REUSEPORT, so the kernel
// spreads connections and no accept loop or IPC hop sits in front of the workers.
import http from 'node:http';
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { ListenerInfo } from './context.ts';
import type { RequestHandler } from './handler.ts';
import { htmlErrorPage, sendStatus } from './responses.ts';

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
  readonly #servers: http.Server[] = [];
  readonly #limits: ServerLimits;

  constructor(handler: RequestHandler, limits: ServerLimits) {
    this.#handler = handler;
    this.#limits = limits;
  }

  async listen(addresses: readonly ListenAddress[], reusePort: boolean): Promise<void> {
    for (const addr of addresses) {
      const server = this.#createServer({ scheme: 'http', port: addr.port });
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

  #createServer(listener: ListenerInfo): http.Server {
    const handler = this.#handler;
    const server = http.createServer({
      keepAliveTimeout: this.#limits.keepAliveTimeoutMs,
      headersTimeout: this.#limits.headerTimeoutMs,
      requestTimeout: 0, // bodies stream: a long upload is not an error
      connectionsCheckingInterval: Math.min(1000, this.#limits.headerTimeoutMs),
      maxHeaderSize: this.#limits.maxHeaderBytes,
      noDelay: true,
    }, (req, res) => {
      try {
        handler.handle(req, res, listener);
      } catch (err) {
        // A bug must cost one request, not the worker: answer 500 and log it.
        handler.options.log('error', `request ${req.method} ${req.url} failed: ${(err as Error).stack ?? err}`);
        sendStatus(res, 500, undefined, undefined, handler.options.serverHeader);
      }
    });
    server.on('clientError', onClientError);
    return server;
  }

  /** Bound ports (for listeners opened on port 0). */
  get ports(): number[] {
    return this.#servers.map((s) => (s.address() as { port: number }).port);
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to `graceMs`, then cuts what is left.
   * Idle keep-alive connections close at once.
   */
  async close(graceMs: number): Promise<void> {
    const closing = this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    const sweep = setInterval(() => { for (const s of this.#servers) s.closeIdleConnections(); }, 50);
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all(closing), deadline]);
    clearInterval(sweep);
    for (const s of this.#servers) s.closeAllConnections();
  }
}

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
