// Messages between the main thread (config pipeline) and the worker threads (traffic).
import type { Listen, NodeConfig } from '../conf/index.ts';
import type { MetricsMemory } from '../observability/metrics-store.ts';
import type { ChangeEvent } from '../model/index.ts';

/** Handed to a worker at start (workerData). */
export interface WorkerInit {
  index: number;
  config: NodeConfig;
  listeners: Listen[];
  /** TLS listeners (apisix.ssl.listen). */
  sslListeners: Listen[];
  reusePort: boolean;
  /** Node-wide shared memory (rate-limit counters, breaker state): the same buffer for every worker. */
  shared: SharedArrayBuffer;
  /** Node-wide metrics memory (series values and descriptions), read by the main thread's exporter. */
  metrics: MetricsMemory;
  /** Node-wide upstream health (shm/health.ts): the same buffer for every worker and the main thread's checkers. */
  health: SharedArrayBuffer;
  /** Enabled plugin names (config.yaml `plugins`, as last reloaded). */
  plugins: readonly string[];
  /** The directory relative paths of config.yaml (the access log) are resolved against. */
  prefix: string;
  /** The user's plugin directory, absolute; undefined when none. */
  pluginDir: string | undefined;
}

export type MainToWorker =
  | { type: 'apply'; events: ChangeEvent[]; version: number }
  | { type: 'settings'; config: NodeConfig }
  /** Plugins reloaded: load them again and rebuild the snapshot from the whole config. */
  | { type: 'plugins'; plugins: readonly string[]; pluginDir: string | undefined; events: ChangeEvent[]; version: number }
  /** SIGUSR1: reopen the log files (after logrotate moved them). */
  | { type: 'reopen-logs' }
  | { type: 'shutdown'; graceMs: number };

export type WorkerToMain =
  | { type: 'listening'; ports: number[] }
  | { type: 'applied'; version: number }
  /** An upstream with health checks served its first request here: the main thread starts its checker. */
  | { type: 'health-used'; name: string }
  | { type: 'stopped' }
  | { type: 'fatal'; message: string };
