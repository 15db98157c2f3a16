#!/usr/bin/env node
// Side-by-side proxy benchmark: Causeway against nginx, @fastify/http-proxy and node-http-proxy,
// all proxying to one nginx upstream with upstream keep-alive. See bench/README.md for the method.
//
//   node bench/run.js [--duration 10] [--warmup 3] [--connections 50] [--threads 1]
//                     [--only causeway,nginx] [--no-baseline] [--start-timeout 10]
//                     [--protocol http|https|h2] [--streams 10]
//
// --protocol https runs the same wrk load over TLS (keep-alive, one handshake per connection);
// --protocol h2 runs h2load (nghttp2-client) over TLS with ALPN h2 and --streams concurrent
// streams per connection. Both compare nginx and Causeway, each terminating TLS with the same
// certificate and proxying to the same plain HTTP/1.1 upstream.
//
// Every option can also be given as an environment variable: BENCH_DURATION, BENCH_WARMUP,
// BENCH_CONNECTIONS, BENCH_THREADS, BENCH_ONLY, BENCH_NO_BASELINE=1, BENCH_START_TIMEOUT,
// BENCH_PROXY_CPU (core for the proxies, default 0), BENCH_LOAD_CPU (core for wrk and the upstream, default 1),
// BENCH_CAUSEWAY_BIN (entry script run as `node <it> start -c <config.yaml>`, default bin/causeway.js).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';


const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH_DIR, '..');
// The project's own Node.js 24 (npm installs it), so every Node contender runs on the same runtime.
const PROJECT_NODE = path.join(ROOT, 'node_modules', '.bin', 'node');
const NODE = fs.existsSync(PROJECT_NODE) ? PROJECT_NODE : process.execPath;
const UPSTREAM_BODY = 'hello world\n';
const CONTENDERS = ['nginx', 'fastify', 'http-proxy', 'causeway', 'causeway-plugins', 'causeway-observability'];
/** Contenders set up to terminate TLS, for --protocol https and h2. */
const TLS_CONTENDERS = ['nginx', 'causeway'];
const PROTOCOLS = ['http', 'https', 'h2'];
/** The server name of the benchmark certificate. wrk and h2load send the IP as SNI, so Causeway's SSL lists it too. */
const BENCH_SNI = 'bench.test';
/** The plugin-runtime bar: key-auth + limit-count + proxy-rewrite on the route (issue bar: >= 80% of plain). */
const BENCH_KEY = 'bench-key';
/** Request path per contender (the plugin route authenticates with a query key). */
const PATHS = { 'causeway-plugins': `/hello?apikey=${BENCH_KEY}` };
const pathOf = (name) => PATHS[name] ?? '/hello';
const NODE_PEERS = ['fastify', 'http-proxy'];
const CLK_TCK = clockTicks();

// ---------------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const env = process.env;
  const opts = {
    duration: Number(env.BENCH_DURATION ?? 10),
    warmup: Number(env.BENCH_WARMUP ?? 3),
    connections: Number(env.BENCH_CONNECTIONS ?? 50),
    threads: Number(env.BENCH_THREADS ?? 1),
    only: env.BENCH_ONLY ? env.BENCH_ONLY.split(',') : null,
    baseline: !env.BENCH_NO_BASELINE,
    startTimeout: Number(env.BENCH_START_TIMEOUT ?? 10),
    proxyCpu: env.BENCH_PROXY_CPU ?? '0',
    loadCpu: env.BENCH_LOAD_CPU ?? '1',
    protocol: env.BENCH_PROTOCOL ?? 'http',
    streams: Number(env.BENCH_STREAMS ?? 10),
  };
  const valueOpts = {
    '--duration': 'duration', '--warmup': 'warmup', '--connections': 'connections',
    '--threads': 'threads', '--only': 'only', '--start-timeout': 'startTimeout',
    '--protocol': 'protocol', '--streams': 'streams',
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) { value = arg.slice(eq + 1); arg = arg.slice(0, eq); }
    if (arg === '--help' || arg === '-h') { usage(0); }
    if (arg === '--no-baseline') { opts.baseline = false; continue; }
    const key = valueOpts[arg];
    if (!key) { console.error(`unknown option ${arg}`); usage(2); }
    if (value === undefined) value = argv[++i];
    if (value === undefined) { console.error(`${arg} needs a value`); usage(2); }
    opts[key] = key === 'only' ? value.split(',') : key === 'protocol' ? value : Number(value);
  }
  if (opts.only) {
    opts.only = opts.only.map((s) => s.trim()).filter(Boolean);
    if (opts.only.includes('baseline')) opts.only = opts.only.filter((s) => s !== 'baseline');
    for (const name of opts.only) {
      if (!CONTENDERS.includes(name)) { console.error(`unknown contender "${name}" (known: ${CONTENDERS.join(', ')})`); process.exit(2); }
    }
  }
  if (!PROTOCOLS.includes(opts.protocol)) { console.error(`unknown protocol "${opts.protocol}" (known: ${PROTOCOLS.join(', ')})`); process.exit(2); }
  if (opts.protocol !== 'http') {
    const other = (opts.only ?? []).filter((n) => !TLS_CONTENDERS.includes(n));
    if (other.length) { console.error(`--protocol ${opts.protocol} runs ${TLS_CONTENDERS.join(' and ')} only (not ${other.join(', ')})`); process.exit(2); }
    opts.only ??= TLS_CONTENDERS;
  }
  for (const k of ['duration', 'warmup', 'connections', 'threads', 'startTimeout', 'streams']) {
    if (!Number.isFinite(opts[k]) || opts[k] < 0 || (k !== 'warmup' && opts[k] === 0)) {
      console.error(`invalid --${k}: ${opts[k]}`); process.exit(2);
    }
  }
  return opts;
}

function usage(code) {
  console.log(`usage: node bench/run.js [--duration S] [--warmup S] [--connections N] [--threads N]
                         [--only ${CONTENDERS.join(',')}] [--no-baseline] [--start-timeout S]
                         [--protocol ${PROTOCOLS.join('|')}] [--streams N]`);
  process.exit(code);
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping and cleanup

const tracked = new Set(); // { name, child, pids:Set<number>, exited, exitCode, log }
let tmpRoot = null;
let cleaningUp = false;
let interrupted = null; // the signal that stopped the run, if any

function clockTicks() {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
}

function haveTaskset() {
  try { execFileSync('taskset', ['-V'], { stdio: 'ignore' }); return true; } catch { return false; }
}
const TASKSET = haveTaskset();

function pinned(cpu, cmd, args) {
  return TASKSET ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
}

/** Spawns a long-running process in its own process group, output to a log file. */
function startProcess(name, cpu, cmd, args, { cwd = ROOT, env = process.env, logDir } = {}) {
  if (cleaningUp) throw new Error('interrupted');
  const log = path.join(logDir, `${name}.log`);
  const fd = fs.openSync(log, 'a');
  const [c, a] = pinned(cpu, cmd, args);
  const child = spawn(c, a, { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const p = { name, child, pids: new Set(), exited: false, exitCode: null, signal: null, log };
  child.on('exit', (code, signal) => { p.exited = true; p.exitCode = code; p.signal = signal; });
  child.on('error', (err) => { p.exited = true; p.exitCode = -1; p.error = err; });
  if (child.pid) p.pids.add(child.pid);
  tracked.add(p);
  return p;
}

function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch { return false; }
}

function signalAll(p, sig) {
  if (p.child.pid) { try { process.kill(-p.child.pid, sig); } catch { /* group gone */ } }
  for (const pid of p.pids) { try { process.kill(pid, sig); } catch { /* gone */ } }
}

async function stopProcess(p, graceMs = 5000) {
  if (!tracked.has(p)) return;
  signalAll(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  const pending = () => [...p.pids].some(alive) || (p.child.pid && !p.exited);
  while (pending() && Date.now() < deadline) await sleep(50);
  if (pending()) {
    signalAll(p, 'SIGKILL');
    const hard = Date.now() + 2000;
    while (pending() && Date.now() < hard) await sleep(50);
  }
  tracked.delete(p);
}

async function cleanup() {
  if (cleaningUp) return;
  cleaningUp = true;
  for (const p of [...tracked].reverse()) await stopProcess(p, 3000);
  if (tmpRoot) { fs.rmSync(tmpRoot, { recursive: true, force: true }); tmpRoot = null; }
}

function cleanupSync() {
  for (const p of tracked) signalAll(p, 'SIGKILL');
  tracked.clear();
  if (tmpRoot) { try { fs.rmSync(tmpRoot, { recursive: true, force: true }); } catch { /* ignore */ } tmpRoot = null; }
}

process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = sig;
    console.error(`\n${sig}: stopping every benchmark process`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Ports, readiness, /proc accounting

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

function get(port, urlPath, timeoutMs = 1000, secure = false) {
  return new Promise((resolve) => {
    const client = secure ? https : http;
    const req = client.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs, servername: BENCH_SNI, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ error: err.message }));
  });
}

/** Polls GET /hello until it answers 200 with the upstream's body. Throws with a reason otherwise. */
async function waitReady(p, port, timeoutS, urlPath = '/hello', secure = false) {
  const deadline = Date.now() + timeoutS * 1000;
  let last = 'no answer';
  while (Date.now() < deadline) {
    // A launcher that exits 0 may have daemonized: keep polling the port. Anything else is a failure.
    if (p.exited && p.exitCode !== 0) {
      throw new Error(p.error ? p.error.message : `exited with ${p.signal ?? `code ${p.exitCode}`}`);
    }
    const r = await get(port, urlPath, 1000, secure);
    if (r.status === 200) {
      if (r.body === UPSTREAM_BODY) return;
      throw new Error(`GET /hello answered 200 with an unexpected body ${JSON.stringify(r.body.slice(0, 60))}`);
    }
    last = r.error ?? `status ${r.status}`;
    await sleep(100);
  }
  throw new Error(`no 200 on GET /hello within ${timeoutS} s (last: ${last})`);
}

function readProcStat(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] = field 3 (state), f[1] = ppid, f[11..14] = utime, stime, cutime, cstime (fields 14..17)
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
}

function allProcesses() {
  const map = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try { map.set(Number(name), readProcStat(name)); } catch { /* exited meanwhile */ }
  }
  return map;
}

/**
 * CPU ticks of the given roots and all their live descendants: utime+stime (all threads) plus
 * cutime+cstime (children already reaped), so a worker that exits mid-run is still counted once.
 */
function cpuTicks(roots) {
  const procs = allProcesses();
  const children = new Map();
  for (const [pid, { ppid }] of procs) {
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(pid);
  }
  const seen = new Set();
  const stack = [...roots];
  let ticks = 0;
  while (stack.length) {
    const pid = stack.pop();
    if (seen.has(pid) || !procs.has(pid)) continue;
    seen.add(pid);
    ticks += procs.get(pid).ticks;
    stack.push(...(children.get(pid) ?? []));
  }
  return ticks;
}

function selfChildTicks() {
  const s = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[13]) + Number(f[14]);
}

/** Pids holding a listening TCP socket on the port (finds daemonized servers and worker pools). */
function listeningPids(port) {
  const inodes = new Set();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A') continue;
      if (parseInt(cols[1].split(':')[1], 16) === port) inodes.add(cols[9]);
    }
  }
  const pids = new Set();
  if (!inodes.size) return pids;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let fds;
    try { fds = fs.readdirSync(`/proc/${name}/fd`); } catch { continue; }
    for (const fd of fds) {
      let target;
      try { target = fs.readlinkSync(`/proc/${name}/fd/${fd}`); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1])) { pids.add(Number(name)); break; }
    }
  }
  return pids;
}

// ---------------------------------------------------------------------------------------------
// wrk

/** The load generator's command for a protocol: wrk for HTTP/1.1 (plain or TLS), h2load for HTTP/2. */
function loadCommand(opts, port, seconds, urlPath) {
  const scheme = opts.protocol === 'http' ? 'http' : 'https';
  const url = `${scheme}://127.0.0.1:${port}${urlPath}`;
  if (opts.protocol === 'h2') {
    return { tool: 'h2load', args: [`-t${opts.threads}`, `-c${opts.connections}`, `-m${opts.streams}`, `-D${seconds}`, url], parse: parseH2load };
  }
  return { tool: 'wrk', args: [`-t${opts.threads}`, `-c${opts.connections}`, `-d${seconds}s`, '--latency', url], parse: parseWrk };
}

function runWrk(opts, port, seconds, urlPath = '/hello') {
  return new Promise((resolve, reject) => {
    const { tool, args, parse } = loadCommand(opts, port, seconds, urlPath);
    if (cleaningUp) return reject(new Error('interrupted'));
    const [c, a] = pinned(opts.loadCpu, tool, args);
    const child = spawn(c, a, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const p = { name: tool, child, pids: new Set([child.pid]), exited: false };
    tracked.add(p);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const guard = setTimeout(() => { signalAll(p, 'SIGKILL'); }, (seconds + 20) * 1000);
    child.on('error', (e) => { clearTimeout(guard); tracked.delete(p); reject(e); });
    child.on('close', (code) => {
      p.exited = true;
      clearTimeout(guard);
      tracked.delete(p);
      if (code !== 0) return reject(new Error(`${tool} exited with code ${code}: ${err.trim() || out.trim()}`));
      try { resolve(parse(out)); } catch (e) { reject(e); }
    });
  });
}

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60000, h: 3600000 };

function parseWrk(out) {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!total || !rps) throw new Error(`cannot parse wrk output:\n${out}`);
  const latency = {};
  for (const m of out.matchAll(/^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm)) {
    latency[`p${m[1]}`] = Number(m[2]) * UNIT_MS[m[3]];
  }
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock
    ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
    : { connect: 0, read: 0, write: 0, timeout: 0 };
  return {
    requests: Number(total[1]),
    seconds: Number(total[2]) * UNIT_MS[total[3]] / 1000,
    rps: Number(rps[1]),
    latencyMs: latency,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors,
    raw: out,
  };
}

/** h2load's summary in wrk's shape (h2load reports mean latency, not percentiles). */
function parseH2load(out) {
  const finished = /finished in ([\d.]+)(us|ms|s|m|h), ([\d.]+) req\/s/.exec(out);
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const statuses = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (!finished || !requests) throw new Error(`cannot parse h2load output:\n${out}`);
  const mean = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(out);
  const protocol = /Application protocol: (\S+)/.exec(out)?.[1];
  if (protocol !== 'h2') throw new Error(`h2load negotiated ${protocol ?? 'nothing'}, not h2:\n${out}`);
  return {
    requests: Number(requests[4]),
    seconds: Number(finished[1]) * UNIT_MS[finished[2]] / 1000,
    rps: Number(finished[3]),
    latencyMs: mean ? { mean: Number(mean[1]) * UNIT_MS[mean[2]] } : {},
    non2xx: statuses ? Number(statuses[2]) + Number(statuses[3]) + Number(statuses[4]) : 0,
    socketErrors: { connect: 0, read: Number(requests[6]), write: Number(requests[5]) - (statuses ? Number(statuses[2]) + Number(statuses[3]) + Number(statuses[4]) : 0), timeout: Number(requests[7]) },
    raw: out,
  };
}

// ---------------------------------------------------------------------------------------------
// Servers

/** A self-signed RSA certificate for BENCH_SNI, shared by every TLS contender. */
function makeCertificate(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, 'bench.crt');
  const key = path.join(dir, 'bench.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${BENCH_SNI}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

function nginxTempPaths(dir) {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((k) => `  ${k}_temp_path ${path.join(dir, `${k}_temp`)};`).join('\n');
}

function writeNginxConf(dir, httpBlock) {
  fs.mkdirSync(dir, { recursive: true });
  const conf = `worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
${nginxTempPaths(dir)}
  keepalive_timeout 75s;
  keepalive_requests 1000000;
${httpBlock}
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
}

function startNginx(name, cpu, dir) {
  return startProcess(name, cpu, 'nginx', ['-p', dir, '-e', path.join(dir, 'error.log'),
    '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { logDir: dir });
}

async function startUpstream(opts) {
  const port = await freePort();
  const dir = path.join(tmpRoot, 'upstream');
  writeNginxConf(dir, `  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type text/plain;
      return 200 "hello world\\n";
    }
  }`);
  const p = startNginx('upstream', opts.loadCpu, dir);
  await waitReady(p, port, opts.startTimeout);
  return { p, port };
}

/** Each contender: setup(upstreamPort, port, dir) -> process handle. */
const SETUP = {
  nginx(upPort, port, dir, opts) {
    writeNginxConf(dir, `  upstream u {
    server 127.0.0.1:${upPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    ${opts.tls ? `listen 127.0.0.1:${port} ssl http2 backlog=4096;
    ssl_certificate ${opts.tls.cert};
    ssl_certificate_key ${opts.tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;` : `listen 127.0.0.1:${port} backlog=4096;`}
    location / {
      proxy_pass http://u;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`);
    return startNginx('nginx', opts.proxyCpu, dir);
  },
  fastify(upPort, port, dir, opts) {
    fs.mkdirSync(dir, { recursive: true });
    return startProcess('fastify', opts.proxyCpu, NODE, [path.join(BENCH_DIR, 'peers', 'fastify-proxy.js'), String(port), String(upPort)], { logDir: dir });
  },
  'http-proxy'(upPort, port, dir, opts) {
    fs.mkdirSync(dir, { recursive: true });
    return startProcess('http-proxy', opts.proxyCpu, NODE, [path.join(BENCH_DIR, 'peers', 'http-proxy.js'), String(port), String(upPort)], { logDir: dir });
  },
  causeway(upPort, port, dir, opts) {
    return startCauseway('causeway', upPort, port, dir, opts, '');
  },
  'causeway-plugins'(upPort, port, dir, opts) {
    // The plugin-runtime bench: auth, a node-wide rate limit that never trips, and a rewrite.
    const plugins = `
    plugins:
      key-auth: {}
      limit-count: { count: 1000000000, time_window: 60, rejected_code: 503, key: remote_addr }
      proxy-rewrite: { uri: /hello, headers: { set: { X-Bench: "1" } } }`;
    const consumers = `consumers:
  - username: bench
    plugins:
      key-auth: { key: ${BENCH_KEY} }
`;
    return startCauseway('causeway-plugins', upPort, port, dir, opts, plugins, consumers);
  },
  'causeway-observability'(upPort, port, dir, opts) {
    // The observability bar: prometheus on every request (a global rule) and the access log on.
    const rules = `global_rules:
  - id: metrics
    plugins:
      prometheus: {}
`;
    return startCauseway('causeway-observability', upPort, port, dir, opts, '', rules, { accessLog: true });
  },
};

function startCauseway(name, upPort, port, dir, opts, routePlugins, extra = '', { accessLog = false } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'config.yaml');
  // Over TLS the plain listener moves to a port nobody loads; the certificate is an `ssls` item.
  const listeners = opts.tls
    ? `node_listen: [${opts.sparePort}]
  ssl: {enable: true, listen: [{port: ${port}}], fallback_sni: ${BENCH_SNI}}`
    : `node_listen: [${port}]
  ssl: {enable: false}`;
  if (opts.tls) {
    const indent = (file) => fs.readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => `      ${l}`).join('\n');
    extra += `ssls:
  - id: bench
    snis: [${BENCH_SNI}, "127.0.0.1"]
    cert: |
${indent(opts.tls.cert)}
    key: |
${indent(opts.tls.key)}
`;
  }
  fs.writeFileSync(config, `apisix:
  ${listeners}
  enable_ipv6: false
  enable_control: false
nginx_config:
  worker_processes: 1
  http:
    enable_access_log: ${accessLog}
plugin_attr:
  prometheus:
    enable_export_server: false
deployment:
  role: data_plane
  role_data_plane:
    config_provider: yaml
`);
  fs.writeFileSync(path.join(dir, 'apisix.yaml'), `routes:
  - id: 1
    uri: /hello${routePlugins}
    upstream:
      type: roundrobin
      nodes:
        "127.0.0.1:${upPort}": 1
${extra}#END
`);
  const bin = process.env.BENCH_CAUSEWAY_BIN ? path.resolve(process.env.BENCH_CAUSEWAY_BIN) : path.join(ROOT, 'bin', 'causeway.js');
  return startProcess(name, opts.proxyCpu, NODE, [bin, 'start', '-c', config], { logDir: dir });
}

function logTail(file, lines = 8) {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd();
    return text ? text.split('\n').slice(-lines).join('\n') : '';
  } catch { return ''; }
}

/** Warm-up, then the measured run with CPU accounting around it. */
async function measure(opts, port, roots, upstreamRoots, urlPath = '/hello') {
  if (opts.warmup > 0) await runWrk(opts, port, opts.warmup, urlPath);
  const t0 = process.hrtime.bigint();
  const cpu0 = cpuTicks(roots);
  const up0 = upstreamRoots ? cpuTicks(upstreamRoots) : 0;
  const self0 = selfChildTicks();
  const wrk = await runWrk(opts, port, opts.duration, urlPath);
  const self1 = selfChildTicks(); // wrk has been reaped: its CPU is in our cutime/cstime now
  const up1 = upstreamRoots ? cpuTicks(upstreamRoots) : 0;
  const cpu1 = cpuTicks(roots);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuS = (cpu1 - cpu0) / CLK_TCK;
  const upS = (up1 - up0) / CLK_TCK;
  const wrkS = (self1 - self0) / CLK_TCK;
  const errors = wrk.non2xx + Object.values(wrk.socketErrors).reduce((a, b) => a + b, 0);
  return {
    rps: wrk.rps,
    requests: wrk.requests,
    latencyMs: wrk.latencyMs,
    non2xx: wrk.non2xx,
    socketErrors: wrk.socketErrors,
    errors,
    valid: errors === 0 && wrk.requests > 0,
    cpuSeconds: cpuS,
    cpuUsPerRequest: wrk.requests ? (cpuS * 1e6) / wrk.requests : null,
    proxyCoreUtil: cpuS / wall,
    upstreamCpuUsPerRequest: upstreamRoots && wrk.requests ? (upS * 1e6) / wrk.requests : null,
    wrkCpuSeconds: wrkS,
    loadCoreUtil: (wrkS + (upstreamRoots ? upS : 0)) / wall,
    wallSeconds: wall,
    wrkOutput: wrk.raw,
  };
}

async function runContender(name, opts, upstream) {
  const dir = path.join(tmpRoot, name);
  const port = await freePort();
  // Over TLS, Causeway's plain listener needs a port of its own that nothing loads.
  if (opts.tls) opts.sparePort = await freePort();
  const p = SETUP[name](upstream.port, port, dir, opts);
  const row = { name, port, status: 'ok' };
  try {
    try {
      await waitReady(p, port, opts.startTimeout, pathOf(name), Boolean(opts.tls));
    } catch (err) {
      row.status = 'failed to start';
      row.reason = err.message;
      const tail = logTail(p.log);
      console.log(`  ${name}: failed to start: ${err.message}${tail ? `\n    ${tail.split('\n').join('\n    ')}` : ''}`);
      return row;
    }
    for (const pid of listeningPids(port)) p.pids.add(pid);
    const roots = [...p.pids].filter(alive);
    console.log(`  ${name}: ready on :${port} (pids ${roots.join(', ')}); warm-up ${opts.warmup} s, measuring ${opts.duration} s`);
    Object.assign(row, await measure(opts, port, roots, [upstream.p.child.pid], pathOf(name)));
    if (!row.valid) row.status = 'errors';
    console.log(`  ${name}: ${fmtRps(row.rps)} req/s, p99 ${fmtMs(row.latencyMs.p99)}, ${fmtNum(row.cpuUsPerRequest, 1)} µs CPU/req${row.valid ? '' : `, ${row.errors} errors`}`);
  } catch (err) {
    row.status = 'failed';
    row.reason = err.message;
    if (!cleaningUp) console.log(`  ${name}: failed: ${err.message}`);
  } finally {
    await stopProcess(p);
  }
  return row;
}

// ---------------------------------------------------------------------------------------------
// Report

function fmtNum(n, digits = 0) { return n == null || !Number.isFinite(n) ? '–' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }); }
function fmtRps(n) { return fmtNum(n, 0); }
function fmtMs(ms) { if (ms == null) return '–'; return ms < 1 ? `${fmtNum(ms * 1000, 0)} µs` : `${fmtNum(ms, 2)} ms`; }
function fmtPct(x) { return x == null || !Number.isFinite(x) ? '–' : `${fmtNum(x * 100, 0)}%`; }

function table(rows) {
  const head = ['contender', 'req/s', 'p50', 'p99', 'CPU µs/req', 'proxy core', 'load core', 'errors', 'status'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 || i === head.length - 1 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of rows) {
    if (r.rps == null) {
      lines.push(`| ${r.name} | – | – | – | – | – | – | – | ${r.status}${r.reason ? `: ${r.reason.replace(/\|/g, '\\|').split('\n')[0]}` : ''} |`);
      continue;
    }
    const errs = r.errors ? `${r.errors} (non-2xx ${r.non2xx}, socket ${Object.entries(r.socketErrors).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(' ') || '0'})` : '0';
    lines.push(`| ${r.name} | ${fmtRps(r.rps)} | ${fmtMs(r.latencyMs.p50)} | ${fmtMs(r.latencyMs.p99)} | ${fmtNum(r.cpuUsPerRequest, 1)} | ${fmtPct(r.proxyCoreUtil)} | ${fmtPct(r.loadCoreUtil)} | ${errs} | ${r.valid ? 'ok' : 'INVALID (errors)'} |`);
  }
  return lines.join('\n');
}

function ratios(rows) {
  const valid = (n) => rows.find((r) => r.name === n && r.valid);
  const cw = valid('causeway');
  const ng = valid('nginx');
  const peers = NODE_PEERS.map(valid).filter(Boolean).sort((a, b) => b.rps - a.rps);
  const fastest = peers[0];
  return {
    fastestNodePeer: fastest?.name ?? null,
    causewayOverFastestNodePeer: cw && fastest ? cw.rps / fastest.rps : null,
    causewayOverNginx: cw && ng ? cw.rps / ng.rps : null,
    pluginsOverPlain: cw && valid('causeway-plugins') ? valid('causeway-plugins').rps / cw.rps : null,
    observabilityOverPlain: cw && valid('causeway-observability') ? valid('causeway-observability').rps / cw.rps : null,
  };
}

function verdict(x, bar) { return x == null ? 'n/a' : x >= bar ? 'PASS' : 'FAIL'; }

function versions() {
  const v = { node: process.version };
  const pkgVersion = (name) => {
    try { return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version; } catch { return null; }
  };
  for (const n of ['fastify', '@fastify/http-proxy', 'http-proxy']) v[n] = pkgVersion(n);
  try { v.causeway = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version; } catch { /* ignore */ }
  try { v.nginx = execFileSync('nginx', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() || null; } catch (e) { v.nginx = String(e.stderr ?? '').trim() || null; }
  if (!v.nginx) { try { v.nginx = execFileSync('sh', ['-c', 'nginx -v 2>&1'], { encoding: 'utf8' }).trim(); } catch { /* ignore */ } }
  try { v.wrk = execFileSync('sh', ['-c', 'wrk -v 2>&1 | head -1'], { encoding: 'utf8' }).trim(); } catch { /* ignore */ }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const tools = opts.protocol === 'h2' ? ['nginx', 'h2load', 'openssl'] : opts.protocol === 'https' ? ['nginx', 'wrk', 'openssl'] : ['nginx', 'wrk'];
  for (const tool of tools) {
    try { execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }); } catch {
      console.error(`${tool} is not installed: run ./install.sh --test`); process.exit(1);
    }
  }
  if (!TASKSET) console.warn('warning: taskset not found (util-linux): processes run unpinned');
  const cpus = os.cpus().length;
  if (cpus < 2) console.warn(`warning: ${cpus} CPU(s): proxies and load share one core`);

  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'causeway-bench-'));
  if (opts.protocol !== 'http') {
    opts.tls = makeCertificate(path.join(tmpRoot, 'tls'));
    // The upstream speaks plain HTTP/1.1: a baseline over TLS has nothing to measure.
    opts.baseline = false;
  }
  const names = CONTENDERS.filter((n) => !opts.only || opts.only.includes(n));
  const started = new Date();
  const load = loadCommand(opts, 0, opts.duration, '/hello');
  console.log(`Causeway proxy benchmark (${opts.protocol}): ${load.tool} ${load.args.slice(0, -1).join(' ')}, warm-up ${opts.warmup} s, ${opts.duration} s measured; proxies on CPU ${opts.proxyCpu}, wrk + upstream on CPU ${opts.loadCpu}`);
  console.log(`load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  const upstream = await startUpstream(opts);
  console.log(`upstream nginx on :${upstream.port} (pid ${upstream.p.child.pid})`);

  const rows = [];
  if (opts.baseline) {
    console.log('  baseline: wrk straight at the upstream');
    const row = { name: 'baseline (upstream direct)', port: upstream.port, status: 'ok' };
    try {
      Object.assign(row, await measure(opts, upstream.port, [upstream.p.child.pid], null));
      // The "proxy" here is the upstream itself, which shares the load core with wrk.
      row.loadCoreUtil = (row.wrkCpuSeconds + row.cpuSeconds) / row.wallSeconds;
      row.proxyCoreUtil = null;
      if (!row.valid) row.status = 'errors';
    } catch (err) { row.status = 'failed'; row.reason = err.message; }
    if (interrupted) return;
    rows.push(row);
  }
  for (const name of names) {
    if (cleaningUp) return;
    rows.push(await runContender(name, opts, upstream));
  }
  if (cleaningUp) return;

  await stopProcess(upstream.p);
  const r = ratios(rows);

  console.log('');
  console.log(table(rows));
  console.log('');
  console.log('CPU µs/req: CPU time (user+system, all threads and worker processes) of the proxy per request; for the baseline, of the upstream.');
  console.log('proxy core / load core: busy share of the proxy core / of the wrk+upstream core during the measured run.');
  console.log('');
  const fmtRatio = (x) => (x == null ? 'n/a' : `${x.toFixed(2)}×`);
  if (opts.protocol !== 'http') console.log(`Causeway / nginx over ${opts.protocol === 'h2' ? 'HTTP/2 (TLS, ALPN h2)' : 'HTTPS (HTTP/1.1)'}: ${r.causewayOverNginx == null ? 'n/a' : fmtPct(r.causewayOverNginx)}`);
  else {
  console.log(`Causeway / fastest Node peer${r.fastestNodePeer ? ` (${r.fastestNodePeer})` : ''}: ${fmtRatio(r.causewayOverFastestNodePeer)}  — bar ≥ 1.50×: ${verdict(r.causewayOverFastestNodePeer, 1.5)}`);
  console.log(`Causeway / nginx: ${r.causewayOverNginx == null ? 'n/a' : fmtPct(r.causewayOverNginx)}  — bar ≥ 35%: ${verdict(r.causewayOverNginx, 0.35)}, goal ≥ 50%: ${verdict(r.causewayOverNginx, 0.5)}`);
  console.log(`Causeway with key-auth + limit-count + proxy-rewrite / without: ${r.pluginsOverPlain == null ? 'n/a' : fmtPct(r.pluginsOverPlain)}  — bar ≥ 80%: ${verdict(r.pluginsOverPlain, 0.8)}`);
  console.log(`Causeway with prometheus (global rule) + access log / without: ${r.observabilityOverPlain == null ? 'n/a' : fmtPct(r.observabilityOverPlain)}  — bar ≥ 85%: ${verdict(r.observabilityOverPlain, 0.85)}`);
  }

  const resultsDir = path.join(BENCH_DIR, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const file = path.join(resultsDir, `${stamp}.json`);
  const report = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    host: { cpus, model: os.cpus()[0]?.model ?? null, kernel: os.release(), loadavgBefore: os.loadavg() },
    versions: versions(),
    params: {
      protocol: opts.protocol,
      load: `${load.tool} ${load.args.slice(0, -1).join(' ')} ${opts.protocol === 'http' ? 'http' : 'https'}://127.0.0.1:<port>/hello`,
      duration: opts.duration, warmup: opts.warmup, connections: opts.connections, threads: opts.threads,
      proxyCpu: opts.proxyCpu, loadCpu: opts.loadCpu, pinned: TASKSET, upstreamBody: UPSTREAM_BODY,
    },
    results: rows,
    ratios: r,
    bar: {
      causewayOverFastestNodePeer: { min: 1.5, verdict: verdict(r.causewayOverFastestNodePeer, 1.5) },
      causewayOverNginx: { min: 0.35, goal: 0.5, verdict: verdict(r.causewayOverNginx, 0.35), goalVerdict: verdict(r.causewayOverNginx, 0.5) },
      pluginsOverPlain: { min: 0.8, verdict: verdict(r.pluginsOverPlain, 0.8) },
      observabilityOverPlain: { min: 0.85, verdict: verdict(r.observabilityOverPlain, 0.85) },
    },
  };
  fs.writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  console.log(`\nresults written to ${path.relative(process.cwd(), file) || file}`);
  await cleanup();
}

// After a signal, its handler owns cleanup and the exit code.
main().then(() => { if (!interrupted) process.exit(0); }, async (err) => {
  if (interrupted) return;
  console.error(`benchmark failed: ${err.stack ?? err.message}`);
  await cleanup();
  process.exit(1);
});
