// Status API (apisix.status, default 127.0.0.1:7085): liveness and readiness for orchestrators.
import http from 'node:http';

export interface ReadinessProbe {
  /** undefined when ready, else the reason (APISIX's wording where it has one). */
  notReadyReason(): string | undefined;
  /** The config version the node has and the one each worker serves (GET /status/config). */
  configVersions(): { version: number; workers: number[] };
}

export function startStatusServer(ip: string, port: number, probe: ReadinessProbe): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    let status = 404;
    let body: object = { error_msg: 'not found' };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      status = 405;
      body = { error_msg: 'method not allowed' };
    } else if (path === '/status') {
      status = 200;
      body = { status: 'ok' };
    } else if (path === '/status/config') {
      const versions = probe.configVersions();
      status = 200;
      body = { version: versions.version, workers: versions.workers.map((version, id) => ({ id, version })) };
    } else if (path === '/status/ready') {
      const reason = probe.notReadyReason();
      status = reason ? 503 : 200;
      body = reason ? { status: 'error', error: reason } : { status: 'ok' };
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve(server));
  });
}
