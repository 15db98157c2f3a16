// `causeway validate`: config.yaml, then the declarative file; every problem printed, exit 1 on any.
import { loadNodeConfig } from '../conf/index.ts';
import { loadPlugins, PluginCatalog } from '../plugins/registry.ts';
import { checkResource } from '../snapshot/check.ts';
import { readStandaloneFile } from '../store/standalone.ts';
import { userPluginDir } from './plugins.ts';
import { deploymentPlan } from './provider.ts';

export async function validate(configPath: string | undefined, out: (line: string) => void): Promise<boolean> {
  const loaded = loadNodeConfig(configPath);
  out(`${loaded.path ?? 'built-in defaults'}: ok`);
  const { source } = deploymentPlan(loaded.config, loaded.dir);
  if (source.kind !== 'file') {
    out(`note: resources come from the ${source.kind} store; nothing else to check offline`);
    return true;
  }
  // The same plugins the node would run: builtins and the plugin directory, enabled by `plugins`.
  const { plugins, errors } = await loadPlugins(userPluginDir(loaded.config, loaded.dir));
  for (const err of errors) out(`warning: ${err}`);
  const ignored = new Set<string>();
  const read = (enabled: readonly string[]) => {
    const catalog = new PluginCatalog(plugins, enabled);
    ignored.clear();
    return readStandaloneFile(source.path, source.format, (kind, value, id) => checkResource(kind, value, { catalog, id, onIgnoredPlugin: (name) => ignored.add(name) }));
  };
  let result = read(loaded.config.plugins);
  // A `plugins` list in the file replaces config.yaml's.
  if (result.plugins) result = read(result.plugins);
  for (const name of ignored) out(`warning: unknown plugin [${name}] is ignored`);
  if (result.fileError) {
    out(result.fileError);
    return false;
  }
  for (const w of result.warnings) out(`warning: ${w}`);
  for (const p of result.problems) out(p);
  if (result.problems.length > 0) return false;
  const set = result.set!;
  out(`${source.path}: ok (${set.routes.size} routes, ${set.services.size} services, ${set.upstreams.size} upstreams)`);
  return true;
}
