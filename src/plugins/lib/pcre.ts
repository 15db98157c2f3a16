// The parts of OpenResty's `ngx.re` that plugins configure: a PCRE pattern with an options string
// ("jo", "i", "x", ...) and `ngx.re.sub`'s replacement template (`$0`, `$1`, `${1}`, `$$`). Both are
// compiled at config time into a RegExp and a function. Patterns go to RegExp as written except for
// the few PCRE spellings JavaScript reads differently (expr's translatePcre, shared with `vars`); the
// rest of the PCRE syntax JavaScript shares (almost all of it in practice) behaves the same.
import { translatePcre } from '../../expr/index.ts';

export interface NgxRegex {
  /** Finds the first match from the start of the subject (lastIndex is reset on each use). */
  readonly once: RegExp;
  /** The same pattern with the `g` flag, for `gsub`. */
  readonly all: RegExp;
}

/**
 * ngx.re options and what they become here. `j`, `o` (JIT, compile once) are performance hints,
 * `u`/`U` (UTF-8 mode) and `J`, `D`, `d` have no JavaScript counterpart that changes results for
 * ordinary patterns and are accepted as no-ops.
 */
const KNOWN_OPTIONS = new Set(['a', 'd', 'D', 'i', 'j', 'J', 'm', 'o', 's', 'u', 'U', 'x']);

/**
 * Compiles `pattern` with ngx.re `options`. Throws an Error whose message is the reason: an
 * unknown option is worded as lua-resty-core words it (`unknown flag "h" (flags "h")`).
 */
export function compileNgxRegex(pattern: string, options = ''): NgxRegex {
  for (const option of options) {
    if (!KNOWN_OPTIONS.has(option)) throw new Error(`unknown flag "${option}" (flags "${options}")`);
  }
  // PCRE's leading `(?i)`-style settings apply to the whole pattern, like options.
  const lead = /^\(\?([imsx]+)\)/.exec(pattern);
  if (lead) {
    options += lead[1];
    pattern = pattern.slice(lead[0].length);
  }
  let flags = '';
  if (options.includes('i')) flags += 'i';
  if (options.includes('m')) flags += 'm';
  if (options.includes('s')) flags += 's';
  // `a` anchors every match at the position where the search starts: a sticky regex.
  if (options.includes('a')) flags += 'y';
  const { source } = translatePcre(options.includes('x') ? stripExtended(pattern) : pattern, flags);
  return { once: new RegExp(source, flags), all: new RegExp(source, flags + 'g') };
}

/** PCRE's extended mode: unescaped whitespace and `#` comments outside classes are not part of the pattern. */
function stripExtended(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\' && i + 1 < pattern.length) {
      out += ch + pattern[++i];
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v') continue;
    if (ch === '#') {
      while (i + 1 < pattern.length && pattern[i + 1] !== '\n') i++;
      continue;
    }
    out += ch;
  }
  return out;
}

/** A compiled replacement: gets the match (`[0]` whole, `[n]` groups) and returns the text to put in its place. */
export type Replacement = (match: ArrayLike<string | undefined>) => string;

/**
 * Compiles an ngx.re.sub replacement template: `$n` and `${n}` insert capture n (`$0` the whole
 * match, '' for a group that did not take part), `$$` is a literal `$`; any other `$` is an error,
 * worded as lua-resty-core words it (`bad template for substitution: "<template>"`).
 */
export function compileReplacement(template: string): Replacement {
  const literals: string[] = [];
  const groups: number[] = [];
  let literal = '';
  let i = 0;
  while (i < template.length) {
    const ch = template[i];
    if (ch !== '$') {
      literal += ch;
      i++;
      continue;
    }
    const next = template[i + 1];
    if (next === '$') {
      literal += '$';
      i += 2;
      continue;
    }
    let j = i + 1;
    const braced = next === '{';
    if (braced) j++;
    const start = j;
    while (j < template.length && template.charCodeAt(j) >= 48 && template.charCodeAt(j) <= 57) j++;
    if (j === start || (braced && template[j] !== '}')) throw new Error(`bad template for substitution: "${template}"`);
    literals.push(literal);
    literal = '';
    groups.push(Number(template.slice(start, j)));
    i = braced ? j + 1 : j;
  }
  if (groups.length === 0) return () => literal;
  const tail = literal;
  return (match) => {
    let out = '';
    for (let k = 0; k < groups.length; k++) out += literals[k] + (match[groups[k]] ?? '');
    return out + tail;
  };
}

/** ngx.re.sub: replaces the first match; the subject itself when nothing matches. */
export function substituteFirst(subject: string, regex: NgxRegex, replacement: Replacement): string {
  const re = regex.once;
  re.lastIndex = 0;
  const m = re.exec(subject);
  if (!m) return subject;
  return subject.slice(0, m.index) + replacement(m) + subject.slice(m.index + m[0].length);
}

/** ngx.re.gsub: replaces every match. */
export function substituteAll(subject: string, regex: NgxRegex, replacement: Replacement): string {
  const re = regex.all;
  re.lastIndex = 0;
  let out = '';
  let from = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(subject)) !== null) {
    out += subject.slice(from, m.index) + replacement(m);
    from = m.index + m[0].length;
    // An empty match would find itself again: step over one character.
    if (m[0].length === 0) {
      if (re.lastIndex >= subject.length) break;
      re.lastIndex++;
    }
    if (re.sticky && m[0].length === 0) break;
  }
  return out + subject.slice(from);
}
