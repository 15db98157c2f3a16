// The etcd ConfigStore: APISIX's data in etcd v3 through the gRPC-gateway JSON API (the protocol
// lua-resty-etcd speaks; no etcd client library). Values are JSON text; APISIX's `init_dir`
// directory placeholders (`/apisix/routes/`) are never listed or delivered. POST ids are etcd
// revisions: a write to `<prefix>/gen_id`, its revision zero-padded to 20 digits.
import { log } from '../util/log.ts';
import { EtcdClient, EtcdError, type EtcdTlsOptions } from './etcd/client.ts';
import { b64, decodeValue, num, prefixRangeEnd, unb64, type RawHeader, type RawKv } from './etcd/codec.ts';
import { EtcdWatch } from './etcd/watch.ts';
import {
  StoreConflictError, StoreUnavailableError,
  type ConfigStore, type ListResult, type PutOptions, type StoredItem, type WatchHandlers,
} from './types.ts';

export { EtcdError } from './etcd/client.ts';
export type { EtcdTlsOptions } from './etcd/client.ts';

export interface EtcdStoreOptions {
  /** Endpoints, e.g. `['http://127.0.0.1:2379']` (deployment.etcd.host). */
  hosts: string[];
  /** Key prefix (deployment.etcd.prefix); only used for `<prefix>/gen_id`. Default `/apisix`. */
  prefix?: string;
  /** Per-request timeout (deployment.etcd.timeout). Default 30. */
  timeoutSeconds?: number;
  /** How long a failed endpoint is passed over (deployment.etcd.health_check_timeout). Default 10. */
  healthCheckTimeoutSeconds?: number;
  /** A watch quiet for this long has its endpoint probed (deployment.etcd.watch_timeout). Default 50. */
  watchIdleSeconds?: number;
  /** Keys per range request when listing. Default 1000. */
  listPageSize?: number;
  user?: string;
  password?: string;
  tls?: EtcdTlsOptions;
}

interface RangeResponse {
  header?: RawHeader;
  kvs?: RawKv[];
  more?: boolean;
  count?: string;
}

interface PutResponse {
  header?: RawHeader;
  prev_kv?: RawKv;
}

interface TxnResponse {
  header?: RawHeader;
  succeeded?: boolean;
  responses?: Array<{ response_put?: PutResponse; response_range?: RangeResponse }>;
}

export class EtcdStore implements ConfigStore {
  readonly name: string;
  private readonly client: EtcdClient;
  private readonly prefix: string;
  private readonly pageSize: number;
  private readonly idleMs: number;
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    this.name = `etcd:${options.hosts.join(',')}`;
    this.client = new EtcdClient({
      hosts: options.hosts,
      timeoutMs: Math.max(1, (options.timeoutSeconds ?? 30) * 1000),
      unhealthyMs: (options.healthCheckTimeoutSeconds ?? 10) * 1000,
      user: options.user,
      password: options.password,
      tls: options.tls,
    });
    this.prefix = (options.prefix ?? '/apisix').replace(/\/+$/, '');
    this.pageSize = Math.max(1, Math.floor(options.listPageSize ?? 1000));
    this.idleMs = Math.max(100, (options.watchIdleSeconds ?? 50) * 1000);
  }

  get healthy(): boolean {
    return !this.closed && this.client.lastOk;
  }

  async get(key: string): Promise<StoredItem | undefined> {
    checkKey(key);
    const res = await this.call<RangeResponse>('/v3/kv/range', { key: b64(key) });
    const kv = res.kvs?.[0];
    if (!kv) return undefined;
    const decoded = decodeValue(kv.value);
    // A value that is not JSON comes back as its raw text, for the caller to report.
    return { key, value: decoded.ok ? decoded.value : decoded.raw, createRevision: num(kv.create_revision), modRevision: num(kv.mod_revision) };
  }

  async list(prefix: string): Promise<ListResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.listOnce(prefix);
      } catch (err) {
        // The pinned revision was compacted between pages: start over.
        if (attempt < 4 && err instanceof EtcdError && /compacted/.test(err.message)) continue;
        throw err;
      }
    }
  }

  private async listOnce(prefix: string): Promise<ListResult> {
    const end = prefixRangeEnd(prefix);
    let from: Buffer = Buffer.from(prefix, 'utf8');
    let revision = 0;
    const items: StoredItem[] = [];
    for (;;) {
      const body: Record<string, unknown> = { key: b64(from), range_end: b64(end), limit: String(this.pageSize) };
      if (revision > 0) body.revision = String(revision); // later pages read the same snapshot
      const res = await this.call<RangeResponse>('/v3/kv/range', body);
      if (revision === 0) revision = num(res.header?.revision);
      const kvs = res.kvs ?? [];
      for (const kv of kvs) {
        const key = unb64(kv.key);
        if (key.endsWith('/')) continue; // `init_dir` placeholder
        const decoded = decodeValue(kv.value);
        if (!decoded.ok) {
          log('warn', `${this.name}: skipping ${key}: its value is not JSON`);
          continue;
        }
        items.push({ key, value: decoded.value, createRevision: num(kv.create_revision), modRevision: num(kv.mod_revision) });
      }
      if (!res.more || kvs.length === 0) break;
      from = Buffer.concat([Buffer.from(kvs[kvs.length - 1].key ?? '', 'base64'), Buffer.from([0])]);
    }
    return { items, revision };
  }

  async put(key: string, value: unknown, options: PutOptions = {}): Promise<StoredItem> {
    checkKey(key);
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`${key}: value is not JSON-serializable`);
    const put: Record<string, unknown> = { key: b64(key), value: b64(text), prev_kv: true };
    if (options.ttl !== undefined && options.ttl > 0) {
      const lease = await this.call<{ ID?: string }>('/v3/lease/grant', { TTL: String(Math.ceil(options.ttl)) }, false);
      put.lease = lease.ID;
    }
    const stored = (revision: number, prev: RawKv | undefined): StoredItem => ({
      key, value: JSON.parse(text) as unknown, createRevision: prev ? num(prev.create_revision) : revision, modRevision: revision,
    });

    const expect = options.expectModRevision;
    if (expect === undefined) {
      const res = await this.call<PutResponse>('/v3/kv/put', put);
      return stored(num(res.header?.revision), res.prev_kv);
    }
    const compare = expect === 0
      ? { target: 'CREATE', key: b64(key), create_revision: '0', result: 'EQUAL' }
      : { target: 'MOD', key: b64(key), mod_revision: String(expect), result: 'EQUAL' };
    const res = await this.call<TxnResponse>('/v3/kv/txn', {
      compare: [compare],
      success: [{ request_put: put }],
      failure: [{ request_range: { key: b64(key), keys_only: true } }],
    }, false);
    if (!res.succeeded) {
      const current = res.responses?.[0]?.response_range?.kvs?.[0];
      const found = current ? `mod revision ${num(current.mod_revision)}` : 'no such key';
      throw new StoreConflictError(`${key}: expected ${expect === 0 ? 'no such key' : `mod revision ${expect}`}, found ${found}`);
    }
    return stored(num(res.header?.revision), res.responses?.[0]?.response_put?.prev_kv);
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key);
    const res = await this.call<{ deleted?: string }>('/v3/kv/deleterange', { key: b64(key) });
    return num(res.deleted) > 0;
  }

  async nextId(): Promise<string> {
    // APISIX: set("/gen_id", 1) and use the response's revision as the id.
    const res = await this.call<PutResponse>('/v3/kv/put', { key: b64(`${this.prefix}/gen_id`), value: b64('1') }, false);
    const revision = num(res.header?.revision);
    if (revision <= 0) throw new Error(`${this.name}: gen_id write returned no revision`);
    return String(revision).padStart(20, '0');
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): () => void {
    if (this.closed) throw new StoreUnavailableError(`${this.name} is closed`);
    const watch = new EtcdWatch({
      client: this.client,
      key: Buffer.from(prefix, 'utf8'),
      rangeEnd: prefixRangeEnd(prefix),
      fromRevision,
      handlers,
      idleMs: this.idleMs,
      label: `${this.name} watch ${prefix}`,
    });
    this.watches.add(watch);
    return () => {
      watch.stop();
      this.watches.delete(watch);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) w.stop();
    this.watches.clear();
    this.client.close();
  }

  private call<T>(path: string, body: unknown, idempotent = true): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError(`${this.name} is closed`));
    return this.client.call<T>(path, body, { idempotent });
  }
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw new TypeError('key must be a non-empty string');
}
