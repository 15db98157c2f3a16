// Main-thread side of the workers: starts them, feeds every one the same change events, replaces
// a worker that dies (the others keep serving), replaces all of them one by one on request with no
// request lost (the new worker listens before the old one stops accepting and drains), and stops
// them gracefully.
import { Worker } from 'node:worker_threads';
import type { Listen, NodeConfig } from '../conf/index.ts';
import type { ChangeEvent } from '../model/index.ts';
import { metricsStore } from '../observability/metrics-store.ts';
import { healthMemory } from '../shm/health.ts';
import { sharedMemory } from '../shm/table.ts';
import { log } from '../util/log.ts';
import type { MainToWorker, WorkerInit, WorkerToMain } from './protocol.ts';

const WORKER_URL = new URL('./worker' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'), import.meta.url);
const RESTART_DELAY_MS = 200;

/** One worker thread and what the supervisor knows about it. */
interface Running {
  worker: Worker;
  listening: boolean;
  appliedVersion: number;
  /** Being replaced or stopped: its exit is expected. */
  retiring: boolean;
}

interface Slot {
  index: number;
  /** The worker serving this slot. */
  active: Running | undefined;
  /** A replacement starting up during a rolling restart. */
  incoming: Running | undefined;
}

export interface SupervisorOptions {
  count: number;
  config: NodeConfig;
  listeners: Listen[];
  sslListeners?: Listen[];
  reusePort: boolean;
  /** Events that bring a new worker up to date (the whole current config). */
  currentState: () => { events: ChangeEvent[]; version: number };
  /** The directory relative paths of config.yaml are resolved against (the config file's; default the working directory). */
  prefix?: string;
  /** Enabled plugins (none when absent) and the user's plugin directory. */
  plugins?: readonly string[];
  pluginDir?: string;
  /** A worker reports that an upstream with health checks (named `kind/id`) serves traffic. */
  onHealthUsed?: (name: string) => void;
}

export class WorkerSupervisor {
  readonly #slots: Slot[] = [];
  #options: SupervisorOptions;
  #stopping = false;
  #recycling: Promise<void> | undefined;
  /** Allocated once: counters survive worker replacement. */
  readonly #shared = sharedMemory().buffer;
  readonly #metrics = metricsStore().memory;
  /** Node health: survives worker replacement too, and the main thread's checkers write it. */
  readonly #health = healthMemory().buffer;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    for (let i = 0; i < options.count; i++) this.#slots.push({ index: i, active: undefined, incoming: undefined });
  }

  /** Starts every worker; resolves with the bound ports when all listen, rejects on the first that cannot. */
  async start(): Promise<number[]> {
    const ports = await Promise.all(this.#slots.map((slot) => this.#launch(slot, 'active')));
    return ports[0];
  }

  /** Starts a worker for `slot` (as its active worker, or as the incoming replacement); resolves when it listens. */
  #launch(slot: Slot, role: 'active' | 'incoming'): Promise<number[]> {
    const o = this.#options;
    const init: WorkerInit = { index: slot.index, config: o.config, listeners: o.listeners, sslListeners: o.sslListeners ?? [], reusePort: o.reusePort, shared: this.#shared, metrics: this.#metrics, health: this.#health, prefix: o.prefix ?? process.cwd(), plugins: o.plugins ?? [], pluginDir: o.pluginDir };
    const running: Running = { worker: new Worker(WORKER_URL, { workerData: init, name: `causeway-worker-${slot.index}` }), listening: false, appliedVersion: -1, retiring: false };
    slot[role] = running;
    // The worker starts from the full current config, queued before it even listens; later
    // broadcasts reach it too, in order.
    const state = this.#options.currentState();
    running.worker.postMessage({ type: 'apply', events: state.events, version: state.version } satisfies MainToWorker);
    return new Promise((resolve, reject) => {
      running.worker.on('message', (msg: WorkerToMain) => {
        if (msg.type === 'listening') {
          running.listening = true;
          resolve(msg.ports);
        } else if (msg.type === 'applied') {
          running.appliedVersion = msg.version;
        } else if (msg.type === 'health-used') {
          this.#options.onHealthUsed?.(msg.name);
        } else if (msg.type === 'fatal') {
          reject(new Error(msg.message));
        }
      });
      running.worker.on('error', (err) => log('error', `worker ${slot.index} failed: ${err.stack ?? err.message}`));
      running.worker.on('exit', (code) => {
        // (a no-op when the worker had already listened and resolved)
        reject(new Error(`worker ${slot.index} exited with code ${code} before listening`));
        running.listening = false;
        if (slot.active === running) slot.active = undefined;
        if (slot.incoming === running) slot.incoming = undefined;
        if (this.#stopping || running.retiring) return;
        log('error', `worker ${slot.index} exited with code ${code}; starting a replacement`);
        setTimeout(() => {
          if (this.#stopping || slot.active) return;
          this.#launch(slot, 'active').catch((err: Error) => log('error', `replacement worker ${slot.index}: ${err.message}`));
        }, RESTART_DELAY_MS).unref();
      });
    });
  }

  #each(fn: (running: Running) => void): void {
    for (const slot of this.#slots) {
      if (slot.active) fn(slot.active);
      if (slot.incoming) fn(slot.incoming);
    }
  }

  broadcast(events: ChangeEvent[], version: number): void {
    const msg: MainToWorker = { type: 'apply', events, version };
    this.#each((r) => r.worker.postMessage(msg));
  }

  /** SIGUSR1: every worker reopens its log files. */
  reopenLogs(): void {
    const msg: MainToWorker = { type: 'reopen-logs' };
    this.#each((r) => r.worker.postMessage(msg));
  }

  updateSettings(config: NodeConfig): void {
    this.#options = { ...this.#options, config };
    const msg: MainToWorker = { type: 'settings', config };
    this.#each((r) => r.worker.postMessage(msg));
  }

  /** Every worker reloads its plugins and rebuilds its snapshot from the whole current config. */
  reloadPlugins(plugins: readonly string[], pluginDir: string | undefined): void {
    this.#options = { ...this.#options, plugins, pluginDir };
    const state = this.#options.currentState();
    const msg: MainToWorker = { type: 'plugins', plugins, pluginDir, events: state.events, version: state.version };
    this.#each((r) => r.worker.postMessage(msg));
  }

  /**
   * Replaces every worker, one at a time: the replacement starts with the current settings and
   * config and listens beside the old one, then the old one stops accepting and finishes its
   * in-flight requests. Settings that are fixed at a worker's start take effect this way.
   */
  recycle(graceMs: number): Promise<void> {
    this.#recycling ??= (async () => {
      for (const slot of this.#slots) {
        if (this.#stopping) return;
        const old = slot.active;
        try {
          await this.#launch(slot, 'incoming');
        } catch (err) {
          log('error', `replacement for worker ${slot.index} failed to start: ${(err as Error).message}; keeping the old one`);
          continue;
        }
        const fresh = slot.incoming!;
        slot.incoming = undefined;
        slot.active = fresh;
        if (old) this.#retire(old, graceMs);
      }
      log('notice', `replaced ${this.#slots.length} worker(s)`);
    })().finally(() => {
      this.#recycling = undefined;
    });
    return this.#recycling;
  }

  /** Asks a worker to stop accepting and drain; ends it the hard way after the grace period. */
  #retire(running: Running, graceMs: number): Promise<void> {
    running.retiring = true;
    return new Promise<void>((resolve) => {
      const hardStop = setTimeout(() => void running.worker.terminate(), graceMs + 1000);
      running.worker.once('exit', () => {
        clearTimeout(hardStop);
        resolve();
      });
      running.worker.postMessage({ type: 'shutdown', graceMs } satisfies MainToWorker);
    });
  }

  /** Ends a worker abruptly, as a crash would (fault drills and tests); it is replaced like a crashed one. */
  async terminate(index: number): Promise<void> {
    await this.#slots[index]?.active?.worker.terminate();
  }

  /** Every worker listens and has applied `version`. */
  allApplied(version: number): boolean {
    return this.#slots.every((s) => s.active !== undefined && s.active.listening && s.active.appliedVersion >= version);
  }

  /** The config version each worker has applied (-1 while starting or replaced). */
  appliedVersions(): number[] {
    return this.#slots.map((s) => s.active?.appliedVersion ?? -1);
  }

  get workerCount(): number {
    return this.#slots.length;
  }

  /** Graceful stop: workers stop accepting and finish in-flight requests within `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    const all: Running[] = [];
    this.#each((r) => all.push(r));
    await Promise.all(all.map((r) => this.#retire(r, graceMs)));
  }
}
