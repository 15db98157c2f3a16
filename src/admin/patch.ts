// PATCH semantics (apache/apisix: apisix/core/table.lua `merge` and `patch`).

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets an own property, even one named `__proto__`. */
function setOwn(obj: Obj, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * Whole-object PATCH: objects merge key by key; an array on either side replaces, and so does
 * an empty object on the stored side (Lua cannot tell `{}` from `[]`); JSON null deletes; scalars overwrite.
 * Mutates and returns `origin`.
 */
export function mergePatch(origin: Obj, extend: Obj): Obj {
  for (const k of Object.keys(extend)) {
    const v = extend[k];
    if (v === null) {
      delete origin[k];
    } else if (isObject(v)) {
      const o = Object.hasOwn(origin, k) ? origin[k] : undefined;
      if (isObject(o) && Object.keys(o).length > 0) mergePatch(o, v);
      else setOwn(origin, k, v);
    } else {
      setOwn(origin, k, v);
    }
  }
  return origin;
}

/**
 * Sub-path PATCH (`PATCH /routes/1/upstream/nodes`): sets the value at the path, creating
 * intermediate objects; walking through anything else is refused with APISIX's wording.
 */
export function patchSubPath(origin: Obj, subPath: string, value: unknown): { value: unknown } | { error: string } {
  const segs = subPath.split('/').filter((s) => s !== '');
  if (segs.length === 0) return { value };
  let cur: Obj = origin;
  for (let i = 0; i < segs.length - 1; i++) {
    const name = segs[i];
    if (!Object.hasOwn(cur, name) || cur[name] === undefined) setOwn(cur, name, {});
    const next = cur[name];
    if (!isObject(next)) return { error: `invalid sub-path: /${segs.slice(0, i + 1).join('/')}` };
    cur = next;
  }
  setOwn(cur, segs[segs.length - 1], value);
  return { value: origin };
}

export function deepCopy<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}
