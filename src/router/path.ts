// Compiles a route path (`uri` / `uris`) the way lua-resty-radixtree reads it:
//   /a/b          exact: looked up in a hash first
//   /a/b*         prefix /a/b (no segment boundary)
//   /a/*/c        stored under the prefix before the first `*` (/a/), plus a full-path check in
//                 which `*` spans any characters, `/` included
//   /user/:name   (parameter mode only) stored under /user/, `:name` is one non-empty segment
//   /f/:n/*rest   (parameter mode only) a segment starting with `*` is a catch-all captured as
//                 `rest`; a bare `*` segment is captured as `:ext`
// Outside parameter mode `:` is an ordinary character.

/** A segment of the part of a pattern after its stored prefix, for the per-node segment trie. */
export type Seg =
  | { readonly kind: 'lit'; readonly text: string }
  | { readonly kind: 'param' }
  /** Catch-all: always the last segment. */
  | { readonly kind: 'rest' };

export type PathKind = 'exact' | 'prefix' | 'pattern';

export interface CompiledPath {
  /** The path as written. */
  readonly source: string;
  readonly kind: PathKind;
  /** Exact path, or the prefix the route is stored under. */
  readonly key: string;
  /** Full-path check of a pattern (anchored); null for exact and prefix paths. */
  readonly regex: RegExp | null;
  /** Capture names of `regex`, in group order; null when nothing is reported as params. */
  readonly names: readonly string[] | null;
  /** The pattern after `key` as trie segments; null when it cannot be expressed that way. */
  readonly segs: readonly Seg[] | null;
}

export const MAX_PATH_LENGTH = 4096;

type PartKind = 'lit' | 'param' | 'star' | 'glob';
interface Part { kind: PartKind; text: string; name: string }

const RE_SPECIAL = /[.*+?^${}()|[\]\\]/g;
function escapeRe(text: string): string {
  return text.replace(RE_SPECIAL, '\\$&');
}

function bad(source: string, why: string): Error {
  return new Error(`invalid uri ${JSON.stringify(source)}: ${why}`);
}

export function compilePath(source: unknown, withParams: boolean): CompiledPath {
  if (typeof source !== 'string') throw new Error(`invalid uri ${JSON.stringify(source) ?? String(source)}: must be a string`);
  if (source.length === 0) throw bad(source, 'must not be empty');
  if (source.length > MAX_PATH_LENGTH) throw bad(source.slice(0, 64) + '...', `longer than ${MAX_PATH_LENGTH} characters`);
  if (source.charCodeAt(0) !== 0x2f) throw bad(source, 'must start with "/"');

  const texts = source.split('/');
  const parts: Part[] = [];
  let special = -1; // char offset of the first `*` or parameter
  let specialPart = -1;
  let hasParam = false;
  let offset = 0;
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    let part: Part;
    let at = -1;
    if (withParams && text.charCodeAt(0) === 0x3a /* : */) {
      const name = text.slice(1);
      if (name.length === 0) throw bad(source, 'parameter without a name');
      if (name.includes('*')) throw bad(source, `parameter name ${JSON.stringify(name)} contains "*"`);
      part = { kind: 'param', text, name };
      hasParam = true;
      at = offset;
    } else if (text.charCodeAt(0) === 0x2a /* * */) {
      const name = text.slice(1);
      if (name.includes('*')) throw bad(source, `wildcard name ${JSON.stringify(name)} contains "*"`);
      part = { kind: 'star', text, name };
      at = offset;
    } else if (text.includes('*')) {
      part = { kind: 'glob', text, name: '' };
      at = offset + text.indexOf('*');
    } else {
      part = { kind: 'lit', text, name: '' };
    }
    if (at !== -1 && special === -1) {
      special = at;
      specialPart = i;
    }
    parts.push(part);
    offset += text.length + 1;
  }

  if (special === -1) return { source, kind: 'exact', key: source, regex: null, names: null, segs: null };
  // A single trailing `*` with no parameter before it: a plain prefix.
  if (!hasParam && special === source.length - 1) {
    return { source, kind: 'prefix', key: source.slice(0, -1), regex: null, names: null, segs: null };
  }

  const names: string[] = [];
  const pieces: string[] = [];
  for (const part of parts) {
    switch (part.kind) {
      case 'lit':
        pieces.push(escapeRe(part.text));
        break;
      case 'param':
        pieces.push('([^/]+)');
        names.push(part.name);
        break;
      case 'star':
        if (withParams) {
          pieces.push('(.*)');
          names.push(part.name || ':ext');
        } else {
          pieces.push('.*');
        }
        break;
      case 'glob':
        pieces.push(part.text.split('*').map(escapeRe).join('.*'));
        break;
    }
  }
  const regex = new RegExp('^' + pieces.join('/') + '$', 's');

  // Trie form: only when the pattern after its prefix is whole segments (literal or parameter),
  // optionally closed by one catch-all segment.
  let segs: Seg[] | null = [];
  for (let i = specialPart; i < parts.length; i++) {
    const part = parts[i];
    if (part.kind === 'lit') segs.push({ kind: 'lit', text: part.text });
    else if (part.kind === 'param') segs.push({ kind: 'param' });
    else if (part.kind === 'star' && i === parts.length - 1) segs.push({ kind: 'rest' });
    else {
      segs = null;
      break;
    }
  }

  return {
    source,
    kind: 'pattern',
    key: source.slice(0, special),
    regex,
    names: withParams && names.length > 0 ? names : null,
    segs,
  };
}

/** Runs a pattern's full-path check; returns the params (or an empty marker) or undefined. */
export function matchPattern(path: CompiledPath, subject: string): Record<string, string> | null | undefined {
  const m = path.regex!.exec(subject);
  if (m === null) return undefined;
  const names = path.names;
  if (names === null) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const value = m[i + 1] ?? '';
    if (name === '__proto__') Object.defineProperty(params, name, { value, enumerable: true, writable: true, configurable: true });
    else params[name] = value;
  }
  return params;
}
