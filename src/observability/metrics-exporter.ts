// The Prometheus endpoint (plugin_attr.prometheus.export_addr, default 127.0.0.1:9091,
// `export_uri` /apisix/prometheus/metrics), served by the main thread: the series every worker
// wrote into shared memory, plus the node-wide gauges APISIX's exporter adds at scrape time.
import http from 'node:http';
import { hostname } from 'node:os';
import { renderExposition, type MetricFamily } from './exposition.ts';
import type { MetricsStore } from './metrics-store.ts';

/** Node facts read at scrape time; each part is optional (no etcd, no health checks, ...). */
export interface NodeFacts {
  /** The config store is etcd: whether it answers now, and the modify index per resource kind. */
  etcd?: { reachable(): Promise<boolean>; modifyIndexes(): Record<string, number> };
  /** Health-checked nodes: `name` is the checker (`/apisix/upstreams/1`), `healthy` its current view. */
  upstreamHealth?(): Array<{ name: string; ip: string; port: number; healthy: boolean }>;
  /** Shared memories in use: name, capacity and free bytes (APISIX reports its shared dicts). */
  sharedMemories?(): Array<{ name: string; capacity: number; free: number }>;
}

/** Everything one scrape shows, in exposition order. */
export async function collectFamilies(store: MetricsStore, prefix: string, facts: NodeFacts): Promise<MetricFamily[]> {
  const families = new Map<string, MetricFamily>();
  for (const { series, value, sum, buckets } of store.snapshot()) {
    let family = families.get(series.name);
    if (!family) families.set(series.name, (family = { name: series.name, help: series.help, type: series.type, samples: [] }));
    family.samples.push({ labelNames: series.labelNames, labelValues: series.labelValues, value, sum, buckets, bounds: series.buckets });
  }
  // stub_status' reading/waiting: nothing here reads a request head separately, so `reading` is 0 and
  // `waiting` is every open connection without a request in flight.
  const connections = families.get(`${prefix}nginx_http_current_connections`);
  if (connections) {
    const state = (name: string) => connections.samples.find((s) => s.labelValues[0] === name)?.value ?? 0;
    const waiting = Math.max(0, state('active') - state('writing'));
    connections.samples = connections.samples.filter((s) => s.labelValues[0] !== 'waiting' && s.labelValues[0] !== 'reading');
    connections.samples.push({ labelNames: ['state'], labelValues: ['reading'], value: 0 }, { labelNames: ['state'], labelValues: ['waiting'], value: waiting });
  }
  const gauge = (name: string, help: string, samples: MetricFamily['samples']) => {
    families.set(`${prefix}${name}`, { name: `${prefix}${name}`, help, type: 'gauge', samples });
  };
  gauge('node_info', 'Info of APISIX node', [{ labelNames: ['hostname'], labelValues: [hostname()], value: 1 }]);
  if (facts.etcd) {
    gauge('etcd_reachable', 'Config server etcd reachable from APISIX, 0 is unreachable', [
      { labelNames: [], labelValues: [], value: (await facts.etcd.reachable()) ? 1 : 0 },
    ]);
    gauge('etcd_modify_indexes', 'Etcd modify index for APISIX keys', Object.entries(facts.etcd.modifyIndexes()).map(([key, value]) => ({ labelNames: ['key'], labelValues: [key], value })));
  }
  if (facts.upstreamHealth) {
    gauge('upstream_status', 'Upstream status from health check', facts.upstreamHealth().map((n) => ({
      labelNames: ['name', 'ip', 'port'],
      labelValues: [n.name, n.ip, String(n.port)],
      value: n.healthy ? 1 : 0,
    })));
  }
  const memories = [...(facts.sharedMemories?.() ?? []), ...store.usage()];
  gauge('shared_dict_capacity_bytes', 'The capacity of each nginx shared DICT since APISIX start', memories.map((m) => ({ labelNames: ['name'], labelValues: [m.name], value: m.capacity })));
  gauge('shared_dict_free_space_bytes', 'The free space of each nginx shared DICT since APISIX start', memories.map((m) => ({ labelNames: ['name'], labelValues: [m.name], value: m.free })));
  return [...families.values()];
}

export interface ExporterOptions {
  ip: string;
  port: number;
  uri: string;
  render(): Promise<string>;
  log(level: 'error', message: string): void;
}

/** Serves GET `uri` with the exposition; anything else is 404, as APISIX's export server answers. */
export function startMetricsServer(options: ExporterOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== options.uri || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('404 Not Found\n');
      return;
    }
    options.render().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: Error) => {
        options.log('error', `prometheus: failed to collect metrics: ${err.stack ?? err}`);
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end('{"message":"An unexpected error occurred"}');
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.ip, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export { renderExposition };
