// redirect's own `uri` template syntax (apache/apisix: apisix/plugins/redirect.lua `parse_uri`),
// which is not quite `core.utils.resolve_var`'s:
//
//   $name  ${name}   a request variable; names are letters, digits and `_` only, so `$uri.html`
//                    is `$uri` followed by `.html`; an absent variable reads as ''
//   \$name           kept as written, backslash included
//   $                a `$` that starts no name is kept
//   \                any other backslash is dropped
//
// The template is split once into literal and variable parts; rendering only reads and joins.

import type { VarSource } from '../../lib/interpolate.ts';

/** The pattern redirect.lua matches templates with; also the schema's `pattern` for `uri`. */
export const URI_TEMPLATE_PATTERN = '(\\\\\\$[0-9a-zA-Z_]+)|\\$\\{([0-9a-zA-Z_]+)\\}|\\$([0-9a-zA-Z_]+)|(\\$|[^$\\\\]+)';

type Part = { literal: string } | { variable: string };

export class UriTemplate {
  readonly #parts: readonly Part[];

  constructor(source: string) {
    const parts: Part[] = [];
    // Text between matches (a lone backslash) is skipped, as ngx.re.gmatch skips it.
    for (const m of source.matchAll(new RegExp(URI_TEMPLATE_PATTERN, 'g'))) {
      const variable = m[2] ?? m[3];
      const last = parts[parts.length - 1];
      if (variable !== undefined) parts.push({ variable });
      else if (last && 'literal' in last) parts[parts.length - 1] = { literal: last.literal + m[0] };
      else parts.push({ literal: m[0] });
    }
    this.#parts = parts;
  }

  render(vars: VarSource): string {
    let out = '';
    for (const part of this.#parts) {
      if ('literal' in part) {
        out += part.literal;
      } else {
        const value = vars.get(part.variable);
        if (value !== undefined && value !== null) out += String(value);
      }
    }
    return out;
  }
}

// nginx's ngx_escape_uri table for NGX_ESCAPE_URI: control characters, space, `"`, `#`, `%`, `<`,
// `>`, `?`, `\`, `^`, `` ` ``, `{`, `|`, `}`, DEL and every non-ASCII byte are escaped.
const ESCAPED_ASCII = new Set(' "#%<>?\\^`{|}\x7f'.split('').map((c) => c.charCodeAt(0)));

/** core.utils.uri_safe_encode: percent-encodes (upper-case hex) the bytes nginx escapes in a URI. */
export function escapeUri(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte < 0x20 || byte >= 0x80 || ESCAPED_ASCII.has(byte)) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
    else out += String.fromCharCode(byte);
  }
  return out;
}
