// Response envelopes (apache/apisix: apisix/admin/v3_adapter.lua and the etcd response
// shape). v3 is the default; `admin_api_version` other than v3 gives the legacy v2 shape.
import type { StoredItem } from '../store/types.ts';

export interface ItemEnvelope {
  key: string;
  value: unknown;
  createdIndex: number;
  modifiedIndex: number;
}

export function itemEnvelope(item: StoredItem, value: unknown = item.value): ItemEnvelope {
  return { key: item.key, value, createdIndex: item.createRevision, modifiedIndex: item.modRevision };
}

export type WriteAction = 'set' | 'create' | 'compareAndSwap';

export class Envelopes {
  readonly v3: boolean;
  constructor(version: string | undefined) {
    this.v3 = version === undefined || version === 'v3';
  }

  get version(): string {
    return this.v3 ? 'v3' : 'v2';
  }

  one(item: ItemEnvelope): object {
    return this.v3 ? item : { action: 'get', count: 1, node: item };
  }

  list(dirKey: string, items: ItemEnvelope[], total: number): object {
    return this.v3 ? { list: items, total } : { action: 'get', count: total, node: { dir: true, key: dirKey, nodes: items } };
  }

  written(key: string, value: unknown, action: WriteAction): object {
    return this.v3 ? { key, value } : { action, node: { key, value } };
  }

  deleted(key: string): object {
    return this.v3 ? { deleted: '1', key } : { action: 'delete', deleted: '1', key, node: { key } };
  }
}
