// A plugin chain: one object's plugins (a route with its service and plugin config merged in, or
// the global rules), validated, compiled and sorted once per config version, with one list per
// phase so the request path only walks arrays. apache/apisix: apisix/plugin.lua `filter`,
// `merge_consumer_route`, `run_plugin`.
import { compileExpr, type Predicate } from '../expr/index.ts';
import type { BodyFilter, CompileEnv, Consumer, FilterPhase, Phase, PluginApi, UpstreamHandle } from './api.ts';
import type { LoadedPlugin, PluginCatalog } from './registry.ts';

/** One configured plugin, ready to run. */
export interface PluginInstance {
  readonly name: string;
  readonly plugin: LoadedPlugin;
  readonly conf: any;
  readonly state: unknown;
  /** `_meta.filter`, compiled; the plugin runs only when it holds. */
  readonly filter: Predicate | undefined;
  /** `_meta.error_response`: replaces the body of this plugin's ≥ 400 exits. */
  readonly errorResponse: string | object | undefined;
  readonly priority: number;
  readonly isAuth: boolean;
  readonly rewrite: Phase<any, unknown> | undefined;
  readonly access: Phase<any, unknown> | undefined;
  readonly before_proxy: Phase<any, unknown> | undefined;
  readonly header_filter: FilterPhase<any, unknown> | undefined;
  readonly body_filter: BodyFilter<any, unknown> | undefined;
  readonly log: FilterPhase<any, unknown> | undefined;
}

/** What building a chain needs from the node: the catalogue and the services plugins compile with. */
export interface ChainEnv {
  catalog: PluginCatalog;
  compileUpstream(conf: Record<string, unknown>): UpstreamHandle;
  sharedTable: CompileEnv['sharedTable'];
  metrics: CompileEnv['metrics'];
  attributes(name: string): Readonly<Record<string, unknown>> | undefined;
  log: CompileEnv['log'];
}

/** The `public-api` endpoints of the enabled plugins, each built with its plugin's attributes. */
function pluginApis(env: ChainEnv): PluginApi[] {
  return env.catalog.names().flatMap((name) => env.catalog.get(name)?.def.api?.({ attributes: env.attributes(name), metrics: env.metrics }) ?? []);
}

export type PhaseList = 'rewrite' | 'access' | 'before_proxy' | 'header_filter' | 'body_filter' | 'log';

export class PluginChain {
  /** The merged plugins object this chain was built from (name → conf as configured). */
  readonly source: Readonly<Record<string, unknown>>;
  readonly instances: readonly PluginInstance[];
  readonly names: ReadonlySet<string>;
  readonly rewrite: readonly PluginInstance[];
  readonly access: readonly PluginInstance[];
  readonly before_proxy: readonly PluginInstance[];
  readonly header_filter: readonly PluginInstance[];
  readonly body_filter: readonly PluginInstance[];
  readonly log: readonly PluginInstance[];
  /** Some instance has `_meta.filter`: the request must pick its active instances. */
  readonly hasFilters: boolean;
  readonly #env: ChainEnv;
  readonly #owner: { kind: string; id: string };
  /** Merged chains per consumer (the Consumer object is rebuilt when consumers change). */
  readonly #withConsumer = new WeakMap<Consumer, ConsumerChain>();

  constructor(source: Record<string, unknown>, instances: PluginInstance[], env: ChainEnv, owner: { kind: string; id: string }) {
    this.source = source;
    this.instances = instances;
    this.#env = env;
    this.#owner = owner;
    this.names = new Set(instances.map((i) => i.name));
    this.rewrite = instances.filter((i) => i.rewrite);
    this.access = instances.filter((i) => i.access);
    this.before_proxy = instances.filter((i) => i.before_proxy);
    this.header_filter = instances.filter((i) => i.header_filter);
    this.body_filter = instances.filter((i) => i.body_filter);
    this.log = instances.filter((i) => i.log);
    this.hasFilters = instances.some((i) => i.filter);
  }

  get empty(): boolean {
    return this.instances.length === 0;
  }

  /**
   * The chain once the consumer's group and own plugins are merged in (consumer > group > route),
   * and the instances added by them whose `rewrite` must still run (non-auth ones only).
   */
  withConsumer(consumer: Consumer): ConsumerChain {
    let merged = this.#withConsumer.get(consumer);
    if (merged) return merged;
    const extra = Object.entries(consumer.plugins).filter(([name]) => {
      const plugin = this.#env.catalog.get(name);
      return plugin !== undefined && plugin.def.type !== 'auth';
    });
    if (extra.length === 0) {
      merged = { chain: this, addedRewrite: [] };
    } else {
      const source = { ...this.source, ...Object.fromEntries(extra) };
      const chain = buildChain(source, this.#env, { kind: this.#owner.kind, id: `${this.#owner.id}#consumer:${consumer.username}` }, this);
      const addedRewrite = chain.rewrite.filter((i) => !this.names.has(i.name) && !i.isAuth);
      merged = { chain, addedRewrite };
    }
    this.#withConsumer.set(consumer, merged);
    return merged;
  }
}

export interface ConsumerChain {
  chain: PluginChain;
  addedRewrite: readonly PluginInstance[];
}

/**
 * Builds a chain from a plugins object. Names that are not enabled are skipped (the config checker
 * already decided whether that is allowed); invalid confs are skipped with an error log unless
 * `_meta.disable` is set (then the instance is simply off). `reuse` hands over instances whose conf
 * did not change, so their state (counters, clients) survives.
 */
export function buildChain(source: Record<string, unknown>, env: ChainEnv, owner: { kind: string; id: string }, reuse?: PluginChain): PluginChain {
  const instances: PluginInstance[] = [];
  for (const [name, raw] of Object.entries(source)) {
    const plugin = env.catalog.get(name);
    if (!plugin) continue;
    const previous = reuse?.instances.find((i) => i.name === name && i.plugin === plugin && reuse.source[name] === raw);
    if (previous) {
      instances.push(previous);
      continue;
    }
    const meta = (raw as { _meta?: { disable?: boolean } } | undefined)?._meta;
    if (meta?.disable === true) continue;
    const checked = plugin.check(raw ?? {}, 'route');
    if (!checked.ok) {
      env.log('error', `${owner.kind} ${owner.id}: failed to check the configuration of plugin ${name} err: ${checked.error}; plugin skipped`);
      continue;
    }
    const instance = compileInstance(plugin, resolveEnvRefs(checked.conf, env, owner), env, owner);
    if (instance) instances.push(instance);
  }
  instances.sort((a, b) => b.priority - a.priority);
  return new PluginChain(source, instances, env, owner);
}

function compileInstance(plugin: LoadedPlugin, conf: any, env: ChainEnv, owner: { kind: string; id: string }): PluginInstance | undefined {
  const def = plugin.def;
  let state: unknown;
  try {
    state = def.compile?.(conf, {
      log: env.log,
      sharedTable: env.sharedTable,
      metrics: env.metrics,
      pluginApis: () => pluginApis(env),
      compileUpstream: env.compileUpstream,
      owner,
      attributes: env.attributes(def.name),
    });
  } catch (err) {
    env.log('error', `${owner.kind} ${owner.id}: plugin ${def.name} failed to compile: ${(err as Error).message}; plugin skipped`);
    return undefined;
  }
  const meta = conf._meta as { filter?: unknown; error_response?: string | object; priority?: number } | undefined;
  const phases = def.phases;
  return {
    name: def.name,
    plugin,
    conf,
    state,
    filter: meta?.filter !== undefined ? compileExpr(meta.filter) : undefined,
    errorResponse: meta?.error_response,
    priority: meta?.priority ?? def.priority,
    isAuth: def.type === 'auth',
    rewrite: phases.rewrite,
    access: phases.access,
    before_proxy: phases.before_proxy,
    header_filter: phases.header_filter,
    body_filter: phases.body_filter,
    log: phases.log,
  };
}

/**
 * `$env://NAME` string values are replaced by the environment variable (APISIX resolves them when
 * the plugin runs; here once per config version, which is when they can change). `$env://NAME/key`
 * reads `key` from a variable that holds JSON. An unset variable leaves the value as written.
 */
function resolveEnvRefs(value: any, env: ChainEnv, owner: { kind: string; id: string }): any {
  if (typeof value === 'string') {
    if (!/^\$env:\/\//i.test(value)) return value;
    const [name, key] = value.slice(7).split('/', 2);
    const raw = process.env[name];
    if (raw === undefined) {
      env.log('warn', `${owner.kind} ${owner.id}: environment variable ${name} is not set; ${value} is used as written`);
      return value;
    }
    if (key === undefined) return raw;
    try {
      const found = (JSON.parse(raw) as Record<string, unknown>)[key];
      return found === undefined ? value : found;
    } catch {
      return value;
    }
  }
  if (Array.isArray(value)) return value.map((v) => resolveEnvRefs(v, env, owner));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveEnvRefs(v, env, owner);
    return out;
  }
  return value;
}

/**
 * Tells the plugins of `previous` whose instances `next` does not carry on (a changed or removed
 * conf) that they were dropped (`dispose`). Chains built per consumer are left to their plugins.
 */
export function releaseDropped(previous: PluginChain | undefined, next: PluginChain | undefined, log: ChainEnv['log']): void {
  if (!previous) return;
  for (const inst of previous.instances) {
    const dispose = inst.plugin.def.dispose;
    if (!dispose || next?.instances.includes(inst)) continue;
    try {
      dispose(inst.state);
    } catch (err) {
      log('error', `plugin ${inst.name} failed to dispose: ${(err as Error).message}`);
    }
  }
}

/** Route plugins over plugin-config plugins over service plugins (APISIX's merge order). */
export function mergePlugins(...layers: Array<Record<string, unknown> | undefined>): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined;
  for (const layer of layers) {
    if (!layer) continue;
    out = out ? { ...out, ...layer } : layer;
  }
  return out;
}
