// Admin API authentication (apache/apisix: apisix/admin/init.lua `check_token`) and the
// `allow_admin` client allow-list (rendered by APISIX as nginx `allow …; deny all;`).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NodeConfig } from '../conf/types.ts';
import { compileIpMatcher, type IpMatcher } from '../util/ip.ts';

export type AdminSection = NonNullable<NodeConfig['deployment']['admin']>;

interface Token {
  digest: Buffer;
  role: 'admin' | 'viewer';
}

export interface AdminAuth {
  /** undefined: no token check (admin_key_required: false, or no admin_key at all). */
  tokens: Token[] | undefined;
  /** A key generated for an empty `admin_key[].key`, for the caller to print once. */
  generatedKey: string | undefined;
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Resolves the configured keys; an empty key gets a random 32-character token (APISIX does the same at start). */
export function prepareAuth(admin: AdminSection | undefined): AdminAuth {
  if (!admin || admin.admin_key_required === false || !admin.admin_key) return { tokens: undefined, generatedKey: undefined };
  let generatedKey: string | undefined;
  const tokens: Token[] = [];
  for (const entry of admin.admin_key) {
    let key = entry.key === undefined || entry.key === null ? '' : String(entry.key);
    if (key === '') {
      key = randomBytes(16).toString('hex');
      generatedKey ??= key;
    }
    tokens.push({ digest: digest(key), role: entry.role === 'viewer' ? 'viewer' : 'admin' });
  }
  return { tokens, generatedKey };
}

/** The request's token: query `api_key`, then header `X-API-KEY`, then cookie `x_api_key`. */
export function requestToken(req: IncomingMessage, query: URLSearchParams): string | undefined {
  const fromQuery = query.get('api_key');
  if (fromQuery !== null) return fromQuery;
  const header = req.headers['x-api-key'];
  if (typeof header === 'string') return header;
  const cookie = req.headers.cookie;
  if (cookie) {
    for (const part of cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      if (part.slice(0, eq).trim() !== 'x_api_key') continue;
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return undefined;
}

/** undefined when allowed, else APISIX's `description` for the 401 body. */
export function checkToken(auth: AdminAuth, req: IncomingMessage, query: URLSearchParams): string | undefined {
  if (!auth.tokens) return undefined;
  const token = requestToken(req, query);
  if (token === undefined) return 'missing apikey';
  const given = digest(token);
  // Compare against every key in constant time, so timing says nothing about which one matched.
  let match: Token | undefined;
  for (const t of auth.tokens) if (timingSafeEqual(t.digest, given) && !match) match = t;
  if (!match) return 'wrong apikey';
  if (match.role === 'viewer' && req.method !== 'GET') return 'invalid method for role viewer';
  return undefined;
}

export function unauthorized(description: string) {
  return { status: 401, body: { error_msg: 'failed to check token', description } };
}

/** Compiles `allow_admin`; undefined when the key is absent (every client allowed). Throws on a bad entry. */
export function compileAllowList(admin: AdminSection | undefined): IpMatcher | undefined {
  const list = admin?.allow_admin;
  if (!list) return undefined;
  if (list.length === 0) return () => false;
  return compileIpMatcher(list);
}

/** The socket's address with IPv4-mapped IPv6 unwrapped (`::ffff:127.0.0.1` → `127.0.0.1`). */
export function clientAddress(req: IncomingMessage): string {
  const addr = req.socket.remoteAddress ?? '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}
