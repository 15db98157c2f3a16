// What this node runs, from deployment.role and its config_provider (APISIX's deployment modes).
import { isAbsolute, join, resolve } from 'node:path';
import type { NodeConfig } from '../conf/index.ts';
import type { StandaloneFormat } from '../store/standalone.ts';

export type ConfigSource =
  | { kind: 'file'; path: string; format: StandaloneFormat }
  | { kind: 'embedded'; path: string }
  | { kind: 'etcd' };

export interface DeploymentPlan {
  role: NodeConfig['deployment']['role'];
  source: ConfigSource;
  /** Serve traffic (worker threads on the proxy listeners). */
  proxy: boolean;
  /** Serve the Admin API. */
  admin: boolean;
}

export class DeploymentError extends Error {}

export function deploymentPlan(config: NodeConfig, dir: string): DeploymentPlan {
  const d = config.deployment;
  if (d.role === 'data_plane') {
    const provider = d.role_data_plane?.config_provider;
    if (provider === 'yaml' || provider === 'json') {
      return { role: d.role, source: { kind: 'file', path: join(dir, `apisix.${provider}`), format: provider }, proxy: true, admin: false };
    }
    if (provider === 'etcd') return { role: d.role, source: { kind: 'etcd' }, proxy: true, admin: false };
    throw new DeploymentError(`deployment.role_data_plane.config_provider "${provider}" is not available in this version (use etcd, yaml or json)`);
  }
  if (d.role === 'control_plane') return { role: d.role, source: { kind: 'etcd' }, proxy: false, admin: true };
  const provider = d.role_traditional?.config_provider ?? 'embedded';
  if (provider === 'embedded') {
    const dataDir = isAbsolute(d.embedded.data_dir) ? d.embedded.data_dir : resolve(dir, d.embedded.data_dir);
    return { role: d.role, source: { kind: 'embedded', path: join(dataDir, 'config.db') }, proxy: true, admin: config.apisix.enable_admin };
  }
  if (provider === 'etcd') return { role: d.role, source: { kind: 'etcd' }, proxy: true, admin: config.apisix.enable_admin };
  throw new DeploymentError(`deployment.role_traditional.config_provider "${provider}" (configuration pushed through PUT /apisix/admin/configs) is not available in this version; use embedded or etcd`);
}
