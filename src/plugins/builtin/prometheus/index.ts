// prometheus: per-request metrics with APISIX's names, types and labels (status codes, latencies,
// bandwidth), written into the node's shared metrics memory and exported by the main thread on
// plugin_attr.prometheus.export_addr (see src/observability/). Node-wide metrics (connections, etcd,
// node info, upstream health) are added at scrape time by the exporter.
// Contract: apache/apisix apisix/plugins/prometheus.lua and prometheus/exporter.lua.
import { definePlugin, type Counter, type Histogram, type MetricsRegistry, type PluginContext } from '../../api.ts';

/** 1 ms to 60 s, APISIX's default latency buckets. */
export const DEFAULT_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000];

interface PrometheusConf {
  prefer_name: boolean;
}

/** `plugin_attr.prometheus` (the parts that shape per-request metrics). */
interface PrometheusAttributes {
  metric_prefix?: string;
  default_buckets?: number[];
  metrics?: Partial<Record<'http_status' | 'http_latency' | 'bandwidth', { extra_labels?: Array<Record<string, string>> }>>;
}

/** An extra label: its name and the request variable (`$upstream_addr`) that gives its value. */
interface ExtraLabel {
  name: string;
  variable: string;
}

interface Instruments {
  status: Counter;
  latency: Histogram;
  bandwidth: Counter;
  extra: { status: ExtraLabel[]; latency: ExtraLabel[]; bandwidth: ExtraLabel[] };
}

/** One set of instruments per attribute set: every route's instance shares them. */
const cache = new WeakMap<MetricsRegistry, { key: string; instruments: Instruments }>();

function instruments(metrics: MetricsRegistry, attrs: PrometheusAttributes): Instruments {
  const key = JSON.stringify(attrs);
  const cached = cache.get(metrics);
  if (cached?.key === key) return cached.instruments;
  const prefix = attrs.metric_prefix ?? 'apisix_';
  const extra = (name: 'http_status' | 'http_latency' | 'bandwidth'): ExtraLabel[] =>
    (attrs.metrics?.[name]?.extra_labels ?? []).flatMap((pair) => Object.entries(pair).map(([label, value]) => ({ name: label, variable: String(value).replace(/^\$/, '') })));
  const made: Instruments = {
    extra: { status: extra('http_status'), latency: extra('http_latency'), bandwidth: extra('bandwidth') },
    status: undefined as unknown as Counter,
    latency: undefined as unknown as Histogram,
    bandwidth: undefined as unknown as Counter,
  };
  const names = (labels: ExtraLabel[]) => labels.map((l) => l.name);
  made.status = metrics.counter(`${prefix}http_status`, 'HTTP status codes per service in APISIX', [
    'code', 'route', 'matched_uri', 'matched_host', 'service', 'consumer', 'node', ...names(made.extra.status),
  ]);
  made.latency = metrics.histogram(`${prefix}http_latency`, 'HTTP request latency in milliseconds per service in APISIX', [
    'type', 'route', 'service', 'consumer', 'node', ...names(made.extra.latency),
  ], attrs.default_buckets ?? DEFAULT_BUCKETS);
  made.bandwidth = metrics.counter(`${prefix}bandwidth`, 'Total bandwidth in bytes consumed per service in APISIX', [
    'type', 'route', 'service', 'consumer', 'node', ...names(made.extra.bandwidth),
  ]);
  cache.set(metrics, { key, instruments: made });
  return made;
}

function extraValues(ctx: PluginContext, labels: ExtraLabel[]): string[] {
  return labels.map((l) => ctx.get(l.variable) ?? '');
}

export default definePlugin<PrometheusConf, Instruments>({
  name: 'prometheus',
  version: 0.2,
  priority: 500,
  runPolicy: 'prefer_route',
  schema: {
    type: 'object',
    properties: {
      prefer_name: { type: 'boolean', default: false },
    },
  },
  compile: (_conf, env) => instruments(env.metrics, (env.attributes ?? {}) as PrometheusAttributes),
  phases: {
    log(ctx, conf, m) {
      let route = ctx.routeId ?? '';
      let service = ctx.serviceId ?? '';
      if (conf.prefer_name) {
        route = ctx.routeName ?? route;
        if (service !== '') service = ctx.serviceName ?? service;
      }
      const consumer = ctx.consumer?.username ?? '';
      const node = ctx.balancerIp ?? '';
      m.status.inc(1, [ctx.get('status') ?? '', route, ctx.get('matched_uri') ?? '', ctx.get('matched_host') ?? '', service, consumer, node, ...extraValues(ctx, m.extra.status)]);

      // latency_details_in_ms (apisix/utils/log-util.lua): the upstream's share only when a node answered.
      const latency = performance.now() - ctx.startTime;
      const upstreamSeconds = Number(ctx.get('upstream_response_time'));
      const upstream = Number.isFinite(upstreamSeconds) && ctx.get('upstream_response_time') !== undefined ? upstreamSeconds * 1000 : undefined;
      const latencyExtra = extraValues(ctx, m.extra.latency);
      m.latency.observe(latency, ['request', route, service, consumer, node, ...latencyExtra]);
      if (upstream !== undefined) m.latency.observe(upstream, ['upstream', route, service, consumer, node, ...latencyExtra]);
      m.latency.observe(Math.max(0, latency - (upstream ?? 0)), ['apisix', route, service, consumer, node, ...latencyExtra]);

      const bandwidthExtra = extraValues(ctx, m.extra.bandwidth);
      m.bandwidth.inc(Number(ctx.get('request_length') ?? 0), ['ingress', route, service, consumer, node, ...bandwidthExtra]);
      m.bandwidth.inc(Number(ctx.get('bytes_sent') ?? 0), ['egress', route, service, consumer, node, ...bandwidthExtra]);
    },
  },
});
