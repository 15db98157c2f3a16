// Lua `tonumber` semantics (as LuaJIT implements them) for the numeric operators of `vars`.
// Written as a hand scanner so the hot path neither compiles regexes nor slices strings.
//
// Accepted (surrounding ASCII whitespace allowed, optional sign):
//   decimal   12  -1.5  .5  5.  1e3  1.5E-2
//   hex       0x10  -0X1f  0x1.8  0x1p4
//   binary    0b101
//   special   inf  infinity  nan  (case-insensitive)
// Anything else is "not a number". NaN doubles as that "not a number" marker: in every operator
// it behaves exactly like Lua's nil result (`==` false, `~=` true, ordering false), and Lua's own
// tonumber("nan") yields a NaN that behaves the same way.

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

function lower(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = lower(c);
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/** Matches `word` (lowercase ASCII) case-insensitively at position i. */
function hasWordAt(s: string, i: number, word: string): boolean {
  if (i + word.length > s.length) return false;
  for (let k = 0; k < word.length; k++) {
    if (lower(s.charCodeAt(i + k)) !== word.charCodeAt(k)) return false;
  }
  return true;
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && isSpace(s.charCodeAt(i))) i++;
  return i;
}

/** Parses a string with Lua `tonumber` rules; NaN when it is not a number. */
export function parseLuaNumber(s: string): number {
  const n = s.length;
  let i = skipSpace(s, 0);
  let neg = false;
  if (i < n) {
    const c = s.charCodeAt(i);
    if (c === 43 /* + */ || c === 45 /* - */) {
      neg = c === 45;
      i++;
    }
  }
  if (i >= n) return NaN;
  let c = s.charCodeAt(i);

  // inf / infinity / nan
  if (c >= 65) {
    let value: number;
    if (hasWordAt(s, i, 'inf')) {
      value = neg ? -Infinity : Infinity;
      i += hasWordAt(s, i, 'infinity') ? 8 : 3;
    } else if (hasWordAt(s, i, 'nan')) {
      return NaN; // "nan" is a NaN and anything else is not a number: the same marker either way
    } else {
      return NaN;
    }
    return skipSpace(s, i) === n ? value : NaN;
  }

  let base = 10;
  if (c === 48 /* 0 */ && i + 1 < n) {
    const p = lower(s.charCodeAt(i + 1));
    if (p === 120 /* x */) base = 16;
    else if (p === 98 /* b */) base = 2;
    if (base !== 10) i += 2;
  }

  // Mantissa: digits with at most one '.'.
  let digits = 0;
  let fracDigits = 0;
  let dot = false;
  let mantissa = 0;
  for (; i < n; i++) {
    c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (dot || base === 2) return NaN;
      dot = true;
      continue;
    }
    let d: number;
    if (base === 16) d = hexDigit(c);
    else d = c >= 48 && c <= 57 ? c - 48 : -1;
    if (d < 0) break;
    if (base === 2 && d > 1) return NaN;
    digits++;
    if (dot) fracDigits++;
    if (base !== 10) mantissa = mantissa * base + d;
  }
  if (digits === 0) return NaN;

  // Exponent: e for decimal, p (binary power) for hex; none for binary literals.
  let exp = 0;
  if (i < n && base !== 2) {
    const e = lower(s.charCodeAt(i));
    if ((base === 10 && e === 101) || (base === 16 && e === 112)) {
      i++;
      let negExp = false;
      if (i < n && (s.charCodeAt(i) === 43 || s.charCodeAt(i) === 45)) {
        negExp = s.charCodeAt(i) === 45;
        i++;
      }
      let expDigits = 0;
      for (; i < n; i++) {
        c = s.charCodeAt(i);
        if (c < 48 || c > 57) break;
        if (exp < 100000) exp = exp * 10 + (c - 48);
        expDigits++;
      }
      if (expDigits === 0) return NaN;
      if (negExp) exp = -exp;
    }
  }

  if (skipSpace(s, i) !== n) return NaN;

  // The string is a valid Lua decimal, which is also valid for JS Number() (it trims the same
  // ASCII whitespace), so let the engine do the correctly rounded conversion.
  if (base === 10) return Number(s);
  const value = mantissa * Math.pow(2, exp - (base === 16 ? 4 * fracDigits : 0));
  return neg ? -value : value;
}

/** Lua `tonumber(v)` for a request variable or an operand; NaN when not convertible. */
export function toLuaNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return parseLuaNumber(v);
  return NaN;
}
