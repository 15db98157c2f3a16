// Messages between the main thread (config pipeline) and the worker threads (traffic).
import type { Listen, NodeConfig } from '../conf/index.ts';
import type { ChangeEvent } from '../model/index.ts';

/** Handed to a worker at start (workerData). */
export interface WorkerInit {
  index: number;
  config: NodeConfig;
  listeners: Listen[];
  reusePort: boolean;
}

export type MainToWorker =
  | { type: 'apply'; events: ChangeEvent[]; version: number }
  | { type: 'settings'; config: NodeConfig }
  | { type: 'shutdown'; graceMs: number };

export type WorkerToMain =
  | { type: 'listening'; ports: number[] }
  | { type: 'applied'; version: number }
  | { type: 'stopped' }
  | { type: 'fatal'; message: string };
