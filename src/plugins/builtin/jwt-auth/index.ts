// jwt-auth: a consumer authenticates with a signed JWT (JWS compact form) read from a header
// (default `Authorization`, `Bearer ` optional), the query string or a cookie. The claim named by
// `key_claim_name` picks the consumer, whose secret (HS*) or public key (RS*, PS*, ES*, EdDSA)
// must verify the signature; `exp` and `nbf` are then checked. apache/apisix:
// apisix/plugins/jwt-auth.lua, apisix/plugins/jwt-auth/parser.lua.
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import { definePlugin, type ConsumerCredential, type PhaseOutcome, type PluginContext } from '../../api.ts';
import {
  buildAuthIndex,
  challenge,
  decodeBase64Strict,
  failOrAnonymous,
  hideCookie,
  hideQueryArg,
  queryCredential,
  requestHeader,
  type AuthIndex,
} from '../../lib/auth.ts';

const NAME = 'jwt-auth';

const HS_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'EdDSA'];

interface JwtAuthConf {
  header: string;
  query: string;
  cookie: string;
  hide_credentials: boolean;
  key_claim_name: string;
  store_in_ctx: boolean;
  realm: string;
  anonymous_consumer?: string;
  claims_to_verify: Array<'exp' | 'nbf'>;
}

interface JwtAuthCredential {
  key: string;
  secret?: string;
  public_key?: string;
  algorithm: string;
  exp: number;
  base64_secret: boolean;
  lifetime_grace_period: number;
}

/** A consumer's verification material, prepared once per consumer change. */
interface JwtVerifier {
  credential: ConsumerCredential<JwtAuthCredential>;
  /** Undefined when the configured key cannot be used (every token then fails to verify). */
  key: Uint8Array | KeyObject | undefined;
  /**
   * The token algorithms this key may verify: its own family (HS*, RS/PS*, ES*, EdDSA). APISIX
   * verifies with whatever `alg` the token names; keeping to the key's family closes the
   * HS-with-a-public-key confusion while accepting every token APISIX accepts legitimately.
   */
  algorithms: string[];
}

type JwtIndex = AuthIndex<JwtVerifier>;

interface JwtAuthState {
  header: string;
  challenge: string;
}

function algorithmFamily(algorithm: string): string[] {
  if (algorithm.startsWith('HS')) return HS_ALGORITHMS;
  if (algorithm.startsWith('RS') || algorithm.startsWith('PS')) return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
  if (algorithm.startsWith('ES')) return ['ES256', 'ES384', 'ES512'];
  return ['EdDSA'];
}

function prepareVerifier(entry: ConsumerCredential<JwtAuthCredential>): JwtVerifier {
  const conf = entry.conf;
  let key: Uint8Array | KeyObject | undefined;
  if (conf.algorithm.startsWith('HS')) {
    if (typeof conf.secret === 'string') key = conf.base64_secret ? decodeBase64Strict(conf.secret) : Buffer.from(conf.secret);
  } else if (typeof conf.public_key === 'string') {
    try {
      key = createPublicKey(conf.public_key);
    } catch {
      key = undefined;
    }
  }
  return { credential: entry, key, algorithms: algorithmFamily(conf.algorithm) };
}

/** The token as sent, hiding it from the upstream request when asked; undefined when there is none. */
function fetchToken(ctx: PluginContext, conf: JwtAuthConf, state: JwtAuthState): string | string[] | undefined {
  const fromHeader = requestHeader(ctx, state.header);
  if (fromHeader !== undefined) {
    if (conf.hide_credentials) ctx.setHeader(state.header, undefined);
    const prefix = fromHeader.slice(0, 7);
    return prefix === 'Bearer ' || prefix === 'bearer ' ? fromHeader.slice(7) : fromHeader;
  }
  const fromQuery = queryCredential(ctx, conf.query);
  if (fromQuery !== undefined) {
    if (conf.hide_credentials) hideQueryArg(ctx, conf.query);
    return fromQuery;
  }
  const fromCookie = ctx.cookies.get(conf.cookie);
  if (fromCookie !== undefined && conf.hide_credentials) hideCookie(ctx, conf.cookie);
  return fromCookie;
}

const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

function decodeJsonSegment(segment: string): unknown {
  if (!BASE64URL.test(segment)) return undefined;
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The payload of a JWS compact token, or why it is not one (logged). */
export function readJwtPayload(token: string): Record<string, unknown> | string {
  const parts = token.split('.');
  if (parts.length !== 3) return 'invalid jwt string';
  const header = decodeJsonSegment(parts[0]);
  if (!header || typeof header !== 'object' || Array.isArray(header)) return 'invalid header';
  const payload = decodeJsonSegment(parts[1]);
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) return 'invalid payload';
  return payload as Record<string, unknown>;
}

/** nginx's `ngx.http_time`: `Thu, 01 Jan 1970 00:00:00 GMT`. */
function httpTime(seconds: number): string {
  return new Date(seconds * 1000).toUTCString();
}

/**
 * `exp` and `nbf` as APISIX checks them: only the listed claims, only when present, a number,
 * `nbf` strictly before now + grace and `exp` strictly after now - grace (whole seconds).
 */
export function verifyClaims(payload: Record<string, unknown>, claims: readonly string[], grace: number, now = Math.floor(Date.now() / 1000)): string | undefined {
  for (const name of claims) {
    const value = payload[name];
    if (value === undefined || value === null || value === false) continue;
    if (typeof value !== 'number') return `claim ${name} is not a number`;
    if (name === 'nbf' && !(value < now + grace)) return `'nbf' claim not valid until ${httpTime(value)}`;
    if (name === 'exp' && !(value > now - grace)) return `'exp' claim expired at ${httpTime(value)}`;
  }
  return undefined;
}

async function verifyAndAttach(
  ctx: PluginContext,
  conf: JwtAuthConf,
  state: JwtAuthState,
  index: JwtIndex | undefined,
  verifier: JwtVerifier,
  token: string,
  payload: Record<string, unknown>,
): Promise<PhaseOutcome> {
  let reason: string | undefined;
  if (!verifier.key) {
    reason = 'failed to verify jwt: the consumer key cannot be used';
  } else {
    try {
      await compactVerify(token, verifier.key, { algorithms: verifier.algorithms });
      const claimError = verifyClaims(payload, conf.claims_to_verify, verifier.credential.conf.lifetime_grace_period);
      if (claimError) reason = `failed to verify jwt: ${claimError}`;
    } catch (err) {
      reason = `failed to verify jwt: ${(err as Error).message}`;
    }
  }
  if (reason) {
    ctx.log('warn', reason);
    return failOrAnonymous(ctx, NAME, index, conf, 'failed to verify jwt', state.challenge);
  }
  if (conf.store_in_ctx) ctx.state.set('jwt_auth_payload', payload);
  ctx.attachConsumer(verifier.credential);
  return undefined;
}

export default definePlugin<JwtAuthConf, JwtAuthState, JwtIndex>({
  name: NAME,
  version: 0.1,
  priority: 2510,
  type: 'auth',
  schema: {
    type: 'object',
    properties: {
      header: { type: 'string', default: 'authorization' },
      query: { type: 'string', default: 'jwt' },
      cookie: { type: 'string', default: 'jwt' },
      hide_credentials: { type: 'boolean', default: false },
      key_claim_name: { type: 'string', default: 'key', minLength: 1 },
      store_in_ctx: { type: 'boolean', default: false },
      realm: { type: 'string', default: 'jwt' },
      anonymous_consumer: { type: 'string', minLength: 1 },
      claims_to_verify: {
        type: 'array',
        items: { type: 'string', enum: ['exp', 'nbf'] },
        uniqueItems: true,
        default: ['exp', 'nbf'],
      },
    },
  },
  consumerSchema: {
    type: 'object',
    properties: {
      key: { type: 'string', minLength: 1 },
      secret: { type: 'string', minLength: 1 },
      algorithm: { type: 'string', enum: [...HS_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS], default: 'HS256' },
      exp: { type: 'integer', minimum: 1, default: 86400 },
      base64_secret: { type: 'boolean', default: false },
      lifetime_grace_period: { type: 'integer', minimum: 0, default: 0 },
    },
    dependencies: {
      algorithm: {
        oneOf: [
          { properties: { algorithm: { enum: HS_ALGORITHMS } } },
          {
            properties: { public_key: { type: 'string' }, algorithm: { enum: ASYMMETRIC_ALGORITHMS } },
            required: ['public_key'],
          },
        ],
      },
    },
    required: ['key'],
  },
  check(conf, kind) {
    if (kind !== 'consumer') return undefined;
    const c = conf as unknown as JwtAuthCredential;
    const isHs = c.algorithm.startsWith('HS');
    if ((c.algorithm === 'HS256' || c.algorithm === 'HS512') && c.secret === undefined) {
      return 'property "secret" is required when "algorithm" is "HS256" or "HS512"';
    }
    if (isHs && c.secret === undefined) {
      // As APISIX does: a random secret nobody knows, so such a consumer cannot authenticate.
      c.secret = randomBytes(32).toString('base64');
    } else if (c.base64_secret && typeof c.secret === 'string' && !decodeBase64Strict(c.secret)) {
      return 'base64_secret required but the secret is not in base64 format';
    }
    if (!isHs && c.public_key === undefined) return 'missing valid public key';
    return undefined;
  },
  compile(conf) {
    return { header: conf.header.toLowerCase(), challenge: challenge('Bearer', conf.realm) };
  },
  indexConsumers(entries) {
    return buildAuthIndex<JwtAuthCredential, JwtVerifier>(entries, (c) => c.key, prepareVerifier);
  },
  phases: {
    rewrite(ctx, conf, state) {
      const index = ctx.consumerIndex<JwtIndex>(NAME);
      const fail = (message: string) => failOrAnonymous(ctx, NAME, index, conf, message, state.challenge);
      const token = fetchToken(ctx, conf, state);
      if (token === undefined) return fail('Missing JWT token in request');
      const payload = typeof token === 'string' ? readJwtPayload(token) : 'invalid jwt string';
      if (typeof payload === 'string') {
        ctx.log('warn', `JWT token invalid: ${payload}`);
        return fail('JWT token invalid');
      }
      const userKey = payload[conf.key_claim_name];
      if (userKey === undefined || userKey === null || userKey === false) return fail('missing user key in JWT token');
      const verifier = typeof userKey === 'string' ? index?.byKey.get(userKey) : undefined;
      if (!verifier) return fail('Invalid user key in JWT token');
      return verifyAndAttach(ctx, conf, state, index, verifier, token as string, payload);
    },
  },
});
