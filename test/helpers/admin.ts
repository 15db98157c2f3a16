// An Admin API client for tests: one request, the whole answer (status, headers, text and parsed JSON).
import http from 'node:http';

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
