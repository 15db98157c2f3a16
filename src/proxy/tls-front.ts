// The TLS listener's first step: read the ClientHello, pick the SSL object by server name, then
// hand the connection to a TLS server made for that SSL's certificate (RSA or ECDSA, whichever the
// client accepts), protocol range and client-certificate policy. This is what APISIX does in its
// client-hello and certificate phases; Node's SNI callback alone comes too late to change the
// protocol versions or the client-certificate request, and serves one key type per context.
import { constants, type X509Certificate } from 'node:crypto';
import type net from 'node:net';
import type tls from 'node:tls';
import { certificateFor, type ServedCertificate, type ServedSsl, type SniIndex } from '../snapshot/ssl.ts';
import { MAX_CLIENT_HELLO, parseClientHello } from './client-hello.ts';

/** apisix.ssl: accepted protocol versions, ciphers, session tickets, the name for clients that send none. */
export interface TlsSettings {
  minVersion: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  maxVersion: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  ciphers: string | undefined;
  sessionTickets: boolean;
  /** apisix.ssl.fallback_sni: the SSL served to clients that send no server name. */
  fallbackSni?: string;
}

export const DEFAULT_TLS: TlsSettings = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: undefined, sessionTickets: false };

/** Makes the (non-listening) TLS server that serves one certificate of one SSL. */
export type TlsServerFactory = (options: tls.TlsOptions, ssl: ServedSsl) => tls.Server;

/** A fatal `unrecognized_name` alert (RFC 6066 §3): the answer to a name no SSL covers. */
const UNRECOGNIZED_NAME_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

export class TlsFront {
  readonly #settings: TlsSettings;
  readonly #factory: TlsServerFactory;
  readonly #sslIndex: () => SniIndex;
  readonly #helloTimeoutMs: number;
  readonly #log: (level: 'info' | 'error', message: string) => void;
  /** One server per served certificate object: a replaced SSL brings new objects, so new servers. */
  readonly #servers = new WeakMap<ServedCertificate, tls.Server>();

  constructor(settings: TlsSettings, factory: TlsServerFactory, sslIndex: () => SniIndex, helloTimeoutMs: number, log: (level: 'info' | 'error', message: string) => void) {
    this.#settings = settings;
    this.#factory = factory;
    this.#sslIndex = sslIndex;
    this.#helloTimeoutMs = helloTimeoutMs;
    this.#log = log;
  }

  /** Takes a new TCP connection of a TLS listener. */
  accept(socket: net.Socket): void {
    let received: Buffer = Buffer.alloc(0);
    const done = (): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.setTimeout(0);
      socket.off('timeout', onTimeout);
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const result = parseClientHello(received);
      if (result.state === 'more') {
        if (received.length > MAX_CLIENT_HELLO + 1024) {
          done();
          socket.destroy();
        }
        return;
      }
      done();
      if (result.state === 'invalid') {
        this.#log('info', `TLS handshake failed for ${socket.remoteAddress}: ${result.reason}`);
        socket.destroy();
        return;
      }
      const name = result.hello.serverName ?? this.#settings.fallbackSni;
      const ssl = name === undefined ? undefined : this.#sslIndex().find(name);
      if (!ssl) {
        // APISIX logs an unknown name as an error; a client without SNI is routine (scanners, health probes).
        if (name === undefined) this.#log('info', `TLS handshake failed for ${socket.remoteAddress}: no SNI sent and no fallback_sni`);
        else this.#log('error', `failed to find any SSL certificate by SNI: ${name}`);
        socket.end(UNRECOGNIZED_NAME_ALERT);
        return;
      }
      socket.pause();
      socket.unshift(received);
      this.#serverFor(ssl, certificateFor(ssl, result.hello.acceptsEcdsa)).emit('connection', socket);
    };
    const onEnd = (): void => {
      done();
      socket.destroy();
    };
    const onTimeout = (): void => {
      done();
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.setTimeout(this.#helloTimeoutMs, onTimeout);
  }

  #serverFor(ssl: ServedSsl, certificate: ServedCertificate): tls.Server {
    let server = this.#servers.get(certificate);
    if (!server) {
      server = this.#factory(this.#serverOptions(ssl, certificate), ssl);
      this.#servers.set(certificate, server);
    }
    return server;
  }

  #serverOptions(ssl: ServedSsl, certificate: ServedCertificate): tls.TlsOptions {
    const s = this.#settings;
    const client = ssl.client;
    return {
      cert: certificate.cert,
      key: certificate.key,
      minVersion: ssl.protocols?.min ?? s.minVersion,
      maxVersion: ssl.protocols?.max ?? s.maxVersion,
      ciphers: s.ciphers,
      secureOptions: s.sessionTickets ? 0 : constants.SSL_OP_NO_TICKET,
      // Mutual TLS: without skip_mtls_uri_regex a client without a valid certificate fails the
      // handshake; with it, the handshake completes and each request is checked against the list.
      ...(client ? { ca: client.ca, requestCert: true, rejectUnauthorized: client.skip === undefined } : {}),
    };
  }
}

/**
 * The client-certificate check of one request on a TLS connection (APISIX's verify_https_client):
 * a request outside `skip_mtls_uri_regex` needs a verified certificate, and a request whose Host
 * names an SSL with mutual TLS must have used that name as its SNI, so a certificate checked for
 * one name never opens another. Returns the reason to refuse (400), or undefined.
 */
export function clientCertificateRefusal(socket: tls.TLSSocket, served: ServedSsl, uri: string, host: string, sslIndex: SniIndex, servername: string | undefined): string | undefined {
  const client = served.client;
  if (client?.skip && !client.skip.some((re) => re.test(uri)) && !socket.authorized) {
    return socket.authorizationError === undefined || isNoCertificate(socket) ? 'client certificate was not present' : `client certificate verification is not passed: ${socket.authorizationError}`;
  }
  const forHost = sslIndex.find(host);
  if (forHost?.client && servername !== host) return `client certificate verified with SNI ${servername}, but the host is ${host}`;
  return undefined;
}

function isNoCertificate(socket: tls.TLSSocket): boolean {
  return Object.keys(socket.getPeerCertificate()).length === 0;
}

/**
 * `client.depth`: OpenSSL counts the certificates above the client's own in the verified chain, so
 * one the CA signed directly has depth 1. Node verifies the chain but has no depth setting and
 * shows a server only the client's own certificate, so the chain is rebuilt from the CA bundle:
 * exact while every issuer is in the bundle; an issuer the client sent itself (an intermediate not
 * in the bundle) counts as one level more than those found, the least it can be.
 */
export function chainDepth(socket: tls.TLSSocket, bundle: readonly X509Certificate[]): number {
  let current = socket.getPeerX509Certificate();
  if (!current) return 0;
  for (let depth = 1; depth <= 16; depth++) {
    const cert: X509Certificate = current;
    const issuer = bundle.find((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
    if (!issuer) return depth + 1;
    if (issuer.checkIssued(issuer)) return depth;
    current = issuer;
  }
  return Infinity;
}
