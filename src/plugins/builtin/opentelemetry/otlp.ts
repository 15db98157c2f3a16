// OTLP trace export bodies: ExportTraceServiceRequest in protobuf (application/x-protobuf) or in
// OTLP/JSON (application/json), from opentelemetry-proto's collector/trace/v1, trace/v1, common/v1 and
// resource/v1 messages. A small hand-written encoder: only the fields the gateway's spans use.

export type AttributeValue =
  | { type: 'string'; value: string }
  | { type: 'int'; value: number }
  | { type: 'double'; value: number }
  | { type: 'bool'; value: boolean };

export interface KeyValue {
  key: string;
  value: AttributeValue;
}

export const str = (key: string, value: string): KeyValue => ({ key, value: { type: 'string', value } });
export const int = (key: string, value: number): KeyValue => ({ key, value: { type: 'int', value } });
export const double = (key: string, value: number): KeyValue => ({ key, value: { type: 'double', value } });
export const bool = (key: string, value: boolean): KeyValue => ({ key, value: { type: 'bool', value } });

/** Span.SpanKind */
export const SPAN_KIND_SERVER = 2;
export const SPAN_KIND_CLIENT = 3;
/** Status.StatusCode */
export const STATUS_ERROR = 2;

/** Span.flags bits beyond the W3C trace flags: whether the parent is known to be remote, and if it is. */
export const FLAG_HAS_IS_REMOTE = 0x100;
export const FLAG_IS_REMOTE = 0x200;

export interface OtlpSpan {
  /** 32 hex digits. */
  traceId: string;
  /** 16 hex digits. */
  spanId: string;
  parentSpanId: string | undefined;
  traceState: string | undefined;
  flags: number;
  name: string;
  kind: number;
  startMicros: number;
  endMicros: number;
  attributes: KeyValue[];
  status: { code: number; message: string } | undefined;
}

/** What every exported request carries besides the spans. */
export interface ExportHeader {
  resource: KeyValue[];
  scopeName: string;
  scopeVersion: string;
}

// --- protobuf -----------------------------------------------------------------------------------

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

class Writer {
  #buf = Buffer.allocUnsafe(512);
  #len = 0;

  get length(): number {
    return this.#len;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  /** A non-negative integer up to 2^53. */
  varint(n: number): void {
    this.#room(10);
    while (n > 127) {
      this.#buf[this.#len++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.#buf[this.#len++] = n;
  }

  #tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** int64 field (negative numbers as ten-byte two's complement). */
  int64(field: number, n: number): void {
    this.#tag(field, VARINT);
    if (n >= 0) {
      this.varint(n);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(Math.trunc(n)));
    this.#room(10);
    while (v > 127n) {
      this.#buf[this.#len++] = Number(v & 127n) | 128;
      v >>= 7n;
    }
    this.#buf[this.#len++] = Number(v);
  }

  uint(field: number, n: number): void {
    this.#tag(field, VARINT);
    this.varint(n);
  }

  bool(field: number, b: boolean): void {
    this.#tag(field, VARINT);
    this.varint(b ? 1 : 0);
  }

  double(field: number, d: number): void {
    this.#tag(field, I64);
    this.#room(8);
    this.#buf.writeDoubleLE(d, this.#len);
    this.#len += 8;
  }

  fixed32(field: number, n: number): void {
    this.#tag(field, I32);
    this.#room(4);
    this.#buf.writeUInt32LE(n >>> 0, this.#len);
    this.#len += 4;
  }

  /** fixed64 nanoseconds from microseconds. */
  nanos(field: number, micros: number): void {
    this.#tag(field, I64);
    this.#room(8);
    this.#buf.writeBigUInt64LE(BigInt(micros) * 1000n, this.#len);
    this.#len += 8;
  }

  string(field: number, s: string): void {
    const n = Buffer.byteLength(s);
    this.#tag(field, LEN);
    this.varint(n);
    this.#room(n);
    this.#len += this.#buf.write(s, this.#len, 'utf8');
  }

  hex(field: number, hex: string): void {
    const n = hex.length >> 1;
    this.#tag(field, LEN);
    this.varint(n);
    this.#room(n);
    this.#len += this.#buf.write(hex, this.#len, 'hex');
  }

  message(field: number, child: Writer): void {
    this.#tag(field, LEN);
    this.varint(child.#len);
    this.#room(child.#len);
    child.#buf.copy(this.#buf, this.#len, 0, child.#len);
    this.#len += child.#len;
  }

  finish(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}

function anyValue(v: AttributeValue): Writer {
  const w = new Writer();
  switch (v.type) {
    case 'string':
      w.string(1, v.value);
      break;
    case 'bool':
      w.bool(2, v.value);
      break;
    case 'int':
      w.int64(3, v.value);
      break;
    case 'double':
      w.double(4, v.value);
      break;
  }
  return w;
}

function keyValues(w: Writer, field: number, attributes: readonly KeyValue[]): void {
  for (const kv of attributes) {
    const entry = new Writer();
    entry.string(1, kv.key);
    entry.message(2, anyValue(kv.value));
    w.message(field, entry);
  }
}

function spanMessage(s: OtlpSpan): Writer {
  const w = new Writer();
  w.hex(1, s.traceId);
  w.hex(2, s.spanId);
  if (s.traceState) w.string(3, s.traceState);
  if (s.parentSpanId) w.hex(4, s.parentSpanId);
  w.string(5, s.name);
  w.uint(6, s.kind);
  w.nanos(7, s.startMicros);
  w.nanos(8, s.endMicros);
  keyValues(w, 9, s.attributes);
  if (s.status) {
    const status = new Writer();
    if (s.status.message) status.string(2, s.status.message);
    status.uint(3, s.status.code);
    w.message(15, status);
  }
  w.fixed32(16, s.flags);
  return w;
}

/** An ExportTraceServiceRequest with one ResourceSpans holding one ScopeSpans. */
export function encodeProtobuf(header: ExportHeader, spans: readonly OtlpSpan[]): Buffer {
  const resource = new Writer();
  keyValues(resource, 1, header.resource);
  const scope = new Writer();
  scope.string(1, header.scopeName);
  scope.string(2, header.scopeVersion);
  const scopeSpans = new Writer();
  scopeSpans.message(1, scope);
  for (const s of spans) scopeSpans.message(2, spanMessage(s));
  const resourceSpans = new Writer();
  resourceSpans.message(1, resource);
  resourceSpans.message(2, scopeSpans);
  const request = new Writer();
  request.message(1, resourceSpans);
  return request.finish();
}

// --- OTLP/JSON ----------------------------------------------------------------------------------

function jsonValue(v: AttributeValue): Record<string, unknown> {
  switch (v.type) {
    case 'string':
      return { stringValue: v.value };
    case 'bool':
      return { boolValue: v.value };
    case 'int':
      // int64 travels as a decimal string in OTLP/JSON
      return { intValue: String(Math.trunc(v.value)) };
    case 'double':
      return { doubleValue: v.value };
  }
}

function jsonAttributes(attributes: readonly KeyValue[]): Array<Record<string, unknown>> {
  return attributes.map((kv) => ({ key: kv.key, value: jsonValue(kv.value) }));
}

const nanoString = (micros: number): string => `${micros}000`;

/** The same request in OTLP/JSON: lowerCamelCase names, hex ids, enums as numbers. */
export function encodeJson(header: ExportHeader, spans: readonly OtlpSpan[]): Buffer {
  const body = {
    resourceSpans: [
      {
        resource: { attributes: jsonAttributes(header.resource) },
        scopeSpans: [
          {
            scope: { name: header.scopeName, version: header.scopeVersion },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.traceState ? { traceState: s.traceState } : {}),
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              flags: s.flags,
              name: s.name,
              kind: s.kind,
              startTimeUnixNano: nanoString(s.startMicros),
              endTimeUnixNano: nanoString(s.endMicros),
              attributes: jsonAttributes(s.attributes),
              ...(s.status ? { status: { code: s.status.code, ...(s.status.message ? { message: s.status.message } : {}) } } : {}),
            })),
          },
        ],
      },
    ],
  };
  return Buffer.from(JSON.stringify(body));
}
