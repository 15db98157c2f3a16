// Benchmark peer: @fastify/http-proxy on fastify (logger off), one process.
// Usage: node bench/peers/fastify-proxy.js <listenPort> <upstreamPort>
//   (or env PORT / UPSTREAM_PORT). Listens on 127.0.0.1 and forwards every path to the upstream.
// Upstream keep-alive: @fastify/reply-from's default undici Pool (keep-alive), spelled out below.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const port = Number(process.argv[2] ?? process.env.PORT);
const upstreamPort = Number(process.argv[3] ?? process.env.UPSTREAM_PORT);
if (!port || !upstreamPort) {
  console.error('usage: fastify-proxy.js <listenPort> <upstreamPort>');
  process.exit(2);
}

const app = Fastify({ logger: false });
await app.register(proxy, {
  upstream: `http://127.0.0.1:${upstreamPort}`,
  prefix: '/',
  undici: { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 },
});
await app.listen({ port, host: '127.0.0.1' });

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { app.close().finally(() => process.exit(0)); });
}
