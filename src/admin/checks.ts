// What a resource must pass before it is written, beyond the model's own checks: references to
// other resources, plugin names, per-kind rules (apache/apisix: apisix/admin/<kind>.lua);
// and what keeps a resource from being deleted while others use it (the `delete_checker`s).
import type { StoreAccess } from './access.ts';
import type { KindSpec } from './kinds.ts';
import { validateWithModel } from './model.ts';
import { deepCopy, isObject } from './patch.ts';

type Obj = Record<string, unknown>;

/** What the Admin API needs of the node's plugins to check confs. */
export interface PluginChecks {
  /** Validates a conf; the result's `conf` has the schema's defaults filled in (it is what gets stored). */
  check(name: string, conf: unknown, kind: 'route' | 'consumer' | 'metadata'): { ok: true; conf: unknown } | { ok: false; error: string } | undefined;
  isAuth(name: string): boolean;
}

export interface CheckEnv {
  access: StoreAccess;
  pluginNames: () => string[];
  plugins?: PluginChecks;
  check?: (kind: string, id: string | undefined, value: unknown) => string | undefined;
  /** Declarative validation (`/configs/validate`) runs without reference lookups. */
  skipReferences?: boolean;
}

/** Kinds whose extra checks the caller's `check` option covers (the data-plane checker). */
const SERVED_KINDS = new Set(['routes', 'services', 'upstreams']);

/**
 * Checks one resource as APISIX's per-kind `checker` does. `id` is the resource id (secrets:
 * `manager/id`; consumers: the username from the URL, if any; credentials: the credential id,
 * with the username in `parent`). Returns the error text or undefined.
 */
export async function checkConf(env: CheckEnv, spec: KindSpec, id: string | undefined, conf: Obj, parent?: string): Promise<string | undefined> {
  const res = spec.res;
  if (res === 'plugin_metadata') {
    if (!id) return 'missing plugin name';
    if (!env.pluginNames().includes(id)) return 'invalid plugin name';
  }

  // apisix/admin/routes.lua checks these pairs before the schema.
  if (res === 'routes') {
    const set = (v: unknown) => v !== undefined && v !== null && v !== false;
    if (set(conf.host) && set(conf.hosts)) return 'only one of host or hosts is allowed';
    if (set(conf.remote_addr) && set(conf.remote_addrs)) return 'only one of remote_addr or remote_addrs is allowed';
  }

  // Validation runs on a copy: nothing it does may reach the store.
  const schemaError = validateWithModel(res, id, deepCopy(conf), parent);
  if (schemaError) return schemaError;

  if (res === 'plugin_metadata' && env.plugins && id) {
    // apisix/admin/plugin_metadata.lua: the plugin's metadata_schema, defaults stored.
    const { id: _id, ...body } = conf;
    const checked = env.plugins.check(id, body, 'metadata');
    if (checked && !checked.ok) return `invalid configuration: ${checked.error}`;
    if (checked?.ok) Object.assign(conf, checked.conf as Obj);
  }

  if (res === 'consumers' && id !== undefined && id !== conf.username) return 'wrong username';

  if (!env.skipReferences) {
    const err = await checkReferences(env.access, res, conf);
    if (err) return err;
  }

  if ((res === 'consumers' || res === 'credentials') && isObject(conf.plugins) && !env.skipReferences) {
    const username = res === 'consumers' ? String(conf.username) : parent!;
    const err = await checkDuplicateKeys(env.access, username, res === 'credentials' ? id : undefined, conf.plugins);
    if (err) return err;
  }

  if (isObject(conf.plugins)) {
    // Stream routes take stream plugins, which arrive with the stream proxy.
    const enabled = new Set(res === 'stream_routes' ? [] : env.pluginNames());
    const wrap = (msg: string) => (res === 'consumers' || res === 'credentials' ? `invalid plugins configuration: ${msg}` : msg);
    for (const [name, pluginConf] of Object.entries(conf.plugins)) {
      // apisix/plugin.lua `check_schema`: the conf type is checked before the plugin is looked up.
      if (!isObject(pluginConf)) return wrap(`invalid plugin conf ${JSON.stringify(pluginConf)} for plugin [${name}]`);
      if (!enabled.has(name)) return wrap(`unknown plugin [${name}]`);
      if (!env.plugins) continue;
      if (res === 'credentials' && !env.plugins.isAuth(name)) return 'only supports auth type plugins in consumer credential';
      const checked = env.plugins.check(name, pluginConf, res === 'consumers' || res === 'credentials' ? 'consumer' : 'route');
      if (!checked) continue;
      if (checked.ok) {
        // APISIX stores the conf as its schema check left it, defaults included.
        conf.plugins[name] = checked.conf;
      } else if ((pluginConf._meta as Obj | undefined)?.disable !== true) {
        return wrap(`failed to check the configuration of plugin ${name} err: ${checked.error}`);
      }
    }
    if (res === 'global_rules' && !env.skipReferences) {
      const err = await checkGlobalRulePlugins(env.access, id, conf.plugins);
      if (err) return err;
    }
  }

  if (env.check && SERVED_KINDS.has(res)) {
    const err = env.check(res, id, deepCopy(conf));
    if (err) return err;
  }
  return undefined;
}

// --- auth keys ---

/** The field that identifies a credential of each auth plugin (apisix/admin/utils.lua `plugin_key_map`). */
const AUTH_KEY_FIELDS: Record<string, string> = { 'key-auth': 'key', 'basic-auth': 'username', 'jwt-auth': 'key', 'hmac-auth': 'key_id' };

/**
 * An auth key may lead to one consumer only (apisix/admin/consumers.lua and credentials.lua
 * `check_duplicate_key`): another consumer, or another credential, holding the same key is refused.
 * `credentialId` is set when a credential of `username` is written.
 */
async function checkDuplicateKeys(access: StoreAccess, username: string, credentialId: string | undefined, plugins: Obj): Promise<string | undefined> {
  let stored: Awaited<ReturnType<StoreAccess['list']>> | undefined;
  for (const [name, pluginConf] of Object.entries(plugins)) {
    const field = AUTH_KEY_FIELDS[name];
    const value = field && isObject(pluginConf) ? pluginConf[field] : undefined;
    if (value === undefined) continue;
    stored ??= await access.list('consumers', false);
    const base = access.key('consumers') + '/';
    for (const item of stored) {
      const other = isObject(item.value) && isObject(item.value.plugins) ? item.value.plugins[name] : undefined;
      if (!isObject(other) || other[field] !== value) continue;
      const [owner, , otherCredential] = item.key.slice(base.length).split('/');
      const same = credentialId === undefined ? owner === username : owner === username && otherCredential === credentialId;
      if (!same) return `duplicate key found with consumer: ${owner}`;
    }
  }
  return undefined;
}

// --- references on write ---

async function exists(access: StoreAccess, path: string): Promise<boolean> {
  return (await access.get(access.key(path))) !== undefined;
}

function refText(what: string, id: unknown): string {
  return `failed to fetch ${what} info by ${what} id [${String(id)}], response code: 404`;
}

async function checkReferences(access: StoreAccess, res: string, conf: Obj): Promise<string | undefined> {
  if (res === 'routes' || res === 'services' || res === 'stream_routes') {
    if (isObject(conf.upstream)) {
      const err = await checkClientCert(access, conf.upstream);
      if (err) return err;
    }
    if (conf.upstream_id !== undefined && !(await exists(access, `upstreams/${conf.upstream_id}`))) return refText('upstream', conf.upstream_id);
    if (res !== 'services' && conf.service_id !== undefined && !(await exists(access, `services/${conf.service_id}`))) {
      return refText('service', conf.service_id);
    }
    if (res === 'routes' && conf.plugin_config_id !== undefined && !(await exists(access, `plugin_configs/${conf.plugin_config_id}`))) {
      return refText('plugin config', conf.plugin_config_id);
    }
  }
  if (res === 'upstreams') return checkClientCert(access, conf);
  if (res === 'consumers' && conf.group_id !== undefined && !(await exists(access, `consumer_groups/${conf.group_id}`))) {
    return refText('consumer group', conf.group_id);
  }
  return undefined;
}

/** `tls.client_cert_id` must name an SSL object of `type: client`. */
async function checkClientCert(access: StoreAccess, upstream: Obj): Promise<string | undefined> {
  const tls = upstream.tls;
  if (!isObject(tls) || tls.client_cert_id === undefined) return undefined;
  const sslId = String(tls.client_cert_id);
  const item = await access.get(access.key(`ssls/${sslId}`));
  if (!item) return `failed to fetch ssl info by ssl id [${sslId}], response code: 404`;
  const value = item.value as Obj | undefined;
  if (!isObject(value) || value.type !== 'client') return `failed to fetch ssl info by ssl id [${sslId}], wrong ssl type`;
  return undefined;
}

async function checkGlobalRulePlugins(access: StoreAccess, id: string | undefined, plugins: Obj): Promise<string | undefined> {
  for (const rule of await access.values('global_rules')) {
    if (id !== undefined && String(rule.id) === id) continue;
    if (!isObject(rule.plugins)) continue;
    for (const name of Object.keys(plugins)) {
      if (Object.hasOwn(rule.plugins, name)) return `plugin '${name}' already exists in global rule with id '${String(rule.id)}'`;
    }
  }
  return undefined;
}

// --- references on delete ---

const same = (v: unknown, id: string) => v !== undefined && v !== null && String(v) === id;

/** Resources whose plugins may name upstreams (traffic-split), with the word APISIX uses for each. */
const PLUGIN_HOLDERS: Array<[string, string]> = [
  ['routes', 'route'], ['services', 'service'], ['plugin_configs', 'plugin_config'],
  ['consumers', 'consumer'], ['consumer_groups', 'consumer_group'], ['global_rules', 'global_rules'],
];

function trafficSplitUses(plugins: unknown, upstreamId: string): boolean {
  if (!isObject(plugins)) return false;
  const ts = plugins['traffic-split'];
  if (!isObject(ts) || !Array.isArray(ts.rules)) return false;
  for (const rule of ts.rules) {
    if (!isObject(rule) || !Array.isArray(rule.weighted_upstreams)) continue;
    for (const wu of rule.weighted_upstreams) if (isObject(wu) && same(wu.upstream_id, upstreamId)) return true;
  }
  return false;
}

/** undefined when the resource may be deleted, else APISIX's error text. */
export async function deleteBlocker(access: StoreAccess, res: string, id: string): Promise<string | undefined> {
  switch (res) {
    case 'services': {
      for (const r of await access.values('routes')) if (same(r.service_id, id)) return `can not delete this service directly, route [${r.id}] is still using it now`;
      for (const r of await access.values('stream_routes')) if (same(r.service_id, id)) return `can not delete this service directly, stream_route [${r.id}] is still using it now`;
      return undefined;
    }
    case 'upstreams': {
      for (const r of await access.values('routes')) if (same(r.upstream_id, id)) return `can not delete this upstream, route [${r.id}] is still using it now`;
      for (const s of await access.values('services')) if (same(s.upstream_id, id)) return `can not delete this upstream, service [${s.id}] is still using it now`;
      for (const [dir, word] of PLUGIN_HOLDERS) {
        for (const v of await access.values(dir)) {
          if (trafficSplitUses(v.plugins, id)) return `can not delete this upstream, plugin in ${word} [${String(v.id ?? v.username)}] is still using it now`;
        }
      }
      return undefined;
    }
    case 'consumer_groups': {
      for (const c of await access.values('consumers')) if (same(c.group_id, id)) return `can not delete this consumer group, consumer [${c.username}] is still using it now`;
      return undefined;
    }
    case 'plugin_configs': {
      for (const r of await access.values('routes')) if (same(r.plugin_config_id, id)) return `can not delete this plugin config, route [${r.id}] is still using it now`;
      return undefined;
    }
    case 'protos': {
      for (const [dir, word] of [['routes', 'route'], ['services', 'service']]) {
        for (const v of await access.values(dir)) {
          const gt = isObject(v.plugins) ? v.plugins['grpc-transcode'] : undefined;
          if (isObject(gt) && same(gt.proto_id, id)) return `can not delete this proto, ${word} [${v.id}] is still using it now`;
        }
      }
      return undefined;
    }
    case 'stream_routes': {
      for (const r of await access.values('stream_routes')) {
        if (isObject(r.protocol) && same(r.protocol.superior_id, id)) return `can not delete this stream route directly, stream route [${r.id}] is still using it as superior_id`;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}
