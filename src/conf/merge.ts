// Deep merge of the user's config.yaml over the defaults, after apache/apisix: apisix/cli/file.lua `merge_conf`.
import { ConfigError } from './error.ts';
import { deepClone, isPlainObject, setOwn, type PlainObject } from './object.ts';

/** Lua type names, so merge errors read exactly like APISIX's. */
function luaType(value: unknown): string {
  if (Array.isArray(value) || isPlainObject(value)) return 'table';
  if (value === null || value === undefined) return 'nil';
  return typeof value; // number | string | boolean
}

/**
 * Paths (APISIX's `a->b` form) where a user scalar may replace a default of another type.
 * nginx_config takes numbers and strings interchangeably ("10m" vs 0, "auto" vs 4); node_listen may be a bare port.
 */
function scalarAllowed(path: string, userType: string): boolean {
  if (path.startsWith('nginx_config->') && (userType === 'number' || userType === 'string')) return true;
  if (path === 'apisix->node_listen' && userType === 'number') return true;
  return false;
}

function mergeInto(base: PlainObject, user: PlainObject, parent: string): void {
  for (const [key, value] of Object.entries(user)) {
    const path = parent === '' ? key : `${parent}->${key}`;
    const current = Object.hasOwn(base, key) ? base[key] : undefined;
    if (value === null) {
      delete base[key]; // YAML null removes the key, default included
    } else if (Array.isArray(value)) {
      setOwn(base, key, deepClone(value)); // arrays replace
    } else if (isPlainObject(value)) {
      if (current === undefined || isPlainObject(current)) {
        const target: PlainObject = current === undefined ? {} : (current as PlainObject);
        setOwn(base, key, target);
        mergeInto(target, value, path);
      } else if (Array.isArray(current)) {
        setOwn(base, key, deepClone(value)); // validation decides whether an object may stand in for the list
      } else {
        throw new ConfigError(`failed to merge, path[${path}] expect: ${luaType(current)}, but got: table`);
      }
    } else if (current === undefined || luaType(current) === luaType(value) || scalarAllowed(path, luaType(value))) {
      setOwn(base, key, value);
    } else {
      throw new ConfigError(`failed to merge, path[${path}] expect: ${luaType(current)}, but got: ${luaType(value)}`);
    }
  }
}

/**
 * Returns a new tree: `defaults` with `user` merged in. Objects merge key by key, arrays replace, null deletes;
 * a scalar whose type differs from the default's fails unless the path allows it.
 */
export function mergeConfig(defaults: PlainObject, user: PlainObject): PlainObject {
  const out = deepClone(defaults);
  mergeInto(out, user, '');
  return out;
}
