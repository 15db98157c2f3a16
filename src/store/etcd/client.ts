// A small client for etcd's v3 gRPC-gateway JSON API (what APISIX's lua-resty-etcd speaks): POST
// JSON to /v3/..., several endpoints used one at a time with failover, endpoints that fail marked
// unhealthy for a while, optional username/password auth with a token re-fetched when etcd refuses
// it, and long-lived streaming requests for watches. Transport failures surface as
// StoreUnavailableError; errors etcd itself answers with surface as EtcdError.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { log } from '../../util/log.ts';
import { StoreUnavailableError } from '../types.ts';
import { JsonObjectSplitter } from './codec.ts';

export interface EtcdTlsOptions {
  /** Client certificate: a PEM file path (or PEM text). */
  cert?: string;
  /** Client key: a PEM file path (or PEM text). */
  key?: string;
  /** CA bundle to verify etcd with: a PEM file path (or PEM text); default: Node's CA store. */
  ca?: string;
  /** Verify etcd's certificate (default true). */
  verify?: boolean;
  /** SNI / name to verify; defaults to the URL's host. */
  sni?: string;
}

export interface EtcdClientOptions {
  hosts: string[];
  /** Connect/read/write timeout of one request, and of a watch until etcd answers it. */
  timeoutMs: number;
  /** How long an endpoint that failed is passed over while others remain. */
  unhealthyMs: number;
  user?: string;
  password?: string;
  tls?: EtcdTlsOptions;
}

/** etcd answered with an error (a gRPC status in the JSON body). */
export class EtcdError extends Error {
  override name = 'EtcdError';
  readonly status: number;
  /** gRPC status code (3 invalid argument, 9 failed precondition, 11 out of range, 16 unauthenticated…). */
  readonly code: number;
  constructor(message: string, status: number, code: number) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The endpoint could not be reached or did not answer usefully. */
class EndpointError extends Error {
  override name = 'EndpointError';
  /** The request may have reached etcd (so retrying a non-idempotent one elsewhere is unsafe). */
  readonly sent: boolean;
  readonly errno: string | undefined;
  constructor(message: string, sent: boolean, errno?: string) {
    super(message);
    this.sent = sent;
    this.errno = errno;
  }
}

export interface Endpoint {
  url: URL;
  unhealthyUntil: number;
}

export interface CallOptions {
  /** Safe to send again to another endpoint after an ambiguous failure (default true). */
  idempotent?: boolean;
  /** Use only this endpoint (a watch's liveness probe). */
  endpoint?: Endpoint;
}

export interface StreamHandlers {
  onMessage(message: unknown): void;
  /** The stream ended or broke (not called after abort()). */
  onClose(error: Error, endpoint: Endpoint): void;
}

export interface EtcdStream {
  readonly endpoint: Endpoint;
  abort(): void;
}

/** A gRPC status message that means "get a new token". */
export function isAuthFailure(message: string): boolean {
  return /invalid auth token|user name is empty|revision of auth store is old|auth: revision in header is old/.test(message);
}

const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const KEEPALIVE_MS = 10_000;

export class EtcdClient {
  readonly endpoints: Endpoint[];
  private readonly options: EtcdClientOptions;
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent: https.Agent | undefined;
  private readonly tlsOptions: { rejectUnauthorized: boolean; cert?: string | Buffer; key?: string | Buffer; ca?: string | Buffer; servername?: string };
  private readonly inflight = new Set<http.ClientRequest>();
  private current = 0;
  private token: string | undefined;
  private tokenPromise: Promise<string | undefined> | undefined;
  private closed = false;
  /** Whether the last attempt to reach an endpoint succeeded. */
  lastOk = true;

  constructor(options: EtcdClientOptions) {
    if (!Array.isArray(options.hosts) || options.hosts.length === 0) throw new TypeError('etcd: at least one host is required');
    this.options = options;
    this.endpoints = options.hosts.map((h) => {
      if (!/^https?:\/\//.test(h)) throw new TypeError(`etcd: host ${JSON.stringify(h)} must start with http:// or https://`);
      return { url: new URL(h), unhealthyUntil: 0 };
    });
    const tls = options.tls ?? {};
    this.tlsOptions = {
      rejectUnauthorized: tls.verify !== false,
      ...(tls.cert ? { cert: pem(tls.cert) } : {}),
      ...(tls.key ? { key: pem(tls.key) } : {}),
      ...(tls.ca ? { ca: pem(tls.ca) } : {}),
      ...(tls.sni ? { servername: tls.sni } : {}),
    };
    this.httpsAgent = this.endpoints.some((e) => e.url.protocol === 'https:') ? new https.Agent({ keepAlive: true, ...this.tlsOptions }) : undefined;
  }

  get hasCredentials(): boolean {
    return this.options.user !== undefined && this.options.user !== '';
  }

  /** One JSON request; fails over across endpoints and re-authenticates once when the token is refused. */
  async call<T>(path: string, body: unknown, options: CallOptions = {}): Promise<T> {
    const payload = JSON.stringify(body);
    let retriedAuth = false;
    for (;;) {
      const token = await this.getToken();
      try {
        return await this.withEndpoints((ep) => this.exchangeRetrying(ep, path, payload, token), options) as T;
      } catch (err) {
        if (err instanceof EtcdError && this.hasCredentials && !retriedAuth && isAuthFailure(err.message)) {
          this.invalidateToken(token);
          retriedAuth = true;
          continue;
        }
        throw err;
      }
    }
  }

  /** Opens a streaming request (a watch); resolves once etcd has answered with 200. */
  async stream(path: string, body: unknown, handlers: StreamHandlers): Promise<EtcdStream> {
    const payload = JSON.stringify(body);
    const token = await this.getToken();
    return this.withEndpoints((ep) => this.streamOnce(ep, path, payload, token, handlers), { idempotent: true });
  }

  /** A stream on `endpoint` broke: pass it over for a while. */
  streamFailed(endpoint: Endpoint, error: Error): void {
    this.markBad(endpoint, error);
    this.lastOk = false;
  }

  invalidateToken(used?: string): void {
    if (used === undefined || this.token === used) this.token = undefined;
  }

  close(): void {
    this.closed = true;
    for (const req of this.inflight) req.destroy(new EndpointError('etcd store closed', true));
    this.inflight.clear();
    this.httpAgent.destroy();
    this.httpsAgent?.destroy();
  }

  // ---- endpoints ---------------------------------------------------------------------------

  /** Healthy endpoints from the current one on (round robin), then the unhealthy ones, soonest-back first. */
  private order(): Endpoint[] {
    const now = Date.now();
    const n = this.endpoints.length;
    const rotated = Array.from({ length: n }, (_, i) => this.endpoints[(this.current + i) % n]);
    const healthy = rotated.filter((e) => e.unhealthyUntil <= now);
    const unhealthy = rotated.filter((e) => e.unhealthyUntil > now).sort((a, b) => a.unhealthyUntil - b.unhealthyUntil);
    return [...healthy, ...unhealthy];
  }

  private async withEndpoints<R>(fn: (ep: Endpoint) => Promise<R>, options: CallOptions): Promise<R> {
    if (this.closed) throw new StoreUnavailableError('etcd store is closed');
    const candidates = options.endpoint ? [options.endpoint] : this.order();
    let last: EndpointError | undefined;
    for (const ep of candidates) {
      try {
        const result = await fn(ep);
        this.markOk(ep);
        return result;
      } catch (err) {
        if (this.closed) throw new StoreUnavailableError('etcd store is closed', { cause: err });
        if (!(err instanceof EndpointError)) {
          // etcd answered (with an error): the endpoint is alive.
          this.markOk(ep);
          throw err;
        }
        this.markBad(ep, err);
        last = err;
        if (err.sent && options.idempotent === false) break;
      }
    }
    this.lastOk = false;
    const hosts = candidates.map((e) => e.url.origin).join(', ');
    throw new StoreUnavailableError(`etcd unavailable (${hosts}): ${last?.message ?? 'no endpoint'}`, { cause: last });
  }

  private markOk(ep: Endpoint): void {
    if (ep.unhealthyUntil > 0) log('info', `etcd endpoint ${ep.url.origin} is reachable again`);
    ep.unhealthyUntil = 0;
    this.current = this.endpoints.indexOf(ep);
    this.lastOk = true;
  }

  private markBad(ep: Endpoint, err: Error): void {
    const now = Date.now();
    if (ep.unhealthyUntil <= now) log('warn', `etcd endpoint ${ep.url.origin} failed: ${err.message}`);
    ep.unhealthyUntil = now + this.options.unhealthyMs;
    if (this.endpoints[this.current] === ep) this.current = (this.current + 1) % this.endpoints.length;
  }

  // ---- auth --------------------------------------------------------------------------------

  private getToken(): Promise<string | undefined> {
    if (!this.hasCredentials) return Promise.resolve(undefined);
    if (this.token !== undefined) return Promise.resolve(this.token);
    this.tokenPromise ??= this.authenticate().finally(() => {
      this.tokenPromise = undefined;
    });
    return this.tokenPromise;
  }

  private async authenticate(): Promise<string> {
    const payload = JSON.stringify({ name: this.options.user, password: this.options.password ?? '' });
    try {
      const res = await this.withEndpoints((ep) => this.exchangeRetrying(ep, '/v3/auth/authenticate', payload, undefined), {}) as { token?: string };
      this.token = res.token ?? '';
    } catch (err) {
      if (err instanceof EtcdError && /authentication is not enabled/.test(err.message)) {
        this.token = ''; // credentials configured, auth off in etcd: go without a token
      } else if (err instanceof EtcdError) {
        throw new StoreUnavailableError(`etcd authentication as ${JSON.stringify(this.options.user)} failed: ${err.message}`, { cause: err });
      } else {
        throw err;
      }
    }
    return this.token;
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private requestOptions(ep: Endpoint, path: string, payload: string, token: string | undefined, agent: http.Agent | false): http.RequestOptions {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
    if (token) headers.authorization = token;
    const basePath = ep.url.pathname.replace(/\/+$/, '');
    return {
      ...(ep.url.protocol === 'https:' ? this.tlsOptions : {}),
      host: ep.url.hostname.replace(/^\[|\]$/g, ''),
      port: ep.url.port || (ep.url.protocol === 'https:' ? 443 : 80),
      method: 'POST',
      path: basePath + path,
      headers,
      agent,
    };
  }

  private send(ep: Endpoint, options: http.RequestOptions): http.ClientRequest {
    return ep.url.protocol === 'https:' ? https.request(options) : http.request(options);
  }

  /** A reused keep-alive socket that the server had closed: retry once on a fresh one. */
  private async exchangeRetrying(ep: Endpoint, path: string, payload: string, token: string | undefined): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.exchange(ep, path, payload, token);
      } catch (err) {
        if (!(err instanceof StaleSocketError) || attempt >= 4) throw err;
      }
    }
  }

  private exchange(ep: Endpoint, path: string, payload: string, token: string | undefined): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const agent = ep.url.protocol === 'https:' ? this.httpsAgent! : this.httpAgent;
      const req = this.send(ep, this.requestOptions(ep, path, payload, token, agent));
      this.inflight.add(req);
      let connected = false;
      let done = false;
      const finish = (err: Error | undefined, value?: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.inflight.delete(req);
        if (err) reject(err);
        else resolve(value);
      };
      const timer = setTimeout(() => {
        req.destroy(new EndpointError(`no answer within ${this.options.timeoutMs} ms`, connected, 'ETIMEDOUT'));
      }, this.options.timeoutMs);
      req.on('socket', (socket: Socket) => {
        if (socket.connecting) socket.once('connect', () => { connected = true; });
        else connected = true;
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof EndpointError) return finish(err);
        if (req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) return finish(new StaleSocketError(`${err.code} ${err.message} (reused connection)`, true, err.code));
        const code = err.code;
        finish(new EndpointError(`${code ? code + ' ' : ''}${err.message}`.trim(), connected && !NOT_SENT.has(code ?? ''), code));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => finish(new EndpointError(err.message, true)));
        res.on('close', () => {
          if (!res.complete) finish(new EndpointError('connection closed before the answer was complete', true));
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          let parsed: unknown;
          try {
            parsed = text === '' ? {} : JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          if (status === 200 && parsed !== undefined) return finish(undefined, parsed);
          finish(answerError(status, parsed, text));
        });
      });
      req.end(payload);
    });
  }

  private streamOnce(ep: Endpoint, path: string, payload: string, token: string | undefined, handlers: StreamHandlers): Promise<EtcdStream> {
    return new Promise((resolve, reject) => {
      // Its own connection (not the keep-alive pool): it stays open for as long as the watch runs.
      const req = this.send(ep, this.requestOptions(ep, path, payload, token, false));
      this.inflight.add(req);
      let connected = false;
      let established = false;
      let aborted = false;
      let closed = false;
      const close = (err: Error) => {
        this.inflight.delete(req);
        if (closed || aborted) return;
        closed = true;
        req.destroy();
        if (established) handlers.onClose(err, ep);
        else reject(err);
      };
      const timer = setTimeout(() => {
        req.destroy(new EndpointError(`watch not answered within ${this.options.timeoutMs} ms`, connected, 'ETIMEDOUT'));
      }, this.options.timeoutMs);
      req.on('socket', (socket: Socket) => {
        socket.setKeepAlive(true, KEEPALIVE_MS);
        if (socket.connecting) socket.once('connect', () => { connected = true; });
        else connected = true;
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err instanceof EndpointError) return close(err);
        const code = err.code;
        close(new EndpointError(`${code ? code + ' ' : ''}${err.message}`.trim(), connected && !NOT_SENT.has(code ?? ''), code));
      });
      req.on('response', (res) => {
        clearTimeout(timer);
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = undefined;
            }
            close(answerError(status, parsed, text));
          });
          res.on('error', (err) => close(new EndpointError(err.message, true)));
          return;
        }
        established = true;
        const splitter = new JsonObjectSplitter();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (aborted || closed) return;
          for (const message of splitter.feed(chunk)) {
            if (aborted || closed) return;
            handlers.onMessage(message);
          }
        });
        res.on('end', () => close(new EndpointError('etcd ended the watch stream', true)));
        res.on('error', (err) => close(new EndpointError(`watch stream broke: ${err.message}`, true)));
        res.on('close', () => close(new EndpointError('watch stream closed', true)));
        resolve({
          endpoint: ep,
          abort: () => {
            if (aborted) return;
            aborted = true;
            this.inflight.delete(req);
            req.destroy();
          },
        });
      });
      req.end(payload);
    });
  }
}

/** The server had closed a pooled keep-alive connection: worth one more try on a fresh one. */
class StaleSocketError extends EndpointError {}

/** Classifies a non-200 answer: unavailable/overloaded → endpoint failure, anything else → EtcdError. */
function answerError(status: number, parsed: unknown, text: string): Error {
  const body = (parsed && typeof parsed === 'object' ? parsed : {}) as { error?: unknown; message?: string; code?: number };
  const message = typeof body.message === 'string' ? body.message
    : typeof body.error === 'string' ? body.error
      : text.trim().slice(0, 200) || `HTTP ${status}`;
  const code = typeof body.code === 'number' ? body.code : 0;
  // 14 Unavailable (no leader, stopping), 4 DeadlineExceeded; gateway/proxy 5xx without a gRPC body.
  if (code === 14 || code === 4 || status === 502 || status === 503 || status === 504 || (status >= 500 && parsed === undefined)) {
    return new EndpointError(`HTTP ${status}: ${message}`, true);
  }
  return new EtcdError(message, status, code);
}

function pem(value: string): string | Buffer {
  return value.includes('-----BEGIN') ? value : readFileSync(value);
}
