// `causeway start`: the main thread runs the config flow (file or store), the Admin API and the
// Status API; worker threads serve traffic.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { httpListeners, loadNodeConfig, sslListeners, workerCount, type NodeConfig } from '../conf/index.ts';
import type { ConfigStore } from '../store/types.ts';
import { startControlServer } from '../status/control.ts';
import { startStatusServer } from '../status/server.ts';
import { SCHEMA_NAMES } from '../model/index.ts';
import { log, setLogLevel } from '../util/log.ts';
import { VERSION } from '../util/version.ts';
import { healthMemory } from '../shm/health.ts';
import { sharedMemory } from '../shm/table.ts';
import { poolDefaults, shutdownGraceMs } from '../workers/settings.ts';
import { WorkerSupervisor } from '../workers/supervisor.ts';
import type { ConfigPipeline } from './config-pipeline.ts';
import { FileConfigPipeline } from './file-pipeline.ts';
import { deploymentPlan, type DeploymentPlan } from './provider.ts';
import { StoreConfigPipeline } from './store-pipeline.ts';
import { openStore, storePrefix } from './stores.ts';
import { adminPluginHooks, checkAdminToken, startAdmin } from './admin.ts';
import { MetricsExporter } from './metrics.ts';
import { PluginHost } from './plugins.ts';
import { HealthChecks } from './health.ts';
import type { AdminServer } from '../admin/index.ts';

export async function start(configPath: string | undefined): Promise<void> {
  const loaded = loadNodeConfig(configPath);
  let config = loaded.config;
  setLogLevel(config.nginx_config.error_log_level);
  const plan = deploymentPlan(config, loaded.dir);
  if (plan.admin) checkAdminToken(config);
  const plugins = await PluginHost.start(config, loaded.path, loaded.dir);

  let store: ConfigStore | undefined;
  let pipeline: ConfigPipeline | undefined;
  if (plan.source.kind === 'file') {
    const file = new FileConfigPipeline(plan.source.path, plan.source.format);
    file.catalog = plugins.catalog;
    file.reload();
    if (file.pluginsList) {
      // The file's `plugins` list replaces config.yaml's: load it, then check the items against it.
      await plugins.useSourceList(file.pluginsList);
      file.catalog = plugins.catalog;
      file.reload();
    }
    pipeline = file;
  } else {
    store = openStore(plan.source, config);
    if (plan.proxy) {
      const graceMs = (config.deployment.etcd?.timeout ?? 30) * 1000;
      const fromStore = new StoreConfigPipeline(store, storePrefix(plan.source, config), plan.source.kind === 'etcd' ? graceMs : 0);
      fromStore.catalog = plugins.catalog;
      await loadWithRetries(fromStore, config, plan);
      if (fromStore.pluginsList) {
        // The store's `/apisix/plugins` list replaces config.yaml's; the items are checked again with it.
        await plugins.useSourceList(fromStore.pluginsList);
        fromStore.catalog = plugins.catalog;
        fromStore.refresh();
      }
      pipeline = fromStore;
    }
  }

  let supervisor: WorkerSupervisor | undefined;
  let health: HealthChecks | undefined;
  let where = 'no proxy listeners';
  if (plan.proxy && pipeline) {
    const listeners = httpListeners(config);
    const tlsListeners = sslListeners(config);
    // Several workers share a port only through SO_REUSEPORT (Linux); without it one worker serves.
    const reusePort = config.apisix.enable_reuseport && process.platform === 'linux';
    let count = workerCount(config);
    if (!reusePort && count > 1) {
      log('warn', `SO_REUSEPORT is ${config.apisix.enable_reuseport ? 'not available on this platform' : 'disabled (apisix.enable_reuseport)'}: running 1 worker instead of ${count}`);
      count = 1;
    }
    if (count > 1) hintMigrateReq();
    const source = pipeline;
    // One checker per upstream for the whole node, here in the main thread; workers share the state.
    const checks = config.apisix.disable_upstream_healthcheck ? undefined : new HealthChecks({ table: healthMemory(), resources: (kind) => source.resources(kind), ca: poolDefaults(config).trustedCa });
    health = checks;
    supervisor = new WorkerSupervisor({
      count,
      config,
      prefix: loaded.dir,
      listeners,
      sslListeners: tlsListeners,
      reusePort,
      currentState: () => source.state(),
      plugins: plugins.enabled,
      pluginDir: plugins.userDir,
      onHealthUsed: checks ? (name) => checks.used(name) : undefined,
    });
    source.onChange = (events, version) => {
      checks?.apply(events);
      supervisor!.broadcast(events, version);
    };
    await supervisor.start();
    if (source instanceof FileConfigPipeline) source.watch();
    const show = (l: { ip: string; port: number }) => (l.ip.includes(':') ? `[${l.ip}]:${l.port}` : `${l.ip}:${l.port}`);
    where = `${supervisor.workerCount} worker(s) listening on ${listeners.map(show).join(', ')}${tlsListeners.length ? `; TLS on ${tlsListeners.map(show).join(', ')}` : ''}`;
  }

  if (pipeline) {
    const source = pipeline;
    source.onPluginsListChange = () => void plugins.useSourceList(source.pluginsList);
  }
  let exporter: MetricsExporter | undefined;
  if (plan.proxy) {
    const fromStore = pipeline instanceof StoreConfigPipeline ? pipeline : undefined;
    exporter = new MetricsExporter(config, {
      etcd: fromStore && plan.source.kind === 'etcd' ? { reachable: () => fromStore.storeReachable(), modifyIndexes: () => fromStore.modifyIndexes() } : undefined,
      // The node-wide table of plugin counters (limit-count, limit-req, limit-conn, api-breaker).
      sharedMemories: () => [{ name: 'plugin-counters', ...sharedMemory().usage() }],
      // APISIX names a checker by the upstream's key (`/apisix/upstreams/1`); mostly_* states lean as their name says.
      upstreamHealth: () =>
        (health?.reports() ?? []).flatMap(({ name, nodes }) =>
          nodes.map((n) => ({ name: `/apisix/${name}`, ip: n.ip, port: n.port, healthy: n.status === 'healthy' || n.status === 'mostly_healthy' })),
        ),
    });
    await exporter.follow(plugins.enabled);
  }
  plugins.onReload = (enabled) => {
    void exporter?.follow(enabled);
    if (pipeline) pipeline.catalog = plugins.catalog;
    supervisor?.reloadPlugins(enabled, plugins.userDir);
    // Items the old plugin set refused may pass now (and the other way round).
    pipeline?.refresh();
  };

  let adminServer: AdminServer | undefined;
  if (plan.admin && store) adminServer = await startAdmin(config, store, storePrefix(plan.source, config), plugins);

  let controlServer: Server | undefined;
  if (config.apisix.enable_control && plan.proxy) {
    const { ip = '127.0.0.1', port = 9090 } = config.apisix.control ?? {};
    const hooks = adminPluginHooks(() => plugins.catalog);
    controlServer = await startControlServer(ip, port, {
      coreSchemas: () => SCHEMA_NAMES,
      pluginSchemas: () => Object.fromEntries(plugins.catalog.names().map((name) => [name, hooks.pluginInfo!(name)!])),
      resources: (kind) => pipeline?.resources(kind),
      prefix: plan.source.kind === 'file' ? '/apisix' : storePrefix(plan.source, config).replace(/\/+$/, ''),
      reloadPlugins: () => void plugins.reload(),
      healthNodes: (kind, id) => health?.nodes(kind, id),
    });
  }

  let statusServer: Server | undefined;
  if (config.apisix.status) {
    const { ip = '127.0.0.1', port = 7085 } = config.apisix.status;
    statusServer = await startStatusServer(ip, port, {
      notReadyReason: () => pipeline?.notReadyReason() ?? (supervisor && pipeline && !supervisor.allApplied(pipeline.publishedVersion) ? 'not every worker has received the current configuration' : undefined),
      configVersions: () => ({ version: pipeline?.version ?? 0, workers: supervisor?.appliedVersions() ?? [] }),
    });
  }
  // Always shown, whatever the log level: the operator's confirmation that the node is up.
  const adminWhere = adminServer ? `; Admin API on ${config.deployment.admin!.admin_listen.ip}:${adminServer.port}` : '';
  process.stdout.write(`causeway ${VERSION} started as ${plan.role}: ${where}${adminWhere}; config from ${plan.source.kind === 'file' ? plan.source.path : store?.name}\n`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const grace = shutdownGraceMs(config);
    log('notice', `${signal} received: finishing in-flight requests (up to ${grace / 1000}s)`);
    statusServer?.close();
    controlServer?.close();
    exporter?.close();
    await adminServer?.close();
    await supervisor?.stop(grace);
    health?.stop();
    await pipeline?.close();
    await store?.close();
    log('notice', 'stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (supervisor) {
      const before = config;
      config = reloadSettings(loaded.path, config, supervisor);
      // Settings a worker reads only when it starts take effect through a rolling replacement.
      if (workerStartSettingsChanged(before, config)) void supervisor.recycle(shutdownGraceMs(config));
    }
    if (pipeline instanceof FileConfigPipeline) pipeline.reload();
    // APISIX's reload re-reads the plugin lists too; a data plane has no Admin API to ask for it.
    void plugins.reload();
  });
  process.on('SIGUSR1', () => {
    log('notice', 'SIGUSR1 received: reopening the log files');
    supervisor?.reopenLogs();
  });
  process.on('SIGUSR2', () => {
    if (!supervisor) return;
    log('notice', 'SIGUSR2 received: replacing workers one by one');
    void supervisor.recycle(shutdownGraceMs(config));
  });
}

/** The first load needs the store; like APISIX's CLI, retry a few times before giving up. */
async function loadWithRetries(pipeline: StoreConfigPipeline, config: NodeConfig, plan: DeploymentPlan): Promise<void> {
  const attempts = plan.source.kind === 'etcd' ? (config.deployment.etcd?.startup_retry ?? 2) + 1 : 1;
  for (let i = 1; ; i++) {
    try {
      await pipeline.start();
      return;
    } catch (err) {
      if (i >= attempts) throw new Error(`failed to load the configuration from ${pipeline.store.name}: ${(err as Error).message}`);
      log('warn', `loading from ${pipeline.store.name} failed (${(err as Error).message}); retry ${i}/${attempts - 1}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** SIGHUP: re-read config.yaml and apply what can change live; the rest needs a restart. */
function reloadSettings(path: string | undefined, current: NodeConfig, supervisor: WorkerSupervisor): NodeConfig {
  let next: NodeConfig;
  try {
    next = loadNodeConfig(path).config;
  } catch (err) {
    log('error', `SIGHUP: ${(err as Error).message}; keeping the running configuration`);
    return current;
  }
  const restartOnly: Array<[string, unknown, unknown]> = [
    ['apisix.node_listen', current.apisix.node_listen, next.apisix.node_listen],
    ['apisix.enable_ipv6', current.apisix.enable_ipv6, next.apisix.enable_ipv6],
    ['apisix.router.http', current.apisix.router.http, next.apisix.router.http],
    ['nginx_config.worker_processes', current.nginx_config.worker_processes, next.nginx_config.worker_processes],
    ['deployment', current.deployment, next.deployment],
    ['apisix.status', current.apisix.status, next.apisix.status],
    ['apisix.enable_reuseport', current.apisix.enable_reuseport, next.apisix.enable_reuseport],
    ['apisix.disable_upstream_healthcheck', current.apisix.disable_upstream_healthcheck, next.apisix.disable_upstream_healthcheck],
  ];
  for (const [key, a, b] of restartOnly) {
    if (JSON.stringify(a) !== JSON.stringify(b)) log('warn', `SIGHUP: ${key} changed; it takes effect after a restart`);
  }
  // Keep what needs a restart as it runs; take the rest.
  const applied: NodeConfig = { ...next, apisix: { ...next.apisix, node_listen: current.apisix.node_listen, enable_ipv6: current.apisix.enable_ipv6, router: current.apisix.router, status: current.apisix.status, disable_upstream_healthcheck: current.apisix.disable_upstream_healthcheck }, deployment: current.deployment };
  applied.nginx_config = { ...next.nginx_config, worker_processes: current.nginx_config.worker_processes };
  setLogLevel(applied.nginx_config.error_log_level);
  supervisor.updateSettings(applied);
  log('notice', 'SIGHUP: configuration reloaded');
  return applied;
}

/** Worker settings fixed when a worker starts (listener timeouts and protocols, upstream pool defaults). */
function workerStartSettingsChanged(a: NodeConfig, b: NodeConfig): boolean {
  const pick = (c: NodeConfig) => JSON.stringify([c.nginx_config.http.keepalive_timeout, c.nginx_config.http.client_header_timeout, c.nginx_config.http.upstream, c.apisix.enable_http2]);
  return pick(a) !== pick(b);
}

/**
 * Linux resets connections still queued on a listener that closes (a worker being replaced) unless
 * net.ipv4.tcp_migrate_req hands them to the other workers' listeners of the same port.
 */
function hintMigrateReq(): void {
  try {
    if (readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim() === '0') {
      log('notice', 'net.ipv4.tcp_migrate_req is 0: connections queued on a worker being replaced may be reset; set it to 1 for lossless worker replacement');
    }
  } catch {
    // not Linux, or a kernel before 5.14: nothing to suggest
  }
}
