import { ConfigError } from './error.ts';

// nginx time units (https://nginx.org/en/docs/syntax.html): ms, s, m, h, d, w, M (30 days), y (365 days).
const TIME_UNITS: Record<string, number> = {
  ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, M: 2592000, y: 31536000,
};
const DURATION_PART_RE = /\s*(\d+(?:\.\d+)?)(ms|s|m|h|d|w|M|y)?/y;

/** Seconds for an nginx-style duration string, or undefined when it is malformed. A part without unit must be last. */
function durationSeconds(text: string): number | undefined {
  if (text.trim() === '') return undefined;
  DURATION_PART_RE.lastIndex = 0;
  let total = 0;
  let unitless = false;
  while (DURATION_PART_RE.lastIndex < text.length) {
    if (/^\s*$/.test(text.slice(DURATION_PART_RE.lastIndex))) break;
    if (unitless) return undefined;
    const m = DURATION_PART_RE.exec(text);
    if (!m) return undefined;
    unitless = m[2] === undefined;
    total += Number(m[1]) * TIME_UNITS[m[2] ?? 's'];
  }
  return total;
}

/** True when `value` is a number ≥ 0 or an nginx-style duration string ("60s", "1m 30s", "500ms", "10"). */
export function isDuration(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0;
  return typeof value === 'string' && durationSeconds(value) !== undefined;
}

/**
 * Converts an nginx-style duration to seconds: a bare number is seconds, strings may combine parts ("1h 30m").
 * Throws ConfigError for anything else.
 */
export function parseDurationSeconds(value: string | number): number {
  const seconds = typeof value === 'number' ? (isDuration(value) ? value : undefined) : durationSeconds(value);
  if (seconds === undefined) {
    throw new ConfigError(`invalid duration ${JSON.stringify(value)}: expected e.g. 60s, 500ms or 1m`);
  }
  return seconds;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const SIZE_RE = /^\s*(\d+)\s*([kKmMgG]?)\s*$/;

/** True when `value` is an integer ≥ 0 or an nginx-style size ("0", "512k", "10m", "1G"). */
export function isSize(value: unknown): boolean {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0;
  return typeof value === 'string' && SIZE_RE.test(value);
}

/** Converts an nginx-style size to bytes ("10m" → 10485760; a bare number is bytes). Throws ConfigError otherwise. */
export function parseSizeBytes(value: string | number): number {
  if (!isSize(value)) throw new ConfigError(`invalid size ${JSON.stringify(value)}: expected e.g. 0, 512k, 10m or 1g`);
  if (typeof value === 'number') return value;
  const m = SIZE_RE.exec(value)!;
  return Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()];
}
