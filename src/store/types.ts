// The ConfigStore contract: a revisioned key-value store with etcd's semantics, implemented by the
// embedded store (node:sqlite) and by etcd. Keys are full paths with APISIX's layout
// (`/apisix/routes/1`, `/apisix/consumers/jack/credentials/c1`); values are JSON objects.

export interface StoredItem {
  key: string;
  value: unknown;
  /** Revision at which the key was created (etcd `create_revision`, APISIX `createdIndex`). */
  createRevision: number;
  /** Revision of the last change (etcd `mod_revision`, APISIX `modifiedIndex`). */
  modRevision: number;
}

export interface StoreEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value for `put`; undefined for `delete`. */
  value: unknown;
  createRevision: number;
  modRevision: number;
}

export interface ListResult {
  items: StoredItem[];
  /** The store's revision when the list was read; watch from `revision + 1` to miss nothing. */
  revision: number;
}

export interface PutOptions {
  /** Seconds until the key expires (etcd lease; APISIX `?ttl=`). */
  ttl?: number;
  /** Only write when the key's current modRevision is this (0 = must not exist). Throws StoreConflictError otherwise. */
  expectModRevision?: number;
}

export interface WatchHandlers {
  /** A batch of events, in revision order; `revision` is the store revision after the batch. */
  onEvents(events: StoreEvent[], revision: number): void;
  /**
   * The watch cannot continue from where it was (etcd compaction, etcd restarted with an older
   * revision, reconnect after an outage): the consumer must re-list the prefix and diff.
   */
  onResync(reason: string): void;
  /** The store became unreachable (true) or reachable again (false). */
  onHealth?(down: boolean, reason?: string): void;
}

export interface ConfigStore {
  /** Human-readable name for logs (`embedded:/var/lib/causeway/config.db`, `etcd:http://127.0.0.1:2379`). */
  readonly name: string;
  get(key: string): Promise<StoredItem | undefined>;
  /** Every key under `prefix` (a directory path ending in `/`, or a full prefix). */
  list(prefix: string): Promise<ListResult>;
  put(key: string, value: unknown, options?: PutOptions): Promise<StoredItem>;
  /** Deletes one key; resolves false when it did not exist. */
  delete(key: string): Promise<boolean>;
  /** A new unique id for POST-created resources: APISIX's 20-digit, zero-padded counter. */
  nextId(): Promise<string>;
  /** Watches every key under `prefix` from `fromRevision` on. Returns a function that stops the watch. */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): () => void;
  /** True while the store answers (embedded: always). */
  readonly healthy: boolean;
  close(): Promise<void>;
}

/** A write refused because the store is unreachable: the Admin API answers 503. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** A conditional write whose expectation failed. */
export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
}
