// Least connections (APISIX `least_conn`): the node with the lowest (active + 1) / weight wins.
// `started` / `finished` keep the active counts. Ties are broken by scanning from a rotating
// cursor (just past the previous winner), so equally loaded nodes take turns.
import { indexByKey, isTried, type Balancer, type PickContext, type UpstreamNode } from './types.ts';

export class LeastConnBalancer implements Balancer {
  readonly #nodes: readonly UpstreamNode[];
  readonly #index: Map<string, number>;
  readonly #invWeight: Float64Array;
  readonly #active: Float64Array;
  #cursor = 0;

  /** `nodes` must be normalized and contain only weight > 0 nodes. */
  constructor(nodes: readonly UpstreamNode[]) {
    this.#nodes = nodes;
    this.#index = indexByKey(nodes);
    this.#invWeight = Float64Array.from(nodes, (n) => 1 / n.weight);
    this.#active = new Float64Array(nodes.length);
  }

  pick(_ctx: PickContext, tried?: ReadonlySet<string>): UpstreamNode | undefined {
    const nodes = this.#nodes;
    const n = nodes.length;
    if (n === 0) return undefined;
    const active = this.#active;
    const invWeight = this.#invWeight;
    const checkTried = tried !== undefined && tried.size !== 0;
    let best = -1;
    let bestScore = Infinity;
    let i = this.#cursor;
    for (let seen = 0; seen < n; seen++, i++) {
      if (i === n) i = 0;
      if (checkTried && tried.has(nodes[i].key)) continue;
      const score = (active[i] + 1) * invWeight[i];
      if (score < bestScore) {
        bestScore = score;
        best = i;
      }
    }
    if (best < 0) return undefined;
    this.#cursor = best + 1 === n ? 0 : best + 1;
    return nodes[best];
  }

  started(node: UpstreamNode): void {
    const i = this.#index.get(node.key);
    if (i !== undefined) this.#active[i]++;
  }

  finished(node: UpstreamNode, _latencyMs: number, _failed: boolean): void {
    const i = this.#index.get(node.key);
    if (i !== undefined && this.#active[i] > 0) this.#active[i]--;
  }

  /** Requests currently in flight on `key` (for tests and status output). */
  activeCount(key: string): number {
    const i = this.#index.get(key);
    return i === undefined ? 0 : this.#active[i];
  }
}
