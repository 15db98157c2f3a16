// Request bodies: read with APISIX's 1.5 MiB limit, and decoded with lua-cjson's error wording
// (`Expected value but found invalid token at character 1`), which clients and tests see in
// `{"error_msg":"invalid request body: ..."}`.
import type { IncomingMessage } from 'node:http';

export const MAX_REQ_BODY = 1024 * 1024 * 1.5;

/** cjson's default nesting limit. */
const MAX_DEPTH = 1000;

export type BodyResult = { ok: true; text: string | undefined } | { ok: false; error: string };

/**
 * Reads the whole body (undefined when empty). Over the limit: APISIX's
 * `request size N is greater than the maximum size 1572864 allowed`; the caller closes the connection.
 */
export function readBody(req: IncomingMessage, max = MAX_REQ_BODY): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    req.resume();
    return Promise.resolve({ ok: false, error: sizeError(declared, max) });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (r: BodyResult) => {
      if (done) return;
      done = true;
      resolve(r);
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > max) {
        finish({ ok: false, error: sizeError(size, max) });
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => finish({ ok: true, text: size === 0 ? undefined : Buffer.concat(chunks).toString('utf8') }));
    req.on('error', (err) => finish({ ok: false, error: err.message }));
    req.on('close', () => finish({ ok: false, error: 'client closed the connection' }));
  });
}

function sizeError(size: number, max: number): string {
  return `request size ${size} is greater than the maximum size ${max} allowed`;
}

export type JsonResult = { ok: true; value: unknown } | { ok: false; error: string };

/** JSON.parse with cjson's limits and error messages. */
export function decodeJson(text: string): JsonResult {
  const syntax = cjsonCheck(text);
  if (syntax) return { ok: false, error: syntax };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

// --- a tokenizer and recursive-descent checker that fails where lua-cjson fails, with its words ---

type TokType = 'T_OBJ_BEGIN' | 'T_OBJ_END' | 'T_ARR_BEGIN' | 'T_ARR_END' | 'T_STRING' | 'T_NUMBER' | 'T_BOOLEAN' | 'T_NULL' | 'T_COLON' | 'T_COMMA' | 'T_END' | 'T_ERROR';

interface Tok {
  type: TokType;
  index: number;
  error?: string;
}

class ParseError extends Error {}

const NUMBER_RE = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/;
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);

function cjsonCheck(text: string): string | undefined {
  let pos = 0;
  let depth = 0;
  const next = (): Tok => {
    while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t' || text[pos] === '\n' || text[pos] === '\r')) pos++;
    const index = pos;
    if (pos >= text.length) return { type: 'T_END', index };
    const ch = text[pos];
    const single: Record<string, TokType> = { '{': 'T_OBJ_BEGIN', '}': 'T_OBJ_END', '[': 'T_ARR_BEGIN', ']': 'T_ARR_END', ':': 'T_COLON', ',': 'T_COMMA' };
    if (single[ch]) {
      pos++;
      return { type: single[ch], index };
    }
    if (ch === '"') {
      pos++;
      while (true) {
        if (pos >= text.length) return { type: 'T_ERROR', index, error: 'unexpected end of string' };
        const c = text[pos];
        if (c === '"') {
          pos++;
          return { type: 'T_STRING', index };
        }
        if (c === '\\') {
          const e = text[pos + 1];
          if (e === 'u') {
            if (!/^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) return { type: 'T_ERROR', index, error: 'invalid unicode escape code' };
            pos += 6;
            continue;
          }
          if (e === undefined || !ESCAPES.has(e)) return { type: 'T_ERROR', index, error: 'invalid escape code' };
          pos += 2;
          continue;
        }
        if (c.charCodeAt(0) < 0x20) return { type: 'T_ERROR', index, error: 'invalid token' };
        pos++;
      }
    }
    if (ch === '-' || (ch >= '0' && ch <= '9')) {
      const m = NUMBER_RE.exec(text.slice(pos, pos + 512));
      if (!m) return { type: 'T_ERROR', index, error: 'invalid number' };
      pos += m[0].length;
      return { type: 'T_NUMBER', index };
    }
    for (const [word, type] of [['true', 'T_BOOLEAN'], ['false', 'T_BOOLEAN'], ['null', 'T_NULL']] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return { type, index };
      }
    }
    return { type: 'T_ERROR', index, error: 'invalid token' };
  };
  const fail = (expected: string, tok: Tok): never => {
    throw new ParseError(`Expected ${expected} but found ${tok.type === 'T_ERROR' ? tok.error : tok.type} at character ${tok.index + 1}`);
  };
  const enter = (tok: Tok) => {
    if (++depth > MAX_DEPTH) throw new ParseError(`Found too many nested data structures (${depth}) at character ${tok.index + 1}`);
  };
  // Iterative: a 1.5 MiB body of `[[[[…` must not blow the stack. Each frame is an open container.
  const stack: Array<'obj' | 'arr'> = [];
  const value = (tok: Tok): boolean => {
    // Returns true when a container was opened (its contents follow).
    switch (tok.type) {
      case 'T_STRING': case 'T_NUMBER': case 'T_BOOLEAN': case 'T_NULL':
        return false;
      case 'T_OBJ_BEGIN':
        enter(tok);
        stack.push('obj');
        return true;
      case 'T_ARR_BEGIN':
        enter(tok);
        stack.push('arr');
        return true;
      default:
        return fail('value', tok);
    }
  };
  try {
    let opened = value(next());
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      let tok = next();
      if (opened) {
        // First element of a new container, or its immediate end.
        opened = false;
        if (top === 'obj' && tok.type === 'T_OBJ_END') { stack.pop(); depth--; continue; }
        if (top === 'arr' && tok.type === 'T_ARR_END') { stack.pop(); depth--; continue; }
      } else {
        // After a completed element: a comma or the container's end.
        if (top === 'obj') {
          if (tok.type === 'T_OBJ_END') { stack.pop(); depth--; continue; }
          if (tok.type !== 'T_COMMA') fail('comma or object end', tok);
        } else {
          if (tok.type === 'T_ARR_END') { stack.pop(); depth--; continue; }
          if (tok.type !== 'T_COMMA') fail('comma or array end', tok);
        }
        tok = next();
      }
      if (top === 'obj') {
        if (tok.type !== 'T_STRING') fail('object key string', tok);
        const colon = next();
        if (colon.type !== 'T_COLON') fail('colon', colon);
        tok = next();
      }
      opened = value(tok);
    }
    const end = next();
    if (end.type !== 'T_END') fail('the end', end);
    return undefined;
  } catch (err) {
    if (err instanceof ParseError) return err.message;
    throw err;
  }
}
