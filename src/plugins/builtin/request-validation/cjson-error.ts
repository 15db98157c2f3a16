// The error lua-cjson gives for text that is not JSON (`Expected value but found invalid token at
// character 1`), which APISIX's request-validation sends to the client. Only called after
// JSON.parse refused the text, so it walks the text once with cjson's grammar to find where and why.

type TokenKind = 'T_OBJ_BEGIN' | 'T_OBJ_END' | 'T_ARR_BEGIN' | 'T_ARR_END' | 'T_STRING' | 'T_NUMBER' | 'T_BOOLEAN' | 'T_NULL' | 'T_COLON' | 'T_COMMA' | 'T_END';
type Token = { kind: TokenKind; at: number } | { kind: 'T_ERROR'; at: number; reason: string };

class CjsonError extends Error {}

const PUNCTUATION: Record<string, TokenKind> = {
  '{': 'T_OBJ_BEGIN', '}': 'T_OBJ_END', '[': 'T_ARR_BEGIN', ']': 'T_ARR_END', ':': 'T_COLON', ',': 'T_COMMA',
};
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/;
const NUMBER_LIKE = /^[-+0-9.eExXa-fA-FinINaN]+/;

class Scanner {
  readonly text: string;
  pos = 0;

  constructor(text: string) {
    this.text = text;
  }

  next(): Token {
    const t = this.text;
    while (this.pos < t.length && ' \t\n\r'.includes(t[this.pos])) this.pos++;
    const at = this.pos;
    if (at >= t.length) return { kind: 'T_END', at };
    const ch = t[at];
    const punct = PUNCTUATION[ch];
    if (punct) {
      this.pos++;
      return { kind: punct, at };
    }
    if (ch === '"') return this.string(at);
    if (ch === '-' || (ch >= '0' && ch <= '9')) {
      const m = NUMBER.exec(t.slice(at));
      const loose = NUMBER_LIKE.exec(t.slice(at))?.[0] ?? '';
      if (!m || m[0].length !== loose.length) return { kind: 'T_ERROR', at, reason: 'invalid number' };
      this.pos += m[0].length;
      return { kind: 'T_NUMBER', at };
    }
    for (const [word, kind] of [['true', 'T_BOOLEAN'], ['false', 'T_BOOLEAN'], ['null', 'T_NULL']] as const) {
      if (t.startsWith(word, at)) {
        this.pos += word.length;
        return { kind, at };
      }
    }
    return { kind: 'T_ERROR', at, reason: 'invalid token' };
  }

  string(at: number): Token {
    const t = this.text;
    let i = at + 1;
    while (i < t.length) {
      const ch = t[i];
      if (ch === '"') {
        this.pos = i + 1;
        return { kind: 'T_STRING', at };
      }
      if (ch === '\\') {
        const esc = t[i + 1];
        if (esc === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) return { kind: 'T_ERROR', at: i, reason: 'invalid unicode escape code' };
          i += 6;
          continue;
        }
        if (esc === undefined || !'"\\/bfnrt'.includes(esc)) return { kind: 'T_ERROR', at: i, reason: 'invalid escape code' };
        i += 2;
        continue;
      }
      i++;
    }
    return { kind: 'T_ERROR', at: t.length, reason: 'unexpected end of string' };
  }
}

function fail(expected: string, token: Token): never {
  const found = token.kind === 'T_ERROR' ? token.reason : token.kind;
  throw new CjsonError(`Expected ${expected} but found ${found} at character ${token.at + 1}`);
}

/** cjson's default nesting limit (`decode_max_depth`). */
const MAX_DEPTH = 1000;

function value(s: Scanner, token: Token, depth: number): void {
  switch (token.kind) {
    case 'T_OBJ_BEGIN':
    case 'T_ARR_BEGIN':
      if (depth + 1 > MAX_DEPTH) throw new CjsonError(`Found too many nested data structures (${depth + 1}) at character ${token.at + 1}`);
      return token.kind === 'T_OBJ_BEGIN' ? object(s, depth + 1) : array(s, depth + 1);
    case 'T_STRING':
    case 'T_NUMBER':
    case 'T_BOOLEAN':
    case 'T_NULL':
      return;
    default:
      fail('value', token);
  }
}

function object(s: Scanner, depth: number): void {
  let token = s.next();
  if (token.kind === 'T_OBJ_END') return;
  for (;;) {
    if (token.kind !== 'T_STRING') fail('object key string', token);
    token = s.next();
    if (token.kind !== 'T_COLON') fail('colon', token);
    value(s, s.next(), depth);
    token = s.next();
    if (token.kind === 'T_OBJ_END') return;
    if (token.kind !== 'T_COMMA') fail('comma or object end', token);
    token = s.next();
  }
}

function array(s: Scanner, depth: number): void {
  let token = s.next();
  if (token.kind === 'T_ARR_END') return;
  for (;;) {
    value(s, token, depth);
    token = s.next();
    if (token.kind === 'T_ARR_END') return;
    if (token.kind !== 'T_COMMA') fail('comma or array end', token);
    token = s.next();
  }
}

/** cjson's message for `text`; a generic one if cjson's grammar would have accepted it. */
export function cjsonDecodeError(text: string): string {
  const s = new Scanner(text);
  try {
    value(s, s.next(), 0);
    const rest = s.next();
    if (rest.kind !== 'T_END') fail('the end', rest);
  } catch (err) {
    if (err instanceof CjsonError) return err.message;
    throw err;
  }
  return 'Expected value but found invalid token at character 1';
}
