// TLS termination: certificates from `ssls` chosen by SNI (exact and wildcard, RSA and ECDSA side
// by side), added, replaced and removed live through the Admin API, checked with Node's TLS client
// and with curl.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { startUpstream, waitFor, type Upstream } from '../helpers/gateway.ts';

const execFileAsync = promisify(execFile);

interface Pair {
  cert: string;
  key: string;
}

/** A self-signed certificate for `names` (the first is the CN), RSA or ECDSA, made with openssl. */
function selfSigned(dir: string, file: string, names: string[], type: 'rsa' | 'ec' = 'rsa'): Pair {
  const keyPath = join(dir, `${file}.key`);
  const certPath = join(dir, `${file}.crt`);
  const newkey = type === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync('openssl', [
    'req', '-x509', '-nodes', ...newkey, '-days', '2', '-subj', `/CN=${names[0]}`,
    '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
    '-keyout', keyPath, '-out', certPath,
  ], { stdio: 'ignore' });
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

interface Handshake {
  cn: string | undefined;
  keyType: string | undefined;
  protocol: string | null;
}

/** A TLS handshake with `servername`; resolves with the certificate the gateway chose, rejects when it refuses. */
function handshake(port: number, servername: string | undefined, options: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ...options }, () => {
      const peer = socket.getPeerCertificate();
      socket.end();
      resolve({ cn: peer.subject?.CN as string | undefined, keyType: peer.asn1Curve ? 'ec' : peer.modulus ? 'rsa' : undefined, protocol: socket.getProtocol() });
    });
    socket.once('error', reject);
  });
}

/** What `openssl s_client` prints for a handshake with `servername` (its stdin closed at once). */
async function sClient(port: number, servername: string, extra: string[] = []): Promise<string> {
  const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, ...extra], { encoding: 'utf8', timeout: 10_000 });
  child.stdin?.end();
  let out = '';
  child.stdout?.on('data', (c) => (out += c));
  child.stderr?.on('data', (c) => (out += c));
  await new Promise((resolve) => child.once('close', resolve));
  return out;
}

/** An HTTPS request through the gateway with the given server name. */
function get(port: number, servername: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, servername, headers: { Host: servername }, rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('TLS termination with certificates chosen by SNI', () => {
  let node: AdminGateway;
  let up: Upstream;
  let dir: string;
  let a: Pair;
  let a2: Pair;
  let wild: Pair;
  let dualEc: Pair;
  let dualRsa: Pair;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causeway-tls-'));
    a = selfSigned(dir, 'a', ['a.test']);
    a2 = selfSigned(dir, 'a2', ['a.test', 'second.a.test']);
    wild = selfSigned(dir, 'wild', ['*.wild.test']);
    dualRsa = selfSigned(dir, 'dual-rsa', ['dual.test']);
    dualEc = selfSigned(dir, 'dual-ec', ['dual.test'], 'ec');
    up = await startUpstream();
    node = await startAdminGateway({ workers: 2, tls: true });
    await node.put('/routes/1', { uri: '/*', upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } });
  });

  after(async () => {
    await node?.stop();
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the certificate for the name, proxies over it, and never returns the key', async () => {
    await node.put('/ssls/1', { cert: a.cert, key: a.key, snis: ['a.test'] });
    const hs = await handshake(node.gw.sslPort, 'a.test');
    assert.equal(hs.cn, 'a.test');
    assert.equal(hs.protocol, 'TLSv1.3');
    const r = await get(node.gw.sslPort, 'a.test', '/hello');
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body).headers;
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-forwarded-port'], String(node.gw.sslPort));
    const stored = await node.call('GET', '/ssls/1');
    assert.equal(stored.json.value.key, undefined);
  });

  it('refuses the handshake for a name no SSL has, and without a name', async () => {
    await assert.rejects(handshake(node.gw.sslPort, 'other.test'));
    await assert.rejects(handshake(node.gw.sslPort, undefined));
    // the node keeps serving
    assert.equal((await get(node.gw.sslPort, 'a.test', '/x')).status, 200);
  });

  it('a wildcard covers subdomains, not the bare domain; an exact name beats it', async () => {
    await node.put('/ssls/2', { cert: wild.cert, key: wild.key, snis: ['*.wild.test'] });
    assert.equal((await handshake(node.gw.sslPort, 'x.wild.test')).cn, '*.wild.test');
    assert.equal((await handshake(node.gw.sslPort, 'a.b.wild.test')).cn, '*.wild.test');
    await assert.rejects(handshake(node.gw.sslPort, 'wild.test'));
    await node.put('/ssls/3', { cert: a2.cert, key: a2.key, snis: ['exact.wild.test'] });
    assert.equal((await handshake(node.gw.sslPort, 'exact.wild.test')).cn, 'a.test');
  });

  it('a replaced certificate is served from the next handshake; a removed or disabled one no more', async () => {
    await node.put('/ssls/4', { cert: a2.cert, key: a2.key, snis: ['second.a.test'] });
    const before = await handshake(node.gw.sslPort, 'second.a.test');
    assert.equal(before.cn, 'a.test');
    await node.put('/ssls/4', { cert: wild.cert, key: wild.key, snis: ['second.a.test'] });
    await waitFor(async () => (await handshake(node.gw.sslPort, 'second.a.test')).cn === '*.wild.test', 5000, 'the new certificate');
    await node.put('/ssls/4', { cert: wild.cert, key: wild.key, snis: ['second.a.test'], status: 0 });
    await assert.rejects(handshake(node.gw.sslPort, 'second.a.test'));
    await node.put('/ssls/4', { cert: wild.cert, key: wild.key, snis: ['second.a.test'] });
    await node.del('/ssls/4');
    await assert.rejects(handshake(node.gw.sslPort, 'second.a.test'));
  });

  it('an SSL with RSA and ECDSA pairs serves ECDSA to clients that accept it, RSA to the others', async () => {
    await node.put('/ssls/5', { cert: dualRsa.cert, key: dualRsa.key, certs: [dualEc.cert], keys: [dualEc.key], snis: ['dual.test'] });
    assert.equal((await handshake(node.gw.sslPort, 'dual.test')).keyType, 'ec');
    const rsaOnly = { sigalgs: 'RSA-PSS+SHA256:RSA-PSS+SHA384:RSA+SHA256', maxVersion: 'TLSv1.2' as const, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' };
    assert.equal((await handshake(node.gw.sslPort, 'dual.test', rsaOnly)).keyType, 'rsa');
    assert.equal((await handshake(node.gw.sslPort, 'dual.test', { sigalgs: 'RSA-PSS+SHA256:RSA+SHA256' })).keyType, 'rsa');
    // The order in the SSL does not matter.
    await node.put('/ssls/6', { cert: dualEc.cert, key: dualEc.key, certs: [dualRsa.cert], keys: [dualRsa.key], snis: ['ec.test'] });
    assert.equal((await handshake(node.gw.sslPort, 'ec.test')).keyType, 'ec');
    assert.equal((await handshake(node.gw.sslPort, 'ec.test', rsaOnly)).keyType, 'rsa');
    // openssl s_client sees the same choice.
    assert.match(await sClient(node.gw.sslPort, 'dual.test'), /Server public key is 256 bit/);
    assert.match(await sClient(node.gw.sslPort, 'dual.test', ['-sigalgs', 'RSA-PSS+SHA256:RSA+SHA256']), /Server public key is 2048 bit/);
  });

  it('an SSL\'s ssl_protocols replace the listener\'s for its names only', async () => {
    await node.put('/ssls/7', { cert: a2.cert, key: a2.key, snis: ['modern.test'], ssl_protocols: ['TLSv1.3'] });
    assert.equal((await handshake(node.gw.sslPort, 'modern.test')).protocol, 'TLSv1.3');
    await assert.rejects(handshake(node.gw.sslPort, 'modern.test', { maxVersion: 'TLSv1.2' }));
    // other names keep the listener's TLSv1.2 TLSv1.3
    assert.equal((await handshake(node.gw.sslPort, 'a.test', { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    await node.put('/ssls/8', { cert: a2.cert, key: a2.key, snis: ['legacy.test'], ssl_protocols: ['TLSv1.2'] });
    assert.equal((await handshake(node.gw.sslPort, 'legacy.test')).protocol, 'TLSv1.2');
  });

  it('a name no SSL covers gets an unrecognized_name alert (openssl s_client), and the node keeps serving', async () => {
    const out = await sClient(node.gw.sslPort, 'nobody.test');
    assert.match(out, /unrecognized name|alert number 112/i);
    assert.equal((await get(node.gw.sslPort, 'a.test', '/after-alert')).status, 200);
  });

  it('no handshake fails while a certificate is replaced over and over', async () => {
    await node.put('/ssls/9', { cert: a2.cert, key: a2.key, snis: ['busy.test'] });
    const pairs = [a2, wild, dualRsa, dualEc];
    let failures = 0;
    let done = 0;
    const seen = new Set<string>();
    let writing = true;
    const clients = Array.from({ length: 4 }, async () => {
      while (writing && done < 2000) {
        try {
          const hs = await handshake(node.gw.sslPort, 'busy.test');
          seen.add(hs.cn ?? '');
        } catch {
          failures++;
        }
        done++;
      }
    });
    for (let i = 1; i <= 12; i++) {
      const pair = pairs[i % pairs.length];
      await node.put('/ssls/9', { cert: pair.cert, key: pair.key, snis: ['busy.test'] });
    }
    writing = false;
    await Promise.all(clients);
    assert.equal(failures, 0, `${failures} of ${done} handshakes failed`);
    assert.ok(seen.size >= 2, `certificates seen: ${[...seen].join(', ')}`);
  });

  it('TLS 1.1 is refused by default (apisix.ssl.ssl_protocols)', async () => {
    await assert.rejects(handshake(node.gw.sslPort, 'a.test', { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }));
  });

  it('curl gets the page over HTTPS by name', async () => {
    // asynchronously: the upstream answering curl lives in this process
    const { stdout } = await execFileAsync('curl', ['-sk', '--resolve', `a.test:${node.gw.sslPort}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code}', `https://a.test:${node.gw.sslPort}/curl`], { encoding: 'utf8' });
    assert.equal(stdout, '200');
  });
});

describe('TLS: apisix.ssl.fallback_sni', () => {
  let node: AdminGateway;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causeway-tls-'));
    node = await startAdminGateway({ workers: 2, tls: true, config: { apisix: { ssl: { fallback_sni: 'fallback.test' } } } });
  });

  after(async () => {
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a client that sends no server name gets the fallback name\'s certificate, once an SSL covers it', async () => {
    await assert.rejects(handshake(node.gw.sslPort, undefined));
    const fallback = selfSigned(dir, 'fallback', ['fallback.test']);
    await node.put('/ssls/f', { cert: fallback.cert, key: fallback.key, snis: ['fallback.test'] });
    for (let i = 0; i < 4; i++) assert.equal((await handshake(node.gw.sslPort, undefined)).cn, 'fallback.test');
    // a name no SSL covers still fails: the fallback is for clients without a name only
    await assert.rejects(handshake(node.gw.sslPort, 'other.test'));
    await node.del('/ssls/f');
    await assert.rejects(handshake(node.gw.sslPort, undefined));
  });
});
