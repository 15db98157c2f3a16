// Config propagation benchmark: time from an Admin API response to the change being served by
// every worker, over many changes. Starts Causeway (traditional role, embedded store, N workers),
// writes routes through the Admin API and polls GET /status/config until every worker has applied
// the revision the write returned (modifiedIndex). A sample of changes is also checked with real
// traffic on fresh connections.
//
//   node bench/propagation.js [--changes 1000] [--workers 2]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? def : Number(args[i + 1]);
};
const CHANGES = opt('changes', 1000);
const WORKERS = opt('workers', 2);
const KEY = 'bench-admin-key-0123456789';
const ROOT = new URL('..', import.meta.url).pathname;

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
function call(port, method, path, body, useAgent = true) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: useAgent ? agent : false, headers: { 'X-API-KEY': KEY, ...(data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-propagation-'));
  const [proxyPort, adminPort, statusPort, upstreamPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const upstream = http.createServer((req, res) => res.end('ok')).listen(upstreamPort, '127.0.0.1');
  writeFileSync(join(dir, 'config.yaml'), `apisix:
  node_listen: [{ip: 127.0.0.1, port: ${proxyPort}}]
  enable_ipv6: false
  status: {ip: 127.0.0.1, port: ${statusPort}}
  ssl: {enable: false}
  enable_control: false
nginx_config:
  worker_processes: ${WORKERS}
deployment:
  role: traditional
  role_traditional: {config_provider: embedded}
  embedded: {data_dir: ${join(dir, 'data')}}
  admin:
    admin_listen: {ip: 127.0.0.1, port: ${adminPort}}
    admin_key: [{name: admin, key: ${KEY}, role: admin}]
`);
  const projectNode = join(ROOT, 'node_modules', '.bin', 'node');
  const gw = spawn(existsSync(projectNode) ? projectNode : process.execPath, [join(ROOT, 'bin/causeway.js'), 'start', '-c', join(dir, 'config.yaml')], { stdio: ['ignore', 'inherit', 'inherit'] });
  const cleanup = () => {
    gw.kill('SIGKILL');
    upstream.close();
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        if ((await call(statusPort, 'GET', '/status/ready')).status === 200) break;
      } catch {}
      if (Date.now() > deadline) throw new Error('gateway did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    const samples = [];
    let checkedByTraffic = 0;
    const started = Date.now();
    for (let i = 0; i < CHANGES && Date.now() - started < 120_000; i++) {
      const route = { uri: `/bench/${i}`, upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } } };
      const res = await call(adminPort, 'PUT', `/apisix/admin/routes/r${i % 20}`, route);
      const t0 = performance.now();
      if (res.status !== 200 && res.status !== 201) throw new Error(`admin PUT failed: ${res.status} ${res.text}`);
      // PUT answers without indexes (as APISIX); the revision comes from a GET right after.
      const revision = JSON.parse((await call(adminPort, 'GET', `/apisix/admin/routes/r${i % 20}`)).text).modifiedIndex;
      for (;;) {
        const st = JSON.parse((await call(statusPort, 'GET', '/status/config')).text);
        if (st.workers.length === WORKERS && st.workers.every((w) => w.version >= revision)) break;
        if (performance.now() - t0 > 10_000) throw new Error(`change ${i} not applied within 10 s`);
      }
      samples.push(performance.now() - t0);
      if (i % 100 === 0) {
        // Real traffic on fresh connections (spread over the workers by the kernel) must see the change.
        for (let k = 0; k < WORKERS * 4; k++) {
          const r = await call(proxyPort, 'GET', `/bench/${i}`, undefined, false);
          if (r.status !== 200) throw new Error(`change ${i}: proxy answered ${r.status}`);
        }
        checkedByTraffic++;
      }
    }
    samples.sort((a, b) => a - b);
    const fmt = (ms) => `${ms.toFixed(2)} ms`;
    console.log(`\n| changes | workers | p50 | p99 | max | checked by traffic |`);
    console.log(`| ---: | ---: | ---: | ---: | ---: | ---: |`);
    console.log(`| ${samples.length} | ${WORKERS} | ${fmt(percentile(samples, 50))} | ${fmt(percentile(samples, 99))} | ${fmt(samples[samples.length - 1])} | ${checkedByTraffic} |`);
    const p99 = percentile(samples, 99);
    console.log(`\nbar p99 ≤ 100 ms: ${p99 <= 100 ? 'PASS' : 'FAIL'}; goal ≤ 10 ms: ${p99 <= 10 ? 'PASS' : 'not yet'}`);
  } finally {
    cleanup();
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
