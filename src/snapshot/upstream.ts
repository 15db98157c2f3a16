// Upstream config → CompiledUpstream: parsed nodes, a balancer, keep-alive pools, retry and
// timeout settings. Runs once per upstream change, never per request.
import { parseNodeAddress, type Upstream } from '../model/index.ts';
import { createBalancer, type UpstreamNode } from '../upstream/balancer/index.ts';
import { HealthBalancer, HealthView, healthSettings } from '../upstream/health/index.ts';
import { poolFor, type NodePool } from '../upstream/pool.ts';
import type { ClientCertificate } from './ssl.ts';
import type { CompiledUpstream, TimeoutsMs } from './types.ts';

/** nginx's proxy_{connect,send,read}_timeout as APISIX renders them. */
export const DEFAULT_TIMEOUTS_MS: TimeoutsMs = { connect: 60_000, send: 60_000, read: 60_000 };

/** keepalive_pool when an upstream sets none: nginx_config.http.upstream.{keepalive, keepalive_timeout, keepalive_requests}. */
export interface PoolDefaults {
  size: number;
  idle_timeout: number;
  requests: number;
  /** CA certificates (PEM) that `tls.verify` checks nodes against (apisix.ssl.ssl_trusted_certificate); the system store when undefined. */
  trustedCa?: string;
}

export const DEFAULT_POOL: PoolDefaults = { size: 320, idle_timeout: 60, requests: 1000 };

export function timeoutsMs(t: { connect: number; send: number; read: number }): TimeoutsMs {
  return { connect: t.connect * 1000, send: t.send * 1000, read: t.read * 1000 };
}

/** Node list in one shape, whichever form the config used (`"host:port": weight` map or array). */
export function upstreamNodes(conf: Upstream): UpstreamNode[] {
  const defaultPort = conf.scheme === 'https' || conf.scheme === 'grpcs' ? 443 : 80;
  const out: UpstreamNode[] = [];
  const push = (host: string, port: number | undefined, weight: number, priority: number, metadata?: Record<string, unknown>) => {
    const p = port ?? defaultPort;
    const key = host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`;
    out.push({ host, port: p, weight, priority, key, metadata });
  };
  if (Array.isArray(conf.nodes)) {
    for (const n of conf.nodes) {
      const { host, port } = n.host.startsWith('[') ? parseNodeAddress(n.host) : { host: n.host, port: undefined };
      push(host, n.port ?? port, n.weight, n.priority ?? 0, n.metadata);
    }
  } else if (conf.nodes) {
    for (const [addr, weight] of Object.entries(conf.nodes)) {
      const { host, port } = parseNodeAddress(addr);
      push(host, port, weight, 0);
    }
  }
  return out;
}

/**
 * `healthName` is where the upstream lives (`upstreams/1`, `routes/1`, `services/1`): it names its
 * health checker. Without it (health checks turned off, or an upstream a plugin made) `checks` is
 * not acted on. As in APISIX, an upstream with one node has no checker: that node is always used.
 */
export function compileUpstream(conf: Upstream, id: string | undefined, poolDefaults: PoolDefaults = DEFAULT_POOL, healthName?: string): CompiledUpstream {
  const nodes = upstreamNodes(conf);
  const tls = conf.scheme === 'https';
  const clientCert = conf.tls?.client_cert && conf.tls.client_key ? { cert: conf.tls.client_cert, key: conf.tls.client_key } : undefined;
  let balancer = createBalancer(nodes, { type: conf.type, hash_on: conf.hash_on, key: conf.key });
  let health: HealthView | undefined;
  if (conf.checks && healthName !== undefined && nodes.length > 1) {
    health = new HealthView(healthName, healthSettings(conf.checks), nodes, conf.pass_host, conf.upstream_host);
    balancer = new HealthBalancer(balancer, health);
  }
  return {
    id,
    conf,
    nodes,
    balancer,
    health,
    pools: nodePools(conf, nodes, poolDefaults, clientCert),
    poolDefaults,
    clientCertId: conf.tls?.client_cert_id === undefined ? undefined : String(conf.tls.client_cert_id),
    // APISIX: unset retries means "try every other node once".
    retries: conf.retries ?? Math.max(0, nodes.length - 1),
    retryTimeoutMs: (conf.retry_timeout ?? 0) * 1000,
    timeouts: conf.timeout ? timeoutsMs(conf.timeout) : DEFAULT_TIMEOUTS_MS,
    tls,
    passHost: conf.pass_host ?? 'pass',
    upstreamHost: conf.upstream_host,
  };
}

/** One keep-alive pool per node, shared with every upstream that reaches the node the same way. */
function nodePools(conf: Upstream, nodes: readonly UpstreamNode[], poolDefaults: PoolDefaults, clientCert: ClientCertificate | undefined): Map<string, NodePool> {
  const tls = conf.scheme === 'https';
  const pool = { ...poolDefaults, ...conf.keepalive_pool };
  const servername = conf.pass_host === 'rewrite' ? conf.upstream_host : undefined;
  const pools = new Map<string, NodePool>();
  for (const node of nodes) {
    pools.set(node.key, poolFor({ host: node.host, port: node.port, tls, servername, clientCert, verify: conf.tls?.verify, ca: poolDefaults.trustedCa }, {
      size: pool.size,
      idleTimeoutMs: pool.idle_timeout * 1000,
      maxRequests: pool.requests,
    }));
  }
  return pools;
}

const withCertificate = new WeakMap<CompiledUpstream, { certificate: ClientCertificate; upstream: CompiledUpstream }>();

/**
 * The upstream presenting a `client` SSL's certificate (`tls.client_cert_id`, looked up per request
 * as APISIX does). Cached until the SSL changes, which brings a new certificate object.
 */
export function withClientCertificate(up: CompiledUpstream, certificate: ClientCertificate): CompiledUpstream {
  const cached = withCertificate.get(up);
  if (cached?.certificate === certificate) return cached.upstream;
  const upstream = { ...up, pools: nodePools(up.conf, up.nodes, up.poolDefaults, certificate) };
  withCertificate.set(up, { certificate, upstream });
  return upstream;
}
