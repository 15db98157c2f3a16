// gzip: compresses responses on the fly, as APISIX's gzip plugin turns on nginx's gzip filter for
// the request. Contract: apache/apisix apisix/plugins/gzip.lua (3.x) plus the checks nginx's gzip
// module makes itself (client accepts gzip, no `Via` with gzip_proxied off, status 200/403/404,
// not already encoded, not HEAD).
import { constants as zlibConstants, crc32, deflateRawSync, type ZlibOptions } from 'node:zlib';
import { definePlugin, type PluginContext } from '../../api.ts';

const schema = {
  type: 'object',
  properties: {
    types: {
      anyOf: [
        { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
        { enum: ['*'] },
      ],
      default: ['text/html'],
    },
    min_length: { type: 'integer', minimum: 1, default: 20 },
    comp_level: { type: 'integer', minimum: 1, maximum: 9, default: 1 },
    http_version: { enum: [1.1, 1.0], default: 1.1 },
    buffers: {
      type: 'object',
      properties: {
        number: { type: 'integer', minimum: 1, default: 32 },
        size: { type: 'integer', minimum: 1, default: 4096 },
      },
      default: { number: 32, size: 4096 },
    },
    vary: { type: 'boolean' },
  },
};

interface GzipConf {
  types: string[] | '*';
  min_length: number;
  comp_level: number;
  http_version: number;
  buffers: { number: number; size: number };
  vary?: boolean;
}

interface GzipState {
  /** Per-request compressor in ctx.state, unique to this configured instance. */
  key: string;
  /** undefined: every type (`"*"`). */
  types: ReadonlySet<string> | undefined;
  minLength: number;
  level: number;
  httpVersion: number;
  vary: boolean;
}

let instanceCount = 0;

const EMPTY = Buffer.alloc(0);
/** The deflate window: how far back a match may reach. */
const WINDOW_SIZE = 32 * 1024;
/** Magic, deflate, no flags, no mtime, no extra flags, OS unix (nginx writes the same). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

/** Statuses nginx's gzip filter compresses. */
const COMPRESSIBLE_STATUS = new Set([200, 403, 404]);

/** nginx's `ngx_http_gzip_accept_encoding`: a `gzip` token whose q-value is not zero. */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  for (const item of header.split(',')) {
    const semi = item.indexOf(';');
    const coding = (semi === -1 ? item : item.slice(0, semi)).trim().toLowerCase();
    if (coding !== 'gzip') continue;
    if (semi === -1) return true;
    const q = /(?:^|;)\s*q\s*=\s*([0-9.]+)/i.exec(item.slice(semi));
    return !q || Number(q[1]) > 0;
  }
  return false;
}

/** `HTTP/1.1` → 1.1; HTTP/2 and later count as 2. */
function requestHttpVersion(ctx: PluginContext): number {
  const protocol = ctx.get('server_protocol');
  const version = protocol ? Number(protocol.slice(5)) : NaN;
  return Number.isFinite(version) ? version : 1.1;
}

/** Whether this response gets compressed (nginx's and APISIX's conditions together). */
function shouldCompress(ctx: PluginContext, state: GzipState): boolean {
  if (ctx.method === 'HEAD' || !COMPRESSIBLE_STATUS.has(ctx.response.status)) return false;
  if (!acceptsGzip(ctx.header('accept-encoding'))) return false;
  // gzip_proxied defaults to off: nothing is compressed for requests that came through a proxy.
  if (ctx.header('via') !== undefined) return false;
  const headers = ctx.response.headers;
  if (headers.get('content-encoding')) return false;
  let contentType = headers.get('content-type');
  // Like nginx, no Content-Type means no compression.
  if (!contentType) return false;
  if (state.types) {
    const semi = contentType.indexOf(';');
    if (semi !== -1) contentType = contentType.slice(0, semi);
    if (!state.types.has(contentType)) return false;
  }
  // Like nginx, min_length only applies when the length is known.
  const length = headers.get('content-length');
  if (length !== undefined && length !== '' && Number(length) < state.minLength) return false;
  return requestHttpVersion(ctx) >= state.httpVersion;
}

/**
 * One response's gzip stream, produced synchronously chunk by chunk, so what the upstream streams
 * reaches the client at once (nothing waits for more input) and the proxy never pauses for a
 * thread-pool round trip. Each chunk is deflated on its own and sync-flushed (a byte-aligned,
 * non-final run of deflate blocks; such runs concatenate into one valid stream), with the previous
 * 32 KB of plain text as preset dictionary: those bytes are exactly what the client's decoder holds
 * in its window at that point, so back-references across chunks stay valid and the ratio matches
 * one continuous stream. The last chunk is finished with a final block, then CRC32 and length.
 */
export class GzipEncoder {
  readonly #level: number;
  #started = false;
  #crc = 0;
  #size = 0;
  #window: Buffer = EMPTY;

  constructor(level: number) {
    this.#level = level;
  }

  encode(chunk: Buffer, eof: boolean): Buffer {
    if (!eof && chunk.length === 0) return EMPTY;
    const options: ZlibOptions = { level: this.#level, finishFlush: eof ? zlibConstants.Z_FINISH : zlibConstants.Z_SYNC_FLUSH };
    if (this.#window.length > 0) options.dictionary = this.#window;
    const deflated = deflateRawSync(chunk, options);
    this.#crc = crc32(chunk, this.#crc);
    this.#size = (this.#size + chunk.length) >>> 0;
    // A copy: the chunk's memory belongs to whoever read it.
    if (!eof) this.#window = chunk.length >= WINDOW_SIZE ? Buffer.from(chunk.subarray(chunk.length - WINDOW_SIZE)) : Buffer.concat([this.#window, chunk]).subarray(-WINDOW_SIZE);
    const parts: Buffer[] = [];
    if (!this.#started) {
      this.#started = true;
      parts.push(GZIP_HEADER);
    }
    parts.push(deflated);
    if (eof) {
      const trailer = Buffer.allocUnsafe(8);
      trailer.writeUInt32LE(this.#crc >>> 0, 0);
      trailer.writeUInt32LE(this.#size, 4);
      parts.push(trailer);
    }
    return Buffer.concat(parts);
  }
}

/** A strong validator stops being true for the compressed bytes: nginx makes it weak. */
function weakenEtag(ctx: PluginContext): void {
  const etag = ctx.response.headers.get('etag');
  if (etag && etag.startsWith('"')) ctx.response.headers.set('ETag', `W/${etag}`);
}

export default definePlugin<GzipConf, GzipState>({
  name: 'gzip',
  version: 0.1,
  priority: 995,
  // Compress what every other plugin produced, as nginx's gzip filter runs after APISIX's plugins.
  outputFilter: true,
  schema,

  compile(conf) {
    return {
      key: `gzip#${++instanceCount}`,
      types: conf.types === '*' ? undefined : new Set(conf.types),
      minLength: conf.min_length,
      level: conf.comp_level,
      httpVersion: conf.http_version,
      vary: conf.vary === true,
    };
  },

  phases: {
    header_filter(ctx, _conf, state) {
      if (!shouldCompress(ctx, state)) return;
      const headers = ctx.response.headers;
      headers.remove('Content-Length');
      headers.remove('Accept-Ranges');
      headers.set('Content-Encoding', 'gzip');
      weakenEtag(ctx);
      if (state.vary) headers.add('Vary', 'Accept-Encoding');
      ctx.state.set(state.key, new GzipEncoder(state.level));
    },

    body_filter(ctx, _conf, state, chunk, eof) {
      const encoder = ctx.state.get(state.key) as GzipEncoder | undefined;
      return encoder === undefined ? undefined : encoder.encode(chunk, eof);
    },
  },
});
