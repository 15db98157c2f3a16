// The Admin API's store access: keys in APISIX's layout and every store error mapped to 503.
import type { ConfigStore, PutOptions, StoredItem } from '../store/types.ts';
import { storeFailure } from './errors.ts';

export class StoreAccess {
  readonly store: ConfigStore;
  readonly prefix: string;
  constructor(store: ConfigStore, prefix: string) {
    this.store = store;
    this.prefix = prefix.replace(/\/+$/, '');
  }

  /** `/apisix/<path>` for a path like `routes/1`. */
  key(path: string): string {
    return `${this.prefix}/${path}`;
  }

  async get(key: string): Promise<StoredItem | undefined> {
    try {
      return await this.store.get(key);
    } catch (err) {
      throw storeFailure(err);
    }
  }

  /** Every item under the directory `dir` (`routes`), or only its direct children. */
  async list(dir: string, directOnly = true, depth = 1): Promise<StoredItem[]> {
    const base = this.key(dir) + '/';
    let items: StoredItem[];
    try {
      items = (await this.store.list(base)).items;
    } catch (err) {
      throw storeFailure(err);
    }
    if (!directOnly) return items;
    return items.filter((it) => {
      if (!it.key.startsWith(base)) return false;
      const rest = it.key.slice(base.length);
      return rest !== '' && rest.split('/').length === depth;
    });
  }

  /** Values of the direct children of `dir`, for reference scans. */
  async values(dir: string): Promise<Array<Record<string, unknown>>> {
    const items = await this.list(dir);
    return items.map((it) => it.value).filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v));
  }

  async put(key: string, value: unknown, options?: PutOptions): Promise<StoredItem> {
    try {
      return await this.store.put(key, value, options);
    } catch (err) {
      throw storeFailure(err);
    }
  }

  async delete(key: string): Promise<boolean> {
    try {
      return await this.store.delete(key);
    } catch (err) {
      throw storeFailure(err);
    }
  }

  async nextId(): Promise<string> {
    try {
      return await this.store.nextId();
    } catch (err) {
      throw storeFailure(err);
    }
  }
}
