// Mutual TLS with downstream clients: an SSL's `client.ca`, `client.depth` and
// `client.skip_mtls_uri_regex`, checked with Node's TLS client, curl and openssl s_client against
// certificate chains openssl makes (a root CA, an intermediate, and a CA nobody trusts).
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { startUpstream, waitFor, type Upstream } from '../helpers/gateway.ts';

const execFileAsync = promisify(execFile);

interface Pair {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

/** Root and intermediate CAs, a CA nobody trusts, and certificates each of them signs. */
function makePki(dir: string) {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const read = (name: string): Pair => ({
    cert: readFileSync(join(dir, `${name}.crt`), 'utf8'),
    key: readFileSync(join(dir, `${name}.key`), 'utf8'),
    certPath: join(dir, `${name}.crt`),
    keyPath: join(dir, `${name}.key`),
  });
  const selfSignedCa = (name: string) => run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2']);
  const sign = (name: string, cn: string, ca: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  };
  selfSignedCa('root');
  selfSignedCa('stranger');
  sign('intermediate', 'intermediate', 'root', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  sign('server', 'mtls.test', 'root', 'subjectAltName=DNS:mtls.test,DNS:open.mtls.test,DNS:plain.test,DNS:deep.test\n');
  sign('client', 'alice', 'root', 'extendedKeyUsage=clientAuth\n');
  sign('deep-client', 'bob', 'intermediate', 'extendedKeyUsage=clientAuth\n');
  sign('stranger-client', 'mallory', 'stranger', 'extendedKeyUsage=clientAuth\n');
  const deep = read('deep-client');
  // The client sends its chain: its own certificate, then the intermediate's.
  writeFileSync(join(dir, 'deep-chain.crt'), deep.cert + readFileSync(join(dir, 'intermediate.crt'), 'utf8'));
  return {
    root: read('root'),
    server: read('server'),
    client: read('client'),
    deepChain: { ...deep, cert: readFileSync(join(dir, 'deep-chain.crt'), 'utf8'), certPath: join(dir, 'deep-chain.crt') },
    stranger: read('stranger-client'),
  };
}

interface Answer {
  status: number;
  body: string;
}

/** An HTTPS request with a server name, a Host and optionally a client certificate. */
function get(port: number, servername: string, path: string, client?: Pair, host = servername): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, servername, headers: { Host: host }, rejectUnauthorized: false, agent: false, cert: client?.cert, key: client?.key },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.once('error', reject);
    req.end();
  });
}

describe('mutual TLS with downstream clients (ssl.client)', () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  let up: Upstream;
  let node: AdminGateway;
  let port: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causeway-mtls-'));
    pki = makePki(dir);
    up = await startUpstream();
    node = await startAdminGateway({ workers: 2, tls: true });
    port = node.gw.sslPort;
    await node.put('/routes/1', { uri: '/*', upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } });
    const server = { cert: pki.server.cert, key: pki.server.key };
    await node.put('/ssls/strict', { ...server, snis: ['mtls.test'], client: { ca: pki.root.cert } });
    await node.put('/ssls/open', { ...server, snis: ['open.mtls.test'], client: { ca: pki.root.cert, skip_mtls_uri_regex: ['^/public/.*'] } });
    await node.put('/ssls/plain', { ...server, snis: ['plain.test'] });
    await node.put('/ssls/deep', { ...server, snis: ['deep.test'], client: { ca: pki.root.cert, depth: 2 } });
  });

  after(async () => {
    await node?.stop();
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a client certificate the CA signed gets through', async () => {
    const r = await get(port, 'mtls.test', '/hello', pki.client);
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).url, '/hello');
  });

  it('no certificate, or one from another CA, fails the handshake', async () => {
    await assert.rejects(get(port, 'mtls.test', '/hello'));
    await assert.rejects(get(port, 'mtls.test', '/hello', pki.stranger));
    // the node keeps serving the good client
    assert.equal((await get(port, 'mtls.test', '/again', pki.client)).status, 200);
  });

  it('client.depth: a certificate under an intermediate needs depth 2 (the default is 1)', async () => {
    await assert.rejects(get(port, 'mtls.test', '/deep', pki.deepChain));
    assert.equal((await get(port, 'deep.test', '/deep', pki.deepChain)).status, 200);
    assert.equal((await get(port, 'deep.test', '/deep', pki.client)).status, 200);
  });

  it('skip_mtls_uri_regex: matching URIs need no certificate, the others get 400', async () => {
    assert.equal((await get(port, 'open.mtls.test', '/public/page')).status, 200);
    const refused = await get(port, 'open.mtls.test', '/private');
    assert.equal(refused.status, 400);
    assert.match(refused.body, /400 Bad Request/);
    await waitFor(() => node.gw.output().includes('client certificate was not present'), 5000, 'the reason in the log');
    assert.equal((await get(port, 'open.mtls.test', '/private', pki.client)).status, 200);
    // a certificate that does not verify is no better than none outside the list
    assert.equal((await get(port, 'open.mtls.test', '/private', pki.stranger)).status, 400);
    await waitFor(() => node.gw.output().includes('client certificate verification is not passed'), 5000, 'the reason in the log');
    assert.equal((await get(port, 'open.mtls.test', '/public/x', pki.stranger)).status, 200);
  });

  it('a Host that names an mTLS SSL must have been the SNI: 400 otherwise', async () => {
    // handshake as plain.test (no client certificate asked), then ask for mtls.test
    const r = await get(port, 'plain.test', '/sneak', undefined, 'mtls.test');
    assert.equal(r.status, 400);
    await waitFor(() => node.gw.output().includes('client certificate verified with SNI plain.test, but the host is mtls.test'), 5000, 'the reason in the log');
    // the plain name itself is served without a certificate
    assert.equal((await get(port, 'plain.test', '/fine')).status, 200);
  });

  it('curl with --cert gets through; openssl s_client without one is refused in the handshake', async () => {
    const args = ['-sk', '--resolve', `mtls.test:${port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code}'];
    const ok = await execFileAsync('curl', [...args, '--cert', pki.client.certPath, '--key', pki.client.keyPath, `https://mtls.test:${port}/curl`], { encoding: 'utf8' });
    assert.equal(ok.stdout, '200');
    const refused = await execFileAsync('curl', [...args, `https://mtls.test:${port}/curl`], { encoding: 'utf8' }).then(
      () => undefined,
      (err: { code: number }) => err.code,
    );
    assert.ok(refused !== undefined && refused !== 0, 'curl without a certificate must fail');
    const child = execFile('openssl', ['s_client', '-ign_eof', '-connect', `127.0.0.1:${port}`, '-servername', 'mtls.test'], { encoding: 'utf8', timeout: 10_000 });
    let out = '';
    child.stdout?.on('data', (c) => (out += c));
    child.stderr?.on('data', (c) => (out += c));
    child.stdin?.end('GET / HTTP/1.1\r\nHost: mtls.test\r\n\r\n');
    await new Promise((resolve) => child.once('close', resolve));
    assert.match(out, /Acceptable client certificate CA names[\s\S]*CN ?= ?root/);
    assert.match(out, /certificate required|alert number 116|handshake failure/i);
  });
});
