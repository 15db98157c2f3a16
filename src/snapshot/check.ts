// The data-plane checker: what a resource must pass before any worker sees it. Schema first
// (model/), then what only compiling proves (expressions), then fields this version cannot act on:
// those are refused with a clear error rather than accepted and silently ignored.
import { validateExpr } from '../expr/index.ts';
import { validateResource, type ResourceKind, type Route, type Service, type Upstream } from '../model/index.ts';
import { APISIX_PLUGIN_NAMES } from '../model/plugin-names.ts';
import { compilePath } from '../router/index.ts';

export interface CheckOptions {
  /**
   * Data planes (the declarative file, a store's watch) skip plugin names they do not know, as APISIX
   * does, and report them here. The Admin API refuses them (`unknown plugin [x]`).
   */
  onIgnoredPlugin?: (name: string) => void;
}

export function checkResource(kind: ResourceKind, value: unknown, options: CheckOptions = {}): string | undefined {
  const schemaError = validateResource(kind, value);
  if (schemaError) return schemaError;
  const obj = value as Route & Service;
  for (const name of Object.keys(obj.plugins ?? {})) {
    // No plugin runs in this build, so every name is one that is not enabled. The Admin API refuses
    // it as APISIX does; a data plane refuses an APISIX plugin, so that a route never serves without a
    // plugin it relies on (an auth plugin, say), and skips any other name as APISIX does.
    if (!options.onIgnoredPlugin) return `unknown plugin [${name}]`;
    if (APISIX_PLUGIN_NAMES.has(name)) return `plugin [${name}] is not available in this version`;
    options.onIgnoredPlugin(name);
  }
  if (obj.script !== undefined) return unsupported('script', 'Lua scripts cannot run in Causeway');
  if (obj.enable_websocket) return unsupported('enable_websocket', 'WebSocket proxying arrives with the protocols release');
  if (kind === 'routes') {
    const route = value as Route;
    if (route.filter_func !== undefined) return unsupported('filter_func', 'Lua functions cannot run in Causeway; use `vars`');
    if (route.script_id !== undefined) return unsupported('script_id', 'Lua scripts cannot run in Causeway');
    if (route.plugin_config_id !== undefined) return unsupported('plugin_config_id', 'plugin configs arrive with the plugin runtime');
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

function checkUpstreamSupport(up: Upstream, prefix: string): string | undefined {
  if (up.scheme && up.scheme !== 'http' && up.scheme !== 'https') return unsupported(`${prefix}scheme`, `scheme "${up.scheme}" arrives with a later release; use http or https`);
  if (up.discovery_type !== undefined) return unsupported(`${prefix}discovery_type`, 'service discovery is not available yet; list `nodes`');
  if (up.checks !== undefined) return unsupported(`${prefix}checks`, 'health checks arrive with a later release');
  if (up.tls !== undefined) return unsupported(`${prefix}tls`, 'client certificates to upstreams arrive with a later release');
  return undefined;
}

function unsupported(field: string, why: string): string {
  return `property "${field}" is not supported by this version: ${why}`;
}
