// Incremental HTTP/1.1 response parser for upstream connections: status line, headers, then the
// body framed by Content-Length, chunked encoding or connection close. It hands body bytes to a
// sink as they arrive (no buffering of bodies) so large responses stream in constant memory.

export interface ResponseSink {
  /** Status line and headers are complete. `rawHeaders` is a flat [name, value, ...] list. */
  onResponseHead(status: number, statusText: string, rawHeaders: string[], keepAlive: boolean): void;
  /** A slice of the decoded body; returns false to ask the caller to pause reading. */
  onResponseBody(chunk: Buffer): boolean;
  /** Trailers of a chunked body, if any, then the end of the message. */
  onResponseEnd(trailers: string[] | undefined): void;
}

const MAX_HEAD_BYTES = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

const enum_ = {
  head: 0,
  fixed: 1,
  chunkSize: 2,
  chunkData: 3,
  chunkDataEnd: 4,
  trailers: 5,
  untilClose: 6,
  done: 7,
} as const;
type State = (typeof enum_)[keyof typeof enum_];

export class ParseError extends Error {}

export class ResponseParser {
  sink: ResponseSink | undefined;
  #state: State = enum_.head;
  #pending: Buffer | undefined; // unconsumed bytes of the head or a chunk-size/trailer line
  #remaining = 0; // bytes left in a fixed body or the current chunk
  #noBody = false;
  #keepAlive = true;
  #trailers: string[] | undefined;

  /** Prepares for the next response; `noBody` for HEAD requests. */
  reset(sink: ResponseSink, noBody: boolean): void {
    this.sink = sink;
    this.#state = enum_.head;
    this.#pending = undefined;
    this.#remaining = 0;
    this.#noBody = noBody;
    this.#keepAlive = true;
    this.#trailers = undefined;
  }

  get done(): boolean {
    return this.#state === enum_.done;
  }

  /** True while the body runs until the connection closes. */
  get readsUntilClose(): boolean {
    return this.#state === enum_.untilClose;
  }

  get keepAlive(): boolean {
    return this.#keepAlive;
  }

  /** Feeds bytes from the socket. Returns leftover bytes after the message ended (a protocol error upstream). Throws ParseError on malformed input. */
  execute(data: Buffer): void {
    let offset = 0;
    while (offset < data.length) {
      switch (this.#state) {
        case enum_.head:
          offset = this.#parseHead(data, offset);
          break;
        case enum_.fixed: {
          const n = Math.min(this.#remaining, data.length - offset);
          const chunk = offset === 0 && n === data.length ? data : data.subarray(offset, offset + n);
          offset += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = enum_.done;
          this.sink!.onResponseBody(chunk);
          if (this.#state === enum_.done) this.sink!.onResponseEnd(undefined);
          break;
        }
        case enum_.chunkSize:
        case enum_.trailers:
        case enum_.chunkDataEnd: {
          const line = this.#readLine(data, offset);
          if (line === undefined) return;
          offset = line.next;
          this.#onLine(line.text);
          break;
        }
        case enum_.chunkData: {
          const n = Math.min(this.#remaining, data.length - offset);
          const chunk = data.subarray(offset, offset + n);
          offset += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = enum_.chunkDataEnd;
          this.sink!.onResponseBody(chunk);
          break;
        }
        case enum_.untilClose: {
          this.sink!.onResponseBody(offset === 0 ? data : data.subarray(offset));
          return;
        }
        case enum_.done:
          throw new ParseError('upstream sent data after the end of the response');
      }
    }
  }

  /** The connection closed: ends a close-delimited body, or reports a truncated message. */
  finish(): boolean {
    if (this.#state === enum_.untilClose) {
      this.#state = enum_.done;
      this.sink!.onResponseEnd(undefined);
      return true;
    }
    return this.#state === enum_.done;
  }

  #parseHead(data: Buffer, offset: number): number {
    let buf = offset === 0 ? data : data.subarray(offset);
    const prev = this.#pending;
    if (prev) buf = Buffer.concat([prev, buf]);
    const end = buf.indexOf(CRLFCRLF);
    if (end === -1) {
      if (buf.length > MAX_HEAD_BYTES) throw new ParseError('upstream response header too large');
      this.#pending = Buffer.from(buf); // copy: the socket may reuse its buffer
      return data.length;
    }
    this.#pending = undefined;
    if (end > MAX_HEAD_BYTES) throw new ParseError('upstream response header too large');
    const consumed = end + 4 - (prev ? prev.length : 0);
    this.#onHead(buf.toString('latin1', 0, end));
    return offset + consumed;
  }

  #onHead(text: string): void {
    const lines = text.split('\r\n');
    const statusLine = lines[0];
    // HTTP/1.x SP 3DIGIT SP reason
    if (!statusLine.startsWith('HTTP/1.') || statusLine.length < 12 || statusLine[8] !== ' ') {
      throw new ParseError('upstream sent an invalid status line');
    }
    const status = Number(statusLine.slice(9, 12));
    if (!Number.isInteger(status) || status < 100 || status > 999) throw new ParseError('upstream sent an invalid status code');
    const http10 = statusLine[7] === '0';
    const raw: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let connectionClose = http10;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(':');
      if (colon <= 0) throw new ParseError('upstream sent an invalid header line');
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      const lower = name.length >= 10 && name.length <= 17 ? name.toLowerCase() : '';
      if (lower === 'content-length') {
        const n = Number(value);
        if (!/^\d+$/.test(value) || (contentLength !== -1 && contentLength !== n)) throw new ParseError('upstream sent an invalid Content-Length');
        contentLength = n;
      } else if (lower === 'transfer-encoding') {
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
      } else if (lower === 'connection') {
        const v = value.toLowerCase();
        if (v.includes('close')) connectionClose = true;
        else if (v.includes('keep-alive')) connectionClose = false;
      }
      raw.push(name, value);
    }
    if (status < 200) {
      // Interim responses (100 Continue, 103 Early Hints) are consumed; the final one follows.
      if (status === 101) throw new ParseError('upstream switched protocols unexpectedly');
      return;
    }
    this.#keepAlive = !connectionClose;
    if (this.#noBody || status === 204 || status === 304) {
      this.#state = enum_.done;
    } else if (chunked) {
      this.#state = enum_.chunkSize;
    } else if (contentLength >= 0) {
      this.#remaining = contentLength;
      this.#state = contentLength === 0 ? enum_.done : enum_.fixed;
    } else {
      this.#state = enum_.untilClose;
      this.#keepAlive = false;
    }
    this.sink!.onResponseHead(status, statusLineReason(statusLine), raw, this.#keepAlive);
    if (this.#state === enum_.done) this.sink!.onResponseEnd(undefined);
  }

  #readLine(data: Buffer, offset: number): { text: string; next: number } | undefined {
    const lf = data.indexOf(10, offset);
    if (lf === -1) {
      const rest = data.subarray(offset);
      this.#pending = this.#pending ? Buffer.concat([this.#pending, rest]) : Buffer.from(rest);
      if (this.#pending.length > 8192) throw new ParseError('upstream sent an oversized chunk line');
      return undefined;
    }
    let text = data.toString('latin1', offset, lf);
    if (this.#pending) {
      text = this.#pending.toString('latin1') + text;
      this.#pending = undefined;
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return { text, next: lf + 1 };
  }

  #onLine(text: string): void {
    if (this.#state === enum_.chunkDataEnd) {
      if (text !== '') throw new ParseError('upstream sent a malformed chunk');
      this.#state = enum_.chunkSize;
      return;
    }
    if (this.#state === enum_.chunkSize) {
      const semi = text.indexOf(';');
      const hex = (semi === -1 ? text : text.slice(0, semi)).trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new ParseError('upstream sent an invalid chunk size');
      const size = parseInt(hex, 16);
      if (size === 0) {
        this.#state = enum_.trailers;
      } else {
        this.#remaining = size;
        this.#state = enum_.chunkData;
      }
      return;
    }
    // trailers: header lines until an empty line
    if (text === '') {
      this.#state = enum_.done;
      this.sink!.onResponseEnd(this.#trailers);
      return;
    }
    const colon = text.indexOf(':');
    if (colon <= 0) throw new ParseError('upstream sent an invalid trailer');
    (this.#trailers ??= []).push(text.slice(0, colon), text.slice(colon + 1).trim());
  }
}

function statusLineReason(line: string): string {
  return line.length > 13 ? line.slice(13) : '';
}
