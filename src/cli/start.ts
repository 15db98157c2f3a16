// `causeway start`: the main thread runs the config pipeline and the Status API; worker threads serve traffic.
import type { Server } from 'node:http';
import { httpListeners, loadNodeConfig, workerCount, type NodeConfig } from '../conf/index.ts';
import { startStatusServer } from '../status/server.ts';
import { log, setLogLevel } from '../util/log.ts';
import { VERSION } from '../util/version.ts';
import { shutdownGraceMs } from '../workers/settings.ts';
import { WorkerSupervisor } from '../workers/supervisor.ts';
import { FileConfigPipeline } from './config-pipeline.ts';
import { configSource } from './provider.ts';

export async function start(configPath: string | undefined): Promise<void> {
  const loaded = loadNodeConfig(configPath);
  let config = loaded.config;
  setLogLevel(config.nginx_config.error_log_level);
  const source = configSource(config, loaded.dir);
  if (source.kind === 'unavailable') throw new Error(source.reason);

  const pipeline = new FileConfigPipeline(source.path, source.format);
  pipeline.reload();
  const listeners = httpListeners(config);
  // Several workers share a port only through SO_REUSEPORT (Linux); without it one worker serves.
  const reusePort = config.apisix.enable_reuseport && process.platform === 'linux';
  let count = workerCount(config);
  if (!reusePort && count > 1) {
    log('warn', `SO_REUSEPORT is ${config.apisix.enable_reuseport ? 'not available on this platform' : 'disabled (apisix.enable_reuseport)'}: running 1 worker instead of ${count}`);
    count = 1;
  }
  const supervisor = new WorkerSupervisor({
    count,
    config,
    listeners,
    reusePort,
    currentState: () => pipeline.state(),
  });
  pipeline.onChange = (events, version) => supervisor.broadcast(events, version);
  await supervisor.start();
  pipeline.watch();

  let statusServer: Server | undefined;
  if (config.apisix.status) {
    const { ip = '127.0.0.1', port = 7085 } = config.apisix.status;
    statusServer = await startStatusServer(ip, port, {
      notReadyReason: () => (supervisor.allApplied(pipeline.version) ? undefined : 'not every worker has received the current configuration'),
    });
  }
  const where = listeners.map((l) => (l.ip.includes(':') ? `[${l.ip}]:${l.port}` : `${l.ip}:${l.port}`)).join(', ');
  // Always shown, whatever the log level: the operator's confirmation that the node is up.
  process.stdout.write(`causeway ${VERSION} started: ${supervisor.workerCount} worker(s) listening on ${where}; config from ${source.path}\n`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const grace = shutdownGraceMs(config);
    log('notice', `${signal} received: finishing in-flight requests (up to ${grace / 1000}s)`);
    pipeline.close();
    statusServer?.close();
    await supervisor.stop(grace);
    log('notice', 'stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    config = reloadSettings(loaded.path, config, supervisor);
    pipeline.reload();
  });
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
    ['nginx_config.http.keepalive_timeout', current.nginx_config.http.keepalive_timeout, next.nginx_config.http.keepalive_timeout],
    ['nginx_config.http.client_header_timeout', current.nginx_config.http.client_header_timeout, next.nginx_config.http.client_header_timeout],
    ['nginx_config.http.upstream', current.nginx_config.http.upstream, next.nginx_config.http.upstream],
  ];
  for (const [key, a, b] of restartOnly) {
    if (JSON.stringify(a) !== JSON.stringify(b)) log('warn', `SIGHUP: ${key} changed; it takes effect after a restart`);
  }
  // Keep what needs a restart as it runs; take the rest.
  const applied: NodeConfig = { ...next, apisix: { ...next.apisix, node_listen: current.apisix.node_listen, enable_ipv6: current.apisix.enable_ipv6, router: current.apisix.router, status: current.apisix.status }, deployment: current.deployment };
  applied.nginx_config = { ...next.nginx_config, worker_processes: current.nginx_config.worker_processes };
  setLogLevel(applied.nginx_config.error_log_level);
  supervisor.updateSettings(applied);
  log('notice', 'SIGHUP: configuration reloaded');
  return applied;
}
