// Where this node's routes come from, from deployment.role and its config_provider.
import { join } from 'node:path';
import type { NodeConfig } from '../conf/index.ts';
import type { StandaloneFormat } from '../store/standalone.ts';

export type ConfigSource = { kind: 'file'; path: string; format: StandaloneFormat } | { kind: 'unavailable'; reason: string };

export function configSource(config: NodeConfig, dir: string): ConfigSource {
  const d = config.deployment;
  if (d.role === 'data_plane') {
    const provider = d.role_data_plane?.config_provider;
    if (provider === 'yaml' || provider === 'json') return { kind: 'file', path: join(dir, `apisix.${provider}`), format: provider };
    return { kind: 'unavailable', reason: `deployment.role_data_plane.config_provider "${provider}" is not available in this version (use yaml or json)` };
  }
  const provider = d.role === 'traditional' ? d.role_traditional?.config_provider : 'etcd';
  return {
    kind: 'unavailable',
    reason: `deployment.role "${d.role}" with config_provider "${provider}" needs the Admin API and its stores, which this version does not include yet; use deployment.role: data_plane with role_data_plane.config_provider: yaml or json`,
  };
}
