// A worker thread: its own listeners (SO_REUSEPORT), its own snapshot, fed change events by the
// main thread. Applying a batch is synchronous, so a request sees the config before or after it.
import { parentPort, workerData } from 'node:worker_threads';
import { destroyReplaced, loadCatalog, type PluginCatalog } from '../plugins/registry.ts';
import { ProxyServer } from '../proxy/server.ts';
import { RequestHandler } from '../proxy/handler.ts';
import { RequestContext } from '../proxy/context.ts';
import { AccessLog } from '../observability/access-log.ts';
import { ConnectionMetrics } from '../observability/connection-metrics.ts';
import { attachMetricsMemory, metricsStore } from '../observability/metrics-store.ts';
import { attachHealthMemory } from '../shm/health.ts';
import { attachSharedMemory } from '../shm/table.ts';
import { Snapshot } from '../snapshot/index.ts';
import { setHealthNotifier } from '../upstream/health/index.ts';
import { closeAllSessions } from '../upstream/h2-session.ts';
import { closeAllIdle } from '../upstream/pool.ts';
import { log, setLogLevel } from '../util/log.ts';
import type { MainToWorker, WorkerInit, WorkerToMain } from './protocol.ts';
import { accessLogSettings, handlerOptions, poolDefaults, serverLimits, tlsSettings } from './settings.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (msg: WorkerToMain) => port.postMessage(msg);

setLogLevel(init.config.nginx_config.error_log_level);
attachSharedMemory(init.shared);
attachMetricsMemory(init.metrics);
attachHealthMemory(init.health);
setHealthNotifier((name) => post({ type: 'health-used', name }));

/** Loads the plugins (errors were already reported by the main thread's load). */
async function loadPluginCatalog(enabled: readonly string[], dir: string | undefined, fresh: boolean): Promise<PluginCatalog> {
  return (await loadCatalog(enabled, dir, fresh)).catalog;
}

function newSnapshot(config: WorkerInit['config'], catalog: PluginCatalog): Snapshot {
  return new Snapshot({
    routerMode: config.apisix.router.http,
    poolDefaults: poolDefaults(config),
    // Fixed at start, as the main thread's checkers are.
    healthChecks: !init.config.apisix.disable_upstream_healthcheck,
    onError: (kind, id, message) => log('error', `failed to apply ${kind} ${id}: ${message}`),
    catalog,
    pluginAttributes: config.plugin_attr,
    log,
  });
}

let config = init.config;
const handler = new RequestHandler(newSnapshot(config, await loadPluginCatalog(init.plugins, init.pluginDir, false)), handlerOptions(config));
// Connection counts for the prometheus exporter, kept only while the plugin is enabled (as APISIX's stub_status is only exported then).
const prometheusPrefix = ((init.config.plugin_attr?.prometheus as { metric_prefix?: string } | undefined)?.metric_prefix) ?? 'apisix_';
const server = new ProxyServer(handler, serverLimits(init.config), init.plugins.includes('prometheus') ? new ConnectionMetrics(metricsStore(), prometheusPrefix) : undefined);
const accessLogConf = accessLogSettings(config, init.prefix);
handler.accessLog = accessLogConf && new AccessLog<RequestContext>(accessLogConf, (message) => log('error', message), RequestContext.accessor);

/** Messages that arrived while plugins reload; handled in order once the new snapshot is in place. */
let held: MainToWorker[] | undefined;

function onMessage(msg: MainToWorker): void {
  if (held) {
    held.push(msg);
    return;
  }
  switch (msg.type) {
    case 'apply':
      handler.snapshot.apply(msg.events, msg.version);
      post({ type: 'applied', version: msg.version });
      break;
    case 'plugins':
      held = [];
      loadPluginCatalog(msg.plugins, msg.pluginDir, true).then(async (catalog) => {
        const next = newSnapshot(config, catalog);
        next.apply(msg.events, msg.version);
        const previous = handler.snapshot.plugins.env.catalog;
        handler.snapshot = next;
          await destroyReplaced(previous.loaded, catalog.loaded, (message) => log('error', message));
        post({ type: 'applied', version: msg.version });
        const later = held!;
        held = undefined;
        for (const m of later) onMessage(m);
      });
      break;
    case 'settings':
      config = msg.config;
      setLogLevel(msg.config.nginx_config.error_log_level);
      Object.assign(handler.options, handlerOptions(msg.config));
      break;
    case 'reopen-logs':
      void handler.accessLog?.reopen();
      break;
    case 'shutdown':
      server.close(msg.graceMs).then(async () => {
        await handler.accessLog?.close();
        closeAllIdle();
        closeAllSessions();
        post({ type: 'stopped' });
        port.close();
      });
      break;
  }
}
port.on('message', onMessage);

// A broken client or upstream must never take the worker down: log and keep serving.
process.on('uncaughtException', (err) => log('error', `uncaught exception in worker ${init.index}: ${err.stack ?? err}`));

server.listen(init.listeners, init.reusePort, init.sslListeners, tlsSettings(config)).then(
  () => {
    post({ type: 'listening', ports: server.ports });
  },
  (err: Error) => post({ type: 'fatal', message: `failed to listen: ${err.message}` }),
);
