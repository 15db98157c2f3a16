// Variable interpolation in plugin strings, as APISIX's `core.utils.resolve_var` and
// `resolve_var_with_captures` do it (apisix/core/utils.lua):
//
//   $name  ${name}  ${ name ?? fallback }   a request variable ('' when absent, or the fallback)
//   $1  ${1}                               a capture of a regex match (only when captures are on)
//   \$name                                 left as written, backslash included (APISIX keeps it too)
//
// A template is parsed once, at config time, into literal and variable parts; rendering only
// reads variables and concatenates, and a template without `$` renders as its own string.

/** Where variables come from: a PluginContext, or anything with the same `get`. */
export interface VarSource {
  get(name: string): unknown;
}

/** Captures of a regex match: index 0 is the whole match, n the n-th group (undefined when it did not take part). */
export type Captures = ArrayLike<string | undefined>;

/** Applied to every substituted value (not to the literal text around it). */
export type Escaper = (value: string) => string;

const LITERAL = 0;
const VARIABLE = 1;
const CAPTURE = 2;

type Part =
  | { kind: typeof LITERAL; text: string }
  | { kind: typeof VARIABLE; name: string; fallback: string | undefined }
  | { kind: typeof CAPTURE; index: number };

export interface TemplateOptions {
  /** Read `$1` / `${1}` as regex captures (proxy-rewrite header values after `regex_uri`). */
  captures?: boolean;
}

export class Template {
  /** The template as configured. */
  readonly source: string;
  /** Set when the template has no substitutions: render always returns this. */
  readonly constant: string | undefined;
  readonly #parts: readonly Part[];

  constructor(source: string, options: TemplateOptions = {}) {
    this.source = source;
    this.#parts = parseTemplate(source, options.captures === true);
    this.constant = this.#parts.length === 0 ? '' : this.#parts.length === 1 && this.#parts[0].kind === LITERAL ? this.#parts[0].text : undefined;
  }

  render(vars: VarSource, captures?: Captures, escape?: Escaper): string {
    if (this.constant !== undefined) return this.constant;
    let out = '';
    for (const part of this.#parts) {
      if (part.kind === LITERAL) {
        out += part.text;
      } else if (part.kind === VARIABLE) {
        const value = vars.get(part.name);
        if (value === undefined || value === null) {
          if (part.fallback !== undefined) out += escape ? escape(part.fallback) : part.fallback;
        } else {
          const text = typeof value === 'string' ? value : String(value);
          out += escape ? escape(text) : text;
        }
      } else {
        // A missing capture reads as '' (resolve_var_with_captures).
        out += captures?.[part.index] ?? '';
      }
    }
    return out;
  }
}

/** Parses once; `new Template(source)` is the same, this reads better at call sites. */
export function compileTemplate(source: string, options?: TemplateOptions): Template {
  return new Template(source, options);
}

// `$` not preceded by a backslash, then `{...}` or a run of word characters and dots
// (resolve_var's `(?<!\\)\$(\{\s*([^}]+?)\s*\}|([\w\.]+))`), tried at each `$`.
const VARIABLE_AT = /\$(?:\{\s*([^}]+?)\s*\}|([\w.]+))/y;
// resolve_var_with_captures's `(?<!\\)\$\{?(\d+)\}?`.
const CAPTURE_AT = /\$\{?(\d+)\}?/y;
const FALLBACK_SPLIT = /\s*\?\?\s*/;

function parseTemplate(source: string, withCaptures: boolean): Part[] {
  const parts: Part[] = [];
  let literal = '';
  let i = 0;
  while (i < source.length) {
    const dollar = source.indexOf('$', i);
    if (dollar === -1) {
      literal += source.slice(i);
      break;
    }
    literal += source.slice(i, dollar);
    i = dollar;
    if (dollar > 0 && source.charCodeAt(dollar - 1) === 92 /* \ */) {
      literal += '$';
      i++;
      continue;
    }
    if (withCaptures) {
      CAPTURE_AT.lastIndex = dollar;
      const m = CAPTURE_AT.exec(source);
      if (m) {
        if (literal) parts.push({ kind: LITERAL, text: literal });
        literal = '';
        parts.push({ kind: CAPTURE, index: Number(m[1]) });
        i = CAPTURE_AT.lastIndex;
        continue;
      }
    }
    VARIABLE_AT.lastIndex = dollar;
    const m = VARIABLE_AT.exec(source);
    if (!m) {
      literal += '$';
      i++;
      continue;
    }
    if (literal) parts.push({ kind: LITERAL, text: literal });
    literal = '';
    if (m[1] !== undefined) {
      // `${ name ?? fallback }`: only the first fallback counts, as in APISIX.
      const segments = m[1].split(FALLBACK_SPLIT);
      parts.push({ kind: VARIABLE, name: segments[0], fallback: segments.length > 1 ? segments[1] : undefined });
    } else {
      parts.push({ kind: VARIABLE, name: m[2], fallback: undefined });
    }
    i = VARIABLE_AT.lastIndex;
  }
  if (literal) parts.push({ kind: LITERAL, text: literal });
  return parts;
}
