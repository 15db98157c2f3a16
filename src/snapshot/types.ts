// The compiled, ready-to-serve shapes the proxy reads per request. Built once per config change.
import type { Route, Service, Upstream } from '../model/index.ts';
import type { PluginChain } from '../plugins/chain.ts';
import type { Balancer, UpstreamNode } from '../upstream/balancer/index.ts';
import type { HealthView } from '../upstream/health/index.ts';
import type { NodePool } from '../upstream/pool.ts';
import type { PoolDefaults } from './upstream.ts';

export interface TimeoutsMs {
  connect: number;
  send: number;
  read: number;
}

export interface CompiledUpstream {
  /** Upstream id, or undefined for an inline upstream. */
  id: string | undefined;
  conf: Upstream;
  nodes: UpstreamNode[];
  /** Skips unhealthy nodes when the upstream has health checks. */
  balancer: Balancer;
  /** The node-wide health of the nodes, when the upstream has `checks` (and more than one node). */
  health: HealthView | undefined;
  /** node.key → keep-alive pool */
  pools: Map<string, NodePool>;
  /** Pool settings it was compiled with (for the same upstream with another client certificate). */
  poolDefaults: PoolDefaults;
  /** `tls.client_cert_id`: the `client` SSL whose certificate is presented to the nodes. */
  clientCertId: string | undefined;
  /** Extra attempts on other nodes after a failure. */
  retries: number;
  /** Retry budget in ms from the first attempt; 0 = unlimited. */
  retryTimeoutMs: number;
  timeouts: TimeoutsMs;
  tls: boolean;
  passHost: 'pass' | 'node' | 'rewrite';
  upstreamHost: string | undefined;
}

export interface CompiledService {
  id: string;
  conf: Service;
  upstream: CompiledUpstream | undefined;
}

/** Why a matched route cannot be proxied; the proxy answers with the matching APISIX status. */
export type UpstreamResolution =
  | { ok: true; upstream: CompiledUpstream }
  | { ok: false; status: number; log: string };

export interface CompiledRoute {
  id: string;
  conf: Route;
  /** Host patterns (the route's, else its service's); undefined = any host. */
  hosts: readonly string[] | undefined;
  service: CompiledService | undefined;
  /** Route-level timeout override (route.timeout beats the upstream's). */
  timeouts: TimeoutsMs | undefined;
  /** The route's plugins with its plugin config's and service's merged in; undefined when none. */
  plugins: PluginChain | undefined;
  /** `enable_websocket` (the route's, else its service's): upgrade requests are tunnelled to the node. */
  websocket: boolean;
  /** The id of a `plugin_config_id` that does not exist (the request gets 503, as APISIX). */
  missingPluginConfig: string | undefined;
  /** Resolves route → service → upstream_id at request time (one map lookup) so upstream changes need no route rebuild. */
  resolveUpstream(): UpstreamResolution;
}
