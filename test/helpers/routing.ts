// Helpers for black-box routing tests against a gateway running on the declarative file: raw requests
// that report which echo upstream answered, file versions that are known to be live, and the two
// common assertions.
import assert from 'node:assert/strict';
import http from 'node:http';
import { waitFor, type Gateway, type Upstream } from './gateway.ts';

export const NOT_FOUND_BODY = '{"error_msg":"404 Route Not Found"}\n';

export interface Hit {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  /** Port of the echo upstream that answered, undefined when the gateway answered itself. */
  port?: number;
  /** The request target the upstream received. */
  url?: string;
}

export interface SendOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string;
}

/** One request with the target sent as written (no URL parsing, so `%xx` and `..` arrive unchanged). */
export function send(gw: Gateway, path: string, options: SendOptions = {}): Promise<Hit> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, path, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const hit: Hit = { status: res.statusCode!, body, headers: res.headers };
        try {
          const echo = JSON.parse(body) as { port?: number; url?: string };
          hit.port = echo.port;
          hit.url = echo.url;
        } catch {
          // the gateway's own answer, or not an echo upstream
        }
        resolve(hit);
      });
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

export function upstreamOf(up: Upstream): { type: string; nodes: Record<string, number> } {
  return { type: 'roundrobin', nodes: { [up.node]: 1 } };
}

let generation = 0;

/** Writes apisix.yaml plus a marker route `/__marker/<n>` and waits until the marker answers: that version is live. */
export async function apply(gw: Gateway, marker: Upstream, content: { routes?: unknown[]; services?: unknown[]; upstreams?: unknown[] }): Promise<void> {
  const n = ++generation;
  const routes = [...(content.routes ?? []), { id: `__marker_${n}`, uri: `/__marker/${n}`, upstream: upstreamOf(marker) }];
  gw.writeRoutes({ ...content, routes });
  await waitFor(async () => (await send(gw, `/__marker/${n}`)).status === 200, 5_000, `apisix.yaml version ${n} to load`);
}

/** Same, with the file written as YAML text ending in a `routes:` list (for forms an object cannot express). */
export async function applyText(gw: Gateway, marker: Upstream, yaml: string): Promise<void> {
  const n = ++generation;
  gw.writeRoutes(`${yaml.trimEnd()}\n  - id: __marker_${n}\n    uri: /__marker/${n}\n    upstream:\n      nodes:\n        "${marker.node}": 1\n#END\n`);
  await waitFor(async () => (await send(gw, `/__marker/${n}`)).status === 200, 5_000, `apisix.yaml version ${n} to load`);
}

const describeRequest = (path: string, options: SendOptions) => `${options.method ?? 'GET'} ${path} ${JSON.stringify(options.headers ?? {})}`;

export async function assertNotFound(gw: Gateway, path: string, options: SendOptions = {}): Promise<void> {
  const hit = await send(gw, path, options);
  assert.equal(hit.status, 404, `${describeRequest(path, options)}: expected 404, got ${hit.status} ${hit.body}`);
  assert.equal(hit.body, NOT_FOUND_BODY);
}

export async function assertRoutedTo(gw: Gateway, path: string, up: Upstream, options: SendOptions = {}): Promise<Hit> {
  const hit = await send(gw, path, options);
  assert.equal(hit.status, 200, `${describeRequest(path, options)}: expected 200, got ${hit.status} ${hit.body}`);
  assert.equal(hit.port, up.port, `${describeRequest(path, options)}: went to the wrong upstream`);
  return hit;
}
