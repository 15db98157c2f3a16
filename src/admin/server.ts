// The Admin API listener (apache/apisix: apisix/admin/init.lua and `http_admin` in apisix/init.lua):
// allow-list, CORS, token check, the route table, and the generic resource dispatcher.
import http, { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConfigStore } from '../store/types.ts';
import { StoreAccess } from './access.ts';
import { checkToken, clientAddress, compileAllowList, prepareAuth, unauthorized, type AdminSection } from './auth.ts';
import { decodeJson, readBody } from './body.ts';
import { Envelopes } from './envelopes.ts';
import { AdminError, errorReply, type AdminReply } from './errors.ts';
import type { PluginChecks } from './checks.ts';
import { KIND_BY_RES, type Method } from './kinds.ts';
import { numeric } from './paging.ts';
import { handleResource, type ResourceEnv, type ResourceRequest } from './resources.ts';
import { VERSION } from '../util/version.ts';
import { getCoreSchema, getPluginSchema, getPluginsList, validateAgainstSchema, validateConfigs, type PluginInfoLookup, type PluginSchemaLookup } from './schema.ts';

export type AdminLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface AdminServerOptions {
  ip: string;
  port: number;
  store: ConfigStore;
  /** Store key prefix (`/apisix`); the URL prefix is always `/apisix/admin`. */
  prefix: string;
  admin: AdminSection | undefined;
  /** Enabled HTTP plugin names, in priority order. */
  pluginNames: () => string[];
  log: (level: AdminLogLevel, msg: string) => void;
  /** Extra checks on write (e.g. the data-plane checker for routes, services, upstreams). */
  check?: (kind: string, id: string | undefined, value: unknown) => string | undefined;
  /** `apisix.proxy_mode` includes stream; otherwise `/stream_routes` answers 400 as APISIX does. */
  streamEnabled?: boolean;
  /** Plugin JSON schemas for `/plugins/{name}`, once a plugin runtime provides them. */
  pluginSchema?: PluginSchemaLookup;
  /** A plugin's entry in `GET /plugins?all=true` (schemas, priority, version, type, scope). */
  pluginInfo?: PluginInfoLookup;
  /** Plugin conf checks (schemas, defaults); without them only names are checked. */
  plugins?: PluginChecks;
  /** Called on `PUT /plugins/reload`. */
  onPluginsReload?: () => void;
  /**
   * `Server` header on every admin response (APISIX's nginx sends `APISIX/<version>`, or `APISIX`
   * with `apisix.enable_server_tokens: false`). Default `Causeway/<version>`; empty string: none.
   */
  serverHeader?: string;
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
  /** The token generated for an empty `admin_key[].key`, to print once; undefined otherwise. */
  apiKey: string | undefined;
}

const URL_PREFIX = '/apisix/admin';
const FAILED = Symbol('failed');
const RESOURCE_METHODS = new Set(['GET', 'PUT', 'POST', 'DELETE', 'PATCH']);

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const admin = options.admin;
  const auth = prepareAuth(admin);
  const allowed = compileAllowList(admin);
  const cors = admin?.enable_admin_cors !== false;
  const envelopes = new Envelopes(admin?.admin_api_version);
  const access = new StoreAccess(options.store, options.prefix);
  const env: ResourceEnv = {
    access,
    envelopes,
    pluginNames: options.pluginNames,
    plugins: options.plugins,
    check: options.check,
    log: options.log,
  };
  if (admin?.admin_key_required === false) {
    options.log('warn', 'Admin key is bypassed! If you are deploying Causeway in a production environment, please enable `admin_key_required` and set a secure admin key!');
  }

  const serverHeader = options.serverHeader ?? `Causeway/${VERSION}`;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (serverHeader) res.setHeader('Server', serverHeader);
    if (allowed && !allowed(clientAddress(req))) return sendHtml(res, 403, req.method === 'HEAD');
    res.setHeader('X-API-VERSION', envelopes.version);
    if (cors) {
      if (req.method === 'OPTIONS') {
        res.writeHead(200, {
          'Access-Control-Allow-Origin': '*',
          'Access-Control-Allow-Methods': 'POST, GET, PUT, OPTIONS, DELETE, PATCH',
          'Access-Control-Max-Age': '3600',
          'Access-Control-Allow-Headers': '*',
          'Access-Control-Allow-Credentials': 'true',
          'Content-Length': '0',
          'Content-Type': 'text/plain',
        });
        res.end();
        return;
      }
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Expose-Headers', '*');
      res.setHeader('Access-Control-Max-Age', '3600');
    }

    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
    let path: string;
    try {
      path = normalizePath(decodeURIComponent(rawPath));
    } catch {
      return sendHtml(res, 400, req.method === 'HEAD');
    }
    const method = req.method ?? 'GET';

    if (path === URL_PREFIX) {
      if (method === 'HEAD') return send(res, { status: 200 }, true);
      return sendHtml(res, 404, false);
    }
    if (!path.startsWith(URL_PREFIX + '/')) return sendHtml(res, 404, method === 'HEAD');

    const authenticate = (): AdminReply | undefined => {
      const failure = checkToken(auth, req, query);
      return failure ? unauthorized(failure) : undefined;
    };

    if (path === `${URL_PREFIX}/plugins/reload` && RESOURCE_METHODS.has(method)) {
      const denied = authenticate();
      if (denied) return send(res, denied);
      if (method !== 'PUT') return send(res, errorReply(405, `please use PUT method to reload the plugins, ${method} method is not allowed.`));
      options.log('info', 'plugins reload requested through the Admin API');
      options.onPluginsReload?.();
      return send(res, { status: 200, body: 'done' });
    }
    if (path === `${URL_PREFIX}/plugins/list` && method === 'GET') {
      const denied = authenticate();
      if (denied) return send(res, denied);
      return send(res, getPluginsList(options.pluginNames, query.get('subsystem')));
    }
    if (path.startsWith(`${URL_PREFIX}/schema/validate/`) && method === 'POST') {
      const denied = authenticate();
      if (denied) return send(res, denied);
      const segs = path.slice(URL_PREFIX.length + 1).split('/');
      const body = await readJsonBody(req, res);
      if (body === FAILED) return;
      return send(res, validateAgainstSchema(segs[2] || undefined, body));
    }
    if (path === `${URL_PREFIX}/configs/validate` && method === 'POST') {
      const denied = authenticate();
      if (denied) return send(res, denied);
      const body = await readBody(req);
      if (!body.ok) return send(res, errorReply(400, `invalid request body: ${body.error}`), false, true);
      const ct = req.headers['content-type'];
      return send(res, await validateConfigs(env, body.text, typeof ct === 'string' ? ct.toLowerCase() : undefined));
    }
    if (!RESOURCE_METHODS.has(method)) return sendHtml(res, 404, method === 'HEAD');

    // --- the generic dispatcher ---
    const denied = authenticate();
    if (denied) return send(res, denied);
    const segs = path.slice(URL_PREFIX.length + 1).split('/');
    let resName = segs[0] ?? '';
    let id: string | undefined = segs[1];
    let rest = segs.slice(2);
    if (resName === 'schema' && id === 'plugins') {
      resName = 'plugins';
      id = segs[2];
      rest = segs.slice(3);
    }
    if (resName === 'stream_routes' && !options.streamEnabled) {
      return send(res, errorReply(400, 'stream mode is disabled, can not add stream routes'));
    }
    let parent: string | undefined;
    if (resName === 'consumers' && rest[0] === 'credentials') {
      parent = id;
      resName = 'credentials';
      id = rest[1];
      rest = rest.slice(2);
    } else if (resName === 'secrets') {
      parent = id;
      id = rest[0];
      rest = rest.slice(1);
    }
    if (id === '') id = undefined;

    const spec = resName === 'credentials' && parent === undefined ? undefined : KIND_BY_RES.get(resName);
    const isModule = resName === 'schema' || resName === 'plugins';
    if (!isModule && !spec) {
      return send(res, errorReply(404, `Unsupported resource type: ${resName}`));
    }
    if (isModule && method !== 'GET') return send(res, errorReply(404, 'not found'));

    const body = await readJsonBody(req, res);
    if (body === FAILED) return;
    if (query.has('ttl') && numeric(query.get('ttl')) === undefined) {
      return send(res, errorReply(400, 'invalid argument ttl: should be a number'));
    }
    if (resName === 'schema') return send(res, getCoreSchema(id));
    if (resName === 'plugins') return send(res, getPluginSchema(options.pluginNames, options.pluginSchema, id, query, options.pluginInfo));

    const request: ResourceRequest = { method: method as Method, spec: spec!, id, parent, rest, body, query };
    return send(res, await handleResource(env, request));
  };

  /** Reads and decodes a JSON body; on failure answers 400 itself and returns FAILED. */
  async function readJsonBody(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const body = await readBody(req);
    if (!body.ok) {
      send(res, errorReply(400, `invalid request body: ${body.error}`), false, true);
      return FAILED;
    }
    if (body.text === undefined) return undefined;
    const decoded = decodeJson(body.text);
    if (!decoded.ok) {
      send(res, { status: 400, body: { error_msg: `invalid request body: ${decoded.error}`, req_body: body.text } });
      return FAILED;
    }
    // A JSON `null` body counts as no body.
    return decoded.value === null ? undefined : decoded.value;
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof AdminError) return send(res, err.reply);
      options.log('error', `admin API: ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
      send(res, errorReply(500, 'internal error'));
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.ip, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    apiKey: auth.generatedKey,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Collapses `//`, resolves `.` and `..` segments (nginx's $uri normalisation); keeps a trailing slash. */
function normalizePath(path: string): string {
  const out: string[] = [];
  const parts = path.split('/');
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i];
    if (p === '' && i !== parts.length - 1) continue;
    if (p === '.') continue;
    if (p === '..') {
      out.pop();
      continue;
    }
    out.push(p);
  }
  return '/' + out.join('/');
}

function send(res: ServerResponse, r: AdminReply, headOnly = false, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // APISIX's admin location answers with `Content-Type: application/json` whatever the body, and
  // core.response.exit ends every body with a newline.
  let text = '';
  if (typeof r.body === 'string') text = r.body + '\n';
  else if (r.body !== undefined) text = JSON.stringify(r.body) + '\n';
  res.statusCode = r.status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (close) res.setHeader('Connection', 'close');
  if (r.headers) for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
  res.end(headOnly ? undefined : text);
}

/** nginx's own error page (no route, or a client outside `allow_admin`). */
function sendHtml(res: ServerResponse, status: number, headOnly: boolean): void {
  const title = `${status} ${STATUS_CODES[status] ?? 'Error'}`;
  const text = `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n<hr><center>Causeway</center>\r\n</body>\r\n</html>\r\n`;
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(headOnly ? undefined : text);
}
