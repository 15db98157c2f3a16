// The plugin side of a snapshot: consumers (with their credentials and groups), global rules,
// plugin configs and plugin metadata, compiled into what the request path reads: the global
// chain, each auth plugin's consumer index, the resolved Consumer objects, metadata with defaults.
import { buildChain, releaseDropped, type ChainEnv, type PluginChain } from '../plugins/chain.ts';
import type { Consumer, ConsumerCredential } from '../plugins/api.ts';
import type { ConsumerGroup, Credential, GlobalRule, PluginConfig, PluginMetadata } from '../model/index.ts';

type ConsumerConf = { username: string; plugins?: Record<string, unknown>; group_id?: string | number; labels?: Record<string, string>; desc?: string };
type CredentialConf = Credential & { plugins?: Record<string, unknown> };

export class PluginState {
  readonly env: ChainEnv;
  readonly #consumerConfs = new Map<string, ConsumerConf>();
  /** credential id (`user/credentials/id`) → its conf */
  readonly #credentials = new Map<string, CredentialConf>();
  readonly #groups = new Map<string, ConsumerGroup>();
  readonly #globalRules = new Map<string, GlobalRule>();
  readonly pluginConfigs = new Map<string, PluginConfig>();
  readonly #metadataConfs = new Map<string, unknown>();
  /** Derived, rebuilt lazily after a change. */
  #consumers: Map<string, Consumer> | undefined;
  readonly #indexes = new Map<string, unknown>();
  readonly #metadata = new Map<string, unknown>();
  #globalChain: PluginChain | undefined;
  #globalDirty = true;

  constructor(env: ChainEnv) {
    this.env = env;
  }

  /** Applies one change of a plugin-side kind; returns false for kinds it does not own. */
  apply(kind: string, id: string, value: object | undefined): boolean {
    switch (kind) {
      case 'consumers':
        if (id.includes('/credentials/')) setOrDelete(this.#credentials, id, value as CredentialConf | undefined);
        else setOrDelete(this.#consumerConfs, id, value as ConsumerConf | undefined);
        this.#consumersChanged();
        return true;
      case 'consumer_groups':
        setOrDelete(this.#groups, id, value as ConsumerGroup | undefined);
        this.#consumersChanged();
        return true;
      case 'global_rules':
        setOrDelete(this.#globalRules, id, value as GlobalRule | undefined);
        this.#globalDirty = true;
        return true;
      case 'plugin_configs':
        setOrDelete(this.pluginConfigs, id, value as PluginConfig | undefined);
        return true;
      case 'plugin_metadata':
        setOrDelete(this.#metadataConfs, id, (value as PluginMetadata | undefined) ?? undefined);
        this.#metadata.delete(id);
        return true;
    }
    return false;
  }

  #consumersChanged(): void {
    this.#consumers = undefined;
    this.#indexes.clear();
  }

  /** The global rules' plugins as one chain (a plugin in several rules runs once, from the first rule by id). */
  get globalChain(): PluginChain | undefined {
    if (this.#globalDirty) {
      this.#globalDirty = false;
      const merged: Record<string, unknown> = {};
      const ids = [...this.#globalRules.keys()].sort();
      for (const id of ids) {
        for (const [name, conf] of Object.entries(this.#globalRules.get(id)!.plugins ?? {})) {
          if (name in merged) {
            this.env.log('error', `global rule ${id}: plugin ${name} is already in another global rule; this copy is skipped`);
            continue;
          }
          merged[name] = conf;
        }
      }
      const chain = buildChain(merged, this.env, { kind: 'global_rules', id: ids.join(',') }, this.#globalChain);
      releaseDropped(this.#globalChain, chain, this.env.log);
      this.#globalChain = chain.empty ? undefined : chain;
    }
    return this.#globalChain;
  }

  consumer(username: string): Consumer | undefined {
    return this.#consumerMap().get(username);
  }

  /** Consumer objects: group plugins under the consumer's own, labels and description. */
  #consumerMap(): Map<string, Consumer> {
    if (this.#consumers) return this.#consumers;
    const out = new Map<string, Consumer>();
    for (const [username, conf] of this.#consumerConfs) {
      const groupId = conf.group_id === undefined ? undefined : String(conf.group_id);
      const group = groupId === undefined ? undefined : this.#groups.get(groupId);
      out.set(username, Object.freeze({
        username,
        plugins: Object.freeze({ ...(group?.plugins ?? {}), ...(conf.plugins ?? {}) }),
        groupId,
        labels: conf.labels,
        desc: conf.desc,
      }));
    }
    this.#consumers = out;
    return out;
  }

  /** The index `pluginName` built over every consumer and credential that carries it. */
  consumerIndex<I>(pluginName: string): I | undefined {
    if (this.#indexes.has(pluginName)) return this.#indexes.get(pluginName) as I;
    const plugin = this.env.catalog.get(pluginName);
    if (!plugin?.def.indexConsumers) return undefined;
    const consumers = this.#consumerMap();
    const entries: ConsumerCredential[] = [];
    const add = (consumer: Consumer | undefined, raw: unknown, where: string, credentialId?: string) => {
      if (!consumer || raw === undefined) return;
      const checked = plugin.check(raw, 'consumer');
      if (!checked.ok) {
        this.env.log('error', `${where}: failed to check the configuration of plugin ${pluginName} err: ${checked.error}`);
        return;
      }
      entries.push(credentialId === undefined ? { consumer, conf: checked.conf } : { consumer, conf: checked.conf, credentialId });
    };
    for (const [username, conf] of this.#consumerConfs) add(consumers.get(username), conf.plugins?.[pluginName], `consumer ${username}`);
    for (const [id, cred] of this.#credentials) {
      const username = id.slice(0, id.indexOf('/'));
      add(consumers.get(username), cred.plugins?.[pluginName], `credential ${id}`, id.slice(id.lastIndexOf('/') + 1));
    }
    let index: unknown;
    try {
      index = plugin.def.indexConsumers(entries);
    } catch (err) {
      this.env.log('error', `plugin ${pluginName} failed to index consumers: ${(err as Error).message}`);
    }
    this.#indexes.set(pluginName, index);
    return index as I;
  }

  /** A plugin's metadata with its schema's defaults, when set and valid. */
  metadata<M>(pluginName: string): M | undefined {
    if (this.#metadata.has(pluginName)) return this.#metadata.get(pluginName) as M;
    const raw = this.#metadataConfs.get(pluginName);
    let value: unknown;
    const plugin = this.env.catalog.get(pluginName);
    if (raw !== undefined && plugin) {
      const { id: _id, ...body } = raw as Record<string, unknown>;
      const checked = plugin.check(body, 'metadata');
      if (checked.ok) value = checked.conf;
      else this.env.log('error', `plugin_metadata ${pluginName}: ${checked.error}`);
    }
    this.#metadata.set(pluginName, value);
    return value as M;
  }
}

function setOrDelete<V>(map: Map<string, V>, id: string, value: V | undefined): void {
  if (value === undefined) map.delete(id);
  else map.set(id, value);
}
