// Benchmark peer: http-proxy (node-http-proxy) on a node:http server, one process.
// Usage: node bench/peers/http-proxy.js <listenPort> <upstreamPort>
//   (or env PORT / UPSTREAM_PORT). Listens on 127.0.0.1 and forwards every path to the upstream.
// Upstream keep-alive: http.Agent({ keepAlive: true, maxSockets: 256 }).
import http from 'node:http';
import httpProxy from 'http-proxy';

const port = Number(process.argv[2] ?? process.env.PORT);
const upstreamPort = Number(process.argv[3] ?? process.env.UPSTREAM_PORT);
if (!port || !upstreamPort) {
  console.error('usage: http-proxy.js <listenPort> <upstreamPort>');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${upstreamPort}`, agent });
proxy.on('error', (err, _req, res) => {
  if (res && !res.headersSent && typeof res.writeHead === 'function') {
    res.writeHead(502, { 'content-type': 'text/plain' });
  }
  if (res && typeof res.end === 'function') res.end('bad gateway\n');
});

const server = http.createServer((req, res) => proxy.web(req, res));
server.listen(port, '127.0.0.1');

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { server.close(); agent.destroy(); process.exit(0); });
}
