// Trace and span ids, W3C Trace Context (`traceparent`), and span clocks, for the tracing plugins.
// https://www.w3.org/TR/trace-context/ (version 00 of the header; later versions are read as 00).
import { randomFillSync } from 'node:crypto';

// Random bytes are drawn in blocks: one crypto call serves many ids.
const POOL = Buffer.allocUnsafe(4096);
let poolOffset = POOL.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolOffset + bytes > POOL.length) {
      randomFillSync(POOL);
      poolOffset = 0;
    }
    const start = poolOffset;
    poolOffset += bytes;
    let zero = true;
    for (let i = start; i < poolOffset && zero; i++) zero = POOL[i] === 0;
    // An all-zero id is invalid in every tracing format.
    if (!zero) return POOL.toString('hex', start, poolOffset);
  }
}

/** 16 random bytes as 32 lower-case hex digits, never all zero. */
export function newTraceId(): string {
  return randomHex(16);
}

/** 8 random bytes as 16 lower-case hex digits, never all zero. */
export function newSpanId(): string {
  return randomHex(8);
}

/** Whether `s` is exactly `length` hex digits (`lowerOnly`: a-f only). */
export function isHex(s: string, length: number, lowerOnly = false): boolean {
  if (s.length !== length) return false;
  for (let i = 0; i < length; i++) {
    const c = s.charCodeAt(i);
    const digit = c >= 48 && c <= 57;
    const lower = c >= 97 && c <= 102;
    const upper = !lowerOnly && c >= 65 && c <= 70;
    if (!digit && !lower && !upper) return false;
  }
  return true;
}

/** Whether a hex id is all zeros (invalid as a trace or span id). */
export function isZeroId(hex: string): boolean {
  for (let i = 0; i < hex.length; i++) if (hex.charCodeAt(i) !== 48) return false;
  return true;
}

export interface TraceParent {
  traceId: string;
  spanId: string;
  /** The trace-flags byte; bit 0 is `sampled`. */
  flags: number;
}

/**
 * Reads a `traceparent` header: `version-traceid-parentid-flags`, lower-case hex. Undefined when it
 * is malformed, when an id is all zeros, or for version `ff`; a version above 00 may carry more
 * fields after the flags, which are ignored.
 */
export function parseTraceparent(value: string | undefined): TraceParent | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v.length < 55 || v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return undefined;
  const version = v.slice(0, 2);
  if (!isHex(version, 2, true) || version === 'ff') return undefined;
  if (version === '00' ? v.length !== 55 : v.length > 55 && v[55] !== '-') return undefined;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!isHex(traceId, 32, true) || !isHex(spanId, 16, true) || !isHex(flags, 2, true)) return undefined;
  if (isZeroId(traceId) || isZeroId(spanId)) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/** A version 00 `traceparent` value. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/**
 * Turns `performance.now()` readings into wall-clock time. Taken once when spans are finished, so a
 * request's spans share one offset (durations stay exact) and follow the system clock if it moved.
 */
export class SpanClock {
  readonly #offsetMs: number;

  constructor() {
    this.#offsetMs = Date.now() - performance.now();
  }

  /** Microseconds since the Unix epoch for a `performance.now()` reading. */
  micros(perfMs: number): number {
    return Math.round((this.#offsetMs + perfMs) * 1000);
  }
}
