// Request-target handling: split path and query, and normalise the path the way nginx builds
// `$uri` (percent-decoding, dot segments, merged slashes) before routing.

/** Splits `/a/b?x=1` into path and query (query without `?`, '' when absent). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  if (q === -1) return { path: target, query: '' };
  return { path: target.slice(0, q), query: target.slice(q + 1) };
}

/** True when the path needs normalising; most paths don't, so routing uses them as they are. */
function needsNormalising(path: string): boolean {
  return path.includes('%') || path.includes('/.') || path.includes('//');
}

/**
 * nginx-style `$uri`: decodes %XX, resolves `.` and `..`, merges repeated slashes.
 * Returns undefined for a path that climbs above the root or decodes badly (nginx answers 400).
 */
export function normalisePath(path: string, keepEncodedSlash = false): string | undefined {
  if (!path.startsWith('/')) {
    // absolute-form target (http://host/path) or asterisk-form
    if (path.startsWith('http://') || path.startsWith('https://')) {
      const slash = path.indexOf('/', path.indexOf('//') + 2);
      path = slash === -1 ? '/' : path.slice(slash);
    } else {
      return undefined;
    }
  }
  if (!needsNormalising(path)) return path;
  // apisix.match_uri_encoded_slash: `%2F` stays encoded (it does not split segments); a NUL marks it
  // while the rest decodes, so paths that carry an encoded NUL themselves are refused here.
  const marked = keepEncodedSlash && /%2f/i.test(path);
  if (marked && /%00/.test(path)) return undefined;
  let decoded = marked ? path.replace(/%2f/gi, '\0') : path;
  if (decoded.includes('%')) {
    try {
      decoded = decodeURIComponent(decoded);
    } catch {
      return undefined;
    }
  }
  const out: string[] = [];
  const segments = decoded.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (seg === '' && !last) continue; // merge slashes
    if (seg === '.') {
      if (last) out.push('');
      continue;
    }
    if (seg === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(seg);
  }
  const normalised = '/' + out.join('/');
  return marked ? normalised.replace(/\0/g, '%2F') : normalised;
}

/** Parses a query string; repeated names collect into arrays (nginx's `$arg_x` returns the first). */
export function parseQuery(query: string): Map<string, string | string[]> {
  const out = new Map<string, string | string[]>();
  if (!query) return out;
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = decodeComponent(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? '' : decodeComponent(part.slice(eq + 1));
    const prev = out.get(name);
    if (prev === undefined) out.set(name, value);
    else if (Array.isArray(prev)) prev.push(value);
    else out.set(name, [prev, value]);
  }
  return out;
}

function decodeComponent(text: string): string {
  if (!text.includes('%') && !text.includes('+')) return text;
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/** Parses a Cookie header into name → value (first occurrence wins). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (name && !out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}
