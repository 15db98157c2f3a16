// One prefix watch over etcd's streaming /v3/watch, kept alive across failures the way APISIX's
// config_etcd.lua does: resume from the last delivered revision + 1 after a reconnect, resync on
// compaction or when etcd's revision goes backwards (restarted/replaced), exponential backoff with
// jitter across endpoints while etcd is down. Dead connections are found by TCP keepalive,
// etcd's progress notifications, and a liveness probe of the endpoint after a quiet period.
import { log } from '../../util/log.ts';
import { StoreUnavailableError, type StoreEvent, type WatchHandlers } from '../types.ts';
import { b64, decodeValue, num, unb64, type RawHeader, type RawKv } from './codec.ts';
import { isAuthFailure, type EtcdClient, type EtcdStream } from './client.ts';

interface RawEvent {
  type?: 'PUT' | 'DELETE';
  kv?: RawKv;
}

interface WatchResult {
  header?: RawHeader;
  created?: boolean;
  canceled?: boolean;
  cancel_reason?: string;
  compact_revision?: string;
  events?: RawEvent[];
}

export interface EtcdWatchOptions {
  client: EtcdClient;
  key: Buffer;
  rangeEnd: Buffer;
  fromRevision: number;
  handlers: WatchHandlers;
  /** Quiet time after which the stream's endpoint is probed. */
  idleMs: number;
  /** Prefix for log lines. */
  label: string;
}

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 8_000;
/** A stream that lived this long counts as having worked: the next failure starts the backoff over. */
const STABLE_MS = 1_000;

export class EtcdWatch {
  private readonly o: EtcdWatchOptions;
  private stopped = false;
  /** Bumped whenever the current stream is given up; callbacks of older streams are ignored. */
  private generation = 0;
  private stream: EtcdStream | undefined;
  /** Everything up to this revision has been delivered; the next stream starts at resume + 1. */
  private resume: number | undefined;
  /** Highest header revision seen on a stream: a lower one means etcd lost its data. */
  private lastHeader: number;
  private clusterId: string | undefined;
  /** Header revision of the current stream's `created` answer. */
  private createdRevision = 0;
  private establishedAt = 0;
  private failures = 0;
  private down = false;
  private lastResyncAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(options: EtcdWatchOptions) {
    this.o = options;
    const from = Number.isFinite(options.fromRevision) && options.fromRevision >= 1 ? Math.floor(options.fromRevision) : undefined;
    this.resume = from === undefined ? undefined : from - 1;
    this.lastHeader = this.resume ?? 0;
    void this.connect();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.dropStream();
    clearTimeout(this.retryTimer);
  }

  // ---- stream lifecycle --------------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const gen = ++this.generation;
    const create: Record<string, unknown> = { key: b64(this.o.key), range_end: b64(this.o.rangeEnd), progress_notify: true };
    if (this.resume !== undefined) create.start_revision = String(this.resume + 1);
    this.createdRevision = 0;
    this.establishedAt = 0;
    try {
      const stream = await this.o.client.stream('/v3/watch', { create_request: create }, {
        onMessage: (message) => {
          if (gen !== this.generation) return;
          try {
            this.onMessage(message);
          } catch (err) {
            log('error', `${this.o.label}: failed to process a watch message: ${(err as Error)?.stack ?? String(err)}`);
            this.fail('unprocessable watch message');
          }
        },
        onClose: (error, endpoint) => {
          if (gen !== this.generation) return;
          this.o.client.streamFailed(endpoint, error);
          this.fail(error.message);
        },
      });
      if (gen !== this.generation || this.stopped) {
        stream.abort();
        return;
      }
      this.stream = stream;
      this.armIdle();
    } catch (err) {
      if (gen !== this.generation) return;
      this.fail((err as Error).message);
    }
  }

  /** Gives up the current stream (if any) without further callbacks from it. */
  private dropStream(): void {
    this.generation++;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.stream?.abort();
    this.stream = undefined;
  }

  /** The stream failed or could not be opened: retry once at once, then back off and report down. */
  private fail(reason: string): void {
    if (this.stopped) return;
    const lived = this.establishedAt > 0 ? Date.now() - this.establishedAt : 0;
    this.dropStream();
    if (lived >= STABLE_MS) this.failures = 0;
    this.failures++;
    if (this.failures === 1) {
      log('info', `${this.o.label}: watch stream lost (${reason}), reconnecting`);
      void this.connect();
      return;
    }
    if (!this.down) {
      this.down = true;
      log('warn', `${this.o.label}: etcd unreachable (${reason}); serving the last known configuration`);
      this.call(() => this.o.handlers.onHealth?.(true, reason));
    }
    const base = Math.min(BACKOFF_START_MS * 2 ** (this.failures - 2), BACKOFF_MAX_MS);
    const delay = Math.round(base * (0.5 + Math.random())); // ±50 % jitter
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, delay);
  }

  /** The watch cannot continue from `resume`: tell the consumer to re-list, then watch on from `current`. */
  private resync(reason: string, current: number): void {
    this.dropStream();
    this.resume = current;
    this.lastHeader = current;
    log('warn', `${this.o.label}: ${reason}, resyncing from revision ${current}`);
    this.call(() => this.o.handlers.onResync(reason));
    if (this.stopped) return;
    // A resync right after another (say, two endpoints that are different clusters) waits a moment.
    const now = Date.now();
    const wait = now - this.lastResyncAt < 1_000 ? 1_000 : 0;
    this.lastResyncAt = now;
    clearTimeout(this.retryTimer);
    if (wait === 0) {
      void this.connect();
    } else {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.connect();
      }, wait);
    }
  }

  // ---- messages ----------------------------------------------------------------------------

  private onMessage(message: unknown): void {
    this.armIdle();
    const m = message as { result?: WatchResult; error?: { message?: string } };
    if (m.error) {
      this.fail(`watch error: ${m.error.message ?? JSON.stringify(m.error)}`);
      return;
    }
    const r = m.result;
    if (!r) return;
    const revision = num(r.header?.revision);

    if (r.created) {
      if (r.canceled) {
        const reason = r.cancel_reason ?? 'watch refused';
        if (isAuthFailure(reason)) this.o.client.invalidateToken();
        this.fail(`watch refused: ${reason}`);
        return;
      }
      this.createdRevision = revision;
      this.establishedAt = Date.now();
      if (this.down) {
        this.down = false;
        log('warn', `${this.o.label}: etcd reachable again, watching from revision ${this.resume === undefined ? 'now' : this.resume + 1}`);
        this.call(() => this.o.handlers.onHealth?.(false));
      }
      if (this.restarted(r.header, true)) return;
      if (this.resume === undefined) this.resume = revision; // watching from "now"
      return;
    }

    const compacted = num(r.compact_revision);
    if (compacted > 0) {
      // The cancel answer carries no revision; the created one had the store's revision then.
      this.resync('compacted', Math.max(this.createdRevision, compacted - 1));
      return;
    }
    if (r.canceled) {
      this.fail(`watch canceled: ${r.cancel_reason ?? 'no reason given'}`);
      return;
    }
    if (this.restarted(r.header, true)) return;

    const events = r.events ?? [];
    if (events.length === 0) {
      // Progress notification: etcd sends these only when the watcher is in sync.
      if (revision > 0 && (this.resume === undefined || revision > this.resume)) this.resume = revision;
      return;
    }
    this.deliver(events);
  }

  /** One onEvents call per revision, like the embedded store. */
  private deliver(events: RawEvent[]): void {
    let batch: StoreEvent[] = [];
    let batchRevision = 0;
    const flush = () => {
      if (batch.length === 0 && batchRevision === 0) return;
      const out = batch;
      const rev = batchRevision;
      batch = [];
      batchRevision = 0;
      this.resume = rev;
      if (out.length > 0) this.call(() => this.o.handlers.onEvents(out, rev));
    };
    for (const e of events) {
      const kv = e.kv ?? {};
      const modRevision = num(kv.mod_revision);
      if (this.resume !== undefined && modRevision <= this.resume) continue; // already delivered
      if (modRevision !== batchRevision) flush();
      if (this.stopped) return;
      batchRevision = modRevision;
      const event = this.toEvent(e.type === 'DELETE', kv, modRevision);
      if (event) batch.push(event);
    }
    flush();
  }

  private toEvent(isDelete: boolean, kv: RawKv, modRevision: number): StoreEvent | undefined {
    const key = unb64(kv.key);
    if (key.endsWith('/')) return undefined; // APISIX's `init_dir` directory placeholders
    if (isDelete) return { type: 'delete', key, value: undefined, createRevision: num(kv.create_revision), modRevision };
    const decoded = decodeValue(kv.value);
    if (!decoded.ok) {
      // What a re-list would show: list() skips values that are not JSON.
      log('warn', `${this.o.label}: ${key} at revision ${modRevision} is not JSON; treated as deleted`);
      return { type: 'delete', key, value: undefined, createRevision: num(kv.create_revision), modRevision };
    }
    return { type: 'put', key, value: decoded.value, createRevision: num(kv.create_revision), modRevision };
  }

  /**
   * A header whose revision is below what this watch has already seen, or from another cluster,
   * means etcd was restarted without its data or replaced: resync from its current revision.
   * `record` = the header came on the stream (a probe's header only checks).
   */
  private restarted(header: RawHeader | undefined, record: boolean): boolean {
    const revision = num(header?.revision);
    const clusterId = header?.cluster_id;
    const otherCluster = clusterId !== undefined && this.clusterId !== undefined && clusterId !== this.clusterId;
    if ((revision > 0 && revision < this.lastHeader) || otherCluster) {
      if (clusterId !== undefined) this.clusterId = clusterId;
      this.resync('etcd restarted', revision);
      return true;
    }
    if (record) {
      if (clusterId !== undefined) this.clusterId = clusterId;
      if (revision > this.lastHeader) this.lastHeader = revision;
    }
    return false;
  }

  // ---- liveness ----------------------------------------------------------------------------

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.stopped) return;
    const gen = this.generation;
    this.idleTimer = setTimeout(() => void this.probe(gen), this.o.idleMs);
    this.idleTimer.unref?.();
  }

  /** The stream has been quiet: check its endpoint still answers (and still has our data). */
  private async probe(gen: number): Promise<void> {
    const stream = this.stream;
    if (!stream || gen !== this.generation) return;
    try {
      const res = await this.o.client.call<{ header?: RawHeader }>('/v3/kv/range', {
        key: b64(this.o.key), range_end: b64(this.o.rangeEnd), count_only: true,
      }, { endpoint: stream.endpoint });
      if (gen !== this.generation) return;
      if (this.restarted(res.header, false)) return;
      this.armIdle();
    } catch (err) {
      if (gen !== this.generation) return;
      if (err instanceof StoreUnavailableError) {
        this.o.client.streamFailed(stream.endpoint, err);
        this.fail(`liveness probe failed: ${err.message}`);
      } else {
        this.armIdle(); // etcd answered, with an error: the connection is alive
      }
    }
  }

  private call(fn: () => void): void {
    if (this.stopped) return;
    try {
      fn();
    } catch (err) {
      log('error', `${this.o.label}: watch handler threw: ${(err as Error)?.stack ?? String(err)}`);
    }
  }
}
