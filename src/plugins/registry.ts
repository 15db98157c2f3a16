// Loading plugins (builtins and a user's directory, through the same checks) and the catalogue of
// enabled ones: config.yaml's `plugins:` list decides what runs, as in APISIX (apisix/plugin.lua `load`).
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { validateExpr } from '../expr/index.ts';
import { describeSchemaErrors } from '../util/schema-errors.ts';
import { isValidIpOrCidr } from '../util/ip.ts';
import type { JsonSchema, PluginDefinition } from './api.ts';

export type SchemaKind = 'route' | 'consumer' | 'metadata';

/** `_meta`, injected into every plugin's schema (apisix/plugin.lua `inject_conf_with_meta_schema`). */
const META_SCHEMA = {
  type: 'object',
  properties: {
    disable: { type: 'boolean' },
    error_response: { oneOf: [{ type: 'string' }, { type: 'object' }] },
    priority: { type: 'integer', description: 'priority of plugins by customized order' },
    filter: { type: 'array', description: 'filter determines whether the plugin needs to be executed at runtime' },
    pre_function: { type: 'string' },
  },
};

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
ajv.addFormat('ip-or-cidr', { type: 'string', validate: isValidIpOrCidr });
ajv.addFormat('ipv4', /^(\d{1,3}\.){3}\d{1,3}$/);
ajv.addFormat('ipv6', { type: 'string', validate: (s: string) => s.includes(':') && isValidIpOrCidr(s) });
ajv.addFormat('uri', /^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]*$/);

export type CheckResult = { ok: true; conf: any } | { ok: false; error: string };

/** A plugin that passed the loader's checks, with its compiled validators. */
export class LoadedPlugin {
  readonly def: PluginDefinition;
  readonly origin: 'builtin' | 'user';
  /** The schema as served by `GET /apisix/admin/plugins/{name}` (with `_meta`). */
  readonly schema: JsonSchema;
  readonly #route: ValidateFunction;
  readonly #consumer: ValidateFunction | undefined;
  readonly #metadata: ValidateFunction;

  constructor(def: PluginDefinition, origin: 'builtin' | 'user') {
    this.def = def;
    this.origin = origin;
    const properties = { ...((def.schema.properties as object | undefined) ?? {}), _meta: META_SCHEMA };
    this.schema = { ...def.schema, properties };
    this.#route = ajv.compile(this.schema);
    this.#consumer = def.consumerSchema ? ajv.compile(def.consumerSchema) : undefined;
    // A plugin without a metadata schema takes any object (apisix/admin/plugin_metadata.lua).
    this.#metadata = ajv.compile(def.metadataSchema ?? { type: 'object', properties: {} });
  }

  get name(): string {
    return this.def.name;
  }

  get priority(): number {
    return this.def.priority;
  }

  /**
   * Validates a conf (on a copy) and returns it with the schema's defaults filled in, or the error
   * as the plugin's own check words it (callers add APISIX's prefix for the place).
   */
  check(conf: unknown, kind: SchemaKind): CheckResult {
    const validate = kind === 'metadata' ? this.#metadata : kind === 'consumer' ? (this.#consumer ?? this.#route) : this.#route;
    const copy = structuredClone(conf);
    if (!validate(copy)) return { ok: false, error: describeSchemaErrors(validate.errors!) };
    const filter = (copy as { _meta?: { filter?: unknown } })._meta?.filter;
    if (filter !== undefined) {
      const err = validateExpr(filter);
      if (err) return { ok: false, error: `failed to validate the 'filter' expression: ${err}` };
    }
    const err = this.def.check?.(copy, kind);
    return err ? { ok: false, error: err } : { ok: true, conf: copy };
  }
}

/** Why a module cannot be a plugin (apisix/plugin.lua `load_plugin`), or undefined. */
function definitionError(def: unknown): string | undefined {
  if (!def || typeof def !== 'object') return 'the module does not export a plugin definition (export default definePlugin({...}))';
  const d = def as Partial<PluginDefinition>;
  if (typeof d.name !== 'string' || !/^[a-z0-9][a-z0-9-_]*$/.test(d.name)) return 'invalid plugin name';
  if (typeof d.priority !== 'number' || !Number.isInteger(d.priority)) return 'invalid plugin priority';
  if (typeof d.version !== 'number') return 'invalid plugin version';
  if (!d.schema || typeof d.schema !== 'object') return 'invalid plugin schema';
  if ((d.schema.properties as Record<string, unknown> | undefined)?._meta) return "found forbidden '_meta' field in the schema";
  if (!d.phases || typeof d.phases !== 'object') return 'missing phases';
  return undefined;
}

const OWN_EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const BUILTIN_DIR = new URL('./builtin/', import.meta.url);

/** Module files of a plugin directory: `<dir>/<name>/index.{ts,js}` and `<dir>/<name>.{ts,js}`. */
function pluginFiles(dir: string, exts: readonly string[]): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of names) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) {
      const index = exts.map((ext) => join(full, `index${ext}`)).find((f) => isFile(f));
      if (index) files.push(index);
    } else if (exts.some((ext) => entry.endsWith(ext)) && !entry.endsWith('.d.ts') && !entry.includes('.test.')) {
      files.push(full);
    }
  }
  return files;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export interface LoadResult {
  plugins: Map<string, LoadedPlugin>;
  /** One line per module that could not be loaded. */
  errors: string[];
}

let loadGeneration = 0;
/** Definitions whose `init` ran in this thread (a reload re-imports only user modules). */
const initialised = new WeakSet<PluginDefinition>();

/**
 * Calls `destroy` for the plugins of `previous` that `next` no longer has or loaded anew (edited user
 * modules); builtins that stayed are the same definition and keep their state.
 */
export async function destroyReplaced(previous: ReadonlyMap<string, LoadedPlugin>, next: ReadonlyMap<string, LoadedPlugin>, onError: (message: string) => void): Promise<void> {
  for (const [name, old] of previous) {
    if (next.get(name)?.def === old.def || !old.def.destroy) continue;
    try {
      await old.def.destroy();
    } catch (err) {
      onError(`plugin ${name} destroy failed: ${(err as Error).message}`);
    }
  }
}

/**
 * Imports every builtin and every module in `userDir`. A user module that redefines a builtin's
 * name replaces it (as a same-named Lua file on `extra_lua_path` does). `fresh` bypasses the module
 * cache for user modules, so `/plugins/reload` picks up edited files.
 */
export async function loadPlugins(userDir?: string, fresh = false): Promise<LoadResult> {
  const plugins = new Map<string, LoadedPlugin>();
  const errors: string[] = [];
  const generation = fresh ? ++loadGeneration : loadGeneration;
  const sources: Array<[string, 'builtin' | 'user']> = pluginFiles(BUILTIN_DIR.pathname, [OWN_EXT]).map((f) => [f, 'builtin']);
  if (userDir) for (const f of pluginFiles(resolve(userDir), ['.js', '.mjs', '.ts'])) sources.push([f, 'user']);
  for (const [file, origin] of sources) {
    try {
      const url = pathToFileURL(file).href + (origin === 'user' && generation > 0 ? `?v=${generation}` : '');
      const mod = await import(url);
      const def = mod.default ?? mod.plugin;
      const err = definitionError(def);
      if (err) {
        errors.push(`failed to load plugin from ${file}: ${err}`);
        continue;
      }
      const plugin = new LoadedPlugin(def, origin);
      if (def.init && !initialised.has(def)) {
        await def.init();
        initialised.add(def);
      }
      plugins.set(def.name, plugin);
    } catch (err) {
      errors.push(`failed to load plugin from ${file}: ${(err as Error).message}`);
    }
  }
  return { plugins, errors };
}

/** The plugins enabled on this node, in APISIX's run order (priority, highest first). */
export class PluginCatalog {
  readonly #enabled: Map<string, LoadedPlugin>;
  readonly #loaded: Map<string, LoadedPlugin>;
  readonly #names: string[];

  /** The `plugins:` list as given, including names no module provides. */
  readonly #listed: readonly string[];

  constructor(loaded: Map<string, LoadedPlugin>, enabledNames: readonly string[]) {
    this.#loaded = loaded;
    this.#listed = enabledNames;
    this.#enabled = new Map();
    for (const name of enabledNames) {
      const plugin = loaded.get(name);
      if (plugin) this.#enabled.set(name, plugin);
    }
    this.#names = [...this.#enabled.values()].sort((a, b) => b.priority - a.priority).map((p) => p.name);
  }

  /** An enabled plugin by name. */
  get(name: string): LoadedPlugin | undefined {
    return this.#enabled.get(name);
  }

  /** Loaded (builtin or user) whether or not config.yaml enables it. */
  isLoaded(name: string): boolean {
    return this.#loaded.has(name);
  }

  /** Every loaded plugin by name. */
  get loaded(): ReadonlyMap<string, LoadedPlugin> {
    return this.#loaded;
  }

  /** Enabled names, highest priority first (`GET /apisix/admin/plugins/list`). */
  names(): string[] {
    return this.#names;
  }

  /** Names from the `plugins:` list that no module provides. */
  missing(): string[] {
    return this.#listed.filter((n) => !this.#loaded.has(n));
  }

  static readonly EMPTY = new PluginCatalog(new Map(), []);
}

/** Loads every plugin module and builds the catalogue of `enabled`; `errors` says which modules failed. */
export async function loadCatalog(enabled: readonly string[], userDir: string | undefined, fresh = false): Promise<{ catalog: PluginCatalog; errors: string[] }> {
  const { plugins, errors } = await loadPlugins(userDir, fresh);
  return { catalog: new PluginCatalog(plugins, enabled), errors };
}
