// An upstream's `checks` with APISIX's defaults filled in, and the targets they check. Computed once
// per upstream config version, by the workers (passive checks, the healthy-node view) and by the main
// thread (active probes) alike, so both sides name the same targets.
import type { HealthChecks } from '../../model/upstream.ts';

/** `checks` as the upstream schema allows it; every field optional. */
export type ChecksInput = HealthChecks;

/** How an HTTP status counts: not at all, towards healthy, or towards unhealthy. */
export const STATUS_IGNORED = 0;
export const STATUS_HEALTHY = 1;
export const STATUS_UNHEALTHY = 2;

export interface ActiveSettings {
  type: 'http' | 'https' | 'tcp';
  timeoutMs: number;
  concurrency: number;
  host: string | undefined;
  port: number | undefined;
  httpPath: string;
  httpMethod: string;
  httpReqBody: string;
  httpsVerifyCertificate: boolean;
  /** `req_headers` as header lines, each ending in CRLF. */
  reqHeaders: string;
  healthyIntervalMs: number;
  unhealthyIntervalMs: number;
  /** status → STATUS_* (index 0..599). */
  statuses: Uint8Array;
  successes: number;
  httpFailures: number;
  tcpFailures: number;
  timeouts: number;
}

export interface PassiveSettings {
  /** `checks.passive` was given: only then do response statuses count (as APISIX's log phase). */
  configured: boolean;
  statuses: Uint8Array;
  successes: number;
  httpFailures: number;
  tcpFailures: number;
  timeouts: number;
}

export interface HealthSettings {
  active: ActiveSettings;
  passive: PassiveSettings;
}

// APISIX's schema defaults (apisix/schema_def.lua `health_checker`), the same as lua-resty-healthcheck's.
export const ACTIVE_HEALTHY_STATUSES = [200, 302];
export const ACTIVE_UNHEALTHY_STATUSES = [429, 404, 500, 501, 502, 503, 504, 505];
export const PASSIVE_HEALTHY_STATUSES = [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308];
export const PASSIVE_UNHEALTHY_STATUSES = [429, 500, 503];

function statusTable(healthy: readonly number[], unhealthy: readonly number[]): Uint8Array {
  const table = new Uint8Array(600);
  for (const s of unhealthy) if (s >= 0 && s < 600) table[s] = STATUS_UNHEALTHY;
  // A status in both lists counts as healthy (lua-resty-healthcheck looks at the healthy list first).
  for (const s of healthy) if (s >= 0 && s < 600) table[s] = STATUS_HEALTHY;
  // No status line at all counts as an HTTP failure.
  if (table[0] === STATUS_IGNORED) table[0] = STATUS_UNHEALTHY;
  return table;
}

/** How `status` counts under `statuses` (out-of-range statuses are ignored). */
export function classifyStatus(statuses: Uint8Array, status: number): number {
  return status >= 0 && status < 600 ? statuses[status] : STATUS_IGNORED;
}

export function healthSettings(checks: ChecksInput): HealthSettings {
  const a = checks.active ?? {};
  const p = checks.passive;
  const headers = (a.req_headers ?? []).map((h) => `${h}\r\n`).join('');
  return {
    active: {
      type: a.type ?? 'http',
      timeoutMs: (a.timeout ?? 1) * 1000,
      concurrency: Math.max(1, a.concurrency ?? 10),
      host: a.host,
      port: a.port,
      httpPath: a.http_path ?? '/',
      httpMethod: a.http_method ?? 'GET',
      httpReqBody: a.http_req_body ?? '',
      httpsVerifyCertificate: a.https_verify_certificate ?? true,
      reqHeaders: headers,
      healthyIntervalMs: (a.healthy?.interval ?? 1) * 1000,
      unhealthyIntervalMs: (a.unhealthy?.interval ?? 1) * 1000,
      statuses: statusTable(a.healthy?.http_statuses ?? ACTIVE_HEALTHY_STATUSES, a.unhealthy?.http_statuses ?? ACTIVE_UNHEALTHY_STATUSES),
      successes: a.healthy?.successes ?? 2,
      httpFailures: a.unhealthy?.http_failures ?? 5,
      tcpFailures: a.unhealthy?.tcp_failures ?? 2,
      timeouts: a.unhealthy?.timeouts ?? 3,
    },
    // Without `passive`, lua-resty-healthcheck still fills its passive defaults, and APISIX reports
    // failed tries (connection failures, timeouts) against them.
    passive: {
      configured: p !== undefined,
      statuses: statusTable(p?.healthy?.http_statuses ?? PASSIVE_HEALTHY_STATUSES, p?.unhealthy?.http_statuses ?? PASSIVE_UNHEALTHY_STATUSES),
      successes: p?.healthy?.successes ?? 5,
      httpFailures: p?.unhealthy?.http_failures ?? 5,
      tcpFailures: p?.unhealthy?.tcp_failures ?? 2,
      timeouts: p?.unhealthy?.timeouts ?? 7,
    },
  };
}

/** `checks.active.type`, else `checks.passive.type` (APISIX's Control API `type`). */
export function checkerType(checks: ChecksInput): 'http' | 'https' | 'tcp' {
  return checks.active?.type ?? checks.passive?.type ?? 'http';
}

/**
 * One checked target, named as lua-resty-healthcheck names it: the node's address, the port
 * (`checks.active.port`, else the node's), and the host name (`checks.active.host`, else the address).
 */
export interface HealthTarget {
  ip: string;
  port: number;
  hostname: string;
  /** Host header (and TLS server name) of probes when it is not `hostname`: `upstream_host` with `pass_host: rewrite`, the node's name with `pass_host: node`. */
  hostheader: string | undefined;
  /** `ip port hostname`: the target's identity within its checker. */
  id: string;
}

export interface TargetNode {
  host: string;
  port: number;
  key: string;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

function isAddress(host: string): boolean {
  return IPV4.test(host) || host.includes(':');
}

/**
 * The targets of `nodes` (duplicates merged: nodes that share address, port and host name share a
 * target) and, per node, the index of its target.
 */
export function healthTargets(
  nodes: readonly TargetNode[],
  settings: HealthSettings,
  passHost: string | undefined,
  upstreamHost: string | undefined,
): { targets: HealthTarget[]; byNode: number[] } {
  const targets: HealthTarget[] = [];
  const index = new Map<string, number>();
  const byNode: number[] = [];
  for (const node of nodes) {
    const port = settings.active.port ?? node.port;
    const hostname = settings.active.host ?? node.host;
    const id = `${node.host} ${port} ${hostname}`;
    let i = index.get(id);
    if (i === undefined) {
      i = targets.length;
      index.set(id, i);
      const hostheader = passHost === 'rewrite' ? upstreamHost : passHost === 'node' && !isAddress(node.host) ? node.host : undefined;
      targets.push({ ip: node.host, port, hostname, hostheader, id });
    }
    byNode.push(i);
  }
  return { targets, byNode };
}

/** The health table key of a target of checker `name`. */
export function targetKey(name: string, target: HealthTarget): string {
  return `${name}\u0000${target.id}`;
}
