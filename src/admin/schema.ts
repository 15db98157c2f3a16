// Schema endpoints: `GET /schema/{name}`, `GET /plugins/{name}` (and `/schema/plugins/{name}`),
// `GET /plugins/list`, `POST /schema/validate/{resource}` and `POST /configs/validate`
// (apache/apisix: apisix/admin/{schema,plugins,config_validate}.lua).
import { parse as parseYaml } from 'yaml';
import { checkConf, type CheckEnv } from './checks.ts';
import { decodeJson } from './body.ts';
import { badRequest, errorReply, reply, type AdminReply } from './errors.ts';
import { KIND_BY_RES, type KindSpec } from './kinds.ts';
import { coreSchema, modelHasKind, validateSchemaOnly } from './model.ts';
import { deepCopy, isObject } from './patch.ts';

export type PluginSchemaType = 'schema' | 'consumer' | 'metadata';
export type PluginSchemaLookup = (name: string, type: PluginSchemaType, subsystem: 'http' | 'stream') => object | undefined;

export function getCoreSchema(name: string | undefined): AdminReply {
  const schema = name === undefined ? undefined : coreSchema(name);
  if (!schema) return badRequest(`not found schema: ${name ?? ''}`);
  return reply(200, withoutDescriptions(schema));
}

/**
 * The model's schemas carry `description` annotations for documentation; APISIX's schema_def.lua
 * mostly has none, and clients match the served text (t/admin/schema.t looks for
 * `"plugins":{"type":"object"}`). Only string-valued `description` keywords are dropped: a
 * property named `description` has a schema object as its value and stays.
 */
function withoutDescriptions(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutDescriptions);
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'description' && typeof v === 'string') continue;
    out[k] = withoutDescriptions(v);
  }
  return out;
}

export function getPluginsList(pluginNames: () => string[], subsystem: string | null): AdminReply {
  if (subsystem !== null && subsystem !== 'http' && subsystem !== 'stream') return { status: 400, body: 'invalid subsystem passed' };
  // Stream plugins arrive with the stream proxy; the list is the enabled HTTP set for now.
  return reply(200, subsystem === 'stream' ? [] : [...pluginNames()]);
}

/** A plugin's entry in `GET /plugins?all=true`: its schemas and its module fields (apisix/admin/plugins.lua). */
export type PluginInfoLookup = (name: string) => Record<string, unknown> | undefined;

export function getPluginSchema(pluginNames: () => string[], lookup: PluginSchemaLookup | undefined, name: string | undefined, query: URLSearchParams, info?: PluginInfoLookup): AdminReply {
  if (name === undefined) {
    if (query.get('all') === 'true') {
      const all: Record<string, object> = {};
      for (const n of pluginNames()) all[n] = info?.(n) ?? { schema: lookup?.(n, 'schema', 'http') ?? {} };
      return reply(200, all);
    }
    return badRequest('not found plugin name');
  }
  const subsystem = query.get('subsystem') ?? 'http';
  if (subsystem !== 'http' && subsystem !== 'stream') return badRequest(`unsupported subsystem: ${subsystem}`);
  const known = subsystem === 'http' && pluginNames().includes(name);
  if (!known) return errorReply(404, `plugin not found in subsystem ${subsystem}`);
  const type: PluginSchemaType = query.get('schema_type') === 'consumer' ? 'consumer' : 'schema';
  const schema = lookup?.(name, type, subsystem);
  if (!schema) return badRequest('not found schema');
  return reply(200, schema);
}

/** Resources `/schema/validate/{resource}` accepts (APISIX's admin resource modules with a schema). */
function validatableKind(res: string): KindSpec | undefined {
  const spec = KIND_BY_RES.get(res);
  return spec && modelHasKind(res) ? spec : undefined;
}

export function validateAgainstSchema(res: string | undefined, body: unknown): AdminReply {
  const spec = res === undefined ? undefined : validatableKind(res);
  if (!spec) return errorReply(404, `Unsupported resource type: ${res ?? ''}`);
  if (!isObject(body)) return badRequest(`wrong type: expected object, got ${body === undefined || body === null ? 'null' : Array.isArray(body) ? 'array' : typeof body}`);
  const id = body.id === undefined ? undefined : String(body.id);
  const err = validateSchemaOnly(spec.res, id, deepCopy(body));
  if (err) return badRequest(err.replace(/^invalid configuration: /, ''));
  return reply(200);
}

// --- declarative config validation (§10) ---

/** Keys a declarative config may hold (APISIX's HTTP and stream etcd directories). */
const CONFIG_KEYS = [
  'routes', 'services', 'upstreams', 'consumers', 'ssls', 'global_rules', 'plugin_configs', 'consumer_groups',
  'plugin_metadata', 'stream_routes', 'protos', 'secrets', 'plugins',
];

interface ValidationError {
  resource_type: string;
  resource_id?: string;
  index?: number;
  error: string;
}

export async function validateConfigs(env: CheckEnv, text: string | undefined, contentType: string | undefined): Promise<AdminReply> {
  if (text === undefined || text.length === 0) return badRequest('invalid request body: empty request body');
  let doc: unknown;
  if ((contentType ?? '').startsWith('application/yaml')) {
    try {
      doc = parseYaml(text);
    } catch {
      doc = undefined;
    }
    if (typeof doc !== 'object' || doc === null) return badRequest('invalid request body: invalid yaml request body');
  } else {
    const decoded = decodeJson(text);
    if (!decoded.ok) return badRequest(`invalid request body: ${decoded.error}`);
    doc = decoded.value;
  }
  const failed = (errors: ValidationError[] | Array<{ error: string }>) =>
    reply(400, { error_msg: 'Configuration validation failed', errors });
  if (!isObject(doc)) {
    if (Array.isArray(doc)) return reply(200, {});
    return failed([{ error: `the configuration must be an object, got ${doc === null ? 'null' : typeof doc}` }]);
  }
  const env2: CheckEnv = { ...env, skipReferences: true };
  const errors: ValidationError[] = [];
  for (const key of CONFIG_KEYS) {
    const version = doc[`${key}_conf_version`];
    if (version !== undefined && version !== null && typeof version !== 'number') {
      errors.push({ resource_type: key, error: `${key}_conf_version must be a number, got ${Array.isArray(version) ? 'table' : typeof version === 'object' ? 'table' : typeof version}` });
    }
    const items = doc[key];
    if (items === undefined || items === null) continue;
    if (!Array.isArray(items)) {
      if (isObject(items) && Object.keys(items).length === 0) continue;
      errors.push({ resource_type: key, error: `invalid ${key}: must be an array` });
      continue;
    }
    const seen = new Set<string>();
    for (let index = 0; index < items.length; index++) {
      const item = items[index];
      const resourceId = isObject(item) && item.id !== undefined && item.id !== null ? String(item.id) : undefined;
      const err = await checkItem(env2, key, item);
      if (err) errors.push({ resource_type: key, ...(resourceId !== undefined ? { resource_id: resourceId } : {}), index, error: `invalid ${key} at index ${index}, err: ${err}` });
      const dup = duplicateOf(key, item, seen);
      if (dup) errors.push({ resource_type: key, ...(resourceId !== undefined ? { resource_id: resourceId } : {}), index, error: dup });
    }
  }
  if (errors.length > 0) return failed(errors);
  return reply(200, {});
}

async function checkItem(env: CheckEnv, key: string, item: unknown): Promise<string | undefined> {
  if (!isObject(item)) return `invalid configuration: wrong type: expected object, got ${Array.isArray(item) ? 'array' : item === null ? 'null' : typeof item}`;
  const conf = deepCopy(item);
  const id = conf.id === undefined || conf.id === null ? undefined : String(conf.id);
  if (key === 'plugins') {
    return typeof conf.name === 'string' && conf.name.length > 0 ? undefined : 'invalid configuration: property "name" is required';
  }
  if (key === 'consumers' && id !== undefined && id.includes('/credentials/')) {
    const [username, , cid] = id.split('/');
    return checkConf(env, KIND_BY_RES.get('credentials')!, cid, conf, username);
  }
  if (key === 'secrets' && (id === undefined || !id.includes('/'))) return `invalid secret id: ${id ?? ''}`;
  const spec = KIND_BY_RES.get(key);
  if (!spec) return undefined;
  if (key === 'consumers') return checkConf(env, spec, undefined, conf);
  return checkConf(env, spec, id, conf);
}

function duplicateOf(key: string, item: unknown, seen: Set<string>): string | undefined {
  if (!isObject(item)) return undefined;
  let identifier: unknown;
  let what: string;
  if (key === 'consumers') {
    identifier = item.id ?? item.username;
    what = item.id !== undefined ? 'credential id' : 'username';
  } else {
    identifier = item.id;
    what = 'id';
  }
  if (identifier === undefined || identifier === null) return undefined;
  const text = String(identifier);
  if (seen.has(text)) return `found duplicate ${what} ${text} in ${key}`;
  seen.add(text);
  return undefined;
}
