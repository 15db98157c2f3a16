// The snapshot a worker serves from: resource sets plus their compiled forms, updated one change
// at a time. A change recompiles only what depends on it (a route's router entry, a service's
// routes, an upstream's balancer); routes resolve `upstream_id` at request time with one map
// lookup, so an upstream change never touches the router.
import { compileExpr } from '../expr/index.ts';
import type { ChangeEvent, Route, ServedKind, Service, Ssl, Upstream } from '../model/index.ts';
import type { UpstreamHandle } from '../plugins/api.ts';
import { buildChain, mergePlugins, releaseDropped, type ChainEnv, type PluginChain } from '../plugins/chain.ts';
import { PluginCatalog } from '../plugins/registry.ts';
import { Router, type MatchInput, type MatchResult, type RouterMode } from '../router/index.ts';
import { metricsStore } from '../observability/metrics-store.ts';
import { namedTable } from '../shm/table.ts';
import { PluginState } from './plugins.ts';
import { SniIndex } from './ssl.ts';
import type { CompiledRoute, CompiledService, CompiledUpstream, UpstreamResolution } from './types.ts';
import { compileUpstream, DEFAULT_POOL, timeoutsMs, type PoolDefaults } from './upstream.ts';

export type { ChangeEvent } from '../model/index.ts';
export type { MatchInput } from '../router/index.ts';
export type { CompiledRoute, CompiledService, CompiledUpstream, TimeoutsMs } from './types.ts';


export interface SnapshotOptions {
  routerMode?: RouterMode;
  /** Keep-alive pool settings for upstreams without `keepalive_pool`. */
  poolDefaults?: PoolDefaults;
  /** Act on upstreams' `checks` (default true; false with apisix.disable_upstream_healthcheck). */
  healthChecks?: boolean;
  /** Called for a resource that validated but could not be compiled; it is left out. */
  onError?: (kind: ServedKind, id: string, message: string) => void;
  /** The enabled plugins; none when absent. */
  catalog?: PluginCatalog;
  /** `plugin_attr` from config.yaml. */
  pluginAttributes?: Readonly<Record<string, Record<string, unknown>>>;
  log?: ChainEnv['log'];
}

// Plugin-side kinds first: a route compiles its chain from its plugin config and service.
const KIND_ORDER: Record<ServedKind, number> = {
  upstreams: 0, consumer_groups: 0, consumers: 1, plugin_metadata: 0, global_rules: 1, plugin_configs: 1, services: 2, routes: 3, ssls: 0,
};

export class Snapshot {
  readonly router: Router<CompiledRoute>;
  readonly routes = new Map<string, Route>();
  readonly services = new Map<string, CompiledService>();
  readonly upstreams = new Map<string, CompiledUpstream>();
  /** service id → ids of routes that reference it (whether or not the service exists yet). */
  readonly #routesByService = new Map<string, Set<string>>();
  /** plugin config id → ids of routes that reference it. */
  readonly #routesByPluginConfig = new Map<string, Set<string>>();
  readonly #onError: SnapshotOptions['onError'];
  readonly #poolDefaults: PoolDefaults;
  readonly #healthChecks: boolean;
  /** Consumers, global rules, plugin configs and metadata, and the env chains compile with. */
  readonly plugins: PluginState;
  /** Server certificates by SNI, for the TLS listeners. */
  readonly ssl = new SniIndex();
  /** Bumped on every applied batch; equals the config source's revision when one is given. */
  version = 0;

  constructor(options: SnapshotOptions = {}) {
    this.router = new Router<CompiledRoute>(options.routerMode ?? 'radixtree_host_uri');
    this.#onError = options.onError;
    this.#poolDefaults = options.poolDefaults ?? DEFAULT_POOL;
    this.#healthChecks = options.healthChecks ?? true;
    const attributes = options.pluginAttributes ?? {};
    this.plugins = new PluginState({
      catalog: options.catalog ?? PluginCatalog.EMPTY,
      compileUpstream: (conf) => compileUpstream(conf as Upstream, undefined, this.#poolDefaults) as unknown as UpstreamHandle,
      sharedTable: namedTable,
      metrics: metricsStore(),
      attributes: (name) => attributes[name],
      log: options.log ?? (() => {}),
    });
  }

  /** The global rules' plugins, or undefined when there are none. */
  get globalChain(): PluginChain | undefined {
    return this.plugins.globalChain;
  }

  match(input: MatchInput): MatchResult<CompiledRoute> | undefined {
    return this.router.match(input);
  }

  /** Applies a batch of changes synchronously: requests see all of it or none of it. */
  apply(events: readonly ChangeEvent[], version?: number): void {
    const ordered = [...events].sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);
    for (const ev of ordered) {
      try {
        if (ev.kind === 'upstreams') this.#applyUpstream(ev.id, ev.value as Upstream | undefined);
        else if (ev.kind === 'services') this.#applyService(ev.id, ev.value as Service | undefined);
        else if (ev.kind === 'routes') this.#applyRoute(ev.id, ev.value as Route | undefined);
        else if (ev.kind === 'plugin_configs') this.#applyPluginConfig(ev.id, ev.value);
        else if (ev.kind === 'ssls') this.ssl.apply(ev.id, ev.value as Ssl | undefined);
        else this.plugins.apply(ev.kind, ev.id, ev.value);
      } catch (err) {
        this.#onError?.(ev.kind, ev.id, (err as Error).message);
      }
    }
    this.version = version ?? this.version + 1;
  }

  #applyUpstream(id: string, conf: Upstream | undefined): void {
    if (conf) this.upstreams.set(id, compileUpstream(conf, id, this.#poolDefaults, this.#healthName('upstreams', id)));
    else this.upstreams.delete(id);
  }

  /** The health checker name of an upstream that lives at `kind/id` (undefined: checks are off). */
  #healthName(kind: 'upstreams' | 'routes' | 'services', id: string): string | undefined {
    return this.#healthChecks ? `${kind}/${id}` : undefined;
  }

  #applyService(id: string, conf: Service | undefined): void {
    if (conf) {
      this.services.set(id, { id, conf, upstream: conf.upstream ? compileUpstream(conf.upstream, undefined, this.#poolDefaults, this.#healthName('services', id)) : undefined });
    } else {
      this.services.delete(id);
    }
    // Routes inherit hosts and upstream from the service: recompile the ones that use it.
    for (const routeId of this.#routesByService.get(id) ?? []) {
      const route = this.routes.get(routeId);
      if (route) this.#compileRoute(routeId, route);
    }
  }

  #applyPluginConfig(id: string, conf: object | undefined): void {
    this.plugins.apply('plugin_configs', id, conf);
    for (const routeId of this.#routesByPluginConfig.get(id) ?? []) {
      const route = this.routes.get(routeId);
      if (route) this.#compileRoute(routeId, route);
    }
  }

  #applyRoute(id: string, conf: Route | undefined): void {
    const prev = this.routes.get(id);
    if (prev?.service_id !== undefined) this.#routesByService.get(String(prev.service_id))?.delete(id);
    if (prev?.plugin_config_id !== undefined) this.#routesByPluginConfig.get(String(prev.plugin_config_id))?.delete(id);
    if (!conf) {
      this.routes.delete(id);
      this.#removeRoute(id);
      return;
    }
    this.routes.set(id, conf);
    if (conf.service_id !== undefined) {
      const sid = String(conf.service_id);
      let set = this.#routesByService.get(sid);
      if (!set) this.#routesByService.set(sid, (set = new Set()));
      set.add(id);
    }
    if (conf.plugin_config_id !== undefined) {
      const pid = String(conf.plugin_config_id);
      let set = this.#routesByPluginConfig.get(pid);
      if (!set) this.#routesByPluginConfig.set(pid, (set = new Set()));
      set.add(id);
    }
    try {
      this.#compileRoute(id, conf);
    } catch (err) {
      this.router.remove(id);
      throw err;
    }
  }

  /** Takes a route out of the router; its plugin instances are told they were dropped. */
  #removeRoute(id: string): void {
    const previous = this.router.get(id);
    this.router.remove(id);
    releaseDropped(previous?.plugins, undefined, this.plugins.env.log);
  }

  #compileRoute(id: string, conf: Route): void {
    if (conf.status === 0) {
      this.#removeRoute(id);
      return;
    }
    const serviceId = conf.service_id === undefined ? undefined : String(conf.service_id);
    const service = serviceId === undefined ? undefined : this.services.get(serviceId);
    const pluginConfigId = conf.plugin_config_id === undefined ? undefined : String(conf.plugin_config_id);
    const pluginConfig = pluginConfigId === undefined ? undefined : this.plugins.pluginConfigs.get(pluginConfigId);
    const previous = this.router.get(id);
    // Route plugins over plugin-config plugins over service plugins.
    const merged = mergePlugins(service?.conf.plugins, pluginConfig?.plugins, conf.plugins);
    const chain = merged ? buildChain(merged, this.plugins.env, { kind: 'route', id }, previous?.plugins) : undefined;
    const hosts = conf.hosts ?? (conf.host ? [conf.host] : service?.conf.hosts);
    const compiled: CompiledRoute = {
      id,
      conf,
      hosts,
      service,
      timeouts: conf.timeout ? timeoutsMs(conf.timeout) : undefined,
      resolveUpstream: this.#upstreamResolver(id, conf, serviceId, service),
      plugins: chain && !chain.empty ? chain : undefined,
      websocket: conf.enable_websocket ?? service?.conf.enable_websocket ?? false,
      missingPluginConfig: pluginConfigId !== undefined && !pluginConfig ? pluginConfigId : undefined,
    };
    const remoteAddrs = conf.remote_addrs ?? (conf.remote_addr ? [conf.remote_addr] : undefined);
    this.router.upsert({
      id,
      paths: conf.uris ?? [conf.uri!],
      hosts,
      methods: conf.methods,
      remoteAddrs,
      vars: conf.vars && conf.vars.length > 0 ? compileExpr(conf.vars) : undefined,
      priority: conf.priority ?? 0,
      value: compiled,
    });
    releaseDropped(previous?.plugins, compiled.plugins, this.plugins.env.log);
  }

  /** Route `upstream_id` > route `upstream` > service `upstream_id` > service `upstream` (APISIX's order). */
  #upstreamResolver(id: string, conf: Route, serviceId: string | undefined, service: CompiledService | undefined): () => UpstreamResolution {
    if (serviceId !== undefined && !service) {
      return () => ({ ok: false, status: 404, log: `failed to fetch service configuration by id: ${serviceId}` });
    }
    // A route's upstream_id beats its inline upstream (t/config-center-yaml/route-upstream.t TEST 3).
    if (conf.upstream && conf.upstream_id === undefined) {
      const result: UpstreamResolution = { ok: true, upstream: compileUpstream(conf.upstream, undefined, this.#poolDefaults, this.#healthName('routes', id)) };
      return () => result;
    }
    const upstreamId = conf.upstream_id ?? service?.conf.upstream_id;
    if (upstreamId !== undefined) {
      const key = String(upstreamId);
      const upstreams = this.upstreams;
      return () => {
        const upstream = upstreams.get(key);
        return upstream ? { ok: true, upstream } : { ok: false, status: 502, log: `failed to find upstream by id: ${key}` };
      };
    }
    if (service?.upstream) {
      const result: UpstreamResolution = { ok: true, upstream: service.upstream };
      return () => result;
    }
    return () => ({ ok: false, status: 503, log: 'missing upstream configuration in Route or Service' });
  }
}
