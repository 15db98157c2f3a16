// HTTP router with Apache APISIX's matching rules (lua-resty-radixtree as used by
// apisix/http/router/radixtree_{host_uri,uri,uri_with_parameter}.lua), maintained incrementally:
// upsert and remove touch only the path nodes (and host buckets) of the one route they change.
//
// Match order: exact path hash, then prefixes from the longest to the shortest; inside one path
// node candidates go by priority desc, longer original path, insertion; the first whose conditions
// (method, remote_addrs, hosts, vars, then the path-pattern check) all pass wins. In host mode the
// host buckets (exact host, wildcard suffixes longest first, `*`) come before host-less routes.
import { compileIpMatcher } from '../util/ip.ts';
import { compilePath, type CompiledPath } from './path.ts';
import { HostMatcher, parseHostPattern, type HostPattern } from './host.ts';
import { HostIndex, PathIndex } from './path-index.ts';
import { HTTP_METHODS, ROUTER_MODES, methodBit } from './types.ts';
import type { Candidate, MatchInput, MatchResult, RouteEntry, RouteSpec, RouterMode } from './types.ts';

export type { RouterMode, RouteSpec, MatchInput, MatchResult } from './types.ts';
export { compilePath, type CompiledPath } from './path.ts';
export { parseHostPattern, type HostPattern } from './host.ts';

/** Where one candidate of a route was stored, so that removal is direct. */
interface Placement<T> {
  readonly index: PathIndex<T>;
  readonly host: HostPattern | null;
  readonly candidate: Candidate<T>;
}

interface Stored<T> {
  readonly entry: RouteEntry<T>;
  readonly placements: Placement<T>[];
}

export class Router<T> {
  readonly mode: RouterMode;
  private readonly withParams: boolean;
  private readonly hostMode: boolean;
  private readonly routes = new Map<string, Stored<T>>();
  private readonly hostless = new PathIndex<T>();
  private readonly hosts = new HostIndex<T>();
  private nextSeq = 0;

  constructor(mode: RouterMode = 'radixtree_host_uri') {
    if (!ROUTER_MODES.includes(mode)) throw new Error(`invalid router mode ${JSON.stringify(mode)}: expected one of ${ROUTER_MODES.join(', ')}`);
    this.mode = mode;
    this.withParams = mode === 'radixtree_uri_with_parameter';
    this.hostMode = mode === 'radixtree_host_uri';
  }

  get size(): number {
    return this.routes.size;
  }

  has(id: string): boolean {
    return this.routes.has(id);
  }

  /** The value stored for a route id. */
  get(id: string): T | undefined {
    return this.routes.get(id)?.entry.value;
  }

  /** Adds a route, or replaces the route with the same id (keeping its rank among equals). */
  upsert(spec: RouteSpec<T>): void {
    if (spec === null || typeof spec !== 'object') throw new Error('invalid route: expected an object');
    const id = spec.id;
    if (typeof id !== 'string' || id.length === 0) throw new Error('invalid route: id must be a non-empty string');
    const fail = (err: unknown): never => {
      throw new Error(`route ${JSON.stringify(id)}: ${err instanceof Error ? err.message : String(err)}`);
    };

    // Compile everything first: a bad spec leaves the router (and a previous version) untouched.
    const paths: CompiledPath[] = [];
    const hostPatterns: HostPattern[] = [];
    let methods = 0;
    let remote: RouteEntry<T>['remote'] = null;
    try {
      if (!Array.isArray(spec.paths) || spec.paths.length === 0) throw new Error('paths must be a non-empty array (uri or uris)');
      const seen = new Set<string>();
      for (const p of spec.paths) {
        const compiled = compilePath(p, this.withParams);
        if (!seen.has(compiled.source)) {
          seen.add(compiled.source);
          paths.push(compiled);
        }
      }
      if (spec.hosts !== undefined && spec.hosts !== null) {
        if (!Array.isArray(spec.hosts)) throw new Error('hosts must be an array');
        const seenHosts = new Set<string>();
        for (const h of spec.hosts) {
          const p = parseHostPattern(h);
          if (!seenHosts.has(p.source)) {
            seenHosts.add(p.source);
            hostPatterns.push(p);
          }
        }
      }
      if (spec.methods !== undefined && spec.methods !== null) {
        if (!Array.isArray(spec.methods)) throw new Error('methods must be an array');
        for (const m of spec.methods) {
          const bit = typeof m === 'string' ? methodBit(m.toUpperCase()) : 0;
          if (bit === 0) throw new Error(`invalid method ${JSON.stringify(m)}: expected one of ${HTTP_METHODS.join(', ')}`);
          methods |= bit;
        }
      }
      if (spec.remoteAddrs !== undefined && spec.remoteAddrs !== null) {
        if (!Array.isArray(spec.remoteAddrs)) throw new Error('remote_addrs must be an array');
        if (spec.remoteAddrs.length > 0) remote = compileIpMatcher(spec.remoteAddrs);
      }
      if (spec.vars !== undefined && spec.vars !== null && typeof spec.vars !== 'function') throw new Error('vars must be a compiled predicate');
      if (spec.priority !== undefined && spec.priority !== null && (typeof spec.priority !== 'number' || !Number.isFinite(spec.priority))) {
        throw new Error(`priority must be a finite number, got ${JSON.stringify(spec.priority)}`);
      }
    } catch (err) {
      fail(err);
    }

    const previous = this.routes.get(id);
    const seq = previous !== undefined ? previous.entry.seq : this.nextSeq++;
    if (previous !== undefined) this.detach(previous);

    const bucketed = this.hostMode && hostPatterns.length > 0;
    const hostMatcher = !this.hostMode && hostPatterns.length > 0 ? new HostMatcher(hostPatterns) : null;
    const entry: RouteEntry<T> = {
      id,
      value: spec.value,
      seq,
      priority: spec.priority ?? 0,
      methods,
      remote,
      hosts: hostMatcher,
      hostKeys: hostMatcher === null ? null : hostMatcher.exactOnly(),
      vars: spec.vars ?? null,
    };
    const placements: Placement<T>[] = [];
    for (let nth = 0; nth < paths.length; nth++) {
      const path = paths[nth];
      const candidate: Candidate<T> = { ...entry, path, length: path.source.length, nth };
      if (bucketed) {
        for (const host of hostPatterns) {
          const index = this.hosts.obtain(host);
          index.add(candidate);
          placements.push({ index, host, candidate });
        }
      } else {
        this.hostless.add(candidate);
        placements.push({ index: this.hostless, host: null, candidate });
      }
    }
    this.routes.set(id, { entry, placements });
  }

  remove(id: string): boolean {
    const stored = this.routes.get(id);
    if (stored === undefined) return false;
    this.detach(stored);
    this.routes.delete(id);
    return true;
  }

  match(input: MatchInput): MatchResult<T> | undefined {
    if (this.hostMode) {
      const r = this.hosts.match(input);
      if (r !== undefined) return r;
    }
    return this.hostless.match(input);
  }

  private detach(stored: Stored<T>): void {
    for (const p of stored.placements) {
      p.index.remove(p.candidate);
      if (p.host !== null) this.hosts.release(p.host);
    }
  }
}
