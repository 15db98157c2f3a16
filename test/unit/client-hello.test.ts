// ClientHello parsing on hellos that Node's own TLS client sends.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { parseClientHello, type ClientHello } from '../../src/proxy/client-hello.ts';

/** The first bytes a TLS client sends to a server that never answers. */
async function captureHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const server = net.createServer((socket) => {
    socket.on('data', (chunk) => chunks.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
  client.on('error', () => {});
  try {
    for (let i = 0; i < 200; i++) {
      const data = Buffer.concat(chunks);
      if (parseClientHello(data).state !== 'more') return data;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error('no ClientHello arrived');
  } finally {
    client.destroy();
    server.close();
  }
}

function parsed(data: Buffer): ClientHello {
  const result = parseClientHello(data);
  assert.equal(result.state, 'done', JSON.stringify(result));
  return (result as { hello: ClientHello }).hello;
}

describe('ClientHello parsing', () => {
  it('reads the server name (lower-cased), ALPN list and TLS 1.3 versions', async () => {
    const hello = parsed(await captureHello({ servername: 'API.Example.com', ALPNProtocols: ['h2', 'http/1.1'] }));
    assert.equal(hello.serverName, 'api.example.com');
    assert.deepEqual(hello.alpn, ['h2', 'http/1.1']);
    assert.deepEqual(hello.versions, ['TLSv1.3', 'TLSv1.2']);
    assert.equal(hello.acceptsEcdsa, true);
  });

  it('has no server name when the client sends none', async () => {
    const hello = parsed(await captureHello({}));
    assert.equal(hello.serverName, undefined);
    assert.deepEqual(hello.alpn, []);
  });

  it('sees a client limited to RSA signatures and to TLS 1.2', async () => {
    const hello = parsed(
      await captureHello({ servername: 'rsa.test', maxVersion: 'TLSv1.2', sigalgs: 'RSA-PSS+SHA256:RSA+SHA256', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }),
    );
    assert.equal(hello.acceptsEcdsa, false);
    assert.ok(hello.versions.includes('TLSv1.2'));
    assert.ok(!hello.versions.includes('TLSv1.3'));
  });

  it('asks for more bytes until the whole hello arrived, one byte at a time', async () => {
    const data = await captureHello({ servername: 'slow.test' });
    for (let n = 0; n < data.length; n++) assert.equal(parseClientHello(data.subarray(0, n)).state, 'more', `at ${n} bytes`);
    assert.equal(parsed(data).serverName, 'slow.test');
  });

  it('joins a hello split across two records', async () => {
    const data = await captureHello({ servername: 'split.test', ALPNProtocols: ['h2'] });
    const fragment = data.subarray(5, 5 + data.readUInt16BE(3));
    const cut = 40;
    const record = (part: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]), part]);
    const split = Buffer.concat([record(fragment.subarray(0, cut)), record(fragment.subarray(cut))]);
    const hello = parsed(split);
    assert.equal(hello.serverName, 'split.test');
    assert.deepEqual(hello.alpn, ['h2']);
  });

  it('refuses what is not a ClientHello', () => {
    assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')).state, 'invalid');
    assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).state, 'invalid');
    // A handshake record whose message is a ServerHello.
    assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00])).state, 'invalid');
    // A ClientHello whose declared length is over the limit.
    assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x10, 0x00, 0x00])).state, 'invalid');
    // A truncated body inside a complete record.
    assert.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00, 0x02, 0x03, 0x03])).state, 'invalid');
  });
});
