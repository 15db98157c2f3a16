// The Prometheus export server of a node: open while the prometheus plugin is enabled and
// plugin_attr.prometheus.enable_export_server is on, as APISIX runs it.
import type { Server } from 'node:http';
import type { NodeConfig } from '../conf/index.ts';
import { collectFamilies, renderExposition, startMetricsServer, type NodeFacts } from '../observability/metrics-exporter.ts';
import { metricsStore } from '../observability/metrics-store.ts';
import { log } from '../util/log.ts';

interface PrometheusAttributes {
  export_uri?: string;
  metric_prefix?: string;
  enable_export_server?: boolean;
  export_addr?: { ip?: string; port?: number };
}

export class MetricsExporter {
  readonly #config: NodeConfig;
  readonly #facts: NodeFacts;
  #server: Server | undefined;
  #opening: Promise<void> | undefined;

  constructor(config: NodeConfig, facts: NodeFacts) {
    this.#config = config;
    this.#facts = facts;
  }

  #attributes(): PrometheusAttributes {
    return (this.#config.plugin_attr?.prometheus ?? {}) as PrometheusAttributes;
  }

  /** Opens or closes the server to match the enabled plugins (at start and after each reload). */
  async follow(enabled: readonly string[]): Promise<void> {
    const attrs = this.#attributes();
    const wanted = enabled.includes('prometheus') && attrs.enable_export_server !== false;
    await this.#opening;
    if (wanted && !this.#server) {
      this.#opening = this.#open(attrs);
      await this.#opening;
    } else if (!wanted && this.#server) {
      this.#server.close();
      this.#server = undefined;
    }
  }

  async #open(attrs: PrometheusAttributes): Promise<void> {
    const ip = attrs.export_addr?.ip ?? '127.0.0.1';
    const port = attrs.export_addr?.port ?? 9091;
    const prefix = attrs.metric_prefix ?? 'apisix_';
    try {
      this.#server = await startMetricsServer({
        ip,
        port,
        uri: attrs.export_uri ?? '/apisix/prometheus/metrics',
        render: async () => renderExposition(await collectFamilies(metricsStore(), prefix, this.#facts)),
        log,
      });
    } catch (err) {
      log('error', `prometheus: failed to open the export server on ${ip}:${port}: ${(err as Error).message}`);
    }
  }

  /** The bound port (for a server opened on port 0). */
  get port(): number | undefined {
    return (this.#server?.address() as { port: number } | null)?.port;
  }

  close(): void {
    this.#server?.close();
    this.#server = undefined;
  }
}
