// Encoding helpers for etcd's v3 gRPC-gateway JSON API: base64 keys and values, int64 fields sent
// as strings, the prefix range end, and a splitter for the watch stream's concatenated JSON objects.

/** A key-value as the gateway returns it (int64 fields as strings; zero values omitted). */
export interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

export interface RawHeader {
  cluster_id?: string;
  member_id?: string;
  revision?: string;
  raft_term?: string;
}

export function b64(data: string | Buffer): string {
  return (typeof data === 'string' ? Buffer.from(data, 'utf8') : data).toString('base64');
}

export function unb64(data: string | undefined): string {
  return data ? Buffer.from(data, 'base64').toString('utf8') : '';
}

/** An int64 field of the gateway's JSON (a string, or absent for zero). */
export function num(value: string | number | undefined): number {
  if (value === undefined || value === '') return 0;
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

/**
 * etcd's range end for "every key starting with `prefix`": the prefix's bytes with the last byte
 * below 0xff incremented and everything after it dropped; all-0xff (or empty) → `\0` (no end).
 */
export function prefixRangeEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] += 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

export type DecodedValue = { ok: true; value: unknown } | { ok: false; raw: string };

/** Values are JSON text (as APISIX stores them). */
export function decodeValue(data: string | undefined): DecodedValue {
  const raw = unb64(data);
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch {
    return { ok: false, raw };
  }
}

/**
 * Splits a stream of concatenated JSON objects (the gateway writes one per line, but nothing here
 * relies on the newlines) into parsed values. Feed it text in any chunking.
 */
export class JsonObjectSplitter {
  private buf = '';
  private pos = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;

  feed(chunk: string): unknown[] {
    this.buf += chunk;
    const out: unknown[] = [];
    const buf = this.buf;
    for (let i = this.pos; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c /* \ */) this.escaped = true;
        else if (c === 0x22 /* " */) this.inString = false;
        continue;
      }
      if (c === 0x22) {
        this.inString = true;
      } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        if (this.depth === 0) this.start = i;
        this.depth++;
      } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
        this.depth--;
        if (this.depth === 0 && this.start >= 0) {
          const text = buf.slice(this.start, i + 1);
          this.start = -1;
          try {
            out.push(JSON.parse(text));
          } catch {
            out.push({ error: { message: `unparsable watch message: ${text.slice(0, 200)}` } });
          }
        } else if (this.depth < 0) {
          this.depth = 0; // garbage between objects
        }
      }
    }
    if (this.depth === 0) {
      this.buf = '';
      this.pos = 0;
    } else {
      this.buf = buf.slice(this.start);
      this.pos = this.buf.length;
      this.start = 0;
    }
    return out;
  }
}
