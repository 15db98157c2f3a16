// An Admin API client for tests: one request, the whole answer (status, headers, text and parsed JSON).
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdminServer, type AdminServer } from '../../src/admin/index.ts';
import { adminPluginHooks } from '../../src/cli/admin.ts';
import { DEFAULT_PLUGINS } from '../../src/conf/defaults.ts';
import { isServedKind } from '../../src/model/index.ts';
import { loadPlugins, PluginCatalog } from '../../src/plugins/registry.ts';
import { checkResource } from '../../src/snapshot/check.ts';
import type { ConfigStore } from '../../src/store/types.ts';
import { freePort, request, startGateway, waitFor, type Gateway, type GatewayOptions } from './gateway.ts';

export const ADMIN_KEY = 'edd1c9f034335f136f87ad84b625c8f1';

export interface AdminReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

export interface AdminCallOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Raw bytes, sent as they are (instead of `body`). */
  raw?: string | Buffer;
  headers?: http.OutgoingHttpHeaders;
  /** X-API-KEY to send; null sends none. Default: ADMIN_KEY. */
  key?: string | null;
}

/** `path` is relative to `/apisix/admin` unless it starts with `/apisix` or is `/`. */
export function adminCall(port: number, method: string, path: string, options: AdminCallOptions = {}): Promise<AdminReply> {
  const headers: http.OutgoingHttpHeaders = { ...options.headers };
  const key = options.key === undefined ? ADMIN_KEY : options.key;
  const keyGiven = Object.keys(headers).some((h) => h.toLowerCase() === 'x-api-key');
  if (key !== null && !keyGiven) headers['X-API-KEY'] = key;
  const body = options.body;
  const payload = options.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  if (payload !== undefined) headers['Content-Length'] = Buffer.byteLength(payload);
  const fullPath = path.startsWith('/apisix') || path === '/' ? path : `/apisix/admin${path}`;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: fullPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * An in-process Admin API on 127.0.0.1 (port 0) over `store`, configured as a default node: the admin
 * key, loopback allow-list, CORS, APISIX's default plugin list over the builtin plugins, and the
 * data-plane checks.
 */
export async function startTestAdmin(store: ConfigStore, options: { streamEnabled?: boolean } = {}): Promise<AdminServer> {
  const { plugins } = await loadPlugins();
  const catalog = new PluginCatalog(plugins, DEFAULT_PLUGINS);
  return startAdminServer({
    ip: '127.0.0.1',
    port: 0,
    store,
    prefix: '/apisix',
    admin: {
      admin_key: [{ name: 'admin', key: ADMIN_KEY, role: 'admin' }],
      admin_listen: { ip: '127.0.0.1', port: 0 },
      allow_admin: ['127.0.0.0/24'],
      enable_admin_cors: true,
      admin_api_version: 'v3',
    },
    ...adminPluginHooks(() => catalog),
    log: () => {},
    check: (kind, id, value) => (isServedKind(kind) ? checkResource(kind, value, { catalog, id }) : undefined),
    streamEnabled: options.streamEnabled ?? true,
  });
}

/** A gateway in the traditional role on its own embedded store, with the Admin API on a free port. */
export interface AdminGateway {
  gw: Gateway;
  adminPort: number;
  dataDir: string;
  /** An Admin API call (`path` relative to /apisix/admin). */
  call(method: string, path: string, body?: unknown): Promise<AdminReply>;
  /** A write that must succeed; resolves once every worker serves it. */
  put(path: string, body: unknown): Promise<AdminReply>;
  /** A delete that must succeed; resolves once every worker serves without it. */
  del(path: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startAdminGateway(options: GatewayOptions = {}): Promise<AdminGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'causeway-data-'));
  const adminPort = await freePort();
  const gw = await startGateway({
    ...options,
    config: {
      ...options.config,
      deployment: {
        role: 'traditional',
        role_traditional: { config_provider: 'embedded' },
        embedded: { data_dir: dataDir },
        admin: { admin_listen: { ip: '127.0.0.1', port: adminPort }, admin_key: [{ name: 'admin', key: ADMIN_KEY, role: 'admin' }] },
      },
    },
  });
  const call = (method: string, path: string, body?: unknown) => adminCall(adminPort, method, path, body === undefined ? {} : { body });
  /** Every worker serves the node's config version, and it reached `revision`. */
  const synced = (revision: number) =>
    waitFor(async () => {
      const s = JSON.parse((await request(`http://127.0.0.1:${gw.statusPort}/status/config`)).body);
      return s.version >= revision && s.workers.every((w: { version: number }) => w.version >= s.version);
    }, 10_000, `config revision ${revision} on every worker`);
  return {
    gw,
    adminPort,
    dataDir,
    call,
    async put(path, body) {
      const r = await call('PUT', path, body);
      if (r.status !== 200 && r.status !== 201) throw new Error(`PUT ${path}: ${r.status} ${r.text}`);
      // A write answers {key, value}; the read gives the revision the workers must reach.
      await synced((await call('GET', path)).json.modifiedIndex);
      return r;
    },
    async del(path) {
      const before = JSON.parse((await request(`http://127.0.0.1:${gw.statusPort}/status/config`)).body).version;
      const r = await call('DELETE', path);
      if (r.status !== 200) throw new Error(`DELETE ${path}: ${r.status} ${r.text}`);
      await synced(before + 1);
    },
    async stop() {
      await gw.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
