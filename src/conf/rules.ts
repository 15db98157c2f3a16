// Checks that span several keys: deployment role requirements and listener port conflicts.
import { ConfigError } from './error.ts';
import { httpListeners } from './listen.ts';
import type { NodeConfig } from './types.ts';

/** Whether this node serves the Admin API: traditional nodes per apisix.enable_admin, control planes always. */
export function adminEnabled(config: NodeConfig): boolean {
  const role = config.deployment.role;
  return role === 'control_plane' || (role === 'traditional' && config.apisix.enable_admin);
}

function checkRole(config: NodeConfig): void {
  const d = config.deployment;
  if (d.role === 'data_plane' && d.role_data_plane?.config_provider === undefined) {
    throw new ConfigError('deployment.role_data_plane.config_provider: is required when deployment.role is data_plane');
  }
  if (d.role === 'control_plane') {
    if (d.role_control_plane?.config_provider === undefined) {
      throw new ConfigError('deployment.role_control_plane.config_provider: is required when deployment.role is control_plane');
    }
    if (d.etcd === undefined) throw new ConfigError('deployment.etcd: is required when deployment.role is control_plane');
  }
  if (d.role === 'traditional' && d.role_traditional?.config_provider === undefined) {
    throw new ConfigError('deployment.role_traditional.config_provider: is required when deployment.role is traditional');
  }
  const usesEtcd =
    (d.role === 'traditional' && d.role_traditional?.config_provider === 'etcd') ||
    (d.role === 'data_plane' && d.role_data_plane?.config_provider === 'etcd');
  if (usesEtcd && d.etcd === undefined) {
    throw new ConfigError('deployment.etcd: is required when the config provider is etcd');
  }
  if (adminEnabled(config) && d.admin === undefined) {
    throw new ConfigError('deployment.admin: is required when the Admin API is enabled');
  }
}

/** Port-level conflicts, as apache/apisix: apisix/cli/ops.lua reports them (the IP is not considered). */
function checkPorts(config: NodeConfig): void {
  const taken = new Map<number, string>();
  const claim = (name: string, port: number): void => {
    const owner = taken.get(port);
    if (owner !== undefined && owner !== name) throw new ConfigError(`${name} ${port} conflicts with ${owner}`);
    taken.set(port, name);
  };
  if (adminEnabled(config) && config.deployment.admin) claim('admin port', config.deployment.admin.admin_listen.port);
  if (config.apisix.enable_control) claim('control port', config.apisix.control?.port ?? 9090);
  if (config.apisix.status) claim('status port', config.apisix.status.port ?? 7085);
  // several addresses of one scheme may share a port
  for (const l of httpListeners(config)) claim('http listen port', l.port);
  if (config.apisix.ssl.enable) for (const l of config.apisix.ssl.listen) claim('https listen port', l.port);
}

export function checkRules(config: NodeConfig): void {
  checkRole(config);
  checkPorts(config);
}
