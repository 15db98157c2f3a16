// List filters and paging (apache/apisix: apisix/admin/v3_adapter.lua). Order of work:
// filter → total → sort by createdIndex → page. v3 only.
import type { ItemEnvelope } from './envelopes.ts';
import type { AdminReply } from './errors.ts';

export interface ListOutcome {
  list: ItemEnvelope[];
  total: number;
}

type Log = (msg: string) => void;

/** Applies `name`, `label`, `uri`, `filter=` and `page`/`page_size`; a reply when the query is refused. */
export function applyListQuery(items: ItemEnvelope[], query: URLSearchParams, filterFields: readonly string[] | undefined, log: Log): ListOutcome | AdminReply {
  let list = items;
  const name = query.get('name');
  const label = query.get('label');
  const uri = query.get('uri');
  if (name !== null) {
    const re = compile(name);
    list = list.filter((it) => re !== undefined && typeof field(it, 'name') === 'string' && re.test(field(it, 'name') as string));
  }
  if (label !== null) {
    list = list.filter((it) => {
      const labels = field(it, 'labels');
      return typeof labels === 'object' && labels !== null && Object.hasOwn(labels, label);
    });
  }
  if (uri !== null) {
    const re = compile(uri);
    list = list.filter((it) => {
      if (!re) return false;
      const one = field(it, 'uri');
      if (typeof one === 'string' && re.test(one)) return true;
      const many = field(it, 'uris');
      return Array.isArray(many) && many.some((u) => typeof u === 'string' && re.test(u));
    });
  }
  const filter = query.get('filter');
  if (filter !== null && filter !== '') {
    const wanted = new URLSearchParams(filter);
    for (const [k, v] of wanted) {
      if (!filterFields?.includes(k)) {
        log(`filter field "${k}" is not supported for this resource; ignored`);
        continue;
      }
      list = list.filter((it) => {
        const actual = field(it, k);
        return actual !== undefined && actual !== null && String(actual) === v;
      });
    }
  }
  const total = list.length;

  const pageText = query.get('page');
  const sizeText = query.get('page_size');
  const page = numeric(pageText);
  const size = numeric(sizeText);
  if (page === undefined || size === undefined) return { list, total };
  if (size < 10 || size > 500) return { status: 400, body: 'page_size must be between 10 and 500' };
  const p = page < 1 ? 1 : Math.floor(page);
  const s = Math.floor(size);
  const sorted = [...list].sort((a, b) => a.createdIndex - b.createdIndex);
  return { list: sorted.slice((p - 1) * s, p * s), total };
}

function field(item: ItemEnvelope, name: string): unknown {
  const v = item.value;
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[name] : undefined;
}

/** Lua's tonumber for query values: decimal, hex, exponent; surrounding spaces allowed. */
export function numeric(text: string | null): number | undefined {
  if (text === null) return undefined;
  const t = text.trim();
  if (t === '') return undefined;
  const n = /^-?0x[0-9a-f]+$/i.test(t) ? (t.startsWith('-') ? -parseInt(t.slice(1), 16) : parseInt(t, 16)) : Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** A PCRE pattern as a JS RegExp; an invalid pattern matches nothing (APISIX's re.find fails). */
function compile(pattern: string): RegExp | undefined {
  try {
    return new RegExp(pattern);
  } catch {
    return undefined;
  }
}
