import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ParseError, ResponseParser, type ResponseSink } from '../../src/upstream/response-parser.ts';

class Recorder implements ResponseSink {
  status = 0;
  reason = '';
  headers: string[] = [];
  keepAlive = false;
  body: Buffer[] = [];
  ended = 0;
  trailers: string[] | undefined;
  onResponseHead(status: number, reason: string, raw: string[], keepAlive: boolean) {
    this.status = status;
    this.reason = reason;
    this.headers = raw;
    this.keepAlive = keepAlive;
  }
  onResponseBody(chunk: Buffer) {
    this.body.push(Buffer.from(chunk));
    return true;
  }
  onResponseEnd(trailers: string[] | undefined) {
    this.ended++;
    this.trailers = trailers;
  }
  get text() {
    return Buffer.concat(this.body).toString();
  }
}

/** Feeds `input` one byte at a time: the parser must not depend on packet boundaries. */
function feedBytewise(parser: ResponseParser, input: string) {
  const buf = Buffer.from(input);
  for (let i = 0; i < buf.length; i++) parser.execute(buf.subarray(i, i + 1));
}

describe('ResponseParser', () => {
  it('parses a Content-Length response in one piece', () => {
    const p = new ResponseParser();
    const r = new Recorder();
    p.reset(r, false);
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello'));
    assert.equal(r.status, 200);
    assert.equal(r.reason, 'OK');
    assert.deepEqual(r.headers, ['Content-Length', '5', 'X-A', 'b']);
    assert.equal(r.text, 'hello');
    assert.equal(r.ended, 1);
    assert.ok(p.done && p.keepAlive);
  });

  it('parses chunked bodies split at every byte, with extensions and trailers', () => {
    const p = new ResponseParser();
    const r = new Recorder();
    p.reset(r, false);
    feedBytewise(p, 'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Checksum: abc\r\n\r\n');
    assert.equal(r.status, 201);
    assert.equal(r.text, 'hello world');
    assert.deepEqual(r.trailers, ['X-Checksum', 'abc']);
    assert.equal(r.ended, 1);
  });

  it('reads a close-delimited body until finish() and marks the connection not reusable', () => {
    const p = new ResponseParser();
    const r = new Recorder();
    p.reset(r, false);
    p.execute(Buffer.from('HTTP/1.0 200 OK\r\n\r\npart1'));
    p.execute(Buffer.from('part2'));
    assert.equal(r.ended, 0);
    assert.ok(p.readsUntilClose);
    assert.ok(p.finish());
    assert.equal(r.text, 'part1part2');
    assert.equal(r.ended, 1);
    assert.equal(p.keepAlive, false);
  });

  it('has no body for HEAD, 204 and 304 even with Content-Length', () => {
    for (const [status, head] of [[200, true], [204, false], [304, false]] as const) {
      const p = new ResponseParser();
      const r = new Recorder();
      p.reset(r, head);
      p.execute(Buffer.from(`HTTP/1.1 ${status} X\r\nContent-Length: 10\r\n\r\n`));
      assert.equal(r.status, status);
      assert.equal(r.ended, 1);
      assert.ok(p.done);
    }
  });

  it('skips 100 Continue and parses the final response', () => {
    const p = new ResponseParser();
    const r = new Recorder();
    p.reset(r, false);
    p.execute(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    assert.equal(r.status, 200);
    assert.equal(r.text, 'ok');
  });

  it('honours Connection: close', () => {
    const p = new ResponseParser();
    const r = new Recorder();
    p.reset(r, false);
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'));
    assert.equal(r.keepAlive, false);
  });

  it('rejects malformed input', () => {
    const bad = [
      'GARBAGE\r\n\r\n',
      'HTTP/1.1 2x0 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nno-colon-line\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    ];
    for (const input of bad) {
      const p = new ResponseParser();
      p.reset(new Recorder(), false);
      assert.throws(() => p.execute(Buffer.from(input)), ParseError, input);
    }
  });

  it('rejects an oversized response head', () => {
    const p = new ResponseParser();
    p.reset(new Recorder(), false);
    assert.throws(() => p.execute(Buffer.from('HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(70_000))), /too large/);
  });

  it('reports a truncated fixed-length body on finish()', () => {
    const p = new ResponseParser();
    const r = new Recorder();
    p.reset(r, false);
    p.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    assert.equal(p.finish(), false);
    assert.equal(r.ended, 0);
  });
});
