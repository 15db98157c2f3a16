// Test harness: a real single-member etcd (Debian's etcd-server 3.4, installed by `install.sh --test`)
// on loopback ports with its own temp data dir. stop/start/restart keep the ports and the data;
// kill() is SIGKILL. Also a raw client for the gRPC-gateway JSON API, to set up what the store
// under test must cope with (placeholder keys, non-JSON values, compaction, auth).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from './gateway.ts';

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

export interface EtcdProcess {
  /** `http://127.0.0.1:<port>` (`https://` with `tls`) */
  endpoint: string;
  dataDir: string;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** SIGKILL, no waiting (start() waits for the exit). */
  kill(): void;
  /** Starts again on the same ports and data dir; resolves once /health answers true. */
  start(): Promise<void>;
  /** stop() and remove the data dir. */
  destroy(): Promise<void>;
  /** The last lines etcd printed (for failure messages). */
  output(): string;
}

export interface StartEtcdOptions {
  /** Extra command-line flags, e.g. `['--auth-token-ttl', '1']`. */
  args?: string[];
  /** Serve clients over TLS, requiring client certificates signed by `caFile`. */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'causeway-etcd-'));
  const clientPort = await freePort();
  let peerPort = await freePort();
  while (peerPort === clientPort) peerPort = await freePort();
  const endpoint = `${options.tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';

  const args = [
    '--name', 'default',
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `default=${peer}`,
    '--initial-cluster-state', 'new',
    ...(options.tls ? [
      '--cert-file', options.tls.certFile, '--key-file', options.tls.keyFile,
      '--client-cert-auth', '--trusted-ca-file', options.tls.caFile,
    ] : []),
    ...(options.args ?? []),
  ];
  const healthy = options.tls ? () => tlsHealth(endpoint, options.tls!) : async () => {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    return ((await res.json()) as { health?: string }).health === 'true';
  };

  async function start(): Promise<void> {
    await exited;
    const proc = spawn(ETCD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const append = (chunk: Buffer) => {
      log = (log + chunk.toString('utf8')).slice(-20_000);
    };
    proc.stdout!.on('data', append);
    proc.stderr!.on('data', append);
    let alive = true;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', () => {
        alive = false;
        if (child === proc) child = undefined;
        resolve();
      });
      proc.once('error', (err) => {
        append(Buffer.from(`spawn failed: ${err.message}\n`));
        alive = false;
        resolve();
      });
    });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (!alive) throw new Error(`etcd exited during start-up:\n${log.slice(-3000)}`);
      try {
        if (await healthy()) return;
      } catch {
        // not up yet
      }
      await sleep(100);
    }
    throw new Error(`etcd did not become healthy within 20 s:\n${log.slice(-3000)}`);
  }

  async function stop(): Promise<void> {
    const proc = child;
    if (!proc) return exited;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  const handle: EtcdProcess = {
    endpoint,
    dataDir,
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
    kill() {
      child?.kill('SIGKILL');
    },
    async destroy() {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
    output: () => log,
  };
  try {
    await start();
  } catch (err) {
    await handle.destroy();
    throw err;
  }
  return handle;
}

/** One raw gRPC-gateway call (`path` like `/v3/kv/put`); throws on a non-200 answer. */
export async function etcdApi<T = Record<string, unknown>>(endpoint: string, path: string, body: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = token;
  const res = await fetch(endpoint + path, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

const enc = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Writes `value` as raw text (not JSON-encoded); returns the revision. */
export async function etcdPutRaw(endpoint: string, key: string, value: string, token?: string): Promise<number> {
  const res = await etcdApi<{ header: { revision: string } }>(endpoint, '/v3/kv/put', { key: enc(key), value: enc(value) }, token);
  return Number(res.header.revision);
}

/** The current store revision. */
export async function etcdRevision(endpoint: string, token?: string): Promise<number> {
  const res = await etcdApi<{ header: { revision: string } }>(endpoint, '/v3/kv/range', { key: enc('/') }, token);
  return Number(res.header.revision);
}

/** Compacts history up to `revision` (physical, so old revisions are gone when it resolves). */
export async function etcdCompact(endpoint: string, revision: number): Promise<void> {
  await etcdApi(endpoint, '/v3/kv/compaction', { revision: String(revision), physical: true });
}

/** Creates `root` with `password` and the root role, then turns auth on. */
export async function etcdEnableAuth(endpoint: string, password: string): Promise<void> {
  await etcdApi(endpoint, '/v3/auth/user/add', { name: 'root', password });
  await etcdApi(endpoint, '/v3/auth/role/add', { name: 'root' });
  await etcdApi(endpoint, '/v3/auth/user/grant', { user: 'root', role: 'root' });
  await etcdApi(endpoint, '/v3/auth/enable', {});
}

function tlsHealth(endpoint: string, tls: { certFile: string; keyFile: string; caFile: string }): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${endpoint}/health`, {
      ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile),
      servername: 'etcd.test', timeout: 1000,
    }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve(body.includes('"health":"true"')));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export interface EtcdCerts {
  dir: string;
  ca: string;
  /** Server certificate for the name `etcd.test` only (no IP address). */
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A CA, a server and a client certificate made by openssl, or undefined when openssl is missing. */
export function makeEtcdCerts(): EtcdCerts | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-etcd-tls-'));
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  try {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=causeway-test-ca', '-keyout', f('ca.key'), '-out', f('ca.crt'));
    writeFileSync(f('server.ext'), 'subjectAltName=DNS:etcd.test\n');
    writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
    for (const who of ['server', 'client']) {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who === 'server' ? 'etcd.test' : 'root'}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`));
      openssl('x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1',
        '-extfile', f(`${who}.ext`), '-out', f(`${who}.crt`));
    }
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  return {
    dir, ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key'),
  };
}
