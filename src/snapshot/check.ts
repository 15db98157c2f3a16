// The data-plane checker: what a resource must pass before any worker sees it. Schema first
// (model/), then what only compiling proves (expressions), then fields this version cannot act on:
// those are refused with a clear error rather than accepted and silently ignored.
import { validateExpr } from '../expr/index.ts';
import { RESOURCE_KINDS, validateAdminResource, validateResource, type ResourceKind, type Route, type ServedKind, type Service, type Upstream } from '../model/index.ts';
import { APISIX_PLUGIN_NAMES } from '../model/plugin-names.ts';
import type { PluginCatalog, SchemaKind } from '../plugins/registry.ts';
import { compilePath } from '../router/index.ts';

export interface CheckOptions {
  /** The enabled plugins; without one, no plugin is enabled. */
  catalog?: PluginCatalog;
  /**
   * Data planes (the declarative file, a store's watch) skip plugin names they do not know, as APISIX
   * does, and report them here. The Admin API refuses them (`unknown plugin [x]`).
   */
  onIgnoredPlugin?: (name: string) => void;
  /** The resource's id (decides between the consumer and credential schemas). */
  id?: string;
}

const CORE_KINDS = new Set<string>(RESOURCE_KINDS);

export function checkResource(kind: ServedKind, value: unknown, options: CheckOptions = {}): string | undefined {
  const schemaError = CORE_KINDS.has(kind) ? validateResource(kind as ResourceKind, value) : validateAdminResource(kind, options.id, value);
  if (schemaError) return schemaError;
  if (kind === 'plugin_metadata') return checkMetadata(options.id ?? (value as { id?: string }).id, value, options);
  const obj = value as Route & Service;
  const pluginError = checkPlugins(kind, obj.plugins, options);
  if (pluginError) return pluginError;
  if (!CORE_KINDS.has(kind)) return undefined;
  if (obj.script !== undefined) return unsupported('script', 'Lua scripts cannot run in Causeway');
  if (kind === 'routes') {
    const route = value as Route;
    if (route.filter_func !== undefined) return unsupported('filter_func', 'Lua functions cannot run in Causeway; use `vars`');
    if (route.script_id !== undefined) return unsupported('script_id', 'Lua scripts cannot run in Causeway');
    for (const path of route.uris ?? [route.uri]) {
      // Checked as a plain path: parameter syntax depends on the router mode, which workers check.
      try {
        compilePath(path, false);
      } catch (err) {
        return `invalid configuration: property "${route.uris ? 'uris' : 'uri'}": ${(err as Error).message}`;
      }
    }
    if (route.vars) {
      const err = validateExpr(route.vars);
      if (err) return `failed to validate the 'vars' expression: ${err}`;
    }
  }
  const upstream = kind === 'upstreams' ? (value as Upstream) : obj.upstream;
  return upstream ? checkUpstreamSupport(upstream, kind === 'upstreams' ? '' : 'upstream.') : undefined;
}

/** Each plugin's conf against its schema (consumers: the consumer schema; credentials: auth plugins only). */
function checkPlugins(kind: ServedKind, plugins: Record<string, unknown> | undefined, options: CheckOptions): string | undefined {
  if (!plugins) return undefined;
  const credential = kind === 'consumers' && (options.id ?? '').includes('/credentials/');
  const schemaKind: SchemaKind = kind === 'consumers' ? 'consumer' : 'route';
  for (const [name, conf] of Object.entries(plugins)) {
    const plugin = options.catalog?.get(name);
    if (!plugin) {
      if (!options.onIgnoredPlugin) return `unknown plugin [${name}]`;
      // An APISIX plugin this version lacks is refused, so a route never serves without a plugin it
      // relies on (an auth plugin, say); one the node disabled, or an unknown name, is skipped as APISIX does.
      if (APISIX_PLUGIN_NAMES.has(name) && !options.catalog?.isLoaded(name)) return `plugin [${name}] is not available in this version`;
      options.onIgnoredPlugin(name);
      continue;
    }
    if (credential && plugin.def.type !== 'auth') return 'only supports auth type plugins in consumer credential';
    const checked = plugin.check(conf, schemaKind);
    // A disabled plugin's conf may be incomplete (apisix/plugin.lua `check_single_plugin_schema`).
    if (!checked.ok && (conf as { _meta?: { disable?: boolean } })?._meta?.disable !== true) {
      return `failed to check the configuration of plugin ${name} err: ${checked.error}`;
    }
  }
  return undefined;
}

function checkMetadata(name: string | undefined, value: unknown, options: CheckOptions): string | undefined {
  const plugin = name === undefined ? undefined : options.catalog?.get(name);
  if (!plugin) {
    if (!options.onIgnoredPlugin) return 'invalid plugin name';
    options.onIgnoredPlugin(name ?? '');
    return undefined;
  }
  const { id: _id, ...body } = value as Record<string, unknown>;
  const checked = plugin.check(body, 'metadata');
  return checked.ok ? undefined : `invalid configuration: ${checked.error}`;
}

function checkUpstreamSupport(up: Upstream, prefix: string): string | undefined {
  if (up.scheme && up.scheme !== 'http' && up.scheme !== 'https' && up.scheme !== 'grpc' && up.scheme !== 'grpcs') return unsupported(`${prefix}scheme`, `scheme "${up.scheme}" arrives with a later release; use http, https, grpc or grpcs`);
  if (up.discovery_type !== undefined) return unsupported(`${prefix}discovery_type`, 'service discovery is not available yet; list `nodes`');
  return undefined;
}

function unsupported(field: string, why: string): string {
  return `property "${field}" is not supported by this version: ${why}`;
}
