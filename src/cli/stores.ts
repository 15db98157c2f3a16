// Opening the ConfigStore a deployment plan names.
import type { NodeConfig } from '../conf/index.ts';
import { EmbeddedStore } from '../store/embedded.ts';
import { EtcdStore } from '../store/etcd.ts';
import type { ConfigStore } from '../store/types.ts';
import type { ConfigSource } from './provider.ts';

export function openStore(source: Exclude<ConfigSource, { kind: 'file' }>, config: NodeConfig): ConfigStore {
  if (source.kind === 'embedded') return new EmbeddedStore({ path: source.path });
  const etcd = config.deployment.etcd!;
  return new EtcdStore({
    hosts: etcd.host,
    prefix: etcd.prefix,
    timeoutSeconds: etcd.timeout,
    healthCheckTimeoutSeconds: etcd.health_check_timeout,
    watchIdleSeconds: etcd.watch_timeout,
    user: etcd.user,
    password: etcd.password,
    tls: etcd.tls,
  });
}

/** The key prefix resources live under: the etcd prefix, or APISIX's default for the embedded store. */
export function storePrefix(source: ConfigSource, config: NodeConfig): string {
  return source.kind === 'etcd' ? config.deployment.etcd!.prefix : '/apisix';
}
