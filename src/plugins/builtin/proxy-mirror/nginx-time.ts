// nginx time values as config.yaml writes them for `plugin_attr.proxy-mirror.timeout`: a number of
// seconds, or units run together (`60s`, `500ms`, `1m30s`; ms, s, m, h, d, w, M, y), as nginx's
// ngx_parse_time reads them.

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  M: 30 * 86_400_000,
  y: 365 * 86_400_000,
};

const WHOLE = /^(?:\s*\d+(?:ms|s|m|h|d|w|M|y)?\s*)+$/;
const PART = /(\d+)(ms|s|m|h|d|w|M|y)?/g;

/** Milliseconds, or undefined when the value is missing or not a time. */
export function parseNginxTime(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  if (typeof value !== 'string' || !WHOLE.test(value)) return undefined;
  let total = 0;
  for (const m of value.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2] ?? 's'];
  return total;
}
