// The embedded config store: Causeway's default for a single node. A node:sqlite database that
// keeps etcd's revision model — one global revision, per-key create/mod revisions, a bounded event
// history for watch replay, TTL keys that expire like etcd leases — so everything above the
// ConfigStore contract behaves the same on the embedded store and on etcd.
//
// Ownership: one process owns the database file. The connection runs in SQLite's EXCLUSIVE locking
// mode and takes the write lock at open, so a second opener (another process, or a second instance
// in this process) fails at once with "database is locked". The lock is an OS file lock: it goes
// away with the owning process, even after kill -9, so there is no stale lock file to clean up.
//
// Durability: WAL with synchronous=FULL. A write's promise resolves only after COMMIT, by which time
// the WAL frames are written (and fsynced), so an acknowledged write survives kill -9 of the process
// (and, with FULL, power loss). On the next open SQLite replays the WAL; a transaction cut short by
// the kill is discarded as a whole.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import {
  StoreConflictError,
  type ConfigStore,
  type ListResult,
  type PutOptions,
  type StoreEvent,
  type StoredItem,
  type WatchHandlers,
} from './types.ts';

export interface EmbeddedStoreOptions {
  /** Database file path, or ':memory:'. The parent directory is created when missing. */
  path: string;
  /** Events kept for watch replay (the newest ones); older revisions count as compacted. Default 10000. */
  historyLimit?: number;
  /** How often expired TTL keys are deleted (ms). Default 500. */
  sweepIntervalMs?: number;
}

const SCHEMA_VERSION = 1;
const DEFAULT_HISTORY_LIMIT = 10_000;
const DEFAULT_SWEEP_INTERVAL_MS = 500;

interface KvRow {
  key: string;
  value: string;
  create_rev: number;
  mod_rev: number;
  expires_at: number | null;
}

interface HistoryRow {
  revision: number;
  key: string;
  type: 'put' | 'delete';
  value: string | null;
  create_rev: number;
  mod_rev: number;
}

interface Watcher {
  prefix: string;
  handlers: WatchHandlers;
  /** The next revision this watcher has to see. */
  cursor: number;
  active: boolean;
}

interface PendingEvent {
  revision: number;
  event: StoreEvent;
}

export class EmbeddedStore implements ConfigStore {
  readonly name: string;
  readonly healthy = true;

  private readonly db: DatabaseSync;
  private readonly historyLimit: number;
  private readonly sweepTimer: NodeJS.Timeout;
  private closed = false;

  // Mirrors of the meta rows; this process is the only writer, so they stay exact.
  private rev = 1;
  /** Every event with revision <= compactRev has been trimmed from history. */
  private compactRev = 0;
  private historyCount = 0;

  private readonly watchers = new Set<Watcher>();
  /** Events committed since the last flush; live watchers are served from here. */
  private pending: PendingEvent[] = [];
  /** The store revision at the last flush. */
  private flushedRev = 1;
  private flushScheduled = false;

  private readonly stmt: {
    getMeta: StatementSync;
    setMeta: StatementSync;
    getKv: StatementSync;
    getLive: StatementSync;
    listFrom: StatementSync;
    upsertKv: StatementSync;
    deleteKv: StatementSync;
    dueKeys: StatementSync;
    insertHistory: StatementSync;
    history: StatementSync;
    historyCut: StatementSync;
    trimHistory: StatementSync;
    countHistory: StatementSync;
  };

  constructor(options: EmbeddedStoreOptions) {
    const { path } = options;
    if (typeof path !== 'string' || path === '') throw new TypeError('EmbeddedStore: path is required');
    const historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    if (!Number.isInteger(historyLimit) || historyLimit < 0) throw new RangeError('EmbeddedStore: historyLimit must be a non-negative integer');
    const sweepMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    if (!(sweepMs > 0)) throw new RangeError('EmbeddedStore: sweepIntervalMs must be positive');
    this.name = `embedded:${path}`;
    this.historyLimit = historyLimit;

    const inMemory = path === ':memory:';
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    this.db = new DatabaseSync(path, { timeout: 0 });
    try {
      this.open(inMemory, path);
      this.stmt = this.prepareStatements();
      this.rev = this.meta('revision');
      this.compactRev = this.meta('compact_revision');
      this.historyCount = Number((this.stmt.countHistory.get() as { n: number }).n);
      this.flushedRev = this.rev;
      // A limit lowered since the last run takes effect now.
      if (this.historyCount > this.historyLimit) this.tx(() => this.trim());
      this.expireDue(Date.now());
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
  }

  private prepareStatements(): EmbeddedStore['stmt'] {
    return {
      getMeta: this.db.prepare('SELECT value FROM meta WHERE name = ?'),
      setMeta: this.db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value'),
      getKv: this.db.prepare('SELECT key, value, create_rev, mod_rev, expires_at FROM kv WHERE key = ?'),
      getLive: this.db.prepare('SELECT key, value, create_rev, mod_rev, expires_at FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)'),
      listFrom: this.db.prepare('SELECT key, value, create_rev, mod_rev, expires_at FROM kv WHERE key >= ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY key'),
      upsertKv: this.db.prepare(
        'INSERT INTO kv (key, value, create_rev, mod_rev, expires_at) VALUES (?, ?, ?, ?, ?) ' +
        'ON CONFLICT (key) DO UPDATE SET value = excluded.value, create_rev = excluded.create_rev, mod_rev = excluded.mod_rev, expires_at = excluded.expires_at',
      ),
      deleteKv: this.db.prepare('DELETE FROM kv WHERE key = ?'),
      dueKeys: this.db.prepare('SELECT key, value, create_rev, mod_rev, expires_at FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, key'),
      insertHistory: this.db.prepare('INSERT INTO history (revision, key, type, value, create_rev, mod_rev) VALUES (?, ?, ?, ?, ?, ?)'),
      history: this.db.prepare('SELECT revision, key, type, value, create_rev, mod_rev FROM history WHERE revision >= ? AND revision <= ? ORDER BY revision'),
      historyCut: this.db.prepare('SELECT revision FROM history ORDER BY revision LIMIT 1 OFFSET ?'),
      trimHistory: this.db.prepare('DELETE FROM history WHERE revision <= ?'),
      countHistory: this.db.prepare('SELECT count(*) AS n FROM history'),
    };
  }

  /** The current store revision (etcd header revision). */
  get revision(): number {
    return this.rev;
  }

  async get(key: string): Promise<StoredItem | undefined> {
    this.assertOpen();
    const row = this.stmt.getLive.get(key, Date.now()) as KvRow | undefined;
    return row ? toItem(row) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    this.assertOpen();
    const items: StoredItem[] = [];
    // Keys are sorted bytewise, so the keys under a prefix form one run starting at the prefix.
    for (const row of this.stmt.listFrom.iterate(prefix, Date.now()) as Iterable<KvRow>) {
      if (!row.key.startsWith(prefix)) break;
      items.push(toItem(row));
    }
    return { items, revision: this.rev };
  }

  async put(key: string, value: unknown, options: PutOptions = {}): Promise<StoredItem> {
    this.assertOpen();
    checkKey(key);
    const { ttl, expectModRevision } = options;
    if (ttl !== undefined && !(Number.isFinite(ttl) && ttl > 0)) throw new RangeError(`invalid ttl ${ttl}: must be a positive number of seconds`);
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError(`value for ${key} is not JSON-serialisable`);
    const now = Date.now();
    this.expireDue(now);
    const item = this.tx(() => {
      const existing = this.stmt.getKv.get(key) as KvRow | undefined;
      if (expectModRevision !== undefined) {
        const current = existing ? existing.mod_rev : 0;
        if (current !== expectModRevision) {
          throw new StoreConflictError(`${key}: expected mod revision ${expectModRevision}, found ${current}`);
        }
      }
      const revision = this.bump();
      const createRevision = existing ? existing.create_rev : revision;
      const expiresAt = ttl === undefined ? null : now + Math.ceil(ttl * 1000);
      this.stmt.upsertKv.run(key, json, createRevision, revision, expiresAt);
      this.record({ type: 'put', key, value: JSON.parse(json), createRevision, modRevision: revision }, json);
      return { key, value: JSON.parse(json) as unknown, createRevision, modRevision: revision };
    });
    return item;
  }

  async delete(key: string): Promise<boolean> {
    this.assertOpen();
    this.expireDue(Date.now());
    return this.tx(() => this.deleteRow(key));
  }

  async nextId(): Promise<string> {
    this.assertOpen();
    // APISIX writes /gen_id and uses the resulting etcd revision as the id. Here the counter is a
    // meta row (no key, no watch event); the revision it takes is persisted, so ids never repeat.
    const id = this.tx(() => {
      const revision = this.bump();
      this.stmt.setMeta.run('gen_id', revision);
      return revision;
    });
    return String(id).padStart(20, '0');
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): () => void {
    this.assertOpen();
    const cursor = Number.isFinite(fromRevision) && fromRevision >= 1 ? Math.floor(fromRevision) : this.rev + 1;
    const watcher: Watcher = { prefix, handlers, cursor, active: true };
    this.watchers.add(watcher);
    this.scheduleFlush();
    return () => {
      watcher.active = false;
      this.watchers.delete(watcher);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    for (const w of this.watchers) w.active = false;
    this.watchers.clear();
    this.pending = [];
    this.db.close();
  }

  // ---- opening -------------------------------------------------------------------------------

  private open(inMemory: boolean, path: string): void {
    const db = this.db;
    try {
      if (!inMemory) {
        // Exclusive locking mode before WAL: no shared-memory index, and the lock is held until close.
        db.exec('PRAGMA locking_mode = EXCLUSIVE');
        const mode = (db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string }).journal_mode;
        if (mode.toLowerCase() !== 'wal') throw new Error(`could not switch ${path} to WAL (journal_mode=${mode})`);
        // Take the write lock now, so a second owner is refused at open rather than at its first write.
        db.exec('BEGIN EXCLUSIVE; COMMIT');
      }
    } catch (err) {
      if ((err as { errcode?: number }).errcode === 5 /* SQLITE_BUSY */) {
        throw new Error(`embedded store ${path} is in use by another process (or another EmbeddedStore in this one)`, { cause: err });
      }
      throw err;
    }
    db.exec('PRAGMA synchronous = FULL');
    const version = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (version > SCHEMA_VERSION) throw new Error(`embedded store ${path} has schema version ${version}; this Causeway understands up to ${SCHEMA_VERSION}`);
    if (version === SCHEMA_VERSION) return;
    db.exec(`
      BEGIN IMMEDIATE;
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        create_rev INTEGER NOT NULL,
        mod_rev INTEGER NOT NULL,
        expires_at INTEGER
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL;
      CREATE TABLE IF NOT EXISTS history (
        revision INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('put', 'delete')),
        value TEXT,
        create_rev INTEGER NOT NULL,
        mod_rev INTEGER NOT NULL
      );
      INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 1), ('compact_revision', 0), ('gen_id', 0);
      PRAGMA user_version = ${SCHEMA_VERSION};
      COMMIT;
    `);
  }

  private meta(name: string): number {
    const row = this.stmt.getMeta.get(name) as { value: number } | undefined;
    if (!row) throw new Error(`embedded store ${this.name}: meta row ${name} is missing`);
    return Number(row.value);
  }

  // ---- writing -------------------------------------------------------------------------------

  /** Runs fn in a write transaction; the in-memory mirrors roll back with it. */
  private tx<T>(fn: () => T): T {
    const saved = { rev: this.rev, compactRev: this.compactRev, historyCount: this.historyCount, pending: this.pending.length };
    this.db.exec('BEGIN IMMEDIATE');
    let result: T;
    try {
      result = fn();
      this.db.exec('COMMIT');
    } catch (err) {
      try {
        if (this.db.isTransaction) this.db.exec('ROLLBACK');
      } catch {
        // The transaction is already gone; nothing to undo.
      }
      this.rev = saved.rev;
      this.compactRev = saved.compactRev;
      this.historyCount = saved.historyCount;
      this.pending.length = saved.pending;
      throw err;
    }
    if (this.pending.length > saved.pending) this.scheduleFlush();
    return result;
  }

  /** The next revision, persisted in the current transaction. */
  private bump(): number {
    this.rev += 1;
    this.stmt.setMeta.run('revision', this.rev);
    return this.rev;
  }

  /** Appends an event to history (trimming it to the limit) and queues it for live watchers. */
  private record(event: StoreEvent, json: string | null): void {
    this.stmt.insertHistory.run(event.modRevision, event.key, event.type, json, event.createRevision, event.modRevision);
    this.historyCount += 1;
    this.pending.push({ revision: event.modRevision, event });
    if (this.historyCount > this.historyLimit) this.trim();
  }

  private trim(): void {
    const excess = this.historyCount - this.historyLimit;
    if (excess <= 0) return;
    const cut = this.stmt.historyCut.get(excess - 1) as { revision: number } | undefined;
    if (!cut) return;
    this.stmt.trimHistory.run(cut.revision);
    this.historyCount = this.historyLimit;
    this.compactRev = Math.max(this.compactRev, Number(cut.revision));
    this.stmt.setMeta.run('compact_revision', this.compactRev);
  }

  private deleteRow(key: string): boolean {
    const existing = this.stmt.getKv.get(key) as KvRow | undefined;
    if (!existing) return false;
    const revision = this.bump();
    this.stmt.deleteKv.run(key);
    this.record({ type: 'delete', key, value: undefined, createRevision: existing.create_rev, modRevision: revision }, null);
    return true;
  }

  /** Deletes every key whose TTL has run out, one revision each (like etcd lease expiry). */
  private expireDue(now: number): void {
    const due = this.stmt.dueKeys.all(now) as unknown as KvRow[];
    if (due.length === 0) return;
    this.tx(() => {
      for (const row of due) this.deleteRow(row.key);
    });
  }

  private sweep(): void {
    if (this.closed) return;
    try {
      this.expireDue(Date.now());
    } catch (err) {
      process.emitWarning(`embedded store ${this.name}: TTL sweep failed: ${(err as Error).message}`);
    }
  }

  // ---- watching ------------------------------------------------------------------------------

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.closed) return;
    const batch = this.pending;
    this.pending = [];
    const previous = this.flushedRev;
    const upTo = this.rev;
    this.flushedRev = upTo;
    for (const w of [...this.watchers]) {
      if (this.closed) return; // a handler closed the store
      if (!w.active || w.cursor > upTo) continue;
      if (w.cursor > previous) {
        // Live: everything it still needs was committed since the last flush.
        const events = batch.filter((p) => p.revision >= w.cursor && p.event.key.startsWith(w.prefix));
        w.cursor = upTo + 1;
        this.deliver(w, events);
        continue;
      }
      if (w.cursor <= this.compactRev) {
        w.cursor = upTo + 1;
        this.call(w, () => w.handlers.onResync('compacted'));
        continue;
      }
      // Replay from history; it holds every event after compactRev, including this batch.
      const rows = this.stmt.history.all(w.cursor, upTo) as unknown as HistoryRow[];
      w.cursor = upTo + 1;
      this.deliver(w, rows.filter((r) => r.key.startsWith(w.prefix)).map((r) => ({ revision: r.revision, event: toEvent(r) })));
    }
  }

  /** One onEvents call per revision (each write is one batch). */
  private deliver(w: Watcher, events: PendingEvent[]): void {
    let i = 0;
    while (i < events.length && w.active) {
      const revision = events[i].revision;
      const group: StoreEvent[] = [];
      while (i < events.length && events[i].revision === revision) group.push(events[i++].event);
      this.call(w, () => w.handlers.onEvents(group, revision));
    }
  }

  private call(w: Watcher, fn: () => void): void {
    if (!w.active) return;
    try {
      fn();
    } catch (err) {
      process.emitWarning(`embedded store ${this.name}: watch handler for ${w.prefix} threw: ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`embedded store ${this.name} is closed`);
  }
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw new TypeError('key must be a non-empty string');
}

function toItem(row: KvRow): StoredItem {
  return { key: row.key, value: JSON.parse(row.value) as unknown, createRevision: Number(row.create_rev), modRevision: Number(row.mod_rev) };
}

function toEvent(row: HistoryRow): StoreEvent {
  return {
    type: row.type,
    key: row.key,
    value: row.type === 'put' && row.value !== null ? JSON.parse(row.value) as unknown : undefined,
    createRevision: Number(row.create_rev),
    modRevision: Number(row.mod_rev),
  };
}
