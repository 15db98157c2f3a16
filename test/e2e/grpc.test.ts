// gRPC through the gateway with @grpc/grpc-js clients and servers (test/fixtures/grpc/echo.proto):
// `scheme: grpc` and `grpcs` upstreams, the four kinds of calls, metadata, trailers and statuses
// carried through, deadlines and cancellations reaching the server, failures mapped as grpc_pass
// does (502 → UNAVAILABLE), plugins on gRPC routes, over h2c and over TLS.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { freePort, rawExchange, startGateway, waitFor, type Gateway } from '../helpers/gateway.ts';

const PROTO = new URL('../fixtures/grpc/echo.proto', import.meta.url).pathname;

interface EchoRequest {
  message?: string;
  count?: number;
  fail_with?: number;
  delay_ms?: number;
  payload?: Buffer;
}

interface EchoReply {
  message: string;
  index: number;
  metadata: string;
  payload_size: number;
}

type EchoClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

const definition = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
const EchoService = (grpc.loadPackageDefinition(definition) as unknown as { causeway: { test: { Echo: grpc.ServiceClientConstructor } } }).causeway.test.Echo;

/** A CA; a server certificate for localhost / 127.0.0.1 and a client certificate it signs; a self-signed one for the gateway. */
function makeCerts(dir: string) {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=grpc-test-ca', '-days', '2']);
  const signed = (name: string, cn: string, san: string) => {
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
    return { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
  };
  run(['req', '-x509', '-nodes', '-newkey', 'rsa:2048', '-days', '2', '-subj', '/CN=grpc.test', '-addext', 'subjectAltName=DNS:grpc.test', '-keyout', 'gw.key', '-out', 'gw.crt']);
  return {
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    server: signed('server', 'localhost', 'DNS:localhost,IP:127.0.0.1'),
    client: signed('client', 'gateway', 'DNS:gateway'),
    gateway: { cert: readFileSync(join(dir, 'gw.crt'), 'utf8'), key: readFileSync(join(dir, 'gw.key'), 'utf8') },
  };
}

interface EchoServer {
  port: number;
  /** What the server saw: `cancelled:<message>` when a call was cancelled before it answered. */
  events: string[];
  server: grpc.Server;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The Echo service on a grpc-js server (insecure, or TLS asking for a client certificate). */
async function startEchoServer(credentials: grpc.ServerCredentials, port = 0): Promise<EchoServer> {
  const events: string[] = [];
  const server = new grpc.Server();
  const metadataOf = (call: { metadata: grpc.Metadata }) => JSON.stringify(call.metadata.getMap());
  const watchCancel = (call: grpc.ServerSurfaceCall & { cancelled: boolean }, message: string, answered: () => boolean) => {
    call.on('cancelled', () => {
      if (!answered()) events.push(`cancelled:${message}`);
    });
  };
  server.addService(EchoService.service, {
    Say(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      const r = call.request;
      let answered = false;
      watchCancel(call, r.message!, () => answered);
      setTimeout(() => {
        if (call.cancelled) return;
        answered = true;
        if (r.fail_with) {
          const trailer = new grpc.Metadata();
          trailer.set('x-reason', 'asked-to-fail');
          callback({ code: r.fail_with, details: r.message, metadata: trailer });
          return;
        }
        const trailer = new grpc.Metadata();
        trailer.set('x-trailer', 'from-server');
        callback(null, { message: r.message!, index: 0, metadata: metadataOf(call), payload_size: r.payload?.length ?? 0 }, trailer);
      }, r.delay_ms ?? 0);
    },
    async Repeat(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      const r = call.request;
      let answered = false;
      watchCancel(call, r.message!, () => answered);
      const header = new grpc.Metadata();
      header.set('x-header', 'early');
      call.sendMetadata(header);
      for (let i = 0; i < r.count! && !call.cancelled; i++) {
        call.write({ message: r.message, index: i });
        if (r.delay_ms) await sleep(r.delay_ms);
      }
      if (call.cancelled) return;
      answered = true;
      if (r.fail_with) call.emit('error', { code: r.fail_with, details: `failed after ${r.count}` });
      else call.end();
    },
    Collect(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      const parts: string[] = [];
      let size = 0;
      call.on('data', (m: EchoRequest) => {
        parts.push(m.message!);
        size += m.payload?.length ?? 0;
      });
      call.on('end', () => callback(null, { message: parts.join(','), index: parts.length, metadata: metadataOf(call), payload_size: size }));
    },
    Chat(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      let i = 0;
      call.on('data', (m: EchoRequest) => call.write({ message: m.message!.toUpperCase(), index: i++ }));
      call.on('end', () => call.end());
    },
  });
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, credentials, (err, p) => (err ? reject(err) : resolve(p))));
  return { port: bound, events, server };
}

function client(address: string, authority: string, credentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}): EchoClient {
  return new EchoService(address, credentials, { 'grpc.default_authority': authority, ...options }) as unknown as EchoClient;
}

interface UnaryOutcome {
  reply?: EchoReply;
  error?: grpc.ServiceError;
  trailers?: grpc.Metadata;
}

function say(c: EchoClient, request: EchoRequest, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<UnaryOutcome> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = c.Say(request, metadata, options, (error: grpc.ServiceError | null, reply: EchoReply) => {
      // the status event follows the callback on the same tick
      setImmediate(() => resolve({ reply: error ? undefined : reply, error: error ?? undefined, trailers }));
    }) as grpc.ClientUnaryCall;
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

describe('gRPC proxying (scheme grpc / grpcs)', () => {
  let dir: string;
  let certs: ReturnType<typeof makeCerts>;
  let plain: EchoServer;
  let secure: EchoServer;
  let gw: Gateway;
  const clients: grpc.Client[] = [];
  const h2c = (authority: string) => {
    const c = client(`127.0.0.1:${gw.port}`, authority);
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causeway-grpc-'));
    certs = makeCerts(dir);
    plain = await startEchoServer(grpc.ServerCredentials.createInsecure());
    secure = await startEchoServer(grpc.ServerCredentials.createSsl(Buffer.from(certs.ca), [{ private_key: Buffer.from(certs.server.key), cert_chain: Buffer.from(certs.server.cert) }], true));
    const deadPort = await freePort();
    const uri = '/causeway.test.Echo/*';
    const grpcUp = (port: number, extra: Record<string, unknown> = {}) => ({ scheme: 'grpc', nodes: { [`127.0.0.1:${port}`]: 1 }, ...extra });
    gw = await startGateway({
      tls: true,
      config: { apisix: { ssl: { fallback_sni: 'grpc.test' } } },
      routes: {
        ssls: [{ id: 'gw', ...certs.gateway, snis: ['grpc.test'] }],
        consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'k-jack' } } }],
        routes: [
          { id: 'plain', uri, hosts: ['plain.test'], upstream: grpcUp(plain.port) },
          { id: 'tls', uri, hosts: ['tls.test'], upstream: { scheme: 'grpcs', nodes: { [`127.0.0.1:${secure.port}`]: 1 }, tls: { client_cert: certs.client.cert, client_key: certs.client.key } } },
          { id: 'nocert', uri, hosts: ['nocert.test'], upstream: { scheme: 'grpcs', nodes: { [`127.0.0.1:${secure.port}`]: 1 } } },
          { id: 'auth', uri, hosts: ['auth.test'], plugins: { 'key-auth': {}, 'proxy-rewrite': { headers: { 'x-added': 'by-plugin' } } }, upstream: grpcUp(plain.port) },
          { id: 'down', uri, hosts: ['down.test'], upstream: grpcUp(deadPort) },
          { id: 'retry', uri, hosts: ['retry.test'], upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${deadPort}`]: 1, [`127.0.0.1:${plain.port}`]: 1 } } },
          { id: 'timeout', uri, hosts: ['timeout.test'], upstream: grpcUp(plain.port, { timeout: { connect: 1, send: 1, read: 1 } }) },
        ],
      },
    });
    await waitFor(async () => (await say(h2c('plain.test'), { message: 'ready' })).reply !== undefined, 10_000, 'routes');
  });

  after(async () => {
    for (const c of clients) c.close();
    await gw?.stop();
    plain?.server.forceShutdown();
    secure?.server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('unary over h2c: message, metadata, a 1 MB payload and the trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-client', 'hello');
    md.set('x-bin-bin', Buffer.from([1, 2, 3]));
    const out = await say(h2c('plain.test'), { message: 'hi', payload: Buffer.alloc(1024 * 1024, 1) }, md);
    assert.equal(out.error, undefined);
    assert.equal(out.reply!.message, 'hi');
    assert.equal(out.reply!.payload_size, 1024 * 1024);
    const seen = JSON.parse(out.reply!.metadata);
    assert.equal(seen['x-client'], 'hello');
    assert.deepEqual(seen['x-bin-bin'], { type: 'Buffer', data: [1, 2, 3] });
    assert.equal(seen[':authority'], undefined);
    assert.deepEqual(out.trailers!.get('x-trailer'), ['from-server']);
  });

  it('server streaming: every message in order, the early headers too', async () => {
    const call = h2c('plain.test').Repeat({ message: 'r', count: 50 }) as grpc.ClientReadableStream<EchoReply>;
    const seen: number[] = [];
    let header: grpc.Metadata | undefined;
    call.on('metadata', (m: grpc.Metadata) => (header = m));
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: EchoReply) => seen.push(m.index));
      call.on('end', resolve);
      call.on('error', reject);
    });
    assert.deepEqual(seen, [...Array(50).keys()]);
    assert.deepEqual(header!.get('x-header'), ['early']);
  });

  it('client streaming: 20 messages in, one reply out', async () => {
    const reply = await new Promise<EchoReply>((resolve, reject) => {
      const call = h2c('plain.test').Collect((err: grpc.ServiceError | null, r: EchoReply) => (err ? reject(err) : resolve(r))) as grpc.ClientWritableStream<EchoRequest>;
      for (let i = 0; i < 20; i++) call.write({ message: `m${i}`, payload: Buffer.alloc(10_000) });
      call.end();
    });
    assert.equal(reply.index, 20);
    assert.equal(reply.message, [...Array(20).keys()].map((i) => `m${i}`).join(','));
    assert.equal(reply.payload_size, 200_000);
  });

  it('bidirectional streaming: each message answered before the next is sent', async () => {
    const call = h2c('plain.test').Chat() as grpc.ClientDuplexStream<EchoRequest, EchoReply>;
    const replies: string[] = [];
    const next = () => new Promise<EchoReply>((resolve) => call.once('data', resolve));
    for (const word of ['alpha', 'beta', 'gamma']) {
      const reply = next();
      call.write({ message: word });
      replies.push((await reply).message);
    }
    call.end();
    await new Promise((resolve) => call.on('end', resolve).resume());
    assert.deepEqual(replies, ['ALPHA', 'BETA', 'GAMMA']);
  });

  it('non-OK statuses reach the client with their message and trailers', async () => {
    const out = await say(h2c('plain.test'), { message: 'no such thing', fail_with: grpc.status.NOT_FOUND });
    assert.equal(out.error!.code, grpc.status.NOT_FOUND);
    assert.equal(out.error!.details, 'no such thing');
    assert.deepEqual(out.error!.metadata.get('x-reason'), ['asked-to-fail']);
    // a status after messages (in the trailers of a stream with a body)
    const call = h2c('plain.test').Repeat({ message: 'r', count: 3, fail_with: grpc.status.RESOURCE_EXHAUSTED }) as grpc.ClientReadableStream<EchoReply>;
    let got = 0;
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('data', () => got++);
      call.on('error', resolve);
    });
    assert.equal(got, 3);
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(err.details, 'failed after 3');
  });

  it('a deadline: DEADLINE_EXCEEDED at the client, and the server\'s call is cancelled', async () => {
    const out = await say(h2c('plain.test'), { message: 'slow-deadline', delay_ms: 5000 }, new grpc.Metadata(), { deadline: Date.now() + 500 });
    assert.equal(out.error!.code, grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => plain.events.includes('cancelled:slow-deadline'), 5000, 'the server to see the call cancelled');
  });

  it('a client cancelling a stream cancels the server\'s call', async () => {
    const call = h2c('plain.test').Repeat({ message: 'cancel-me', count: 1000, delay_ms: 50 }) as grpc.ClientReadableStream<EchoReply>;
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.once('data', () => call.cancel());
      call.on('error', resolve);
    });
    assert.equal(err.code, grpc.status.CANCELLED);
    await waitFor(() => plain.events.includes('cancelled:cancel-me'), 5000, 'the server to see the call cancelled');
  });

  it('an unreachable node gives UNAVAILABLE (502); a retry reaches the live node', async () => {
    const out = await say(h2c('down.test'), { message: 'x' });
    assert.equal(out.error!.code, grpc.status.UNAVAILABLE);
    assert.match(out.error!.details, /502/);
    // as on the HTTP path: X-APISIX-Upstream-Status on the gateway's 502
    const session = http2.connect(`http://127.0.0.1:${gw.port}`);
    try {
      const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/causeway.test.Echo/Say', ':authority': 'down.test', 'content-type': 'application/grpc', te: 'trailers' });
        stream.on('response', resolve);
        stream.on('error', reject);
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
        stream.resume();
      });
      assert.equal(head[':status'], 502);
      assert.equal(head['x-apisix-upstream-status'], '502');
    } finally {
      session.close();
    }
    for (let i = 0; i < 4; i++) {
      const ok = await say(h2c('retry.test'), { message: `retry-${i}` });
      assert.equal(ok.reply?.message, `retry-${i}`, ok.error?.message);
    }
  });

  it('the upstream read timeout gives 504 (UNAVAILABLE) and cancels the server\'s call', async () => {
    const out = await say(h2c('timeout.test'), { message: 'slow-timeout', delay_ms: 4000 });
    assert.equal(out.error!.code, grpc.status.UNAVAILABLE);
    assert.match(out.error!.details, /504/);
    await waitFor(() => plain.events.includes('cancelled:slow-timeout'), 5000, 'the server to see the call cancelled');
  });

  it('grpcs: TLS to the node with the upstream\'s client certificate; without it the node refuses (UNAVAILABLE)', async () => {
    const out = await say(h2c('tls.test'), { message: 'over-grpcs' });
    assert.equal(out.reply?.message, 'over-grpcs', out.error?.message);
    const call = h2c('tls.test').Chat() as grpc.ClientDuplexStream<EchoRequest, EchoReply>;
    const reply = new Promise<EchoReply>((resolve) => call.once('data', resolve));
    call.write({ message: 'secure' });
    assert.equal((await reply).message, 'SECURE');
    call.end();
    const refused = await say(h2c('nocert.test'), { message: 'x' });
    assert.equal(refused.error?.code, grpc.status.UNAVAILABLE);
  });

  it('gRPC over TLS from the client (ALPN h2)', async () => {
    const c = client(`127.0.0.1:${gw.sslPort}`, 'plain.test', grpc.credentials.createSsl(Buffer.from(certs.gateway.cert)), { 'grpc.ssl_target_name_override': 'grpc.test' });
    clients.push(c);
    const out = await say(c, { message: 'client-tls' });
    assert.equal(out.reply?.message, 'client-tls', out.error?.message);
    const call = c.Repeat({ message: 'r', count: 5 }) as grpc.ClientReadableStream<EchoReply>;
    let n = 0;
    await new Promise<void>((resolve, reject) => {
      call.on('data', () => n++);
      call.on('end', resolve);
      call.on('error', reject);
    });
    assert.equal(n, 5);
  });

  it('a key-auth protected gRPC route refuses a call without a key (UNAUTHENTICATED) and runs proxy-rewrite for one with it', async () => {
    const refused = await say(h2c('auth.test'), { message: 'x' });
    assert.equal(refused.error?.code, grpc.status.UNAUTHENTICATED);
    const md = new grpc.Metadata();
    md.set('apikey', 'k-jack');
    const ok = await say(h2c('auth.test'), { message: 'with-key' }, md);
    assert.equal(ok.reply?.message, 'with-key', ok.error?.message);
    const seen = JSON.parse(ok.reply!.metadata);
    assert.equal(seen['x-added'], 'by-plugin');
    assert.equal(seen['x-consumer-username'], 'jack');
  });

  it('a gRPC call over HTTP/1.1 is proxied too; its trailers come in the chunked trailer section', async () => {
    // length-prefixed EchoRequest { message: "h1" }
    const frame = Buffer.from([0, 0, 0, 0, 4, 0x0a, 0x02, 0x68, 0x31]);
    const head = `POST /causeway.test.Echo/Say HTTP/1.1\r\nHost: plain.test\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: ${frame.length}\r\nConnection: close\r\n\r\n`;
    const ex = await rawExchange(gw.port, [Buffer.concat([Buffer.from(head), frame])], { timeoutMs: 10_000 });
    const text = ex.data.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /Transfer-Encoding: chunked/i);
    assert.match(text, /\r\n0\r\n(.*\r\n)*grpc-status: 0\r\n/);
    assert.match(text, /x-trailer: from-server/);
  });

  it('a node that restarts (GOAWAY, then a closed connection) gets a new connection', async () => {
    let node = await startEchoServer(grpc.ServerCredentials.createInsecure());
    const port = node.port;
    const local = await startGateway({
      routes: { routes: [{ id: 'r', uri: '/causeway.test.Echo/*', upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${port}`]: 1 } } }] },
    });
    try {
      const c = client(`127.0.0.1:${local.port}`, 'any.test');
      clients.push(c);
      await waitFor(async () => (await say(c, { message: 'ready' })).reply !== undefined, 10_000, 'routes');
      await new Promise<void>((resolve) => node.server.tryShutdown(() => resolve()));
      node = await startEchoServer(grpc.ServerCredentials.createInsecure(), port);
      await waitFor(async () => (await say(c, { message: 'again' })).reply?.message === 'again', 10_000, 'a call through the restarted node');
      const out = await say(c, { message: 'steady' });
      assert.equal(out.reply?.message, 'steady', out.error?.message);
    } finally {
      await local.stop();
      node.server.forceShutdown();
    }
  });

  it('calls share the node\'s HTTP/2 connection', async () => {
    // A TCP relay in front of the plain server counts the gateway's connections.
    let connections = 0;
    const relay = net.createServer((socket) => {
      connections++;
      const upstream = net.connect(plain.port, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const relayPort = (relay.address() as net.AddressInfo).port;
    const local = await startGateway({
      routes: { routes: [{ id: 'r', uri: '/causeway.test.Echo/*', upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${relayPort}`]: 1 } } }] },
    });
    try {
      const c = client(`127.0.0.1:${local.port}`, 'any.test');
      clients.push(c);
      await waitFor(async () => (await say(c, { message: 'ready' })).reply !== undefined, 10_000, 'routes');
      const outcomes = await Promise.all([...Array(30).keys()].map((i) => say(c, { message: `m${i}`, delay_ms: 50 })));
      assert.ok(outcomes.every((o, i) => o.reply?.message === `m${i}`));
      assert.equal(connections, 1);
    } finally {
      await local.stop();
      relay.close();
    }
  });
});
