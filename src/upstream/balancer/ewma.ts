// Peak-EWMA latency balancing (APISIX `ewma`). Each node keeps an exponentially weighted moving
// average of its response latency that decays with time (DECAY_TIME_MS, 10 s as in APISIX):
// a sample observed `dt` after the previous one gets weight 1 - exp(-dt / DECAY_TIME_MS).
// "Peak": a sample above the current average replaces it at once, so a slowing node is avoided
// immediately while recovery is gradual. When scoring, the average also decays towards 0 with
// the time since it was last updated, so an idle slow node is eventually tried again.
//
// score = ewma × (active + 1) / weight; a pick draws two distinct random untried nodes and keeps
// the lower score ("power of two choices", as APISIX). Nodes without samples start at 0. A failed
// request counts as at least FAILURE_PENALTY_MS, so a node that fails fast does not look fast.
//
// As in APISIX (whose averages live in a shared dict keyed by node address), a node's average and
// its last-sample time belong to the address, not to one balancer: they survive upstream and route
// changes and are shared by every upstream listing the node. A removed node that comes back later
// starts from its old average, decayed over the time it was away. Active counts stay per balancer.
import { indexByKey, isTried, type Balancer, type PickContext, type UpstreamNode } from './types.ts';

export const DECAY_TIME_MS = 10_000;
export const FAILURE_PENALTY_MS = 1_000;

/** One node address's latency state. */
export interface EwmaStats {
  ewma: number;
  /** Time of the last sample; NaN = never sampled. */
  touched: number;
}

/** The worker's shared per-address state (APISIX's `balancer-ewma` shared dict). */
const SHARED_STATS = new Map<string, EwmaStats>();
/** Above this many addresses, ones idle long enough to have decayed to nothing are dropped. */
const SHARED_STATS_PRUNE_AT = 4096;

function sharedStats(key: string, store: Map<string, EwmaStats>, now: number): EwmaStats {
  let stats = store.get(key);
  if (stats === undefined) {
    if (store === SHARED_STATS && store.size >= SHARED_STATS_PRUNE_AT) {
      for (const [k, v] of store) if (Number.isNaN(v.touched) || now - v.touched > 20 * DECAY_TIME_MS) store.delete(k);
    }
    stats = { ewma: 0, touched: NaN };
    store.set(key, stats);
  }
  return stats;
}

export interface EwmaHooks {
  /** Monotonic clock in milliseconds (default `performance.now`). */
  now?: () => number;
  /** Uniform random in [0, 1) (default `Math.random`). */
  random?: () => number;
  /** Per-address state; default: the worker's shared store, or a private one with a custom `now` (clocks do not mix). */
  store?: Map<string, EwmaStats>;
}

export class EwmaBalancer implements Balancer {
  readonly #nodes: readonly UpstreamNode[];
  readonly #index: Map<string, number>;
  readonly #invWeight: Float64Array;
  readonly #stats: EwmaStats[];
  readonly #active: Float64Array;
  readonly #now: () => number;
  readonly #random: () => number;

  /** `nodes` must be normalized and contain only weight > 0 nodes. */
  constructor(nodes: readonly UpstreamNode[], hooks: EwmaHooks = {}) {
    this.#nodes = nodes;
    this.#index = indexByKey(nodes);
    this.#invWeight = Float64Array.from(nodes, (n) => 1 / n.weight);
    this.#active = new Float64Array(nodes.length);
    this.#now = hooks.now ?? (() => performance.now());
    this.#random = hooks.random ?? Math.random;
    const store = hooks.store ?? (hooks.now ? new Map<string, EwmaStats>() : SHARED_STATS);
    const now = this.#now();
    this.#stats = nodes.map((n) => sharedStats(n.key, store, now));
  }

  pick(_ctx: PickContext, tried?: ReadonlySet<string>): UpstreamNode | undefined {
    const nodes = this.#nodes;
    const n = nodes.length;
    if (n === 0) return undefined;
    if (n === 1) return isTried(tried, nodes[0].key) ? undefined : nodes[0];
    let a: number;
    let b: number;
    if (tried === undefined || tried.size === 0) {
      a = Math.floor(this.#random() * n);
      b = Math.floor(this.#random() * (n - 1));
      if (b >= a) b++;
    } else {
      let left = 0;
      for (let i = 0; i < n; i++) if (!tried.has(nodes[i].key)) left++;
      if (left === 0) return undefined;
      if (left === 1) return nodes[this.#nthUntried(tried, 0)];
      const ra = Math.floor(this.#random() * left);
      let rb = Math.floor(this.#random() * (left - 1));
      if (rb >= ra) rb++;
      a = this.#nthUntried(tried, ra);
      b = this.#nthUntried(tried, rb);
    }
    const now = this.#now();
    const sa = this.#score(a, now);
    const sb = this.#score(b, now);
    if (sb < sa || (sb === sa && this.#invWeight[b] < this.#invWeight[a])) return nodes[b];
    return nodes[a];
  }

  /** Index of the r-th (0-based) node not in `tried`. */
  #nthUntried(tried: ReadonlySet<string>, r: number): number {
    const nodes = this.#nodes;
    for (let i = 0; i < nodes.length; i++) {
      if (tried.has(nodes[i].key)) continue;
      if (r-- === 0) return i;
    }
    return -1;
  }

  #score(i: number, now: number): number {
    return this.#decayed(i, now) * (this.#active[i] + 1) * this.#invWeight[i];
  }

  /** The average decayed to `now` (0 when never sampled). */
  #decayed(i: number, now: number): number {
    const stats = this.#stats[i];
    const touched = stats.touched;
    if (Number.isNaN(touched)) return 0;
    const dt = now - touched;
    return dt > 0 ? stats.ewma * Math.exp(-dt / DECAY_TIME_MS) : stats.ewma;
  }

  started(node: UpstreamNode): void {
    const i = this.#index.get(node.key);
    if (i !== undefined) this.#active[i]++;
  }

  finished(node: UpstreamNode, latencyMs: number, failed: boolean): void {
    const i = this.#index.get(node.key);
    if (i === undefined) return;
    if (this.#active[i] > 0) this.#active[i]--;
    let sample = Number.isFinite(latencyMs) && latencyMs > 0 ? latencyMs : 0;
    if (failed && sample < FAILURE_PENALTY_MS) sample = FAILURE_PENALTY_MS;
    const now = this.#now();
    const stats = this.#stats[i];
    const touched = stats.touched;
    let value: number;
    if (Number.isNaN(touched)) {
      value = sample;
    } else {
      const dt = now - touched;
      const keep = dt > 0 ? Math.exp(-dt / DECAY_TIME_MS) : 1;
      value = stats.ewma * keep + sample * (1 - keep);
      if (sample > value) value = sample;
    }
    stats.ewma = value;
    stats.touched = now;
  }

  /** The node's current latency average in ms, decayed to now (for tests and status output). */
  latency(key: string): number {
    const i = this.#index.get(key);
    return i === undefined ? 0 : this.#decayed(i, this.#now());
  }
}
