// The resource kinds the Admin API serves: URL name, APISIX's singular word for error strings,
// the methods each kind refuses (405), and how its id and store key are formed
// (apache/apisix: apisix/admin/*.lua, `unsupported_methods`, `no_id_res`).

export type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface KindSpec {
  /** Plural URL and store directory name (`routes`). */
  res: string;
  /** Singular word used in messages (`route`, `consumer group`). */
  kind: string;
  unsupported: readonly Method[];
  /** No `id` rules: the id is the consumer's username / the plugin's name. */
  noId?: boolean;
  /** A sub-resource addressed under a parent (`/consumers/{u}/credentials/{id}`). */
  parent?: { res: string; segment: string };
  /** Lists support the v3 `filter=` query on these fields. */
  filterFields?: readonly string[];
}

export const KINDS: readonly KindSpec[] = [
  { res: 'routes', kind: 'route', unsupported: [], filterFields: ['service_id', 'upstream_id'] },
  { res: 'services', kind: 'service', unsupported: [] },
  { res: 'upstreams', kind: 'upstream', unsupported: [] },
  { res: 'consumers', kind: 'consumer', unsupported: ['POST', 'PATCH'], noId: true },
  { res: 'credentials', kind: 'credential', unsupported: ['POST', 'PATCH'], parent: { res: 'consumers', segment: 'credentials' } },
  { res: 'consumer_groups', kind: 'consumer group', unsupported: ['POST'] },
  { res: 'plugin_configs', kind: 'plugin config', unsupported: ['POST'] },
  { res: 'global_rules', kind: 'global rule', unsupported: ['POST'] },
  { res: 'plugin_metadata', kind: 'plugin_metadata', unsupported: ['POST', 'PATCH'], noId: true },
  { res: 'ssls', kind: 'ssl', unsupported: [] },
  { res: 'secrets', kind: 'secret', unsupported: ['POST'] },
  { res: 'stream_routes', kind: 'stream route', unsupported: ['PATCH'], filterFields: ['service_id', 'upstream_id'] },
  { res: 'protos', kind: 'proto', unsupported: ['PATCH'] },
];

export const KIND_BY_RES = new Map(KINDS.map((k) => [k.res, k]));
