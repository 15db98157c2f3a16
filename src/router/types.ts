// Shared types of the HTTP router: the route spec the caller hands in, the request it matches,
// and the compiled per-route record that every placement of a route points to.
import type { Predicate, VarLookup } from '../expr/vars.ts';
import type { IpMatcher } from '../util/ip.ts';
import type { HostMatcher } from './host.ts';
import type { CompiledPath } from './path.ts';

export type RouterMode = 'radixtree_host_uri' | 'radixtree_uri' | 'radixtree_uri_with_parameter';

export const ROUTER_MODES: readonly RouterMode[] = ['radixtree_host_uri', 'radixtree_uri', 'radixtree_uri_with_parameter'];

export interface RouteSpec<T> {
  id: string;
  /** `uri` or `uris`. */
  paths: string[];
  /** Already resolved (route `hosts`/`host`, or the service's hosts). */
  hosts?: string[];
  methods?: string[];
  remoteAddrs?: string[];
  /** Compiled `vars`. */
  vars?: Predicate;
  /** Default 0; higher is tried first among routes stored under the same path. */
  priority?: number;
  /** Opaque payload returned on match. */
  value: T;
}

export interface MatchInput {
  path: string;
  /** Lower-case, without port. */
  host: string;
  /** Raw Host header (may carry `:port`); only consulted by route hosts that name a port. */
  hostWithPort?: string;
  method: string;
  remoteAddr: string;
  vars: VarLookup;
  /** Receives a pattern route's captures before its `vars` run (the request context, so `uri_param_*` resolves). */
  paramsSink?: { params: Record<string, string> | undefined };
}

export interface MatchResult<T> {
  value: T;
  id: string;
  /** The route path that matched, as written (APISIX's `matched_uri`). */
  path: string;
  /** Captured path parameters (`radixtree_uri_with_parameter` only). */
  params?: Record<string, string>;
}

/** A route compiled once per upsert; shared by all of its placements. */
export interface RouteEntry<T> {
  readonly id: string;
  readonly value: T;
  /** Insertion rank: kept when a route is replaced, so an update does not move it behind its peers. */
  readonly seq: number;
  readonly priority: number;
  /** Bit set of allowed methods (see methodBit); 0 = any method. */
  readonly methods: number;
  readonly remote: IpMatcher | null;
  /** Per-route host condition (uri modes only; in host mode the host bucket is the condition). */
  readonly hosts: HostMatcher | null;
  /**
   * When `hosts` is a list of exact port-less hosts (uri modes), those hosts: a path node then files
   * the route under each of them, so many host-specific routes on one path cost one lookup.
   */
  readonly hostKeys: readonly string[] | null;
  readonly vars: Predicate | null;
}

/**
 * One (route, path) pair stored in one path node. It carries a flat copy of the route's fields, so
 * checking it touches one object (a cache miss saved per candidate in large tables).
 */
export interface Candidate<T> extends RouteEntry<T> {
  readonly path: CompiledPath;
  /** Length of the path as written: the tie-breaker after priority. */
  readonly length: number;
  /** Position of the path in the route's `uris`: orders two paths of one route in one node. */
  readonly nth: number;
}

/** Order of candidates inside a path node: priority desc, longer original path, then insertion. */
export function candidateOrder<T>(a: Candidate<T>, b: Candidate<T>): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.length !== b.length) return b.length - a.length;
  if (a.seq !== b.seq) return a.seq - b.seq;
  return a.nth - b.nth;
}

/** The methods a route may list (APISIX's enum). */
export const HTTP_METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'];
const METHOD_BITS = new Map<string, number>(HTTP_METHODS.map((m, i) => [m, 1 << i]));

/** The bit of a method, 0 for a method outside HTTP_METHODS. */
export function methodBit(method: string): number {
  return METHOD_BITS.get(method) ?? 0;
}

/** The non-path conditions in APISIX's order: method, remote_addrs, hosts, vars. */
export function admits<T>(route: RouteEntry<T>, input: MatchInput): boolean {
  if (route.methods !== 0 && (route.methods & methodBit(input.method)) === 0) return false;
  if (route.remote !== null && !route.remote(input.remoteAddr)) return false;
  if (route.hosts !== null && !route.hosts.test(input.host, input.hostWithPort)) return false;
  if (route.vars !== null && !evalVars(route.vars, input)) return false;
  return true;
}

/** Like lua-resty-radixtree, a `vars` expression that fails to evaluate does not match. */
function evalVars(vars: Predicate, input: MatchInput): boolean {
  try {
    return vars(input.vars) === true;
  } catch {
    return false;
  }
}
