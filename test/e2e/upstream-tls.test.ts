// HTTPS to the nodes: a client certificate presented from `tls.client_cert`/`client_key`, and the
// node's certificate checked with `tls.verify` against the system store or
// apisix.ssl.ssl_trusted_certificate. Certificates are made with openssl, the node is a Node HTTPS
// server that asks for client certificates.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startAdminGateway, type AdminGateway } from '../helpers/admin.ts';
import { request, waitFor } from '../helpers/gateway.ts';

/** A CA, and a certificate it signs for `cn` (with `san` as subjectAltName). */
function makeCerts(dir: string): { caPath: string; ca: string; server: { cert: string; key: string }; client: { cert: string; key: string }; other: { cert: string; key: string } } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=test-ca', '-days', '2']);
  const signed = (name: string, cn: string, san: string) => {
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
    return { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
  };
  return {
    caPath: join(dir, 'ca.crt'),
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    server: signed('server', 'localhost', 'DNS:localhost,IP:127.0.0.1'),
    client: signed('client', 'gateway-client', 'DNS:gateway-client'),
    other: signed('other', 'other-client', 'DNS:other-client'),
  };
}

describe('HTTPS to the nodes: client certificates and verification', () => {
  let dir: string;
  let certs: ReturnType<typeof makeCerts>;
  let node: https.Server;
  let nodeAddr: string;
  let gw: AdminGateway;
  let trusting: AdminGateway;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'causeway-upstream-tls-'));
    certs = makeCerts(dir);
    // The node asks for a client certificate and says what it got.
    node = https.createServer({ ...certs.server, ca: certs.ca, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      res.end(JSON.stringify({ authorized: socket.authorized, cn: peer?.subject?.CN ?? null }));
    });
    await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve));
    nodeAddr = `127.0.0.1:${(node.address() as AddressInfo).port}`;
    gw = await startAdminGateway();
    trusting = await startAdminGateway({ config: { apisix: { ssl: { ssl_trusted_certificate: certs.caPath } } } });
  });

  after(async () => {
    await gw?.stop();
    await trusting?.stop();
    node?.closeAllConnections();
    await new Promise<void>((resolve) => (node ? node.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const upstream = (tls?: Record<string, unknown>) => ({ scheme: 'https', type: 'roundrobin', nodes: { [nodeAddr]: 1 }, ...(tls ? { tls } : {}) });

  it('without tls settings: HTTPS without a client certificate, the node\'s certificate not checked', async () => {
    await gw.put('/routes/1', { uri: '/plain', upstream: upstream() });
    const r = await request(gw.gw.url('/plain'));
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { authorized: false, cn: null });
  });

  it('presents tls.client_cert / client_key to the node', async () => {
    await gw.put('/routes/2', { uri: '/mtls', upstream: upstream({ client_cert: certs.client.cert, client_key: certs.client.key }) });
    const r = await request(gw.gw.url('/mtls'));
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { authorized: true, cn: 'gateway-client' });
  });

  it('tls.verify refuses a node whose certificate the system store does not trust: 502', async () => {
    await gw.put('/routes/3', { uri: '/verify', upstream: upstream({ verify: true }) });
    assert.equal((await request(gw.gw.url('/verify'))).status, 502);
    // the worker's log line travels through stderr: it may arrive after the answer
    await waitFor(() => /upstream error: [^\n]*(self-signed|unable to|certificate)/i.test(gw.gw.output()), 5000, 'the verification failure in the log');
  });

  it('tls.verify accepts it with apisix.ssl.ssl_trusted_certificate naming its CA', async () => {
    await trusting.put('/routes/3', { uri: '/verify', upstream: upstream({ verify: true, client_cert: certs.client.cert, client_key: certs.client.key }) });
    const r = await request(trusting.gw.url('/verify'));
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { authorized: true, cn: 'gateway-client' });
  });

  it('tls.client_cert_id presents the certificate of a `client` SSL, and follows that SSL when it changes', async () => {
    await gw.put('/ssls/c1', { type: 'client', cert: certs.client.cert, key: certs.client.key });
    await gw.put('/routes/4', { uri: '/by-id', upstream: upstream({ client_cert_id: 'c1' }) });
    let r = await request(gw.gw.url('/by-id'));
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { authorized: true, cn: 'gateway-client' });
    // The same SSL id with another certificate: the next connections present the new one.
    await gw.put('/ssls/c1', { type: 'client', cert: certs.other.cert, key: certs.other.key });
    r = await request(gw.gw.url('/by-id'));
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { authorized: true, cn: 'other-client' });
  });

  it('tls.client_cert_id is checked on write: a missing SSL or one of type server is refused', async () => {
    let r = await gw.call('PUT', '/routes/5', { uri: '/missing', upstream: upstream({ client_cert_id: 'nope' }) });
    assert.equal(r.status, 400);
    assert.equal(r.json.error_msg, 'failed to fetch ssl info by ssl id [nope], response code: 404');
    await gw.put('/ssls/s1', { cert: certs.server.cert, key: certs.server.key, snis: ['localhost'] });
    r = await gw.call('PUT', '/routes/5', { uri: '/server-type', upstream: upstream({ client_cert_id: 's1' }) });
    assert.equal(r.status, 400);
    assert.equal(r.json.error_msg, 'failed to fetch ssl info by ssl id [s1], wrong ssl type');
  });

  it('an upstream whose client SSL is gone answers 502 and says why in the log', async () => {
    await gw.put('/ssls/c2', { type: 'client', cert: certs.client.cert, key: certs.client.key });
    await gw.put('/routes/6', { uri: '/gone', upstream: upstream({ client_cert_id: 'c2' }) });
    assert.equal((await request(gw.gw.url('/gone'))).status, 200);
    const del = await gw.call('DELETE', '/ssls/c2');
    assert.equal(del.status, 200, del.text);
    await waitFor(async () => (await request(gw.gw.url('/gone'))).status === 502, 5000, 'a 502 once the SSL is deleted');
    await waitFor(() => gw.gw.output().includes('failed to get ssl cert: ssl id [c2] not exits'), 5000, 'the reason in the log');
  });
});
