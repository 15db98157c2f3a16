// Shared types and helpers for the upstream load balancers (APISIX `apisix/balancer/*.lua`).
import type { VarLookup } from '../../expr/vars.ts';

export interface UpstreamNode {
  host: string;
  port: number;
  /** Integer >= 0; weight-0 nodes are never picked. */
  weight: number;
  /** Higher tiers are used first; lower tiers only once every higher node was tried. Default 0. */
  priority: number;
  /** `host:port`, IPv6 as `[::1]:80`. Identifies the node in `tried` and in `started`/`finished`. */
  key: string;
  metadata?: Record<string, unknown>;
}

export interface PickContext {
  vars: VarLookup;
  consumerName?: string;
}

export interface Balancer {
  /** Picks a node, skipping keys in `tried` (nodes already attempted by this request's retries). undefined when none is left. */
  pick(ctx: PickContext, tried?: ReadonlySet<string>): UpstreamNode | undefined;
  /** Called when a request starts on / finishes with a node (least_conn counts, ewma latency). */
  started?(node: UpstreamNode): void;
  finished?(node: UpstreamNode, latencyMs: number, failed: boolean): void;
}

export type BalancerType = 'roundrobin' | 'chash' | 'least_conn' | 'ewma';
export type HashOn = 'vars' | 'header' | 'cookie' | 'consumer' | 'vars_combinations';

export interface BalancerOptions {
  type?: BalancerType;
  hash_on?: HashOn;
  key?: string;
}

/** True when `key` was already attempted by this request. Cheap for the common no-retry case. */
export function isTried(tried: ReadonlySet<string> | undefined, key: string): boolean {
  return tried !== undefined && tried.size !== 0 && tried.has(key);
}

function toInt(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? Math.trunc(value) : fallback;
}

function nodeKey(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Normalizes a node list once per config version: weight as an integer >= 0, priority as an
 * integer (default 0), a key when missing. Duplicate keys keep their first occurrence. The
 * returned objects are the ones handed back by `pick` (the input objects when already normal).
 */
export function normalizeNodes(nodes: readonly UpstreamNode[]): UpstreamNode[] {
  const out: UpstreamNode[] = [];
  const seen = new Set<string>();
  for (const node of nodes) {
    const weight = Math.max(0, toInt(node.weight, 0));
    const priority = toInt(node.priority, 0);
    const key = typeof node.key === 'string' && node.key !== '' ? node.key : nodeKey(node.host, node.port);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(weight === node.weight && priority === node.priority && key === node.key ? node : { ...node, weight, priority, key });
  }
  return out;
}

/** Map from node key to its index in `nodes`, for `started`/`finished`. */
export function indexByKey(nodes: readonly UpstreamNode[]): Map<string, number> {
  const map = new Map<string, number>();
  for (let i = 0; i < nodes.length; i++) map.set(nodes[i].key, i);
  return map;
}
