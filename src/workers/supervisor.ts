// Main-thread side of the workers: starts them, feeds every one the same change events, replaces
// a worker that dies (the others keep serving), and stops them gracefully.
import { Worker } from 'node:worker_threads';
import type { Listen, NodeConfig } from '../conf/index.ts';
import type { ChangeEvent } from '../model/index.ts';
import { log } from '../util/log.ts';
import type { MainToWorker, WorkerInit, WorkerToMain } from './protocol.ts';

const WORKER_URL = new URL('./worker' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'), import.meta.url);
const RESTART_DELAY_MS = 200;

interface Slot {
  index: number;
  worker: Worker | undefined;
  listening: boolean;
  appliedVersion: number;
  stopping: boolean;
}

export interface SupervisorOptions {
  count: number;
  config: NodeConfig;
  listeners: Listen[];
  reusePort: boolean;
  /** Events that bring a new worker up to date (the whole current config). */
  currentState: () => { events: ChangeEvent[]; version: number };
}

export class WorkerSupervisor {
  readonly #slots: Slot[] = [];
  #options: SupervisorOptions;
  #stopping = false;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    for (let i = 0; i < options.count; i++) this.#slots.push({ index: i, worker: undefined, listening: false, appliedVersion: -1, stopping: false });
  }

  /** Starts every worker; resolves when all listen, rejects on the first that cannot. */
  start(): Promise<number[]> {
    return Promise.all(this.#slots.map((slot) => this.#spawn(slot))).then((ports) => ports[0]);
  }

  #spawn(slot: Slot): Promise<number[]> {
    const init: WorkerInit = { index: slot.index, config: this.#options.config, listeners: this.#options.listeners, reusePort: this.#options.reusePort };
    const worker = new Worker(WORKER_URL, { workerData: init, name: `causeway-worker-${slot.index}` });
    slot.worker = worker;
    slot.listening = false;
    slot.appliedVersion = -1;
    // The worker starts from the full current config, queued before it even listens.
    const state = this.#options.currentState();
    this.#send(slot, { type: 'apply', events: state.events, version: state.version });
    return new Promise((resolve, reject) => {
      worker.on('message', (msg: WorkerToMain) => {
        if (msg.type === 'listening') {
          slot.listening = true;
          resolve(msg.ports);
        } else if (msg.type === 'applied') {
          slot.appliedVersion = msg.version;
        } else if (msg.type === 'fatal') {
          reject(new Error(msg.message));
        }
      });
      worker.on('error', (err) => log('error', `worker ${slot.index} failed: ${err.stack ?? err.message}`));
      worker.on('exit', (code) => {
        slot.worker = undefined;
        slot.listening = false;
        if (this.#stopping || slot.stopping) return;
        reject(new Error(`worker ${slot.index} exited with code ${code} before listening`));
        log('error', `worker ${slot.index} exited with code ${code}; starting a replacement`);
        setTimeout(() => {
          if (!this.#stopping) this.#spawn(slot).catch((err: Error) => log('error', `replacement worker ${slot.index}: ${err.message}`));
        }, RESTART_DELAY_MS).unref();
      });
    });
  }

  #send(slot: Slot, msg: MainToWorker): void {
    slot.worker?.postMessage(msg);
  }

  broadcast(events: ChangeEvent[], version: number): void {
    for (const slot of this.#slots) this.#send(slot, { type: 'apply', events, version });
  }

  updateSettings(config: NodeConfig): void {
    this.#options = { ...this.#options, config };
    for (const slot of this.#slots) this.#send(slot, { type: 'settings', config });
  }

  /** Every worker listens and has applied `version`. */
  allApplied(version: number): boolean {
    return this.#slots.every((s) => s.listening && s.appliedVersion >= version);
  }

  /** The config version each worker has applied (-1 while starting). */
  appliedVersions(): number[] {
    return this.#slots.map((s) => s.appliedVersion);
  }

  get workerCount(): number {
    return this.#slots.length;
  }

  get threadIds(): number[] {
    return this.#slots.flatMap((s) => (s.worker ? [s.worker.threadId] : []));
  }

  /** Graceful stop: workers stop accepting and finish in-flight requests within `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#slots.map((slot) => new Promise<void>((resolve) => {
      const worker = slot.worker;
      if (!worker) return resolve();
      slot.stopping = true;
      const hardStop = setTimeout(() => void worker.terminate(), graceMs + 1000);
      worker.once('exit', () => {
        clearTimeout(hardStop);
        resolve();
      });
      this.#send(slot, { type: 'shutdown', graceMs });
    })));
  }
}
