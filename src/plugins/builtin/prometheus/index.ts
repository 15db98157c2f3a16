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
  export_uri?: string;
  enable_export_server?: boolean;
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
  /** The series one label combination updates, bound once (most requests repeat a few combinations). */
  bound: Map<string, BoundSeries>;
}

interface BoundSeries {
  status: { inc(value: number): void };
  request: { observe(value: number): void };
  upstream: { observe(value: number): void };
  apisix: { observe(value: number): void };
  ingress: { inc(value: number): void };
  egress: { inc(value: number): void };
}

/** Bound series kept per instrument set; past this many combinations the oldest are forgotten (they still count). */
const MAX_BOUND = 10_000;

/** One set of instruments per attribute set: every route's instance shares them. */
const cache = new WeakMap<MetricsRegistry, { key: string; instruments: Instruments }>();

function instruments(metrics: MetricsRegistry, attrs: PrometheusAttributes): Instruments {
  const key = JSON.stringify(attrs);
  const cached = cache.get(metrics);
  if (cached?.key === key) return cached.instruments;
  const prefix = attrs.metric_prefix ?? 'apisix_';
  const extra = (name: 'http_status' | 'http_latency' | 'bandwidth'): ExtraLabel[] =>
    (attrs.metrics?.[name]?.extra_labels ?? []).flatMap((pair) => Object.entries(pair).map(([label, value]) => ({ name: label, variable: String(value).replace(/^\$/, '') })));
  const extras = { status: extra('http_status'), latency: extra('http_latency'), bandwidth: extra('bandwidth') };
  const names = (labels: ExtraLabel[]) => labels.map((l) => l.name);
  const made: Instruments = {
    extra: extras,
    status: metrics.counter(`${prefix}http_status`, 'HTTP status codes per service in APISIX', [
      'code', 'route', 'matched_uri', 'matched_host', 'service', 'consumer', 'node', ...names(extras.status),
    ]),
    latency: metrics.histogram(`${prefix}http_latency`, 'HTTP request latency in milliseconds per service in APISIX', [
      'type', 'route', 'service', 'consumer', 'node', ...names(extras.latency),
    ], attrs.default_buckets ?? DEFAULT_BUCKETS),
    bandwidth: metrics.counter(`${prefix}bandwidth`, 'Total bandwidth in bytes consumed per service in APISIX', [
      'type', 'route', 'service', 'consumer', 'node', ...names(extras.bandwidth),
    ]),
    bound: new Map(),
  };
  cache.set(metrics, { key, instruments: made });
  return made;
}

function extraValues(ctx: PluginContext, labels: ExtraLabel[]): string[] {
  return labels.map((l) => ctx.get(l.variable) ?? '');
}

/** The series of this request's labels, bound on first use. */
function boundSeries(m: Instruments, ctx: PluginContext, code: string, route: string, matchedUri: string, matchedHost: string, service: string, consumer: string, node: string): BoundSeries {
  const statusExtra = m.extra.status.length ? extraValues(ctx, m.extra.status) : [];
  const latencyExtra = m.extra.latency.length ? extraValues(ctx, m.extra.latency) : [];
  const bandwidthExtra = m.extra.bandwidth.length ? extraValues(ctx, m.extra.bandwidth) : [];
  let key = `${code}\u0000${route}\u0000${matchedUri}\u0000${matchedHost}\u0000${service}\u0000${consumer}\u0000${node}`;
  if (statusExtra.length + latencyExtra.length + bandwidthExtra.length) key += `\u0001${statusExtra.join('\u0000')}\u0001${latencyExtra.join('\u0000')}\u0001${bandwidthExtra.join('\u0000')}`;
  let bound = m.bound.get(key);
  if (bound) return bound;
  const common = [route, service, consumer, node];
  bound = {
    status: m.status.labels([code, route, matchedUri, matchedHost, service, consumer, node, ...statusExtra]),
    request: m.latency.labels(['request', ...common, ...latencyExtra]),
    upstream: m.latency.labels(['upstream', ...common, ...latencyExtra]),
    apisix: m.latency.labels(['apisix', ...common, ...latencyExtra]),
    ingress: m.bandwidth.labels(['ingress', ...common, ...bandwidthExtra]),
    egress: m.bandwidth.labels(['egress', ...common, ...bandwidthExtra]),
  };
  if (m.bound.size >= MAX_BOUND) m.bound.delete(m.bound.keys().next().value!);
  m.bound.set(key, bound);
  return bound;
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
  // Without the export server, the metrics are served on routes that carry `public-api`, as in APISIX.
  api({ attributes, metrics }) {
    const attrs = (attributes ?? {}) as PrometheusAttributes;
    if (attrs.enable_export_server !== false) return [];
    return [{
      methods: ['GET'],
      uri: attrs.export_uri ?? '/apisix/prometheus/metrics',
      handler: async () => ({
        status: 200,
        body: await metrics.exposition(attrs.metric_prefix ?? 'apisix_'),
        headers: { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' },
      }),
    }];
  },
  phases: {
    log(ctx, conf, m) {
      let route = ctx.routeId ?? '';
      let service = ctx.serviceId ?? '';
      if (conf.prefer_name) {
        route = ctx.routeName ?? route;
        if (service !== '') service = ctx.serviceName ?? service;
      }
      const series = boundSeries(m, ctx, ctx.get('status') ?? '', route, ctx.get('matched_uri') ?? '', ctx.get('matched_host') ?? '', service, ctx.consumer?.username ?? '', ctx.balancerIp ?? '');
      series.status.inc(1);

      // latency_details_in_ms (apisix/utils/log-util.lua): the upstream's share only when a node answered.
      const latency = performance.now() - ctx.startTime;
      // nginx's $upstream_response_time has millisecond resolution: so does the upstream's share here.
      const upstream = ctx.upstreamResponseTime === undefined ? undefined : Math.round(ctx.upstreamResponseTime);
      series.request.observe(latency);
      if (upstream !== undefined) series.upstream.observe(upstream);
      series.apisix.observe(Math.max(0, latency - (upstream ?? 0)));

      series.ingress.inc(Number(ctx.get('request_length') ?? 0));
      series.egress.inc(Number(ctx.get('bytes_sent') ?? 0));
    },
  },
});
