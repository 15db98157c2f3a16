// Priority tiers (APISIX `priority` on upstream nodes): one inner balancer per distinct priority,
// highest first. A lower tier is consulted only when the higher tiers have nothing left, i.e.
// every node in them is in `tried` (failed earlier in this request).
import type { Balancer, PickContext, UpstreamNode } from './types.ts';

export class PriorityBalancer implements Balancer {
  readonly #tiers: readonly Balancer[];
  readonly #tierOf: Map<string, Balancer>;

  /** `tiers` ordered highest priority first, with the nodes each one serves. */
  constructor(tiers: readonly { balancer: Balancer; nodes: readonly UpstreamNode[] }[]) {
    this.#tiers = tiers.map((t) => t.balancer);
    this.#tierOf = new Map();
    for (const tier of tiers) for (const node of tier.nodes) this.#tierOf.set(node.key, tier.balancer);
  }

  pick(ctx: PickContext, tried?: ReadonlySet<string>): UpstreamNode | undefined {
    const tiers = this.#tiers;
    for (let i = 0; i < tiers.length; i++) {
      const node = tiers[i].pick(ctx, tried);
      if (node !== undefined) return node;
    }
    return undefined;
  }

  started(node: UpstreamNode): void {
    this.#tierOf.get(node.key)?.started?.(node);
  }

  finished(node: UpstreamNode, latencyMs: number, failed: boolean): void {
    this.#tierOf.get(node.key)?.finished?.(node, latencyMs, failed);
  }
}
