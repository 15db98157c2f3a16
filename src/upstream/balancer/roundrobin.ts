// Smooth weighted round robin (nginx's algorithm): every pick adds each candidate's weight to its
// running `current`, takes the candidate with the largest `current`, and subtracts the candidates'
// total weight from the winner. Over sum(weights) picks each node is chosen exactly `weight` times,
// interleaved (5,1,1 gives a a b a c a a). Tried nodes sit out of the round, as in nginx.
import { isTried, type Balancer, type PickContext, type UpstreamNode } from './types.ts';

export class RoundRobinBalancer implements Balancer {
  readonly #nodes: readonly UpstreamNode[];
  readonly #weights: Float64Array;
  readonly #current: Float64Array;

  /** `nodes` must be normalized and contain only weight > 0 nodes. */
  constructor(nodes: readonly UpstreamNode[]) {
    this.#nodes = nodes;
    this.#weights = Float64Array.from(nodes, (n) => n.weight);
    this.#current = new Float64Array(nodes.length);
  }

  pick(_ctx: PickContext, tried?: ReadonlySet<string>): UpstreamNode | undefined {
    const nodes = this.#nodes;
    const n = nodes.length;
    if (n === 1) return isTried(tried, nodes[0].key) ? undefined : nodes[0];
    const weights = this.#weights;
    const current = this.#current;
    const checkTried = tried !== undefined && tried.size !== 0;
    let best = -1;
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (checkTried && tried.has(nodes[i].key)) continue;
      const w = weights[i];
      const c = current[i] + w;
      current[i] = c;
      total += w;
      if (best < 0 || c > current[best]) best = i;
    }
    if (best < 0) return undefined;
    current[best] -= total;
    return nodes[best];
  }
}
