// nginx's `ngx_escape_uri(..., NGX_ESCAPE_URI)` (the table of current nginx), which APISIX's
// `core.utils.uri_safe_encode` calls before a rewritten path goes upstream: control characters,
// space, `"`, `#`, `%`, `<`, `>`, `?`, `\`, `^`, `` ` ``, `{`, `|`, `}` and every byte from 0x7F up
// become `%XX` (upper-case hex, UTF-8 bytes). Everything else is kept as is.

const HEX = '0123456789ABCDEF';

const ESCAPED_ASCII = new Uint8Array(128);
for (const c of ' "#%<>?\\^`{|}') ESCAPED_ASCII[c.charCodeAt(0)] = 1;

function needsEscape(code: number): boolean {
  return code < 0x20 || code >= 0x7f || ESCAPED_ASCII[code] === 1;
}

/** Returns `text` itself when nothing needs escaping (the common case allocates nothing). */
export function escapeUri(text: string): string {
  let i = 0;
  while (i < text.length && !needsEscape(text.charCodeAt(i))) i++;
  if (i === text.length) return text;
  let out = text.slice(0, i);
  const bytes = Buffer.from(text.slice(i), 'utf8');
  for (const b of bytes) {
    out += needsEscape(b) ? '%' + HEX[b >> 4] + HEX[b & 15] : String.fromCharCode(b);
  }
  return out;
}
