// WebSocket through the gateway with real `ws` clients and servers: `enable_websocket` on routes
// and services, data both ways until either side closes, plugins before the upgrade, and the
// answers when the upgrade cannot happen.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { rawExchange, request, startGateway, waitFor, type Gateway } from '../helpers/gateway.ts';

interface WsUpstream {
  node: string;
  /** Upgrade requests' headers, as the node saw them. */
  upgrades: http.IncomingHttpHeaders[];
  /** Close codes the node received. */
  closes: number[];
  sockets: Set<WebSocket>;
  close(): Promise<void>;
}

/** An HTTP server that echoes WebSocket messages (`echo:<text>`) and answers plain requests 426. */
async function startWsUpstream(): Promise<WsUpstream> {
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'Content-Type': 'text/plain' });
    res.end('upgrade required');
  });
  const wss = new WebSocketServer({ server });
  const up: WsUpstream = {
    node: '',
    upgrades: [],
    closes: [],
    sockets: new Set(),
    close: async () => {
      for (const s of up.sockets) s.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  wss.on('connection', (ws, req) => {
    up.upgrades.push(req.headers);
    up.sockets.add(ws);
    ws.on('message', (data) => {
      const text = data.toString();
      if (text === 'bye') ws.close(4000, 'server says bye');
      else ws.send(`echo:${text}`);
    });
    ws.on('close', (code) => {
      up.closes.push(code);
      up.sockets.delete(ws);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.node = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return up;
}

/** Opens a client; resolves with it once open, or rejects with the status of an unexpected answer. */
function connect(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { status: res.statusCode }));
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(data.toString())));
}

describe('WebSocket proxying', () => {
  let up: WsUpstream;
  let gw: Gateway;
  const ws = (path: string) => `ws://127.0.0.1:${gw.port}${path}`;

  before(async () => {
    up = await startWsUpstream();
    const upstream = { type: 'roundrobin', nodes: { [up.node]: 1 } };
    gw = await startGateway({
      workers: 2,
      config: { plugins: ['key-auth', 'proxy-rewrite'] },
      routes: {
        routes: [
          { id: 'ws', uri: '/ws', enable_websocket: true, upstream },
          { id: 'plain', uri: '/plain', upstream },
          { id: 'svc', uri: '/svc', service_id: 'wss' },
          { id: 'auth', uri: '/auth', enable_websocket: true, plugins: { 'key-auth': {}, 'proxy-rewrite': { headers: { set: { 'X-Via': 'gateway' } } } }, upstream },
          { id: 'down', uri: '/down', enable_websocket: true, upstream: { type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } },
        ],
        services: [{ id: 'wss', enable_websocket: true, upstream }],
        consumers: [{ username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } }],
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('carries messages both ways and the client\'s close', async () => {
    const client = await connect(ws('/ws'));
    client.send('hello');
    assert.equal(await nextMessage(client), 'echo:hello');
    // a large message in several frames' worth of bytes
    const big = 'x'.repeat(256 * 1024);
    client.send(big);
    assert.equal(await nextMessage(client), `echo:${big}`);
    const closes = up.closes.length;
    client.close(1000, 'done');
    await waitFor(() => up.closes.length > closes, 5000, 'the node to see the close');
    assert.equal(up.closes.at(-1), 1000);
    const seen = up.upgrades.at(-1)!;
    assert.equal(seen['x-real-ip'], '127.0.0.1');
    assert.equal(seen.upgrade, 'websocket');
  });

  it('carries the node\'s close to the client', async () => {
    const client = await connect(ws('/ws'));
    const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
    client.send('bye');
    assert.equal(await closed, 4000);
  });

  it('several connections at once stay apart', async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => connect(ws('/ws'))));
    const replies = await Promise.all(clients.map((c, i) => {
      const reply = nextMessage(c);
      c.send(`n${i}`);
      return reply;
    }));
    assert.deepEqual(replies, ['echo:n0', 'echo:n1', 'echo:n2', 'echo:n3']);
    for (const c of clients) c.close();
  });

  it('a service\'s enable_websocket applies to its routes', async () => {
    const client = await connect(ws('/svc'));
    client.send('svc');
    assert.equal(await nextMessage(client), 'echo:svc');
    client.close();
  });

  it('without enable_websocket the upgrade is not passed on: the node answers a plain request', async () => {
    await assert.rejects(connect(ws('/plain')), (err: Error & { status?: number }) => err.status === 426);
    // and the gateway keeps serving plain requests
    assert.equal((await request(gw.url('/plain'))).status, 426);
    // The upgrade's connection is answered, then closed by the gateway.
    const raw = await rawExchange(gw.port, 'GET /plain HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', { timeoutMs: 3000 });
    assert.match(raw.data.toString('latin1'), /^HTTP\/1\.1 426 /);
    assert.equal(raw.closed, true);
  });

  it('plugins run before the upgrade: key-auth refuses, then passes with the consumer and header edits', async () => {
    await assert.rejects(connect(ws('/auth')), (err: Error & { status?: number }) => err.status === 401);
    const client = await connect(ws('/auth'), { apikey: 'jack-key' });
    client.send('authed');
    assert.equal(await nextMessage(client), 'echo:authed');
    const seen = up.upgrades.at(-1)!;
    assert.deepEqual([seen['x-consumer-username'], seen['x-via']], ['jack', 'gateway']);
    client.close();
  });

  it('a node that cannot be reached answers 502, and no route 404', async () => {
    await assert.rejects(connect(ws('/down')), (err: Error & { status?: number }) => err.status === 502);
    await assert.rejects(connect(ws('/nowhere')), (err: Error & { status?: number }) => err.status === 404);
    await waitFor(() => /while connecting the WebSocket \/down/.test(gw.output()), 5000, 'the failure in the log');
  });
});
