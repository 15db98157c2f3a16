// APISIX's batch processor (apisix/utils/batch-processor.lua and batch-processor-manager.lua): log
// entries are buffered per configured plugin instance and handed to a sender in batches, off the
// request path (timers and async I/O; a phase never waits for it).
//
// - A batch leaves when `batch_max_size` entries are buffered, when no entry came for
//   `inactive_timeout` seconds, or at the latest `buffer_duration` seconds after its oldest entry.
//   With `batch_max_size: 1` every entry leaves at once.
// - A failed batch is tried again after `retry_delay` seconds, up to `max_retry_count` more times,
//   then dropped with an error line.
// - Entries waiting (buffered, queued or being sent) are bounded per plugin and worker by the
//   plugin metadata's `max_pending_entries` (8192 by default); beyond it new entries are discarded
//   and counted, with at most one summary line a second.
// - At most MAX_SENDS_IN_FLIGHT batches of one instance are being sent at once, so a sink that hangs
//   ties up a few connections rather than one per batch; the others wait their turn (and count as
//   pending).
import type { JsonSchema, LogLevel } from '../api.ts';

export const DEFAULT_MAX_PENDING_ENTRIES = 8192;
const MAX_SENDS_IN_FLIGHT = 8;
const DISCARD_LOG_INTERVAL_MS = 1000;

/** The batch processor's part of a logger's conf (`wrap_schema` adds it to each logger's schema). */
export interface BatchConf {
  name: string;
  batch_max_size: number;
  inactive_timeout: number;
  buffer_duration: number;
  max_retry_count: number;
  retry_delay: number;
}

/** APISIX's batch processor schema, `name` defaulting to the logger's own name (`http logger`). */
export function batchSchemaProperties(loggerName: string): Record<string, JsonSchema> {
  return {
    name: { type: 'string', default: loggerName },
    max_retry_count: { type: 'integer', minimum: 0, default: 0 },
    retry_delay: { type: 'integer', minimum: 0, default: 1 },
    buffer_duration: { type: 'integer', minimum: 1, default: 60 },
    inactive_timeout: { type: 'integer', minimum: 1, default: 5 },
    batch_max_size: { type: 'integer', minimum: 1, default: 1000 },
  };
}

/** `max_pending_entries` of a batch logger's plugin metadata. */
export const MAX_PENDING_ENTRIES_SCHEMA: JsonSchema = {
  type: 'integer',
  minimum: 1,
  default: DEFAULT_MAX_PENDING_ENTRIES,
  description: 'maximum number of entries waiting to be processed; new entries are discarded while the backlog exceeds it',
};

/** Sends one batch; rejects (or throws) when the sink did not take it. */
export type BatchSender<E> = (entries: E[], batchMaxSize: number) => Promise<void>;

export type BatchLog = (level: LogLevel, message: string) => void;

/** Counters of one plugin's batch processors in this worker, for metrics. */
export interface BatchStats {
  plugin: string;
  /** Entries buffered, queued or being sent. */
  pending: number;
  /** Entries discarded because `max_pending_entries` were already waiting. */
  discarded: number;
  /** Entries dropped after their batch failed `max_retry_count + 1` times. */
  failed: number;
  /** Entries the sinks took. */
  sent: number;
}

const managers = new Map<string, BatchManager>();

/** Every batch logger's counters in this worker (for metrics). */
export function batchStats(): BatchStats[] {
  return [...managers.values()].map((m) => ({ plugin: m.plugin, pending: m.pending, discarded: m.discarded, failed: m.failed, sent: m.sent }));
}

/**
 * One plugin's processors in this worker (APISIX's batch-processor-manager): the pending bound is
 * shared by all of them, as APISIX shares it per plugin.
 */
export class BatchManager {
  readonly plugin: string;
  pending = 0;
  discarded = 0;
  failed = 0;
  sent = 0;
  /** Processors with entries still to deliver. */
  readonly busy = new Set<BatchProcessor<unknown>>();
  #discardsSinceLog = 0;
  #lastDiscardLog = -Infinity;

  constructor(plugin: string) {
    this.plugin = plugin;
  }

  /** The manager of `plugin` (one per worker). */
  static of(plugin: string): BatchManager {
    let m = managers.get(plugin);
    if (!m) managers.set(plugin, (m = new BatchManager(plugin)));
    return m;
  }

  /** False (and the entry counted as discarded) while `limit` entries are already waiting. */
  admit(limit: number, log: BatchLog): boolean {
    if (this.pending < limit) return true;
    this.discarded++;
    this.#discardsSinceLog++;
    const now = performance.now();
    if (now - this.#lastDiscardLog >= DISCARD_LOG_INTERVAL_MS) {
      log('error', `max pending entries limit exceeded. discarding entry. plugin: ${this.plugin} pending_entries: ${this.pending} max_pending_entries: ${limit} discarded_entries: ${this.#discardsSinceLog}`);
      this.#lastDiscardLog = now;
      this.#discardsSinceLog = 0;
    }
    return false;
  }

  /** Sends what every processor of the plugin holds now (the plugin is being unloaded). */
  flushAll(): void {
    for (const p of [...this.busy]) p.flush();
  }
}

interface Batch<E> {
  entries: E[];
  retries: number;
}

export class BatchProcessor<E> {
  readonly conf: BatchConf;
  readonly #manager: BatchManager;
  readonly #send: BatchSender<E>;
  readonly #log: BatchLog;
  #buffer: E[] = [];
  #firstAt = 0;
  #lastAt = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Batches waiting for a send slot, oldest first. */
  #queue: Batch<E>[] = [];
  #inFlight = 0;
  /** Batches waiting for their retry delay. */
  #retrying = 0;
  #onIdle: (() => void) | undefined;

  /** Its entries still to deliver, in the node's metrics (prometheus' `batch_process_entries`). */
  readonly #pendingGauge: { inc(value: number): void } | undefined;

  constructor(manager: BatchManager, conf: BatchConf, send: BatchSender<E>, log: BatchLog, pendingGauge?: { inc(value: number): void }) {
    this.#manager = manager;
    this.conf = conf;
    this.#send = send;
    this.#log = log;
    this.#pendingGauge = pendingGauge;
  }

  /** Entries not yet delivered or dropped (buffered, queued, being sent or waiting to retry). */
  get idle(): boolean {
    return this.#buffer.length === 0 && this.#queue.length === 0 && this.#inFlight === 0 && this.#retrying === 0;
  }

  push(entry: E): void {
    this.#manager.pending++;
    this.#pendingGauge?.inc(1);
    this.#manager.busy.add(this as BatchProcessor<unknown>);
    const conf = this.conf;
    if (conf.batch_max_size === 1) {
      this.#enqueue({ entries: [entry], retries: 0 });
      return;
    }
    const now = performance.now();
    if (this.#buffer.length === 0) this.#firstAt = now;
    this.#lastAt = now;
    this.#buffer.push(entry);
    if (this.#buffer.length >= conf.batch_max_size) {
      this.flush();
      return;
    }
    if (!this.#timer) this.#arm(Math.min(conf.inactive_timeout, conf.buffer_duration) * 1000);
  }

  /** Sends the buffered entries now. */
  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#buffer.length === 0) return;
    const entries = this.#buffer;
    this.#buffer = [];
    this.#enqueue({ entries, retries: 0 });
  }

  /** Runs `fn` once everything pushed so far is delivered or dropped (at once when idle). */
  whenIdle(fn: () => void): void {
    if (this.idle) {
      fn();
      return;
    }
    const previous = this.#onIdle;
    this.#onIdle = previous ? () => (previous(), fn()) : fn;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(this.#onTimer, Math.max(0, ms));
    this.#timer.unref();
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    if (this.#buffer.length === 0) return;
    const now = performance.now();
    const inactiveAt = this.#lastAt + this.conf.inactive_timeout * 1000;
    const durationAt = this.#firstAt + this.conf.buffer_duration * 1000;
    if (now >= inactiveAt || now >= durationAt) {
      this.flush();
      return;
    }
    // Entries kept coming: wait for the quiet spell or the oldest entry's deadline, whichever is first.
    this.#arm(Math.min(inactiveAt, durationAt) - now);
  };

  #enqueue(batch: Batch<E>): void {
    this.#queue.push(batch);
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < MAX_SENDS_IN_FLIGHT && this.#queue.length > 0) this.#deliver(this.#queue.shift()!);
    this.#checkIdle();
  }

  #deliver(batch: Batch<E>): void {
    this.#inFlight++;
    let sending: Promise<void>;
    try {
      sending = this.#send(batch.entries, this.conf.batch_max_size);
    } catch (err) {
      sending = Promise.reject(err);
    }
    sending.then(
      () => {
        this.#manager.pending -= batch.entries.length;
        this.#pendingGauge?.inc(-batch.entries.length);
        this.#manager.sent += batch.entries.length;
        this.#settled();
      },
      (err: unknown) => {
        this.#failed(batch, err);
        this.#settled();
      },
    );
  }

  #settled(): void {
    this.#inFlight--;
    this.#pump();
  }

  #failed(batch: Batch<E>, err: unknown): void {
    const name = this.conf.name;
    this.#log('error', `Batch Processor[${name}] failed to process entries: ${(err as Error)?.message ?? err}`);
    batch.retries++;
    if (batch.retries <= this.conf.max_retry_count) {
      this.#retrying++;
      const t = setTimeout(() => {
        this.#retrying--;
        this.#enqueue(batch);
      }, this.conf.retry_delay * 1000);
      t.unref();
      return;
    }
    this.#manager.pending -= batch.entries.length;
    this.#pendingGauge?.inc(-batch.entries.length);
    this.#manager.failed += batch.entries.length;
    this.#log('error', `Batch Processor[${name}] exceeded the max_retry_count[${batch.retries}] dropping the entries`);
  }

  #checkIdle(): void {
    if (!this.idle) return;
    this.#manager.busy.delete(this as BatchProcessor<unknown>);
    const fn = this.#onIdle;
    if (fn) {
      this.#onIdle = undefined;
      fn();
    }
  }
}
