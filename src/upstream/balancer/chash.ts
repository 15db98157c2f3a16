// Consistent hashing (APISIX `chash`): a ring of virtual points, POINTS_PER_WEIGHT per unit of
// (gcd-reduced) weight per node. A request's key is hashed and served by the first point at or
// after it, so adding or removing one of N nodes remaps only about 1/N of the keys. Point `i` of
// a node always hashes the same way, so a node's points for a smaller weight are a subset of its
// points for a larger one; weight changes and ring rescaling move few keys too.
//
// Key sources (`hash_on`): `vars` (default) reads the variable `key`; `header` the request header
// `key`; `cookie` the cookie `key`; `consumer` the authenticated consumer's name;
// `vars_combinations` resolves `key` as a template of `$var` / `${var}` references (`\$` is a
// literal dollar). An empty result (for a template: no variable resolved to a non-empty value)
// falls back to `remote_addr`, as APISIX does.
//
// On retries the ring is walked forward from the key's point to the next node not yet tried.
import type { VarValue } from '../../expr/vars.ts';
import { HASH_INIT, hashFeed, hashFeedInt, hashFinish, hashString } from './hash.ts';
import { isTried, type Balancer, type BalancerOptions, type PickContext, type UpstreamNode } from './types.ts';

/** Virtual points per unit of weight (as in resty.chash / nginx). */
export const POINTS_PER_WEIGHT = 160;
/** Ring size cap; above it every node's point count is scaled down proportionally (min 1). */
export const MAX_RING_POINTS = 1 << 16;

/** A parsed `vars_combinations` template: literal text and variable names, alternating. */
interface TemplatePart {
  literal: string;
  variable: string | undefined;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

function isNameChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

/** Parses `$host$remote_addr`, `${http_x}-$arg_a`; `\$` is a literal `$`, a lone `$` is literal. */
export function parseKeyTemplate(template: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let literal = '';
  let i = 0;
  while (i < template.length) {
    const ch = template[i];
    if (ch === '\\' && template[i + 1] === '$') {
      literal += '$';
      i += 2;
      continue;
    }
    if (ch !== '$') {
      literal += ch;
      i++;
      continue;
    }
    let name: string | undefined;
    let end = i + 1;
    if (template[end] === '{') {
      const close = template.indexOf('}', end + 1);
      let j = end + 1;
      while (j < template.length && isNameChar(template.charCodeAt(j))) j++;
      if (close === j && j > end + 1) {
        name = template.slice(end + 1, j);
        end = close + 1;
      }
    } else {
      let j = end;
      while (j < template.length && isNameChar(template.charCodeAt(j))) j++;
      if (j > end) {
        name = template.slice(end, j);
        end = j;
      }
    }
    if (name === undefined) {
      literal += '$';
      i++;
      continue;
    }
    parts.push({ literal, variable: name });
    literal = '';
    i = end;
  }
  if (literal !== '') parts.push({ literal, variable: undefined });
  return parts;
}

/** A request variable as hash input; strings (the usual case) pass through without allocation. */
function varString(value: VarValue): string {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

const MODE = { vars: 0, header: 1, cookie: 2, consumer: 3, combinations: 4 } as const;
type Mode = (typeof MODE)[keyof typeof MODE];

export class ChashBalancer implements Balancer {
  readonly #nodes: readonly UpstreamNode[];
  /** Sorted point hashes and, at the same index, the owning node's index. */
  readonly #ring: Uint32Array;
  readonly #owner: Uint32Array;
  readonly #mode: Mode;
  /** Variable name for the vars/header/cookie modes. */
  readonly #varName: string;
  readonly #template: readonly TemplatePart[];

  /** `nodes` must be normalized and contain only weight > 0 nodes. */
  constructor(nodes: readonly UpstreamNode[], options: BalancerOptions = {}) {
    this.#nodes = nodes;
    const key = options.key ?? '';
    const hashOn = options.hash_on ?? 'vars';
    this.#template = [];
    this.#varName = '';
    switch (hashOn) {
      case 'header':
        this.#mode = MODE.header;
        this.#varName = 'http_' + key.toLowerCase().replaceAll('-', '_');
        break;
      case 'cookie':
        this.#mode = MODE.cookie;
        this.#varName = 'cookie_' + key;
        break;
      case 'consumer':
        this.#mode = MODE.consumer;
        break;
      case 'vars_combinations':
        this.#mode = MODE.combinations;
        this.#template = parseKeyTemplate(key);
        break;
      default:
        this.#mode = MODE.vars;
        this.#varName = key === '' ? 'remote_addr' : key;
    }
    [this.#ring, this.#owner] = buildRing(nodes);
  }

  /** The unsigned 32-bit hash of the request's key (after the `remote_addr` fallback). */
  hashOf(ctx: PickContext): number {
    const vars = ctx.vars;
    let s: string;
    switch (this.#mode) {
      case MODE.consumer:
        s = ctx.consumerName ?? '';
        break;
      case MODE.combinations: {
        let h = HASH_INIT;
        let resolved = false;
        const parts = this.#template;
        for (let i = 0; i < parts.length; i++) {
          const part = parts[i];
          if (part.literal !== '') h = hashFeed(h, part.literal);
          if (part.variable !== undefined) {
            const value = varString(vars.get(part.variable));
            if (value !== '') {
              resolved = true;
              h = hashFeed(h, value);
            }
          }
        }
        if (resolved) return hashFinish(h);
        s = '';
        break;
      }
      default:
        s = varString(vars.get(this.#varName));
    }
    if (s === '') s = varString(vars.get('remote_addr'));
    return hashString(s);
  }

  pick(ctx: PickContext, tried?: ReadonlySet<string>): UpstreamNode | undefined {
    const nodes = this.#nodes;
    const n = nodes.length;
    if (n === 0) return undefined;
    if (n === 1) return isTried(tried, nodes[0].key) ? undefined : nodes[0];
    const ring = this.#ring;
    const owner = this.#owner;
    const h = this.hashOf(ctx);
    // First point with hash >= h, wrapping to 0.
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ring[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    if (lo === ring.length) lo = 0;
    if (tried === undefined || tried.size === 0) return nodes[owner[lo]];
    // Retry: walk the ring to the next node not tried. Every node owns at least one point, so
    // the walk ends once an untried node is known to exist.
    if (tried.size >= n && this.#allTried(tried)) return undefined;
    for (let i = lo; ; ) {
      const node = nodes[owner[i]];
      if (!tried.has(node.key)) return node;
      if (++i === ring.length) i = 0;
    }
  }

  #allTried(tried: ReadonlySet<string>): boolean {
    for (const node of this.#nodes) if (!tried.has(node.key)) return false;
    return true;
  }

  /** Number of virtual points on the ring (for tests and status output). */
  get ringSize(): number {
    return this.#ring.length;
  }
}

/** Builds the sorted ring: point hashes and their owners. */
function buildRing(nodes: readonly UpstreamNode[]): [Uint32Array, Uint32Array] {
  if (nodes.length < 2) return [new Uint32Array(0), new Uint32Array(0)];
  let g = 0;
  for (const node of nodes) g = gcd(node.weight, g);
  const counts = nodes.map((node) => POINTS_PER_WEIGHT * (node.weight / g));
  const total = counts.reduce((a, b) => a + b, 0);
  if (total > MAX_RING_POINTS) {
    const scale = MAX_RING_POINTS / total;
    for (let i = 0; i < counts.length; i++) counts[i] = Math.max(1, Math.floor(counts[i] * scale));
  }
  const size = counts.reduce((a, b) => a + b, 0);
  // Pack (hash, owner) into one double so a numeric typed-array sort orders by hash, then owner.
  // Owners stay below 2^21 (far more nodes than the point cap allows), so the product is exact.
  const packed = new Float64Array(size);
  let p = 0;
  for (let owner = 0; owner < nodes.length; owner++) {
    const base = hashFeed(HASH_INIT, nodes[owner].key);
    for (let i = 0; i < counts[owner]; i++) packed[p++] = hashFinish(hashFeedInt(base, i)) * 0x200000 + owner;
  }
  packed.sort();
  const ring = new Uint32Array(size);
  const ownerOf = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    const v = packed[i];
    const owner = v % 0x200000;
    ownerOf[i] = owner;
    ring[i] = (v - owner) / 0x200000;
  }
  return [ring, ownerOf];
}
