// The two shapes of a `headers` attribute shared by proxy-rewrite and response-rewrite, and the
// checks APISIX applies to the older flat shape (apisix/core/utils.lua `validate_header_field`,
// `validate_header_value`):
//
//   { "X-A": "v", "X-B": 1 }                                    flat: every entry is a `set`
//   { "add": ..., "set": { "X-A": "v" }, "remove": ["X-B"] }     explicit operations

/** True when `headers` uses the explicit `add` / `set` / `remove` form. */
export function isOperationsForm(headers: Record<string, unknown>): boolean {
  return isObjectLike(headers.add) || isObjectLike(headers.set) || isObjectLike(headers.remove);
}

function isObjectLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null;
}

/** Visible ASCII except `:` (`!` to `~`). */
export function isValidHeaderName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 32 || c >= 127 || c === 58) return false;
  }
  return true;
}

/** No control characters and nothing beyond ASCII; numbers are always fine. */
export function isValidHeaderValue(value: unknown): boolean {
  if (typeof value !== 'string') return true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 32 || c >= 127) return false;
  }
  return true;
}

/**
 * Checks a flat `headers` object as APISIX's `check_set_headers` does; `strict` adds the
 * character checks proxy-rewrite makes (response-rewrite stops at types and lengths).
 */
export function checkFlatHeaders(headers: Record<string, unknown>, strict: boolean): string | undefined {
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string' && typeof value !== 'number') return 'invalid type as header value';
    if (name.length === 0) return 'invalid field length in header';
    if (!strict) continue;
    if (!isValidHeaderName(name)) return 'invalid field character in header';
    if (!isValidHeaderValue(value)) return 'invalid value character in header';
  }
  return undefined;
}

/** A header value as configured (string or number) as text. */
export function headerText(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}
