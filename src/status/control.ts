// The Control API (apisix.enable_control, default 127.0.0.1:9090): what this node serves, read
// from its own configuration, for operators and tooling (apache/apisix: apisix/control/v1.lua).
// It changes nothing but the plugin set (`PUT /v1/plugins/reload`).
import http from 'node:http';
import { checkerType, type ChecksInput } from '../upstream/health/config.ts';

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
  /** The health checker of the upstream at `kind/id`: its nodes, or undefined while it has none. */
  healthNodes?(kind: HealthKind, id: string): object[] | undefined;
}

type HealthKind = 'routes' | 'services' | 'upstreams';
/** The kinds `/v1/healthcheck` lists, in APISIX's order. */
const HEALTH_KINDS: readonly HealthKind[] = ['routes', 'services', 'upstreams'];

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
    /** JSON, or APISIX's HTML table when a browser asks for text/html. */
    const sendHealth = (body: unknown, infos: HealthInfo[]) => {
      if (!(req.headers.accept ?? '').includes('text/html')) {
        // APISIX encodes with lua-cjson, for which an empty list is an empty table: `{}`.
        const text = JSON.stringify(body, (_key, value) => (Array.isArray(value) && value.length === 0 ? {} : value));
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
        return res.end(req.method === 'HEAD' ? undefined : text);
      }
      const html = healthHtml(infos);
      res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(html) });
      res.end(req.method === 'HEAD' ? undefined : html);
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
    if (path === '/v1/healthcheck') {
      const infos: HealthInfo[] = [];
      for (const kind of HEALTH_KINDS) {
        for (const [id, value] of source.resources(kind) ?? new Map<string, object>()) {
          const info = healthInfo(source, kind, id, value);
          if (info) infos.push(info);
        }
      }
      return sendHealth(infos, infos);
    }
    if (parts[1] === 'healthcheck') {
      const srcType = parts[2] ?? '';
      const srcId = parts[3] === undefined ? undefined : decodeURIComponent(parts[3]);
      if (srcId === undefined) return send(404, { error_msg: `missing src id for src type ${srcType}` });
      if (!(HEALTH_KINDS as readonly string[]).includes(srcType)) return send(400, { error_msg: `invalid src type ${srcType}` });
      const value = source.resources(srcType as HealthKind)?.get(srcId);
      if (!value) return send(404, { error_msg: `${srcType}[${srcId}] not found` });
      const info = healthInfo(source, srcType as HealthKind, srcId, value);
      if (!info) return send(404, { error_msg: `no checker for ${srcType}[${srcId}]` });
      return sendHealth(info, [info]);
    }
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

interface HealthInfo {
  name: string;
  type: string;
  nodes: object[];
}

/**
 * One `/v1/healthcheck` entry (apisix/control/v1.lua): every route, service and upstream whose
 * upstream has `checks`, named by its key; `nodes` is empty while no checker runs for it (the
 * upstream served no request yet, has one node, or health checks are off).
 */
function healthInfo(source: ControlSource, kind: HealthKind, id: string, value: object): HealthInfo | undefined {
  const v = value as { checks?: ChecksInput; upstream?: { checks?: ChecksInput } };
  const checks = v.checks ?? v.upstream?.checks;
  if (!checks) return undefined;
  return { name: `${source.prefix}/${kind}/${id}`, type: checkerType(checks), nodes: source.healthNodes?.(kind, id) ?? [] };
}

function escapeHtml(text: unknown): string {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** APISIX's "upstream check status" page, with the gateway's name. */
function healthHtml(infos: HealthInfo[]): string {
  let rows = '';
  let i = 0;
  for (const info of infos) {
    for (const node of info.nodes as Array<{ ip: string; port: number; status: string; counter: Record<string, number> }>) {
      i++;
      const up = node.status === 'healthy' || node.status === 'mostly_healthy';
      rows += `  <tr${up ? '' : ' bgcolor="#FF0000"'}>\n    <td>${i}</td>\n    <td>${escapeHtml(info.name)}</td>\n    <td>${escapeHtml(info.type)}</td>\n    <td>${escapeHtml(`${node.ip}:${node.port}`)}</td>\n    <td>${escapeHtml(node.status)}</td>\n    <td>${node.counter.success}</td>\n    <td>${node.counter.tcp_failure}</td>\n    <td>${node.counter.http_failure}</td>\n    <td>${node.counter.timeout_failure}</td>\n  </tr>\n`;
    }
  }
  return `<html xmlns="http://www.w3.org/1999/xhtml">
<head>
  <title>Causeway upstream check status</title>
</head>
<body>
<h1>Causeway upstream check status</h1>
<table style="background-color:white" cellspacing="0" cellpadding="3" border="1">
  <tr bgcolor="#C0C0C0">
    <th>Index</th>
    <th>Upstream</th>
    <th>Check type</th>
    <th>Host</th>
    <th>Status</th>
    <th>Success counts</th>
    <th>TCP Failures</th>
    <th>HTTP Failures</th>
    <th>TIMEOUT Failures</th>
  </tr>
${rows}</table>
</body>
</html>
`;
}
