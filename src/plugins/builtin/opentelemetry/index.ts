// opentelemetry: traces requests as OpenTelemetry spans and exports them to an OTLP/HTTP collector.
// Contract: apache/apisix apisix/plugins/opentelemetry.lua (3.x, node settings in
// `plugin_attr.opentelemetry`) and docs/en/latest/plugins/opentelemetry.md.
//
// - rewrite: reads the client's W3C `traceparent`/`tracestate`, decides sampling (always_on,
//   always_off, trace_id_ratio, parent_base), starts a SERVER span named `<method> <matched route
//   path>` (the method alone when no route matched) with APISIX's attributes, and sends
//   `traceparent` upstream (flags `00` when not sampled).
// - before_proxy: each try to a node gets a CLIENT span, child of the SERVER span, covering that
//   exchange; the upstream's `traceparent` names it as the parent. (Causeway's addition.)
// - log: ends the spans (`http.status_code`, status ERROR on 5xx) and queues them for export.
//
// Export runs off the request path, per worker: batched as `plugin_attr.opentelemetry.batch_span_processor`
// says, POSTed to `http://<collector.address>/v1/traces` in protobuf (or OTLP/JSON with the
// Causeway-only `collector.format: json`). A full queue drops spans; requests never wait for it.
import { hostname } from 'node:os';
import { definePlugin, type CompileEnv, type PluginContext } from '../../api.ts';
import { BatchQueue, post, type BatchSettings, type Logger, type PostTarget } from '../../lib/span-export.ts';
import { formatTraceparent, isHex, isZeroId, newSpanId, newTraceId, parseTraceparent, SpanClock, type TraceParent } from '../../lib/trace-context.ts';
import { VERSION } from '../../../util/version.ts';
import {
  bool,
  double,
  encodeJson,
  encodeProtobuf,
  FLAG_HAS_IS_REMOTE,
  FLAG_IS_REMOTE,
  int,
  SPAN_KIND_CLIENT,
  SPAN_KIND_SERVER,
  STATUS_ERROR,
  str,
  type ExportHeader,
  type KeyValue,
  type OtlpSpan,
} from './otlp.ts';

const NAME = 'opentelemetry';
/** ctx.state key of the request's trace. */
const KEY = 'opentelemetry.trace';

const samplerNames = ['always_on', 'always_off', 'trace_id_ratio', 'parent_base'];

const schema = {
  type: 'object',
  properties: {
    sampler: {
      type: 'object',
      properties: {
        name: { type: 'string', enum: samplerNames, title: 'sampling strategy', default: 'always_off' },
        options: {
          type: 'object',
          properties: {
            fraction: { type: 'number', title: 'trace_id_ratio fraction', default: 0 },
            root: {
              type: 'object',
              title: 'parent_base root sampler',
              properties: {
                name: { type: 'string', enum: samplerNames.slice(0, 3), title: 'sampling strategy', default: 'always_off' },
                options: {
                  type: 'object',
                  properties: {
                    fraction: { type: 'number', title: 'trace_id_ratio fraction parameter', default: 0 },
                  },
                  default: { fraction: 0 },
                },
              },
              default: { name: 'always_off', options: { fraction: 0 } },
            },
          },
          default: { fraction: 0, root: { name: 'always_off' } },
        },
      },
      default: { name: 'always_off', options: { fraction: 0, root: { name: 'always_off' } } },
    },
    additional_attributes: { type: 'array', items: { type: 'string', minLength: 1 } },
    additional_header_prefix_attributes: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
};

type SamplerName = 'always_on' | 'always_off' | 'trace_id_ratio' | 'parent_base';

interface OtelConf {
  sampler: {
    name: SamplerName;
    options: { fraction: number; root?: { name: Exclude<SamplerName, 'parent_base'>; options?: { fraction?: number } } };
  };
  additional_attributes?: string[];
  additional_header_prefix_attributes?: string[];
}

type Sampler = (traceId: string, parent: TraceParent | undefined) => boolean;

interface HeaderAttribute {
  /** As configured (the attribute key of an exact header). */
  key: string;
  /** Lower-case header name, or prefix for `x-*`. */
  lower: string;
  prefix: boolean;
}

interface OtelState {
  sample: Sampler;
  exporter: Exporter;
  traceIdFromRequestId: boolean;
  setVars: boolean;
  additional: readonly string[] | undefined;
  headerAttributes: readonly HeaderAttribute[] | undefined;
}

/** One try to a node: a CLIENT span. */
interface Try {
  spanId: string;
  start: number;
  ip: string | undefined;
  port: number | undefined;
}

/** The request's trace, kept in ctx.state from rewrite to log. */
interface Trace {
  traceId: string;
  spanId: string;
  sampled: boolean;
  parentSpanId: string | undefined;
  traceState: string | undefined;
  name: string;
  attributes: KeyValue[];
  tries: Try[] | undefined;
  /** When the gateway answered by itself (a last try that failed ends there). */
  gatewayAnsweredAt: number | undefined;
  exporter: Exporter;
}

// --- node settings (plugin_attr.opentelemetry) ---------------------------------------------------

interface NodeSettings {
  traceIdSource: 'x-request-id' | 'random';
  resource: KeyValue[];
  target: PostTarget | undefined;
  format: 'protobuf' | 'json';
  batch: BatchSettings;
  setNgxVar: boolean;
  /** Identifies an exporter: the same settings share one queue per worker. */
  key: string;
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function positive(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fallback;
}

/** `host:port` (or a full http(s) URL) → the collector's `/v1/traces` URL. */
export function collectorUrl(address: string): URL | undefined {
  const base = /^https?:\/\//i.test(address) ? address : `http://${address}`;
  try {
    return new URL(`${base.replace(/\/+$/, '')}/v1/traces`);
  } catch {
    return undefined;
  }
}

function nodeSettings(attributes: Readonly<Record<string, unknown>> | undefined, log: Logger): NodeSettings {
  const a = obj(attributes);
  const collector = obj(a.collector);
  const bsp = obj(a.batch_span_processor);
  const format = collector.format === 'json' ? 'json' : 'protobuf';
  if (collector.format !== undefined && collector.format !== 'json' && collector.format !== 'protobuf') {
    log('warn', `${NAME}: plugin_attr.opentelemetry.collector.format must be "protobuf" or "json", using protobuf`);
  }
  const address = typeof collector.address === 'string' ? collector.address : '127.0.0.1:4318';
  const url = collectorUrl(address);
  if (!url) log('error', `${NAME}: invalid plugin_attr.opentelemetry.collector.address "${address}": spans are not exported`);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(collector.request_headers))) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') headers[k] = String(v);
  }
  headers['Content-Type'] = format === 'json' ? 'application/json' : 'application/x-protobuf';
  const maxQueueSize = Math.floor(positive(bsp.max_queue_size, 2048));
  let maxBatchSize = Math.floor(positive(bsp.max_export_batch_size, 256));
  if (maxBatchSize > maxQueueSize) {
    log('warn', `${NAME}: max_export_batch_size (${maxBatchSize}) is above max_queue_size (${maxQueueSize}); using ${maxQueueSize}`);
    maxBatchSize = maxQueueSize;
  }
  const batch: BatchSettings = {
    maxQueueSize,
    maxBatchSize,
    maxAgeMs: positive(bsp.batch_timeout, 5) * 1000,
    idleMs: 0,
    tickMs: positive(bsp.inactive_timeout, 2) * 1000,
    dropOnQueueFull: typeof bsp.drop_on_queue_full === 'boolean' ? bsp.drop_on_queue_full : true,
    maxInFlight: 2,
  };
  const resource: KeyValue[] = [str('hostname', hostname())];
  const configured = obj(a.resource);
  if (configured['service.name'] === undefined) resource.push(str('service.name', 'APISIX'));
  for (const [k, v] of Object.entries(configured)) {
    if (typeof v === 'string') resource.push(str(k, v));
    else if (typeof v === 'number') resource.push(double(k, v));
    else if (typeof v === 'boolean') resource.push(bool(k, v));
  }
  resource.push(str('telemetry.sdk.name', 'causeway'), str('telemetry.sdk.language', 'nodejs'), str('telemetry.sdk.version', VERSION));
  const target = url ? { url, headers, timeoutMs: positive(collector.request_timeout, 3) * 1000 } : undefined;
  const traceIdSource = a.trace_id_source === 'x-request-id' ? 'x-request-id' : 'random';
  return {
    traceIdSource,
    resource,
    target,
    format,
    batch,
    setNgxVar: a.set_ngx_var === true,
    key: JSON.stringify([url?.href, headers, target?.timeoutMs, batch, resource]),
  };
}

// --- export --------------------------------------------------------------------------------------

class Exporter {
  readonly #queue: BatchQueue<OtlpSpan>;

  constructor(settings: NodeSettings, log: Logger) {
    const header: ExportHeader = { resource: settings.resource, scopeName: 'causeway', scopeVersion: VERSION };
    const target = settings.target;
    const encode = settings.format === 'json' ? encodeJson : encodeProtobuf;
    const send = target ? (spans: OtlpSpan[]) => post(target, encode(header, spans)) : async () => undefined;
    this.#queue = new BatchQueue(`${NAME}: collector ${target?.url.host ?? '(none)'}`, settings.batch, send, log);
  }

  push(span: OtlpSpan): void {
    this.#queue.push(span);
  }

  close(): void {
    this.#queue.close();
  }
}

/** This worker's exporters by settings (usually one). */
const exporters = new Map<string, Exporter>();

function exporterFor(settings: NodeSettings, log: Logger): Exporter {
  let exporter = exporters.get(settings.key);
  if (!exporter) {
    exporter = new Exporter(settings, log);
    exporters.set(settings.key, exporter);
  }
  return exporter;
}

// --- sampling ------------------------------------------------------------------------------------

/** Deterministic by trace id: the trace id's last 52 bits, read as a fraction of 2^52. */
function ratioSampler(fraction: number): Sampler {
  if (!(fraction > 0)) return () => false;
  if (fraction >= 1) return () => true;
  return (traceId) => parseInt(traceId.slice(19, 32), 16) / 2 ** 52 < fraction;
}

function samplerFor(conf: OtelConf['sampler']): Sampler {
  const options = conf.options ?? { fraction: 0 };
  switch (conf.name) {
    case 'always_on':
      return () => true;
    case 'trace_id_ratio':
      return ratioSampler(options.fraction ?? 0);
    case 'parent_base': {
      const root = options.root;
      const rootSampler = root?.name === 'always_on' ? () => true : root?.name === 'trace_id_ratio' ? ratioSampler(root.options?.fraction ?? 0) : () => false;
      return (traceId, parent) => (parent ? (parent.flags & 1) === 1 : rootSampler(traceId, undefined));
    }
    default:
      return () => false;
  }
}

// --- the request's spans -------------------------------------------------------------------------

/**
 * `trace_id_source: x-request-id`: the request id (dashes dropped) when it is 32 hex digits, as
 * request-id's uuids are; otherwise `$request_id`, so the trace id shows in access logs.
 */
function traceIdFromRequest(ctx: PluginContext): string {
  const id = ctx.header('x-request-id');
  if (id !== undefined) {
    const hex = id.replace(/-/g, '').toLowerCase();
    if (isHex(hex, 32) && !isZeroId(hex)) return hex;
  }
  return ctx.get('request_id') ?? newTraceId();
}

function headerAttributes(ctx: PluginContext, wanted: readonly HeaderAttribute[], out: KeyValue[]): void {
  for (const h of wanted) {
    if (!h.prefix) {
      const v = ctx.header(h.lower);
      if (v !== undefined) out.push(str(h.key, v));
      continue;
    }
    for (const name of Object.keys(ctx.headers)) {
      if (!name.startsWith(h.lower)) continue;
      const v = ctx.header(name);
      if (v !== undefined) out.push(str(name, v));
    }
  }
}

/** The SERVER span's attributes, as APISIX sets them in rewrite. */
function serverAttributes(ctx: PluginContext, state: OtelState, matchedPath: string | undefined): KeyValue[] {
  const attrs: KeyValue[] = [str('net.host.name', ctx.host), str('http.method', ctx.method), str('http.scheme', ctx.scheme), str('http.target', ctx.get('request_uri') ?? ctx.requestUri)];
  const ua = ctx.header('user-agent');
  if (ua !== undefined) attrs.push(str('http.user_agent', ua));
  if (ctx.routeId !== undefined) {
    attrs.push(str('apisix.route_id', ctx.routeId));
    if (ctx.routeName !== undefined) attrs.push(str('apisix.route_name', ctx.routeName));
    if (matchedPath !== undefined) attrs.push(str('http.route', matchedPath));
  }
  if (ctx.serviceId !== undefined) {
    attrs.push(str('apisix.service_id', ctx.serviceId));
    if (ctx.serviceName !== undefined) attrs.push(str('apisix.service_name', ctx.serviceName));
  }
  if (state.additional) {
    for (const name of state.additional) {
      const v = ctx.get(name);
      if (v !== undefined) attrs.push(str(name, v));
    }
  }
  if (state.headerAttributes) headerAttributes(ctx, state.headerAttributes, attrs);
  return attrs;
}

/** The last status of `$upstream_status` (`502, 200` → 200). */
function statusList(ctx: PluginContext): number[] {
  const v = ctx.get('upstream_status');
  if (v === undefined || v === '') return [];
  return v.split(',').map((s) => Number(s.trim()));
}

function errorStatus(status: number | undefined, what: string): OtlpSpan['status'] {
  return status !== undefined && status >= 500 ? { code: STATUS_ERROR, message: `${what} status: ${status}` } : undefined;
}

function finish(ctx: PluginContext, trace: Trace): void {
  const now = performance.now();
  const clock = new SpanClock();
  const statuses = statusList(ctx);
  const upstreamStatus = statuses.length > 0 ? statuses[statuses.length - 1] : undefined;
  const responseStatus = Number(ctx.get('status') ?? 0) || undefined;
  const status = upstreamStatus ?? responseStatus;
  const attrs = trace.attributes;
  if (status !== undefined) attrs.push(int('http.status_code', status), int('http.response.status_code', status));
  trace.exporter.push({
    traceId: trace.traceId,
    spanId: trace.spanId,
    parentSpanId: trace.parentSpanId,
    traceState: trace.traceState,
    flags: 1 | FLAG_HAS_IS_REMOTE | (trace.parentSpanId ? FLAG_IS_REMOTE : 0),
    name: trace.name,
    kind: SPAN_KIND_SERVER,
    startMicros: clock.micros(ctx.startTime),
    endMicros: clock.micros(now),
    attributes: attrs,
    status: errorStatus(status, upstreamStatus !== undefined ? 'upstream response' : 'response'),
  });

  const tries = trace.tries;
  if (!tries) return;
  // A last try that never went out (a later before_proxy ended the request) has no span.
  const upstreamStart = ctx.upstreamStartTime;
  const lastSent = upstreamStart !== undefined && upstreamStart >= tries[tries.length - 1].start;
  const count = lastSent ? tries.length : tries.length - 1;
  const scheme = ctx.get('upstream_scheme') ?? 'http';
  for (let i = 0; i < count; i++) {
    const t = tries[i];
    const last = i === tries.length - 1;
    let end: number;
    if (!last) end = tries[i + 1].start;
    else if (ctx.upstreamResponseTime !== undefined) end = upstreamStart! + ctx.upstreamResponseTime;
    else end = trace.gatewayAnsweredAt ?? now;
    const tryStatus = statuses.length === tries.length ? statuses[i] : last ? upstreamStatus : undefined;
    const a: KeyValue[] = [];
    if (t.ip !== undefined) a.push(str('net.peer.ip', t.ip));
    if (t.port !== undefined) a.push(int('net.peer.port', t.port));
    a.push(str('http.method', ctx.upstreamMethod), str('http.scheme', scheme), str('http.target', ctx.upstreamUri));
    if (tryStatus !== undefined && !Number.isNaN(tryStatus)) a.push(int('http.status_code', tryStatus));
    trace.exporter.push({
      traceId: trace.traceId,
      spanId: t.spanId,
      parentSpanId: trace.spanId,
      traceState: trace.traceState,
      flags: 1 | FLAG_HAS_IS_REMOTE,
      name: ctx.upstreamMethod,
      kind: SPAN_KIND_CLIENT,
      startMicros: clock.micros(t.start),
      endMicros: clock.micros(Math.max(end, t.start)),
      attributes: a,
      status: errorStatus(tryStatus, 'upstream response'),
    });
  }
}

export default definePlugin<OtelConf, OtelState>({
  name: NAME,
  version: 0.1,
  priority: 12009,
  schema,

  compile(conf, env: CompileEnv) {
    const settings = nodeSettings(env.attributes, env.log);
    return {
      sample: samplerFor(conf.sampler),
      exporter: exporterFor(settings, env.log),
      traceIdFromRequestId: settings.traceIdSource === 'x-request-id',
      setVars: settings.setNgxVar,
      additional: conf.additional_attributes?.length ? conf.additional_attributes : undefined,
      headerAttributes: conf.additional_header_prefix_attributes?.length
        ? conf.additional_header_prefix_attributes.map((key) => {
            const prefix = key.length >= 2 && key.endsWith('*');
            return { key, lower: (prefix ? key.slice(0, -1) : key).toLowerCase(), prefix };
          })
        : undefined,
    };
  },

  destroy() {
    for (const exporter of exporters.values()) exporter.close();
    exporters.clear();
  },

  phases: {
    rewrite(ctx, _conf, state) {
      // A global rule's instance already traces this request: the route's goes along with it.
      if (ctx.state.has(KEY)) return undefined;
      const parent = parseTraceparent(ctx.header('traceparent'));
      const traceId = parent ? parent.traceId : state.traceIdFromRequestId ? traceIdFromRequest(ctx) : newTraceId();
      const sampled = state.sample(traceId, parent);
      const spanId = newSpanId();
      let name = ctx.method;
      let attributes: KeyValue[] = [];
      if (sampled) {
        const matchedPath = ctx.routeId !== undefined ? ctx.get('matched_uri') : undefined;
        if (matchedPath !== undefined) name = `${ctx.method} ${matchedPath}`;
        attributes = serverAttributes(ctx, state, matchedPath);
      }
      const trace: Trace = {
        traceId,
        spanId,
        sampled,
        parentSpanId: parent?.spanId,
        traceState: parent ? ctx.header('tracestate') : undefined,
        name,
        attributes,
        tries: undefined,
        gatewayAnsweredAt: undefined,
        exporter: state.exporter,
      };
      ctx.state.set(KEY, trace);
      const traceparent = formatTraceparent(traceId, spanId, sampled);
      ctx.setHeader('traceparent', traceparent);
      // A tracestate without a valid traceparent is not passed on (W3C Trace Context).
      if (!parent && ctx.header('tracestate') !== undefined) ctx.setHeader('tracestate', undefined);
      if (state.setVars) {
        ctx.setVar('opentelemetry_context_traceparent', traceparent);
        ctx.setVar('opentelemetry_trace_id', traceId);
        ctx.setVar('opentelemetry_span_id', spanId);
      }
      return undefined;
    },

    before_proxy(ctx) {
      const trace = ctx.state.get(KEY) as Trace | undefined;
      if (!trace?.sampled) return undefined;
      // A second instance (a global rule's and the route's) on the same try: it is counted once.
      const last = trace.tries?.[trace.tries.length - 1];
      if (last && (ctx.upstreamStartTime === undefined || ctx.upstreamStartTime < last.start)) return undefined;
      const t: Try = { spanId: newSpanId(), start: performance.now(), ip: ctx.balancerIp, port: ctx.balancerPort };
      (trace.tries ??= []).push(t);
      ctx.setHeader('traceparent', formatTraceparent(trace.traceId, t.spanId, true));
      return undefined;
    },

    header_filter(ctx) {
      const trace = ctx.state.get(KEY) as Trace | undefined;
      if (trace?.sampled && ctx.response.fromGateway) trace.gatewayAnsweredAt ??= performance.now();
    },

    log(ctx) {
      const trace = ctx.state.get(KEY) as Trace | undefined;
      if (!trace?.sampled) return;
      // Ended once, whichever instance's log runs first.
      ctx.state.delete(KEY);
      finish(ctx, trace);
    },
  },
});
