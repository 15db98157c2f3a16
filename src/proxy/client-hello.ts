// Reading a TLS ClientHello before the handshake starts (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
// The TLS listener looks at the server name, the offered protocol versions and the signature
// algorithms first, so it can pick the SSL object, its protocol range, its client-certificate
// policy and the key type (RSA or ECDSA) before OpenSSL sees the connection, as APISIX does in
// its `ssl_client_hello_by_lua` phase.

/** What the listener needs from a ClientHello. */
export interface ClientHello {
  /** The SNI host name, lower-cased; undefined when the client sent none. */
  serverName: string | undefined;
  /** Protocol versions offered: `TLSv1`…`TLSv1.3` (from supported_versions, or the legacy version). */
  versions: string[];
  /** The client accepts an ECDSA certificate (an ECDSA signature algorithm, or an ECDSA cipher suite for old clients). */
  acceptsEcdsa: boolean;
  /** ALPN protocol names offered, in the client's order. */
  alpn: string[];
}

/** The outcome of looking at the bytes received so far. */
export type HelloParse = { state: 'more' } | { state: 'done'; hello: ClientHello } | { state: 'invalid'; reason: string };

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
/** A ClientHello larger than this is refused: real ones are a few KiB even with post-quantum key shares. */
export const MAX_CLIENT_HELLO = 64 * 1024;

const EXT_SERVER_NAME = 0;
const EXT_SIGNATURE_ALGORITHMS = 13;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;

const VERSION_NAMES: Record<number, string> = { 0x0301: 'TLSv1', 0x0302: 'TLSv1.1', 0x0303: 'TLSv1.2', 0x0304: 'TLSv1.3' };

/** ECDHE_ECDSA cipher suites of TLS 1.2 and earlier, for clients that send no signature_algorithms. */
const ECDSA_SUITES = new Set([0xc006, 0xc007, 0xc008, 0xc009, 0xc00a, 0xc023, 0xc024, 0xc02b, 0xc02c, 0xc0ac, 0xc0ad, 0xc0ae, 0xc0af, 0xcca9]);

/**
 * Parses the ClientHello at the start of `data` (the first bytes of a connection). Handshake
 * messages may span several records; `more` asks for further bytes.
 */
export function parseClientHello(data: Buffer): HelloParse {
  if (data.length === 0) return { state: 'more' };
  if (data[0] !== CONTENT_HANDSHAKE) return { state: 'invalid', reason: 'not a TLS handshake record' };
  // Join the handshake fragments of consecutive records.
  const fragments: Buffer[] = [];
  let collected = 0;
  let needed = -1;
  let offset = 0;
  while (needed < 0 || collected < needed) {
    if (data.length < offset + RECORD_HEADER) return { state: 'more' };
    if (data[offset] !== CONTENT_HANDSHAKE) return { state: 'invalid', reason: 'ClientHello interrupted by another record type' };
    const length = data.readUInt16BE(offset + 3);
    if (length === 0) return { state: 'invalid', reason: 'empty handshake record' };
    if (data.length < offset + RECORD_HEADER + length) return { state: 'more' };
    fragments.push(data.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length));
    collected += length;
    offset += RECORD_HEADER + length;
    if (needed < 0) {
      const first = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments);
      if (first.length < 4) continue;
      if (first[0] !== HANDSHAKE_CLIENT_HELLO) return { state: 'invalid', reason: 'first handshake message is not a ClientHello' };
      needed = 4 + first.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO) return { state: 'invalid', reason: 'ClientHello too large' };
    }
  }
  const message = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments);
  try {
    return { state: 'done', hello: readHello(message.subarray(4, needed)) };
  } catch (err) {
    return { state: 'invalid', reason: (err as Error).message };
  }
}

/** A bounds-checked reader over the ClientHello body. */
class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  #need(n: number): void {
    if (this.pos + n > this.end) throw new Error('truncated ClientHello');
  }

  u8(): number {
    this.#need(1);
    return this.buf[this.pos++];
  }

  u16(): number {
    this.#need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  /** A sub-reader over the next `n` bytes. */
  take(n: number): Reader {
    this.#need(n);
    const sub = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return sub;
  }

  get left(): number {
    return this.end - this.pos;
  }
}

function readHello(body: Buffer): ClientHello {
  const r = new Reader(body);
  const legacyVersion = r.u16();
  r.take(32); // random
  r.take(r.u8()); // legacy session id
  const suites = r.take(r.u16());
  r.take(r.u8()); // compression methods
  const hello: ClientHello = { serverName: undefined, versions: [], acceptsEcdsa: false, alpn: [] };
  let sawSigalgs = false;
  const extensions = r.left >= 2 ? r.take(r.u16()) : new Reader(body, 0, 0);
  while (extensions.left >= 4) {
    const type = extensions.u16();
    const ext = extensions.take(extensions.u16());
    if (type === EXT_SERVER_NAME) hello.serverName = readServerName(ext);
    else if (type === EXT_SUPPORTED_VERSIONS) hello.versions = readVersions(ext);
    else if (type === EXT_ALPN) hello.alpn = readAlpn(ext);
    else if (type === EXT_SIGNATURE_ALGORITHMS) {
      sawSigalgs = true;
      const list = ext.take(ext.u16());
      // SignatureScheme: ecdsa_* are 0x0403/0x0503/0x0603 (and the legacy 0x0203 sha1 pair).
      while (list.left >= 2) if ((list.u16() & 0xff) === 0x03) hello.acceptsEcdsa = true;
    }
  }
  if (!sawSigalgs) {
    while (suites.left >= 2) if (ECDSA_SUITES.has(suites.u16())) hello.acceptsEcdsa = true;
  }
  if (hello.versions.length === 0) {
    // No supported_versions: the legacy field is the highest version offered, the rest below it.
    hello.versions = Object.entries(VERSION_NAMES)
      .filter(([code]) => Number(code) <= legacyVersion && Number(code) < 0x0304)
      .map(([, name]) => name);
  }
  return hello;
}

function readServerName(ext: Reader): string | undefined {
  const list = ext.take(ext.u16());
  while (list.left >= 3) {
    const type = list.u8();
    const name = list.take(list.u16());
    if (type === 0) return name.buf.toString('latin1', name.pos, name.end).toLowerCase();
  }
  return undefined;
}

function readVersions(ext: Reader): string[] {
  const list = ext.take(ext.u8());
  const out: string[] = [];
  while (list.left >= 2) {
    const name = VERSION_NAMES[list.u16()];
    if (name) out.push(name); // GREASE values and drafts are skipped
  }
  return out;
}

function readAlpn(ext: Reader): string[] {
  const list = ext.take(ext.u16());
  const out: string[] = [];
  while (list.left >= 1) {
    const name = list.take(list.u8());
    out.push(name.buf.toString('latin1', name.pos, name.end));
  }
  return out;
}
