// The node's plugins on the main thread: loaded at start from the builtins and the user's plugin
// directory, enabled by config.yaml's `plugins:` list, reloaded by `PUT /apisix/admin/plugins/reload`
// (which re-reads that list from config.yaml, as APISIX does).
import { resolve } from 'node:path';
import type { NodeConfig } from '../conf/index.ts';
import { loadNodeConfig } from '../conf/index.ts';
import { APISIX_PLUGIN_NAMES } from '../model/plugin-names.ts';
import { destroyReplaced, loadCatalog, type PluginCatalog } from '../plugins/registry.ts';
import { log } from '../util/log.ts';

/** The user's plugin directory (`apisix.extra_plugin_dir`), relative to config.yaml's folder. */
export function userPluginDir(config: NodeConfig, configDir: string): string | undefined {
  const dir = config.apisix.extra_plugin_dir;
  return dir ? resolve(configDir, dir) : undefined;
}

/** Loads plugins and builds the enabled catalogue, logging what could not be loaded or enabled. */
async function loadAndReport(enabled: readonly string[], userDir: string | undefined, fresh = false): Promise<PluginCatalog> {
  const { catalog, errors } = await loadCatalog(enabled, userDir, fresh);
  for (const err of errors) log('error', err);
  for (const name of catalog.missing()) {
    // APISIX's default list names plugins this version does not have: say so once, quietly.
    if (APISIX_PLUGIN_NAMES.has(name)) log('info', `plugin ${name} is listed in plugins but not available in this version`);
    else log('error', `failed to load plugin [${name}]: no builtin plugin and no module in the plugin directory has this name`);
  }
  return catalog;
}

export class PluginHost {
  catalog: PluginCatalog;
  readonly #configPath: string | undefined;
  readonly #configDir: string;
  #enabled: readonly string[];
  #userDir: string | undefined;
  /** The config source's list (the file's `plugins`, the store's `/apisix/plugins`), when it has one. */
  #sourceList: string[] | undefined;
  /** Called after a reload with the new `plugins` list (workers reload too). */
  onReload: ((enabled: readonly string[]) => void) | undefined;

  private constructor(catalog: PluginCatalog, enabled: readonly string[], userDir: string | undefined, configPath: string | undefined, configDir: string) {
    this.catalog = catalog;
    this.#enabled = enabled;
    this.#userDir = userDir;
    this.#configPath = configPath;
    this.#configDir = configDir;
  }

  static async start(config: NodeConfig, configPath: string | undefined, configDir: string): Promise<PluginHost> {
    const userDir = userPluginDir(config, configDir);
    const catalog = await loadAndReport(config.plugins, userDir);
    return new PluginHost(catalog, config.plugins, userDir, configPath, configDir);
  }

  get enabled(): readonly string[] {
    return this.#enabled;
  }

  get userDir(): string | undefined {
    return this.#userDir;
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
    const catalog = await loadAndReport(enabled, this.#userDir, true);
    await destroyReplaced(this.catalog.loaded, catalog.loaded, (message) => log('error', message));
    this.catalog = catalog;
    this.#enabled = enabled;
    log('notice', `plugins reloaded: ${catalog.names().length} enabled`);
    this.onReload?.(enabled);
  }
}
