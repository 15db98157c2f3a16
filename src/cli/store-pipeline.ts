// Config from a ConfigStore (embedded or etcd): one full list, then one watch on the prefix from
// the next revision. A compaction, an etcd restart or a reconnect re-lists and applies only the
// difference, so no event is lost or applied twice. While the store is unreachable the workers
// keep serving what they have.
import { isServedKind, kindOfKey, validatePluginsList, type ChangeEvent, type PluginListEntry, type ServedKind } from '../model/index.ts';
import { emptyResourceSet } from '../store/resource-set.ts';
import type { ConfigStore, StoreEvent } from '../store/types.ts';
import { log } from '../util/log.ts';
import { ConfigPipeline } from './config-pipeline.ts';

export class StoreConfigPipeline extends ConfigPipeline {
  readonly store: ConfigStore;
  readonly prefix: string;
  #stopWatch: (() => void) | undefined;
  #downSince: number | undefined;
  #downReason: string | undefined;
  #loaded = false;
  #resyncing: Promise<void> | undefined;
  #closed = false;
  /** How long the store may be unreachable before /status/ready says so. */
  readonly #unreachableGraceMs: number;

  constructor(store: ConfigStore, prefix: string, unreachableGraceMs: number) {
    super();
    this.store = store;
    this.prefix = prefix.replace(/\/+$/, '');
    this.#unreachableGraceMs = unreachableGraceMs;
  }

  /** Loads everything, then follows the store's changes. Rejects when the first load fails. */
  async start(): Promise<void> {
    const revision = await this.#loadAll();
    this.#watchFrom(revision + 1);
  }

  /** Whether the store answers a read now (prometheus' `etcd_reachable`). */
  async storeReachable(): Promise<boolean> {
    try {
      await this.store.get(`${this.prefix}/phantomkey`);
      return true;
    } catch {
      return false;
    }
  }

  /** Highest modify revision per resource kind, and the store's latest revision (prometheus' `etcd_modify_indexes`). */
  modifyIndexes(): Record<string, number> {
    const out: Record<string, number> = {};
    let max = 0;
    for (const [kind, index] of this.#modifyIndexes) {
      out[kind] = index;
      max = Math.max(max, index);
    }
    out.max_modify_index = max;
    out.x_etcd_index = this.#revision;
    return out;
  }

  readonly #modifyIndexes = new Map<string, number>();
  #revision = 0;

  #noteRevision(kind: string, modRevision: number, revision: number): void {
    this.#modifyIndexes.set(kind, Math.max(this.#modifyIndexes.get(kind) ?? 0, modRevision));
    this.#revision = Math.max(this.#revision, revision);
  }

  async #loadAll(): Promise<number> {
    const { items, revision } = await this.store.list(this.prefix + '/');
    const next = emptyResourceSet();
    this.#modifyIndexes.clear();
    this.#revision = revision;
    let pluginsList: string[] | undefined;
    for (const item of items) {
      if (item.key === this.#pluginsKey) pluginsList = this.#pluginNames(item.value);
      const ref = this.#parseKey(item.key);
      if (!ref) continue;
      this.#noteRevision(ref.kind, item.modRevision, revision);
      const value = this.#validated(ref.kind, ref.id, item.value);
      if (value) next[ref.kind].set(ref.id, value);
    }
    this.setPluginsList(pluginsList);
    const changes = this.replaceAll(next, revision);
    this.#loaded = true;
    log('notice', `loaded config from ${this.store.name} at revision ${revision}: ${changes} change(s)`);
    return revision;
  }

  #watchFrom(revision: number): void {
    this.#stopWatch?.();
    this.#stopWatch = this.store.watch(this.prefix + '/', revision, {
      onEvents: (events, rev) => this.#onEvents(events, rev),
      onResync: (reason) => this.#resync(reason),
      onHealth: (down, reason) => this.#onHealth(down, reason),
    });
  }

  #onEvents(events: StoreEvent[], revision: number): void {
    const changes: ChangeEvent[] = [];
    for (const ev of events) {
      if (ev.key === this.#pluginsKey) this.setPluginsList(ev.type === 'delete' ? undefined : this.#pluginNames(ev.value));
      const ref = this.#parseKey(ev.key);
      if (!ref) continue;
      this.#noteRevision(ref.kind, ev.modRevision, revision);
      const set = this.current[ref.kind];
      if (ev.type === 'delete') {
        if (set.delete(ref.id)) changes.push({ kind: ref.kind, id: ref.id, value: undefined });
        continue;
      }
      const value = this.#validated(ref.kind, ref.id, ev.value);
      if (!value) continue;
      set.set(ref.id, value);
      changes.push({ kind: ref.kind, id: ref.id, value });
    }
    this.publish(changes, revision);
  }

  refresh(): void {
    this.#resync('the enabled plugins changed');
  }

  /** Re-lists after the watch lost its place; concurrent requests share one re-list. */
  #resync(reason: string): void {
    if (this.#closed || this.#resyncing) return;
    log('warn', `${this.store.name}: ${reason}; reading the whole configuration again`);
    this.#resyncing = (async () => {
      let delay = 500;
      while (!this.#closed) {
        try {
          const revision = await this.#loadAll();
          this.#watchFrom(revision + 1);
          return;
        } catch (err) {
          log('error', `resync from ${this.store.name} failed: ${(err as Error).message}; retrying`);
          await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())).unref());
          delay = Math.min(delay * 2, 8000);
        }
      }
    })().finally(() => {
      this.#resyncing = undefined;
    });
  }

  #onHealth(down: boolean, reason?: string): void {
    if (down) {
      this.#downSince ??= Date.now();
      this.#downReason = reason;
      this.reportOnce('error', `${this.store.name} is unreachable (${reason ?? 'unknown reason'}); serving the last loaded configuration`);
    } else {
      if (this.#downSince !== undefined) log('notice', `${this.store.name} is reachable again`);
      this.#downSince = undefined;
      this.clearReports();
    }
  }

  /** A resource as served, or undefined when invalid (logged; the last good version stays). */
  #validated(kind: ServedKind, id: string, value: unknown): object | undefined {
    const err = this.check(kind, value, id);
    if (!err) return value as object;
    const kept = this.current[kind].has(id);
    log('error', `${this.store.name}: ${this.prefix}/${kind}/${id}: ${err}; ${kept ? 'keeping its last good version' : 'skipped'}`);
    return undefined;
  }

  /** `/apisix/plugins`: the enabled-plugin list the node that last reloaded wrote (APISIX's layout). */
  get #pluginsKey(): string {
    return `${this.prefix}/plugins`;
  }

  /** The HTTP plugin names of a `/apisix/plugins` value; undefined (logged) when it is not a valid list. */
  #pluginNames(value: unknown): string[] | undefined {
    const err = validatePluginsList(value);
    if (err) {
      log('error', `${this.store.name}: ${this.#pluginsKey}: ${err}; ignored`);
      return this.pluginsList;
    }
    return (value as PluginListEntry[]).filter((p) => !p.stream).map((p) => p.name);
  }

  /** `/apisix/routes/1` → routes, "1"; keys of kinds the data plane does not serve → undefined. */
  #parseKey(key: string): { kind: ServedKind; id: string } | undefined {
    const ref = kindOfKey(key, this.prefix);
    return ref && isServedKind(ref.kind) ? { kind: ref.kind, id: ref.id } : undefined;
  }

  notReadyReason(): string | undefined {
    if (!this.#loaded) return `configuration not loaded from ${this.store.name} yet`;
    if (this.#downSince !== undefined && Date.now() - this.#downSince >= this.#unreachableGraceMs) {
      return `${this.store.name} unreachable: ${this.#downReason ?? 'unknown reason'}`;
    }
    return undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopWatch?.();
  }
}

