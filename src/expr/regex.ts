// PCRE patterns (what APISIX's `~~` / `~*` run through ngx.re) compiled as JS RegExp at config
// time. A handful of PCRE-only spellings with an exact JS equivalent are rewritten first:
//   (?i) (?s) (?m) at the very start  -> RegExp flags
//   \A  \z  \Z                        -> start / end / end-before-final-newline assertions
//   \Q...\E                           -> the quoted text, escaped
//   (?P<name>...)  (?P=name)          -> (?<name>...)  \k<name>
//   $ without the m flag              -> end, or before a final newline (PCRE's reading of `$`)
// Everything else is handed to RegExp unchanged; a pattern it rejects is a config error.

const START = '(?<![\\s\\S])';
const END = '(?![\\s\\S])';
const END_BEFORE_NEWLINE = '(?=\\n?(?![\\s\\S]))';
const SPECIAL = new Set('\\^$.|?*+()[]{}/-'.split(''));

export interface TranslatedPattern {
  source: string;
  flags: string;
}

export function translatePcre(pattern: string, flags: string): TranslatedPattern {
  let i = 0;
  const lead = /^\(\?([ims]+)\)/.exec(pattern);
  if (lead) {
    for (const f of lead[1]) if (!flags.includes(f)) flags += f;
    i = lead[0].length;
  }
  const multiline = flags.includes('m');
  let out = '';
  let inClass = false;
  while (i < pattern.length) {
    const ch = pattern[i];
    if (ch === '\\' && i + 1 < pattern.length) {
      const next = pattern[i + 1];
      if (next === 'Q') {
        // Literal run up to \E (or the end of the pattern).
        let end = pattern.indexOf('\\E', i + 2);
        if (end === -1) end = pattern.length;
        for (const lit of pattern.slice(i + 2, end)) out += SPECIAL.has(lit) ? '\\' + lit : lit;
        i = end + 2;
        continue;
      }
      if (next === 'E') { // stray \E is ignored by PCRE
        i += 2;
        continue;
      }
      if (!inClass) {
        if (next === 'A') { out += START; i += 2; continue; }
        if (next === 'z') { out += END; i += 2; continue; }
        if (next === 'Z') { out += END_BEFORE_NEWLINE; i += 2; continue; }
      }
      out += ch + next;
      i += 2;
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      out += ch;
      i++;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      i++;
      // A ']' right after '[' or '[^' is a literal member in PCRE; JS would read `[]` as an empty
      // class, so escape it.
      if (pattern[i] === '^') { out += '^'; i++; }
      if (pattern[i] === ']') { out += '\\]'; i++; }
      continue;
    }
    if (ch === '$' && !multiline) {
      out += END_BEFORE_NEWLINE;
      i++;
      continue;
    }
    if (ch === '(' && pattern.startsWith('(?P<', i)) {
      out += '(?<';
      i += 4;
      continue;
    }
    if (ch === '(' && pattern.startsWith('(?P=', i)) {
      const close = pattern.indexOf(')', i);
      if (close !== -1) {
        out += '\\k<' + pattern.slice(i + 4, close) + '>';
        i = close + 1;
        continue;
      }
    }
    out += ch;
    i++;
  }
  return { source: out, flags };
}

/** Compiles a PCRE-style pattern; throws Error(reason) when JS cannot compile it. */
export function compilePcre(pattern: string, caseless: boolean): RegExp {
  const t = translatePcre(pattern, caseless ? 'i' : '');
  return new RegExp(t.source, t.flags);
}
