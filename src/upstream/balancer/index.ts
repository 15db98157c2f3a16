// Upstream load balancers, mirroring APISIX's `apisix/balancer/*.lua`: roundrobin (smooth
// weighted), chash (consistent hashing), least_conn and ewma, all behind priority tiers.
// `createBalancer` is called once per upstream config version; `pick` is the per-request path.
import { ChashBalancer } from './chash.ts';
import { EwmaBalancer } from './ewma.ts';
import { LeastConnBalancer } from './least-conn.ts';
import { PriorityBalancer } from './priority.ts';
import { RoundRobinBalancer } from './roundrobin.ts';
import { normalizeNodes, type Balancer, type BalancerOptions, type UpstreamNode } from './types.ts';

export type { Balancer, BalancerOptions, BalancerType, HashOn, PickContext, UpstreamNode } from './types.ts';
export { ChashBalancer, parseKeyTemplate, POINTS_PER_WEIGHT, MAX_RING_POINTS } from './chash.ts';
export { EwmaBalancer, DECAY_TIME_MS, FAILURE_PENALTY_MS, type EwmaHooks, type EwmaStats } from './ewma.ts';
export { LeastConnBalancer } from './least-conn.ts';
export { PriorityBalancer } from './priority.ts';
export { RoundRobinBalancer } from './roundrobin.ts';
export { hashString } from './hash.ts';
export { normalizeNodes } from './types.ts';

/** A balancer over no usable nodes: every pick fails. */
const EMPTY: Balancer = { pick: () => undefined };

/** One balancer of `options.type` over nodes of a single tier (normalized, weight > 0). */
function createTier(nodes: readonly UpstreamNode[], options: BalancerOptions): Balancer {
  switch (options.type ?? 'roundrobin') {
    case 'chash':
      return new ChashBalancer(nodes, options);
    case 'least_conn':
      return new LeastConnBalancer(nodes);
    case 'ewma':
      return new EwmaBalancer(nodes);
    case 'roundrobin':
      return new RoundRobinBalancer(nodes);
    default:
      throw new Error(`unknown balancer type: ${String(options.type)}`);
  }
}

/**
 * Builds the balancer for an upstream's nodes. Weights are taken as integers >= 0 and weight-0
 * nodes are dropped (except a lone node, which APISIX always uses); with no node left every pick
 * returns undefined. Nodes are grouped into priority tiers (highest first), each served by its
 * own balancer of the configured type.
 */
export function createBalancer(nodes: UpstreamNode[], options: BalancerOptions): Balancer {
  const all = normalizeNodes(nodes);
  // APISIX skips the balancer for a one-node upstream and uses that node whatever its weight.
  if (all.length === 1 && all[0].weight === 0) return createTier([{ ...all[0], weight: 1 }], options);
  const usable = all.filter((node) => node.weight > 0);
  if (usable.length === 0) return EMPTY;
  const byPriority = new Map<number, UpstreamNode[]>();
  for (const node of usable) {
    const tier = byPriority.get(node.priority);
    if (tier === undefined) byPriority.set(node.priority, [node]);
    else tier.push(node);
  }
  if (byPriority.size === 1) return createTier(usable, options);
  const tiers = [...byPriority.entries()]
    .sort((a, b) => b[0] - a[0])
    .map(([, tierNodes]) => ({ balancer: createTier(tierNodes, options), nodes: tierNodes }));
  return new PriorityBalancer(tiers);
}
