// One URI structure: a hash of exact paths, and a radix tree of prefixes walked from the longest
// prefix of the request path to the shortest. Host mode keeps one of these per host bucket.
import type { Candidate, MatchInput, MatchResult } from './types.ts';
import { RadixTree, type RadixNode } from './radix.ts';
import { Slot } from './slot.ts';
import { HostTable, splitHostPort, type HostPattern } from './host.ts';

export class PathIndex<T> {
  private readonly exact = new Map<string, Slot<T>>();
  private tree: RadixTree<Slot<T>> | null = null;
  private count = 0;

  /** Number of candidates stored. */
  get size(): number {
    return this.count;
  }

  add(c: Candidate<T>): void {
    const key = c.path.key;
    if (c.path.kind === 'exact') {
      let slot = this.exact.get(key);
      if (slot === undefined) this.exact.set(key, (slot = new Slot()));
      slot.add(c);
    } else {
      const node = (this.tree ??= new RadixTree()).ensure(key);
      (node.value ??= new Slot()).add(c);
    }
    this.count++;
  }

  remove(c: Candidate<T>): boolean {
    const key = c.path.key;
    if (c.path.kind === 'exact') {
      const slot = this.exact.get(key);
      if (slot === undefined || !slot.remove(c)) return false;
      if (slot.size === 0) this.exact.delete(key);
    } else {
      const node = this.tree?.find(key);
      if (node === undefined || node.value === null || !node.value.remove(c)) return false;
      if (node.value.size === 0) {
        node.value = null;
        this.tree!.prune(node);
      }
    }
    this.count--;
    return true;
  }

  match(input: MatchInput): MatchResult<T> | undefined {
    const path = input.path;
    if (this.exact.size !== 0) {
      const slot = this.exact.get(path);
      if (slot !== undefined) {
        const r = slot.match(input, path.length);
        if (r !== undefined) return r;
      }
    }
    return this.tree === null ? undefined : walk(this.tree.root, path, 0, input);
  }
}

/** Deepest prefix first: descend as far as the path allows, then try nodes on the way back up. */
function walk<T>(node: RadixNode<Slot<T>>, path: string, pos: number, input: MatchInput): MatchResult<T> | undefined {
  if (pos < path.length && node.children !== null) {
    const child = node.children.get(path.charCodeAt(pos));
    if (child !== undefined && path.startsWith(child.label, pos)) {
      const r = walk(child, path, pos + child.label.length, input);
      if (r !== undefined) return r;
    }
  }
  return node.value === null ? undefined : node.value.match(input, pos);
}

/** Host buckets of `radixtree_host_uri`: one PathIndex per host pattern. */
export class HostIndex<T> {
  private readonly plain = new HostTable<PathIndex<T>>();
  /** Patterns naming a port, per port; matched against the raw Host header. */
  private readonly ported = new Map<string, HostTable<PathIndex<T>>>();

  get bucketCount(): number {
    let n = this.plain.size;
    for (const t of this.ported.values()) n += t.size;
    return n;
  }

  obtain(p: HostPattern): PathIndex<T> {
    let table = this.plain;
    if (p.port !== null) {
      let t = this.ported.get(p.port);
      if (t === undefined) this.ported.set(p.port, (t = new HostTable()));
      table = t;
    }
    let index = table.get(p);
    if (index === undefined) table.set(p, (index = new PathIndex()));
    return index;
  }

  /** Drops the bucket of `p` once it is empty. */
  release(p: HostPattern): void {
    const table = p.port === null ? this.plain : this.ported.get(p.port);
    if (table === undefined) return;
    const index = table.get(p);
    if (index !== undefined && index.size === 0) {
      table.delete(p);
      if (p.port !== null && table.size === 0) this.ported.delete(p.port);
    }
  }

  match(input: MatchInput): MatchResult<T> | undefined {
    if (this.ported.size !== 0) {
      const hp = splitHostPort(input.hostWithPort ?? input.host);
      if (hp.port !== '') {
        const table = this.ported.get(hp.port);
        if (table !== undefined) {
          const r = matchTable(table, hp.host, input);
          if (r !== undefined) return r;
        }
      }
    }
    return matchTable(this.plain, input.host, input);
  }
}

/** Exact host bucket, then wildcard buckets longest suffix first; a bucket without a match falls through. */
function matchTable<T>(table: HostTable<PathIndex<T>>, host: string, input: MatchInput): MatchResult<T> | undefined {
  if (table.exact.size !== 0) {
    const index = table.exact.get(host);
    if (index !== undefined) {
      const r = index.match(input);
      if (r !== undefined) return r;
    }
  }
  const lengths = table.lengths;
  for (let i = 0; i < lengths.length; i++) {
    const n = lengths[i];
    if (n > host.length) continue;
    const index = table.wild.get(n === 0 ? '' : n === host.length ? host : host.slice(host.length - n));
    if (index !== undefined) {
      const r = index.match(input);
      if (r !== undefined) return r;
    }
  }
  return undefined;
}
