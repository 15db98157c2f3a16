// The config flow of a node: a source (the declarative file, or a store's list + watch) feeds
// validated resources in; workers get only the changes. A bad file or item never removes good config.
import type { ChangeEvent, ServedKind } from '../model/index.ts';
import { PluginCatalog } from '../plugins/registry.ts';
import { checkResource } from '../snapshot/check.ts';
import { diffResourceSets, emptyResourceSet, resourceSetEvents, type ResourceSet } from '../store/resource-set.ts';
import { log } from '../util/log.ts';

export abstract class ConfigPipeline {
  protected current: ResourceSet = emptyResourceSet();
  #version = 0;
  #published = 0;
  /** Called with each batch of changes and the config version that includes them. */
  onChange: ((events: ChangeEvent[], version: number) => void) | undefined;
  readonly #reported = new Set<string>();
  /** The enabled plugins that resources are checked against (replaced on a plugin reload). */
  catalog = PluginCatalog.EMPTY;
  /**
   * The enabled-plugin list the config source carries (the declarative file's `plugins`, the
   * store's `/apisix/plugins` key), which replaces config.yaml's; undefined when it has none.
   */
  pluginsList: string[] | undefined;
  /** Called when the source's plugin list changed. */
  onPluginsListChange: (() => void) | undefined;

  get version(): number {
    return this.#version;
  }

  /** The version of the last batch sent to workers: a worker that applied it serves the current config. */
  get publishedVersion(): number {
    return this.#published;
  }

  /** The resources of one kind this node serves now, by id (the Control API reads them). */
  resources(kind: ServedKind): ReadonlyMap<string, object> {
    return this.current[kind];
  }

  /** The whole current config as events, for a worker that starts (or restarts). */
  state(): { events: ChangeEvent[]; version: number } {
    return { events: resourceSetEvents(this.current), version: this.#version };
  }

  /** Why the node should not be considered ready from the config side; undefined when fine. */
  abstract notReadyReason(): string | undefined;

  /** Reads the whole source again and checks every item anew (after the enabled plugins changed). */
  abstract refresh(): void;

  abstract close(): Promise<void> | void;

  /** Replaces the whole set and publishes the difference. `version` defaults to the next number. */
  protected replaceAll(next: ResourceSet, version?: number): number {
    const events = diffResourceSets(this.current, next);
    this.current = next;
    return this.publish(events, version);
  }

  protected publish(events: ChangeEvent[], version?: number): number {
    if (events.length === 0 && version === undefined) return 0;
    this.#version = version ?? this.#version + 1;
    if (events.length > 0) {
      this.#published = this.#version;
      this.onChange?.(events, this.#version);
    }
    return events.length;
  }

  /** Logs a message once until `clearReport` (a problem repeated on every poll is one line). */
  protected reportOnce(level: 'warn' | 'error', message: string): void {
    if (this.#reported.has(message)) return;
    this.#reported.add(message);
    log(level, message);
  }

  /** Records the source's plugin list (HTTP plugins of `[{name, stream}]`); says so when it changed. */
  protected setPluginsList(list: string[] | undefined): void {
    if (JSON.stringify(list) === JSON.stringify(this.pluginsList)) return;
    this.pluginsList = list;
    this.onPluginsListChange?.();
  }

  /** The data-plane check of one resource, with this node's plugins. */
  protected check(kind: ServedKind, value: unknown, id: string): string | undefined {
    return checkResource(kind, value, { catalog: this.catalog, onIgnoredPlugin: this.ignorePlugin, id });
  }

  /** A plugin name the data plane does not know: skipped, as APISIX skips plugins that are not enabled. */
  protected readonly ignorePlugin = (name: string): void => {
    this.reportOnce('warn', `unknown plugin [${name}] is ignored`);
  };

  protected clearReports(): void {
    this.#reported.clear();
  }
}
