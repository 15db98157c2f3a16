// The candidates stored under one path node (one exact path or one prefix), kept sorted by
// candidateOrder. Plain candidates (exact/prefix paths) only need their conditions checked;
// pattern candidates also need a full-path check. When a node collects many patterns (say
// thousands of `/users/:id/...` routes under `/users/`), a segment trie narrows them to the few
// whose shape fits the request before any condition runs; the result is the same as a linear scan.
import type { Candidate, MatchInput, MatchResult } from './types.ts';
import { admits, candidateOrder } from './types.ts';
import { matchPattern } from './path.ts';

/** Pattern count from which a node indexes its patterns in a segment trie. */
export const TRIE_THRESHOLD = 16;

function insertSorted<T>(list: Candidate<T>[], c: Candidate<T>): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (candidateOrder(list[mid], c) <= 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo === list.length) list.push(c);
  else list.splice(lo, 0, c);
}

function removeFrom<T>(list: Candidate<T>[], c: Candidate<T>): boolean {
  const i = list.indexOf(c);
  if (i === -1) return false;
  list.splice(i, 1);
  return true;
}

class TrieNode<T> {
  lit: Map<string, TrieNode<T>> | null = null;
  param: TrieNode<T> | null = null;
  /** Patterns ending right after the segment that led here. */
  end: Candidate<T>[] = [];
  /** Patterns whose next (last) segment is a catch-all. */
  rest: Candidate<T>[] = [];

  isEmpty(): boolean {
    return this.end.length === 0 && this.rest.length === 0 && this.param === null && (this.lit === null || this.lit.size === 0);
  }
}

class SegmentTrie<T> {
  private readonly root = new TrieNode<T>();

  insert(c: Candidate<T>): void {
    const segs = c.path.segs!;
    let node = this.root;
    for (const seg of segs) {
      if (seg.kind === 'rest') {
        node.rest.push(c);
        return;
      }
      let next: TrieNode<T> | undefined;
      if (seg.kind === 'param') next = node.param ??= new TrieNode();
      else {
        const lit = (node.lit ??= new Map());
        next = lit.get(seg.text);
        if (next === undefined) lit.set(seg.text, (next = new TrieNode()));
      }
      node = next;
    }
    node.end.push(c);
  }

  remove(c: Candidate<T>): void {
    const segs = c.path.segs!;
    const trail: TrieNode<T>[] = [];
    let node: TrieNode<T> | undefined = this.root;
    let k = 0;
    for (; k < segs.length; k++) {
      const seg = segs[k];
      if (seg.kind === 'rest') break;
      trail.push(node);
      node = seg.kind === 'param' ? (node.param ?? undefined) : node.lit?.get(seg.text);
      if (node === undefined) return;
    }
    removeFrom(k < segs.length ? node.rest : node.end, c);
    // Prune emptied nodes bottom-up.
    for (let d = trail.length - 1; d >= 0 && node.isEmpty(); d--) {
      const parent = trail[d];
      const seg = segs[d];
      if (seg.kind === 'param') parent.param = null;
      else if (seg.kind === 'lit') {
        parent.lit!.delete(seg.text);
        if (parent.lit!.size === 0) parent.lit = null;
      }
      node = parent;
    }
  }

  /** Appends every pattern whose shape fits `path` from `pos` (just after the node prefix). */
  collect(path: string, pos: number, out: Candidate<T>[]): void {
    collectFrom(this.root, path, pos, out);
  }
}

function collectFrom<T>(node: TrieNode<T>, path: string, pos: number, out: Candidate<T>[]): void {
  for (let i = 0; i < node.rest.length; i++) out.push(node.rest[i]);
  let end = path.indexOf('/', pos);
  const last = end === -1;
  if (last) end = path.length;
  if (node.lit !== null) {
    const child = node.lit.get(path.slice(pos, end));
    if (child !== undefined) {
      if (last) for (let i = 0; i < child.end.length; i++) out.push(child.end[i]);
      else collectFrom(child, path, end + 1, out);
    }
  }
  const param = node.param;
  if (param !== null && end > pos) {
    if (last) for (let i = 0; i < param.end.length; i++) out.push(param.end[i]);
    else collectFrom(param, path, end + 1, out);
  }
}

/** A sorted run of candidates: plain ones, and patterns (trie-indexed once numerous). */
class Group<T> {
  /** Exact and prefix candidates, sorted. */
  readonly plain: Candidate<T>[] = [];
  /** Pattern candidates, sorted. */
  readonly patterns: Candidate<T>[] = [];
  /** Set once `patterns` grows past TRIE_THRESHOLD. */
  private trie: SegmentTrie<T> | null = null;
  /** With a trie: the patterns it cannot hold (a `*` that is not a trailing catch-all segment), sorted. */
  private odd: Candidate<T>[] = [];

  get size(): number {
    return this.plain.length + this.patterns.length;
  }

  add(c: Candidate<T>): void {
    if (c.path.kind !== 'pattern') {
      insertSorted(this.plain, c);
      return;
    }
    insertSorted(this.patterns, c);
    if (this.trie !== null) this.index(c);
    else if (this.patterns.length >= TRIE_THRESHOLD) {
      this.trie = new SegmentTrie();
      for (const p of this.patterns) this.index(p);
    }
  }

  private index(c: Candidate<T>): void {
    if (c.path.segs !== null) this.trie!.insert(c);
    else insertSorted(this.odd, c);
  }

  remove(c: Candidate<T>): boolean {
    if (c.path.kind !== 'pattern') return removeFrom(this.plain, c);
    if (!removeFrom(this.patterns, c)) return false;
    if (this.trie !== null) {
      if (c.path.segs !== null) this.trie.remove(c);
      else removeFrom(this.odd, c);
      if (this.patterns.length === 0) {
        this.trie = null;
        this.odd = [];
      }
    }
    return true;
  }

  /** The patterns whose shape can fit `path`, sorted (all of them without a trie). */
  fitting(path: string, prefixLength: number): Candidate<T>[] {
    if (this.trie === null) return this.patterns;
    const fit: Candidate<T>[] = [];
    this.trie.collect(path, prefixLength, fit);
    for (let i = 0; i < this.odd.length; i++) fit.push(this.odd[i]);
    if (fit.length > 1) fit.sort(candidateOrder);
    return fit;
  }
}

const NONE: Candidate<never>[] = [];

function accept<T>(c: Candidate<T>, input: MatchInput): MatchResult<T> | undefined {
  if (c.path.kind !== 'pattern') return admits(c, input) ? { value: c.value, id: c.id, path: c.path.source } : undefined;
  // Captures first, so `vars` can test `uri_param_*` (lua-resty-radixtree checks vars before capturing,
  // which makes such routes unmatchable there).
  const params = matchPattern(c.path, input.path);
  if (params === undefined) return undefined;
  if (input.paramsSink) input.paramsSink.params = params ?? undefined;
  if (!admits(c, input)) return undefined;
  return params === null ? { value: c.value, id: c.id, path: c.path.source } : { value: c.value, id: c.id, path: c.path.source, params };
}

/**
 * The candidates of one path node. Routes whose hosts are plain exact hosts (uri modes) are also
 * filed per host, so a request only looks at the group of its own host plus the open group;
 * walking the groups in merged order gives the same winner as one sorted list would.
 */
export class Slot<T> extends Group<T> {
  // The inherited group is the open one (routes without host keys).
  private keyed: Map<string, Group<T>> | null = null;
  private count = 0;

  /** Number of candidates (a host-keyed candidate counts once). */
  override get size(): number {
    return this.count;
  }

  override add(c: Candidate<T>): void {
    const keys = c.hostKeys;
    if (keys === null) super.add(c);
    else {
      const keyed = (this.keyed ??= new Map());
      for (const key of keys) {
        let group = keyed.get(key);
        if (group === undefined) keyed.set(key, (group = new Group()));
        group.add(c);
      }
    }
    this.count++;
  }

  override remove(c: Candidate<T>): boolean {
    const keys = c.hostKeys;
    let removed = false;
    if (keys === null) removed = super.remove(c);
    else if (this.keyed !== null) {
      for (const key of keys) {
        const group = this.keyed.get(key);
        if (group !== undefined && group.remove(c)) {
          removed = true;
          if (group.size === 0) this.keyed.delete(key);
        }
      }
      if (this.keyed.size === 0) this.keyed = null;
    }
    if (removed) this.count--;
    return removed;
  }

  /** First candidate (in order) that passes its conditions and its full-path check. */
  match(input: MatchInput, prefixLength: number): MatchResult<T> | undefined {
    const a = this.plain;
    const b = this.patterns.length === 0 ? NONE : this.fitting(input.path, prefixLength);
    const group = this.keyed === null ? undefined : this.keyed.get(input.host);
    if (b.length === 0 && group === undefined) {
      for (let i = 0; i < a.length; i++) {
        const c = a[i];
        if (admits(c, input)) return { value: c.value, id: c.id, path: c.path.source };
      }
      return undefined;
    }
    const c = group === undefined ? NONE : group.plain;
    const d = group === undefined || group.patterns.length === 0 ? NONE : group.fitting(input.path, prefixLength);
    let i = 0;
    let j = 0;
    let k = 0;
    let l = 0;
    for (;;) {
      // Pick the first remaining candidate of the four sorted runs.
      let best: Candidate<T> | undefined;
      let from = 0;
      if (i < a.length) {
        best = a[i];
        from = 1;
      }
      if (j < b.length && (best === undefined || candidateOrder(b[j], best) < 0)) {
        best = b[j];
        from = 2;
      }
      if (k < c.length && (best === undefined || candidateOrder(c[k], best) < 0)) {
        best = c[k];
        from = 3;
      }
      if (l < d.length && (best === undefined || candidateOrder(d[l], best) < 0)) {
        best = d[l];
        from = 4;
      }
      if (best === undefined) return undefined;
      if (from === 1) i++;
      else if (from === 2) j++;
      else if (from === 3) k++;
      else l++;
      const r = accept(best, input);
      if (r !== undefined) return r;
    }
  }
}
