// The public plugin API: what a plugin module declares (`definePlugin`) and what its phases see
// (`PluginContext`). Builtins under plugins/builtin/ use exactly this surface, as a user's plugin does;
// nothing here reaches into the proxy. Semantics follow APISIX's plugin contract (apisix/plugin.lua).
import type { IncomingHttpHeaders } from 'node:http';

export type JsonSchema = Record<string, unknown>;
export type MaybePromise<T> = T | Promise<T>;

export type PhaseName = 'rewrite' | 'access' | 'before_proxy' | 'header_filter' | 'body_filter' | 'log';

/**
 * What `rewrite`, `access` or `before_proxy` return to end the request, as APISIX's
 * `return code, body`: a string or Buffer body is sent as is, an object as JSON. For a status
 * ≥ 400, the plugin instance's `_meta.error_response` replaces the body.
 */
export interface PhaseExit {
  status: number;
  body?: string | Buffer | object;
  /** Response headers for this exit (merged over headers set through `ctx.response.headers`). */
  headers?: Record<string, string | string[]>;
}

/** `undefined` lets the request go on. */
export type PhaseOutcome = PhaseExit | undefined | void;

/** A consumer as the runtime resolved it: its own plugins merged over its group's. */
export interface Consumer {
  username: string;
  /** Plugins of the consumer group then the consumer (consumer wins), as configured. */
  plugins: Readonly<Record<string, unknown>>;
  groupId?: string;
  labels?: Readonly<Record<string, string>>;
  desc?: string;
}

/**
 * One way to authenticate as a consumer with an auth plugin: the plugin's block in the consumer's
 * own `plugins`, or in one of its credentials (`credentialId` set). `conf` went through the
 * plugin's `consumerSchema` (defaults filled in).
 */
export interface ConsumerCredential<C = Record<string, unknown>> {
  consumer: Consumer;
  conf: C;
  credentialId?: string;
}

/** Headers of the response the client will get; names are case-insensitive. */
export interface ResponseHeaders {
  get(name: string): string | undefined;
  /** Replaces every value of `name`; `undefined` removes it. */
  set(name: string, value: string | number | readonly string[] | undefined): void;
  /** Adds one more value, keeping the existing ones (`Set-Cookie`, `Vary`). */
  add(name: string, value: string): void;
  has(name: string): boolean;
  remove(name: string): void;
  /** All headers as [name, value] pairs, in order. */
  entries(): Array<[string, string]>;
}

export interface ResponseView {
  /**
   * The status the client will get. Known from `header_filter` on (upstream status or the exit
   * code); a `header_filter` may change it. 0 before that.
   */
  status: number;
  /**
   * Response headers. Set in any phase: before the response exists, what is set is applied on top
   * of the upstream's headers (as `core.response.set_header` in `access` works in APISIX).
   */
  readonly headers: ResponseHeaders;
  /** True when the gateway itself produced the response (a plugin exit, 404, 502, ...). */
  readonly fromGateway: boolean;
}

/** An opaque upstream made by `CompileEnv.compileUpstream`; hand it to `ctx.setUpstream`. */
export interface UpstreamHandle {
  readonly __upstream: unique symbol;
}

/** Where a request goes instead of its route's upstream (traffic-split). */
export type UpstreamTarget = { upstreamId: string } | { upstream: UpstreamHandle };

export type LogLevel = 'debug' | 'info' | 'notice' | 'warn' | 'error';

/** What a phase sees of the request. */
export interface PluginContext {
  readonly method: string;
  /** Normalised path (`$uri`). */
  readonly uri: string;
  /** The request target as the client sent it (`$request_uri`). */
  readonly requestUri: string;
  /** Query string without `?` (`$args`). */
  readonly queryString: string;
  /** Host without port, lower-case (`$host`). */
  readonly host: string;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly scheme: 'http' | 'https';
  /** `performance.now()` when the request arrived. */
  readonly startTime: number;
  readonly routeId: string | undefined;
  readonly routeName: string | undefined;
  readonly serviceId: string | undefined;
  readonly serviceName: string | undefined;

  /** A request variable as APISIX names them (`uri`, `http_x_api_key`, `arg_k`, `cookie_c`, `consumer_name`, ...). */
  get(name: string): string | undefined;
  /** A request header by lower-case name (repeated headers joined with `, `). */
  header(lowerName: string): string | undefined;
  /** Request headers as Node parsed them (lower-case names); reflects `setHeader` changes. */
  readonly headers: IncomingHttpHeaders;
  /** Query arguments (a repeated argument is an array). */
  readonly args: ReadonlyMap<string, string | string[]>;
  readonly cookies: ReadonlyMap<string, string>;

  /** Replaces the client address (`remote_addr`, `remote_port`) for the rest of the request (real-ip). */
  setRemoteAddr(addr: string, port?: number): void;
  /**
   * Sets (or with `undefined` removes) a header of the request sent upstream; a list sends one
   * header line per value.
   */
  setHeader(name: string, value: string | readonly string[] | undefined): void;
  /** Path and query sent upstream; starts as `requestUri`. */
  upstreamUri: string;
  /** Method sent upstream; starts as the client's. */
  upstreamMethod: string;
  /** `Host` sent upstream instead of the client's (an upstream with `pass_host: node` or `rewrite` still decides). */
  upstreamHost: string | undefined;
  /** Sends this request to another upstream than the route's. */
  setUpstream(target: UpstreamTarget): void;
  /**
   * Reads the whole request body (up to `client_max_body_size`); it is still sent upstream.
   * Resolves to an empty Buffer when there is none. Call it in `rewrite` or `access`: by
   * `before_proxy` the body is already streaming to the upstream.
   */
  readBody(): Promise<Buffer>;
  /** Replaces the body sent upstream (Content-Length is set to match). */
  setBody(body: Buffer | string): void;

  /** The authenticated consumer, once an auth plugin attached one. */
  readonly consumer: Consumer | undefined;
  /** Id of the credential that authenticated the consumer, if it was one. */
  readonly credentialId: string | undefined;
  /**
   * Called by auth plugins: the consumer's (and its group's) plugins are merged into the route's,
   * and the upstream is told who it is (`X-Consumer-Username`, `X-Credential-Identifier`,
   * `X-Consumer-Custom-Id` from the `custom_id` label; each removed when unknown, so a client
   * cannot supply them), as APISIX's `consumer.attach_consumer` does.
   */
  attachConsumer(entry: ConsumerCredential<unknown>): void;
  /** A consumer by username (`anonymous_consumer`), whether or not it carries any plugin. */
  findConsumer(username: string): Consumer | undefined;
  /**
   * The index an auth plugin built from every consumer and credential carrying it (its
   * `indexConsumers`), rebuilt only when consumers, credentials or groups change.
   */
  consumerIndex<I>(pluginName: string): I | undefined;
  /** The plugin's `plugin_metadata` object (defaults filled in), if one is set. */
  metadata<M = Record<string, unknown>>(pluginName: string): M | undefined;

  /** The response, from `header_filter` on; headers may be set earlier. */
  readonly response: ResponseView;
  /** Per-request scratch space shared by the plugins of this request. */
  readonly state: Map<string, unknown>;
  /** The node picked for the current try (`before_proxy` on). */
  readonly balancerIp: string | undefined;
  readonly balancerPort: number | undefined;
  /** `performance.now()` when the current (or last) try's request started toward its node; undefined before. */
  readonly upstreamStartTime: number | undefined;
  /** Milliseconds from the last try's start to the end of the upstream's response; undefined until then. */
  readonly upstreamResponseTime: number | undefined;
  /**
   * Sets a request variable that later phases, other plugins and the access log read with `get`
   * (APISIX's `ngx.var.<name> = value`); `undefined` unsets it. Built-in variables keep their values.
   */
  setVar(name: string, value: string | undefined): void;
  log(level: LogLevel, message: string): void;
}

/** A table in memory shared by every worker of this node (SharedArrayBuffer). */
export interface SharedTable {
  /**
   * Runs `fn` on the entry for `key` under the entry's lock and returns its result. `values` holds
   * four numbers, zero for a new or expired entry; `ttlMs` (re)sets when the entry expires; 0 keeps
   * the current expiry (a new entry then lives 60 s). The table holds 65,536 entries per node; when
   * full, the entry closest to expiring gives way.
   * Keep `fn` short and synchronous: other workers wait on the lock.
   */
  update<R>(key: string, fn: (values: Float64Array, now: number) => R, ttlMs: number): R;
}

/** A Prometheus counter: only goes up. `labelValues` follow the label names, in order. */
export interface Counter {
  inc(value: number, labelValues?: readonly string[]): void;
  /** The series of these label values, bound: cheaper when the same series is updated again and again. */
  labels(labelValues: readonly string[]): { inc(value: number): void };
}

/** A Prometheus gauge, shared by the workers: `set` replaces the value, `inc` adds (negative to lower). */
export interface Gauge {
  set(value: number, labelValues?: readonly string[]): void;
  inc(value: number, labelValues?: readonly string[]): void;
  /** The series of these label values, bound (see Counter.labels). */
  labels(labelValues: readonly string[]): { set(value: number): void; inc(value: number): void };
}

/** A Prometheus histogram with fixed bucket bounds (`+Inf` is implied). */
export interface Histogram {
  observe(value: number, labelValues?: readonly string[]): void;
  /** The series of these label values, bound (see Counter.labels). */
  labels(labelValues: readonly string[]): { observe(value: number): void };
}

/**
 * The node's metrics, aggregated across workers in shared memory and exported by the prometheus
 * plugin's endpoint. Defining the same name twice returns a handle to the same metric.
 */
export interface MetricsRegistry {
  /**
   * The Prometheus text of every series (summed over the workers), with `<prefix>node_info`, as a
   * `public-api` route serves it. The export server adds what only the main process knows (etcd,
   * health checks).
   */
  exposition(prefix: string): Promise<string>;
  counter(name: string, help: string, labelNames: readonly string[]): Counter;
  gauge(name: string, help: string, labelNames: readonly string[]): Gauge;
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram;
}

/** An endpoint a plugin serves on routes that carry `public-api` (APISIX's plugin `api()`). */
export interface PluginApi {
  methods: readonly string[];
  uri: string;
  handler(ctx: PluginContext): MaybePromise<PhaseExit>;
}

/** Services a plugin gets when it builds its per-config state. */
export interface CompileEnv {
  /** The endpoints the enabled plugins offer to `public-api` routes. */
  pluginApis(): readonly PluginApi[];
  /** Counters, gauges and histograms exported with the node's metrics. */
  readonly metrics: MetricsRegistry;
  log(level: LogLevel, message: string): void;
  /** The node-wide shared table named `name` (one per name, shared across workers). */
  sharedTable(name: string): SharedTable;
  /** Compiles an APISIX upstream object (checked by the caller) for `ctx.setUpstream`. */
  compileUpstream(conf: Record<string, unknown>): UpstreamHandle;
  /** Where this instance is configured, for keys and messages (`route 1`, `global_rules 2`, ...). */
  readonly owner: { kind: string; id: string };
  /** `plugin_attr.<name>` from config.yaml. */
  readonly attributes: Readonly<Record<string, unknown>> | undefined;
}

export type Phase<C, S> = (ctx: PluginContext, conf: C, state: S) => MaybePromise<PhaseOutcome>;
export type FilterPhase<C, S> = (ctx: PluginContext, conf: C, state: S) => MaybePromise<void>;
/**
 * Gets each response body chunk in order (`eof` on the last call, whose chunk may be empty) and
 * returns what to send instead: a Buffer (possibly empty), or undefined to send the chunk as is.
 */
export type BodyFilter<C, S> = (ctx: PluginContext, conf: C, state: S, chunk: Buffer, eof: boolean) => MaybePromise<Buffer | undefined>;

export interface PluginDefinition<C = any, S = any, I = any> {
  /** kebab-case; the key in a resource's `plugins`. */
  name: string;
  version: number;
  /** Higher runs first in every phase. Custom plugins are advised to use 0-100. */
  priority: number;
  /** JSON Schema of the per-route conf (the runtime injects `_meta`). */
  schema: JsonSchema;
  /** Schema of the plugin's block on consumers and credentials (auth plugins). */
  consumerSchema?: JsonSchema;
  /** Schema of its `plugin_metadata` object. */
  metadataSchema?: JsonSchema;
  /** `auth`: may attach a consumer; only auth plugins are allowed in credentials. */
  type?: 'auth';
  /** `global`: meant for global rules. */
  scope?: 'global';
  /** `prefer_route`: the global-rule copy is skipped when the route has the plugin too. */
  runPolicy?: 'prefer_route';
  /**
   * An output encoder (gzip): its header_filter and body_filter run after every other plugin's,
   * global rules' included, as nginx's output filters run after APISIX's plugins, so other plugins
   * see and change the plain body.
   */
  outputFilter?: boolean;
  /** Checks beyond the schema; returns the error text. `kind` says which schema applied. */
  check?(conf: C, kind: 'route' | 'consumer' | 'metadata'): string | undefined;
  /** Builds the per-instance state once per config version (compiled regexes, parsed keys). */
  compile?(conf: C, env: CompileEnv): S;
  /**
   * Called when a configured instance is replaced or removed (its route or global rule changed), with
   * the state `compile` built: flush buffers, close connections. Requests already running may still
   * call the instance's phases afterwards, so the state must stay usable.
   */
  dispose?(state: S): void;
  /** Builds a lookup from every consumer and credential that carries this (auth) plugin. */
  indexConsumers?(entries: readonly ConsumerCredential[]): I;
  /** Endpoints served through `public-api` routes (`attributes` is `plugin_attr.<name>`). */
  api?(env: { attributes: Readonly<Record<string, unknown>> | undefined; metrics: MetricsRegistry }): PluginApi[];
  /** Called when the plugin is loaded (each worker and the main process). */
  init?(): void | Promise<void>;
  /** Called when the plugin is unloaded by a reload. */
  destroy?(): void | Promise<void>;
  phases: {
    rewrite?: Phase<C, S>;
    access?: Phase<C, S>;
    before_proxy?: Phase<C, S>;
    header_filter?: FilterPhase<C, S>;
    body_filter?: BodyFilter<C, S>;
    log?: FilterPhase<C, S>;
  };
}

/** Declares a plugin. An identity function for typing; the loader checks the definition. */
export function definePlugin<C = any, S = any, I = any>(definition: PluginDefinition<C, S, I>): PluginDefinition<C, S, I> {
  return definition;
}
