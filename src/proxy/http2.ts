// HTTP/2 on the client side: the pieces the listeners need besides Node's http2 servers. Requests
// arrive through the compatibility API (Http2ServerRequest / Http2ServerResponse), so the handler,
// the plugins and the upstream exchange serve both protocols with the same code; what differs is
// settled here, once per request or connection:
// - `:authority` stands in for Host, and a body sent without Content-Length is marked as chunked,
//   so the rest of the path reads the request as it reads an HTTP/1.1 one;
// - responses never carry HTTP/1 connection headers (Node refuses them on HTTP/2) nor a status text;
// - a plain listener tells prior-knowledge h2c from HTTP/1.1 by the client's first bytes.
import http2 from 'node:http2';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** The client connection preface of HTTP/2 (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Response headers that describe an HTTP/1 connection; HTTP/2 forbids them (RFC 9113 §8.2.2). */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

function forbidden(name: string, value: unknown): boolean {
  // Name lengths: te 2, upgrade 7, connection/keep-alive 10, http2-settings 14, proxy-connection 16, transfer-encoding 17
  const n = name.length;
  if (n !== 2 && n !== 7 && n !== 10 && n !== 14 && n !== 16 && n !== 17) return false;
  const lower = name.toLowerCase();
  if (lower === 'te') return String(value).trim().toLowerCase() !== 'trailers';
  return CONNECTION_HEADERS.has(lower);
}

/**
 * The HTTP/2 response of the compatibility API, minus what HTTP/2 cannot say: connection headers
 * set by the gateway or a plugin (`Connection: close` on a 413, say) are left out instead of
 * throwing, and a status text is dropped instead of warning.
 */
export class H2Response extends http2.Http2ServerResponse {
  /**
   * Bytes of this stream's answer: the header block as plain text plus the body. The connection's
   * counter is shared by every stream, so `$bytes_sent` of an HTTP/2 request reads this instead.
   */
  sentBytes = 0;
  /** Body bytes alone (`$body_bytes_sent`). */
  bodyBytes = 0;

  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    this.#count(chunk);
    return super.write(chunk as string, encoding as BufferEncoding, callback as () => void);
  }

  override end(chunk?: unknown, encoding?: unknown, callback?: unknown): this {
    if (typeof chunk !== 'function') this.#count(chunk);
    return super.end(chunk as string, encoding as BufferEncoding, callback as () => void);
  }

  #count(chunk: unknown): void {
    if (this.sentBytes === 0) this.sentBytes = headerBlockBytes(this.getHeaders());
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.length : 0;
    this.sentBytes += n;
    this.bodyBytes += n;
  }

  override setHeader(name: string, value: number | string | readonly string[]): void {
    if (!forbidden(name, value)) super.setHeader(name, value);
  }

  override appendHeader(name: string, value: string | string[]): void {
    if (!forbidden(name, value)) super.appendHeader(name, value);
  }

  override writeHead(statusCode: number, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(statusCode: number, statusMessage: string, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(statusCode: number, statusMessageOrHeaders?: string | OutgoingHttpHeaders | readonly string[], maybeHeaders?: OutgoingHttpHeaders | readonly string[]): this {
    const headers = typeof statusMessageOrHeaders === 'string' ? maybeHeaders : statusMessageOrHeaders;
    if (headers === undefined) return super.writeHead(statusCode);
    return super.writeHead(statusCode, withoutConnectionHeaders(headers));
  }
}

/** The response head's size as text (`:status` and `name: value` lines), before HPACK. */
function headerBlockBytes(headers: OutgoingHttpHeaders): number {
  let n = 12; // ":status: 200"
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) n += name.length + String(v).length + 4;
  }
  return n;
}

function withoutConnectionHeaders(headers: OutgoingHttpHeaders | readonly string[]): OutgoingHttpHeaders | readonly string[] {
  if (isList(headers)) {
    let out: string[] | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      if (forbidden(headers[i], headers[i + 1])) {
        out ??= headers.slice(0, i);
      } else if (out) {
        out.push(headers[i], headers[i + 1]);
      }
    }
    return out ?? headers;
  }
  let out: OutgoingHttpHeaders | undefined;
  for (const name in headers) {
    if (forbidden(name, headers[name])) {
      out ??= { ...headers };
      delete out[name];
    }
  }
  return out ?? headers;
}

function isList(headers: OutgoingHttpHeaders | readonly string[]): headers is readonly string[] {
  return Array.isArray(headers);
}

/** True for a request that arrived over HTTP/2. */
export function isHttp2Request(req: IncomingMessage | http2.Http2ServerRequest): req is http2.Http2ServerRequest {
  return req.httpVersionMajor === 2;
}

const PSEUDO_HEADERS = [':method', ':path', ':scheme', ':authority', ':protocol'];

/**
 * Gives an HTTP/2 request the shape the request path reads: Host from `:authority` (a client may
 * send either), and `Transfer-Encoding: chunked` for a body without Content-Length, which is how
 * HTTP/1.1 says "a body of unknown length" (the upstream request is framed the same way). The
 * pseudo-headers stay readable by name but leave the listings (plugins that copy or validate the
 * headers see what nginx shows them: no pseudo-headers).
 */
export function prepareHttp2Request(req: http2.Http2ServerRequest): void {
  const headers = req.headers;
  for (const name of PSEUDO_HEADERS) {
    if (name in headers) Object.defineProperty(headers, name, { enumerable: false });
  }
  if (headers.host === undefined) {
    const authority = headers[':authority'];
    if (authority !== undefined) headers.host = authority;
  }
  if (headers['content-length'] === undefined && !req.stream.endAfterHeaders) headers['transfer-encoding'] = 'chunked';
}

/** Ends an HTTP/2 response with a stream reset (a cut connection is HTTP/1's way to say the same). */
export function resetResponse(res: ServerResponse | http2.Http2ServerResponse): void {
  if (res instanceof http2.Http2ServerResponse) {
    const stream = res.stream;
    if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  res.destroy();
}

/**
 * Waits for the first bytes of a connection on a plain listener and hands it over: to `h2` when
 * they are the HTTP/2 preface (prior knowledge, as gRPC clients and `curl --http2-prior-knowledge`
 * speak), to `http1` otherwise. The bytes read go back in front of the socket's stream, so the
 * chosen server parses them first. A client that sends nothing within `timeoutMs` is closed.
 */
export function routeByPreface(socket: Socket, timeoutMs: number, http1: (socket: Socket) => void, h2: (socket: Socket) => void): void {
  let seen: Buffer | undefined;
  const onTimeout = (): void => {
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    const bytes = seen ? Buffer.concat([seen, chunk]) : chunk;
    const n = Math.min(bytes.length, PREFACE.length);
    const isH2 = bytes.compare(PREFACE, 0, n, 0, n) === 0;
    if (isH2 && bytes.length < PREFACE.length) {
      seen = bytes;
      return;
    }
    socket.off('data', onData);
    socket.off('timeout', onTimeout);
    socket.off('error', onError);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(bytes);
    if (isH2) {
      h2(socket);
    } else {
      http1(socket);
      // Node's HTTP/1 server reads the socket's handle directly; the bytes put back reach it
      // through the stream, before anything the handle reads next.
      socket.resume();
    }
  };
  const onError = (): void => {
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('error', onError);
  if (timeoutMs > 0) {
    socket.setTimeout(timeoutMs);
    socket.on('timeout', onTimeout);
  }
}
