// The node's plugins on the main thread: loaded at start from the builtins and the user's plugin
// directory, enabled by config.yaml's `plugins:` list, reloaded by `PUT /apisix/admin/plugins/reload`
// (which re-reads that list from config.yaml, as APISIX does).
import { resolve } from 'node:path';
import type { NodeConfig } from '../conf/index.ts';
import { loadNodeConfig } from '../conf/index.ts';
import { APISIX_PLUGIN_NAMES } from '../model/plugin-names.ts';
import { destroyReplaced, loadPlugins, PluginCatalog, type LoadedPlugin } from '../plugins/registry.ts';
import { log } from '../util/log.ts';

/** The user's plugin directory (`apisix.extra_plugin_dir`), relative to config.yaml's folder. */
export function userPluginDir(config: NodeConfig, configDir: string): string | undefined {
  const dir = config.apisix.extra_plugin_dir;
  return dir ? resolve(configDir, dir) : undefined;
}

/** Loads plugins and builds the enabled catalogue, logging what could not be loaded or enabled. */
export async function loadCatalog(enabled: readonly string[], userDir: string | undefined, fresh = false): Promise<{ catalog: PluginCatalog; loaded: Map<string, LoadedPlugin> }> {
  const { plugins, errors } = await loadPlugins(userDir, fresh);
  for (const err of errors) log('error', err);
  return { catalog: new PluginCatalog(plugins, enabled), loaded: plugins };
}

export class PluginHost {
  catalog: PluginCatalog;
  #loaded: Map<string, LoadedPlugin>;
  readonly #configPath: string | undefined;
  readonly #configDir: string;
  #enabled: readonly string[];
  #userDir: string | undefined;
  /** The config source's list (the file's `plugins`, the store's `/apisix/plugins`), when it has one. */
  #sourceList: string[] | undefined;
  /** Called after a reload with the new `plugins` list (workers reload too). */
  onReload: ((enabled: readonly string[]) => void) | undefined;

  private constructor(catalog: PluginCatalog, loaded: Map<string, LoadedPlugin>, enabled: readonly string[], userDir: string | undefined, configPath: string | undefined, configDir: string) {
    this.catalog = catalog;
    this.#loaded = loaded;
    this.#enabled = enabled;
    this.#userDir = userDir;
    this.#configPath = configPath;
    this.#configDir = configDir;
  }

  static async start(config: NodeConfig, configPath: string | undefined, configDir: string): Promise<PluginHost> {
    const userDir = userPluginDir(config, configDir);
    const { catalog, loaded } = await loadCatalog(config.plugins, userDir);
    reportMissing(loaded, config.plugins);
    return new PluginHost(catalog, loaded, config.plugins, userDir, configPath, configDir);
  }

  get enabled(): readonly string[] {
    return this.#enabled;
  }

  get userDir(): string | undefined {
    return this.#userDir;
  }

  /** A loaded plugin whether enabled or not (for schemas). */
  loaded(name: string): LoadedPlugin | undefined {
    return this.#loaded.get(name);
  }

  /**
   * The config source's plugin list, which replaces config.yaml's (undefined: back to config.yaml's).
   * Reloads when the enabled set changes.
   */
  async useSourceList(names: string[] | undefined): Promise<void> {
    if (JSON.stringify(names) === JSON.stringify(this.#sourceList)) return;
    this.#sourceList = names;
    // The list this node wrote itself after a reload: nothing to load again.
    if (JSON.stringify(names) === JSON.stringify(this.#enabled)) return;
    await this.reload();
  }

  /**
   * `PUT /apisix/admin/plugins/reload` on this node: config.yaml's list is the source of truth, and
   * the result is written to the store's `/apisix/plugins` key so that nodes sharing the store
   * reload too (APISIX's behaviour).
   */
  async reloadFromConfig(publish: ((list: Array<{ name: string }>) => Promise<unknown>) | undefined): Promise<void> {
    this.#sourceList = undefined;
    await this.reload();
    await publish?.(this.#enabled.filter((name) => this.catalog.get(name)).map((name) => ({ name })));
  }

  /** Re-reads config.yaml's plugin list and the user's modules; the old set serves until the new one is ready. */
  async reload(): Promise<void> {
    let enabled = this.#enabled;
    try {
      const { config } = loadNodeConfig(this.#configPath);
      enabled = this.#sourceList ?? config.plugins;
      this.#userDir = userPluginDir(config, this.#configDir);
    } catch (err) {
      log('error', `plugins reload: ${(err as Error).message}; keeping the plugin list`);
    }
    const { catalog, loaded } = await loadCatalog(enabled, this.#userDir, true);
    reportMissing(loaded, enabled);
    await destroyReplaced(this.#loaded, loaded, (message) => log('error', message));
    this.catalog = catalog;
    this.#loaded = loaded;
    this.#enabled = enabled;
    log('notice', `plugins reloaded: ${catalog.names().length} enabled`);
    this.onReload?.(enabled);
  }
}

function reportMissing(loaded: Map<string, LoadedPlugin>, enabled: readonly string[]): void {
  for (const name of PluginCatalog.missing(loaded, enabled)) {
    // APISIX's default list names plugins this version does not have: say so once, quietly.
    if (APISIX_PLUGIN_NAMES.has(name)) log('info', `plugin ${name} is listed in plugins but not available in this version`);
    else log('error', `failed to load plugin [${name}]: no builtin plugin and no module in the plugin directory has this name`);
  }
}
