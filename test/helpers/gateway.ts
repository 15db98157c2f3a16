// Test harness: the built `causeway` started as a real process on loopback ports, real upstream
// HTTP servers, and a small HTTP client. Every gateway gets its own temp folder and free ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

export const REPO = new URL('../../', import.meta.url).pathname;
export const CAUSEWAY_BIN = join(REPO, 'bin/causeway.js');

/** A port that was free a moment ago (bind 0, read, close). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 50 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface GatewayOptions {
  /** Merged over the base config.yaml (node_listen, status port, one worker, data_plane + yaml). */
  config?: Record<string, unknown>;
  /** apisix.yaml content: a string (written as is) or an object (serialised to YAML). */
  routes?: string | Record<string, unknown>;
  workers?: number;
  env?: NodeJS.ProcessEnv;
  /** Extra files to write in the gateway's folder. */
  files?: Record<string, string>;
  /**
   * Open the TLS listener (apisix.ssl) / the Control API on free ports. Off otherwise: every port a
   * gateway binds is one more chance to collide with a port another test process picked at the same time.
   */
  tls?: boolean;
  control?: boolean;
  /** Open the Prometheus export server (plugin_attr.prometheus.export_addr) on a free port. */
  metrics?: boolean;
  /** Don't wait for readiness (for start-up failure tests). */
  noWait?: boolean;
}

export interface Gateway {
  port: number;
  /** The TLS listener's port (apisix.ssl.listen) on 127.0.0.1, with the `tls` option; 0 otherwise. */
  sslPort: number;
  /** The Control API's port (apisix.control) on 127.0.0.1, with the `control` option; 0 otherwise. */
  controlPort: number;
  /** The Prometheus export server's port, with the `metrics` option; 0 otherwise. */
  metricsPort: number;
  statusPort: number;
  dir: string;
  proc: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /** Replaces apisix.yaml atomically (write, then rename); the gateway picks it up within a second. */
  writeRoutes(content: string | Record<string, unknown>): void;
  url(path: string): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = b && typeof b === 'object' && !Array.isArray(b) && v && typeof v === 'object' && !Array.isArray(v) ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

export function routesYaml(content: string | Record<string, unknown>): string {
  return typeof content === 'string' ? content : stringify(content) + '#END\n';
}

export async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-test-'));
  const port = await freePort();
  const statusPort = await freePort();
  const sslPort = options.tls ? await freePort() : 0;
  const controlPort = options.control ? await freePort() : 0;
  const metricsPort = options.metrics ? await freePort() : 0;
  const base = {
    apisix: {
      node_listen: [{ ip: '127.0.0.1', port }],
      enable_ipv6: false,
      status: { ip: '127.0.0.1', port: statusPort },
      ssl: options.tls ? { listen: [{ ip: '127.0.0.1', port: sslPort }] } : { enable: false },
      enable_control: options.control === true,
      ...(options.control ? { control: { ip: '127.0.0.1', port: controlPort } } : {}),
    },
    nginx_config: { worker_processes: options.workers ?? 1, worker_shutdown_timeout: '10s' },
    deployment: { role: 'data_plane', role_data_plane: { config_provider: 'yaml' } },
    plugin_attr: {
      prometheus: options.metrics ? { export_addr: { ip: '127.0.0.1', port: metricsPort } } : { enable_export_server: false },
    },
  };
  const config = deepMerge(base, options.config ?? {});
  writeFileSync(join(dir, 'config.yaml'), stringify(config));
  writeFileSync(join(dir, 'apisix.yaml'), routesYaml(options.routes ?? { routes: [] }));
  for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), text);
  let out = '';
  const proc = spawn(process.execPath, [CAUSEWAY_BIN, 'start', '-c', join(dir, 'config.yaml')], {
    cwd: dir,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const gw: Gateway = {
    port,
    sslPort,
    controlPort,
    metricsPort,
    statusPort,
    dir,
    proc,
    output: () => out,
    writeRoutes(content) {
      // write-then-rename keeps the gateway from reading a half-written file
      const tmp = join(dir, 'apisix.yaml.tmp');
      writeFileSync(tmp, routesYaml(content));
      renameSync(tmp, join(dir, 'apisix.yaml'));
    },
    url: (path) => `http://127.0.0.1:${port}${path}`,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const killer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
  if (options.noWait) return gw;
  try {
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error('exited');
      const res = await request(`http://127.0.0.1:${statusPort}/status/ready`);
      return res.status === 200;
    }, 15_000, 'gateway readiness');
  } catch (err) {
    await gw.stop('SIGKILL');
    throw new Error(`gateway did not become ready: ${(err as Error).message}\n${out}`);
  }
  return gw;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface RequestOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  timeoutMs?: number;
  agent?: http.Agent | false;
}

/** One HTTP request; resolves with the whole response (status, headers, body as text). */
export function request(url: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface Upstream {
  port: number;
  server: http.Server;
  /** Requests seen, in order. */
  seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; rawHeaders: string[]; body: string; remotePort: number }>;
  /** Distinct client connections accepted. */
  connections: number;
  node: string;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

/**
 * A real upstream on 127.0.0.1:<free port>. The default handler answers 200 with JSON
 * `{port, method, url, headers, body}` so tests can see what the gateway forwarded.
 */
export async function startUpstream(handler?: UpstreamHandler): Promise<Upstream> {
  const up: Upstream = {
    port: 0,
    server: undefined as unknown as http.Server,
    seen: [],
    connections: 0,
    node: '',
    close: async () => {
      up.server.closeAllConnections();
      await new Promise<void>((resolve) => up.server.close(() => resolve()));
    },
  };
  up.server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      up.seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body, remotePort: req.socket.remotePort! });
      if (handler) return handler(req, res, body);
      const text = JSON.stringify({ port: up.port, method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  up.server.on('connection', () => up.connections++);
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
  up.port = (up.server.address() as net.AddressInfo).port;
  up.node = `127.0.0.1:${up.port}`;
  return up;
}

/** Runs the `causeway` command to completion (validate, version). */
export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CAUSEWAY_BIN, ...args], { cwd: options.cwd ?? REPO, env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// ---------------------------------------------------------------------------------------------
// Raw-socket helpers (for tests that need exact bytes on the wire, malformed input, or an
// upstream that misbehaves), and a process memory probe.

import { readFileSync as readProcFile } from 'node:fs';

export interface RawResponse {
  httpVersion: string;
  status: number;
  statusText: string;
  rawHeaders: string[];
  /** Lower-case name → values in order. */
  headers: Record<string, string[]>;
  body: Buffer;
  /** The body was framed (length/chunked/none) and complete; false for a close-delimited or cut body. */
  framed: boolean;
}

/**
 * Parses back-to-back HTTP/1.x responses from `buf`. `noBody[i]` marks the i-th response as an
 * answer to HEAD. A close-delimited body takes the rest of the buffer when `closed` is true.
 * Interim (1xx) responses are returned as entries too. Stops at the first incomplete response.
 */
export function parseRawResponses(buf: Buffer, closed: boolean, noBody: boolean[] = []): { responses: RawResponse[]; incomplete: boolean } {
  const responses: RawResponse[] = [];
  let off = 0;
  let finals = 0;
  while (off < buf.length) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end === -1) return { responses, incomplete: true };
    const lines = buf.toString('latin1', off, end).split('\r\n');
    const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) return { responses, incomplete: true };
    const rawHeaders: string[] = [];
    const headers: Record<string, string[]> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      const name = line.slice(0, c);
      const value = line.slice(c + 1).trim();
      rawHeaders.push(name, value);
      (headers[name.toLowerCase()] ??= []).push(value);
    }
    const status = Number(m[2]);
    let p = end + 4;
    const base = { httpVersion: m[1], status, statusText: m[3] ?? '', rawHeaders, headers };
    if (status < 200) {
      responses.push({ ...base, body: Buffer.alloc(0), framed: true });
      off = p;
      continue;
    }
    const head = noBody[finals++] === true;
    const te = headers['transfer-encoding']?.join(',').toLowerCase() ?? '';
    const cl = headers['content-length']?.[0];
    if (head || status === 204 || status === 304) {
      responses.push({ ...base, body: Buffer.alloc(0), framed: true });
    } else if (te.includes('chunked')) {
      const parts: Buffer[] = [];
      for (;;) {
        const lf = buf.indexOf('\r\n', p);
        if (lf === -1) return { responses, incomplete: true };
        const size = parseInt(buf.toString('latin1', p, lf).split(';')[0], 16);
        p = lf + 2;
        if (size === 0) {
          // trailers until an empty line
          const tEnd = buf.indexOf('\r\n\r\n', p - 2);
          if (tEnd === -1) return { responses, incomplete: true };
          p = tEnd + 4;
          break;
        }
        if (p + size + 2 > buf.length) return { responses, incomplete: true };
        parts.push(buf.subarray(p, p + size));
        p += size + 2;
      }
      responses.push({ ...base, body: Buffer.concat(parts), framed: true });
    } else if (cl !== undefined) {
      const n = Number(cl);
      if (p + n > buf.length) return { responses, incomplete: true };
      responses.push({ ...base, body: buf.subarray(p, p + n), framed: true });
      p += n;
    } else {
      if (!closed) return { responses, incomplete: true };
      responses.push({ ...base, body: buf.subarray(p), framed: false });
      p = buf.length;
    }
    off = p;
  }
  return { responses, incomplete: false };
}

export interface RawExchange {
  data: Buffer;
  /** The peer closed (or reset) the connection before the timeout. */
  closed: boolean;
  /** ms from connect to close (or to the timeout). */
  elapsedMs: number;
}

/**
 * Connects to 127.0.0.1:port, writes `parts` (a pause of `gapMs` between parts), and collects what
 * comes back until the peer closes, `until(data)` holds, or `timeoutMs` passes; then destroys the socket.
 */
export function rawExchange(port: number, parts: string | Buffer | Array<string | Buffer>, options: { timeoutMs?: number; gapMs?: number; until?: (data: Buffer) => boolean } = {}): Promise<RawExchange> {
  const list = Array.isArray(parts) ? parts : [parts];
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    let done = false;
    const socket = net.connect({ host: '127.0.0.1', port });
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed, elapsedMs: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 10_000);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (options.until?.(Buffer.concat(chunks))) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.once('connect', async () => {
      for (let i = 0; i < list.length && !done; i++) {
        if (i > 0 && options.gapMs) await sleep(options.gapMs);
        if (!done && socket.writable) socket.write(list[i]);
      }
    });
  });
}

export interface RawUpstreamRequest {
  head: string;
  method: string;
  url: string;
  /** Lower-case name → value (last wins). */
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawUpstream {
  port: number;
  node: string;
  server: net.Server;
  connections: number;
  requests: RawUpstreamRequest[];
  close(): Promise<void>;
}

/**
 * A TCP upstream that parses request heads (and Content-Length bodies) itself and lets the test
 * write whatever bytes it likes. `onRequest` runs once per request; several requests may come on
 * one connection. Without `onRequest` nothing is ever answered.
 */
export async function startRawUpstream(onRequest?: (socket: net.Socket, req: RawUpstreamRequest) => void, onConnection?: (socket: net.Socket) => void): Promise<RawUpstream> {
  const sockets = new Set<net.Socket>();
  const up: RawUpstream = {
    port: 0,
    node: '',
    server: net.createServer(),
    connections: 0,
    requests: [],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => up.server.close(() => resolve()));
    },
  };
  up.server.on('connection', (socket) => {
    up.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection?.(socket);
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.toString('latin1', 0, end);
        const lines = head.split('\r\n');
        const [method, url] = lines[0].split(' ');
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const c = line.indexOf(':');
          headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
        }
        const len = Number(headers['content-length'] ?? 0);
        if (buf.length < end + 4 + len) return;
        const body = buf.subarray(end + 4, end + 4 + len);
        buf = buf.subarray(end + 4 + len);
        const req = { head, method, url, headers, body };
        up.requests.push(req);
        onRequest?.(socket, req);
      }
    });
  });
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
  up.port = (up.server.address() as net.AddressInfo).port;
  up.node = `127.0.0.1:${up.port}`;
  return up;
}

/** Resident set size of a process in KiB (Linux /proc), or undefined when it is gone. */
export function processRssKb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readProcFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Servers a describe block starts on the way: `keep(x)` returns x and remembers it; `closeAll()` closes them. */
export function serverTracker() {
  const open: Array<{ close(): Promise<void> }> = [];
  return {
    keep<T extends { close(): Promise<void> }>(server: T): T {
      open.push(server);
      return server;
    },
    async closeAll(): Promise<void> {
      for (const s of open.splice(0)) await s.close();
    },
  };
}
