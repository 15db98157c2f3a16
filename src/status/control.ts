// The Control API (apisix.enable_control, default 127.0.0.1:9090): what this node serves, read
// from its own configuration, for operators and tooling (apache/apisix: apisix/control/v1.lua).
// It changes nothing but the plugin set (`PUT /v1/plugins/reload`).
import http from 'node:http';

export interface ControlSource {
  /** Core schemas by APISIX's singular names (`route`, `upstream`, ...). */
  coreSchemas(): Record<string, object>;
  /** Enabled plugins' entries for `/v1/schema`: schemas, priority, version, type. */
  pluginSchemas(): Record<string, object>;
  /** The resources of a kind this node serves now, by id. */
  resources(kind: 'routes' | 'services' | 'upstreams' | 'plugin_metadata'): ReadonlyMap<string, object> | undefined;
  /** Store key prefix (`/apisix`), for the `key` of each item. */
  prefix: string;
  reloadPlugins(): void;
}

/** `/v1/<kind>` lists and `/v1/<singular>/<id>` items. */
const COLLECTIONS: Record<string, 'routes' | 'services' | 'upstreams' | 'plugin_metadata'> = {
  routes: 'routes',
  services: 'services',
  upstreams: 'upstreams',
  plugin_metadatas: 'plugin_metadata',
};
const ITEMS: Record<string, 'routes' | 'services' | 'upstreams' | 'plugin_metadata'> = {
  route: 'routes',
  service: 'services',
  upstream: 'upstreams',
  plugin_metadata: 'plugin_metadata',
};

export function startControlServer(ip: string, port: number, source: ControlSource): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/plain' : 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
    };
    const path = (req.url ?? '/').split('?')[0];
    const parts = path.split('/').filter(Boolean);
    if (parts[0] !== 'v1') return send(404, { error_msg: 'not found' });
    if (path === '/v1/plugins/reload') {
      if (req.method !== 'PUT') return send(405, { error_msg: 'please use PUT method to reload the plugins' });
      source.reloadPlugins();
      return send(200, 'done\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error_msg: 'method not allowed' });
    if (path === '/v1/schema') return send(200, { main: source.coreSchemas(), plugins: source.pluginSchemas(), stream_plugins: {} });
    // No health checkers run yet: no upstream has any state to report.
    if (path === '/v1/healthcheck') return send(200, []);
    if (parts.length === 2 && COLLECTIONS[parts[1]]) {
      const kind = COLLECTIONS[parts[1]];
      return send(200, [...(source.resources(kind) ?? new Map()).entries()].map(([id, value]) => entry(source.prefix, kind, id, value)));
    }
    if (parts.length === 3 && ITEMS[parts[1]]) {
      const kind = ITEMS[parts[1]];
      const id = decodeURIComponent(parts[2]);
      const value = source.resources(kind)?.get(id);
      return value ? send(200, entry(source.prefix, kind, id, value)) : send(404, { error_msg: `${parts[1]} not found` });
    }
    return send(404, { error_msg: 'not found' });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve(server));
  });
}

function entry(prefix: string, kind: string, id: string, value: object): object {
  return { key: `${prefix}/${kind}/${id}`, value };
}
