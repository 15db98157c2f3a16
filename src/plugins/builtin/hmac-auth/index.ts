// hmac-auth: a consumer signs the request (draft-cavage HTTP signatures) and sends
// `Authorization: Signature keyId="...",algorithm="hmac-sha256",headers="@request-target date",signature="<base64>"`.
// The gateway rebuilds the signing string from the listed headers, checks the HMAC with the
// consumer's secret, the `Date` (or `X-Date`) against `clock_skew`, the required
// `signed_headers`, and optionally the body against a `Digest: SHA-256=<base64>` header.
// apache/apisix: apisix/plugins/hmac-auth.lua.
import { createHash, createHmac } from 'node:crypto';
import { definePlugin, type ConsumerCredential, type PhaseOutcome, type PluginContext } from '../../api.ts';
import {
  buildAuthIndex,
  challenge,
  decodeBase64Strict,
  failOrAnonymous,
  requestHeader,
  sameSecret,
  type AuthIndex,
} from '../../lib/auth.ts';

const NAME = 'hmac-auth';
const ALGORITHMS = ['hmac-sha1', 'hmac-sha256', 'hmac-sha512'];
const DIGESTS: Record<string, string> = { 'hmac-sha1': 'sha1', 'hmac-sha256': 'sha256', 'hmac-sha512': 'sha512' };

interface HmacAuthConf {
  allowed_algorithms: string[];
  clock_skew: number;
  signed_headers?: string[];
  validate_request_body: boolean;
  max_req_body_size: number;
  hide_credentials: boolean;
  realm: string;
  anonymous_consumer?: string;
}

interface HmacCredential {
  key_id: string;
  secret_key: string;
}

interface HmacState {
  allowed: ReadonlySet<string>;
  challenge: string;
}

type HmacIndex = AuthIndex<ConsumerCredential<HmacCredential>>;

/** The fields of a `Signature ...` authorization value. */
export interface SignatureParams {
  keyId?: string;
  algorithm?: string;
  signature?: string;
  headers?: string[];
}

/** A `key="value"` field, searched anywhere in the comma-separated part as APISIX's Lua pattern does (`%w` has no `_`). */
const FIELD = /\s*([A-Za-z0-9]+)="(.*?)"/;

/** The signature fields, or why the header cannot carry them. */
export function parseSignatureAuthorization(value: string | undefined): SignatureParams | string {
  if (value === undefined) return 'missing Authorization header';
  if (!value.startsWith('Signature')) return "Authorization header does not start with 'Signature'";
  const params: SignatureParams = {};
  for (const part of value.slice('Signature'.length).split(',')) {
    const m = FIELD.exec(part);
    if (!m) continue;
    const [, key, fieldValue] = m;
    if (key === 'keyId' || key === 'algorithm' || key === 'signature') params[key] = fieldValue;
    else if (key === 'headers') params.headers = fieldValue.split(' ');
  }
  return params;
}

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };
const RFC1123 = /^[A-Za-z]+, (\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850 = /^[A-Za-z]+, (\d{1,2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME = /^[A-Za-z]+ ([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/** Seconds since the epoch of an HTTP date in one of the three forms nginx's `ngx.parse_http_time` reads. */
export function parseHttpTime(text: string): number | undefined {
  let parts: { day: string; month: string; year: number; time: string[] } | undefined;
  let m: RegExpExecArray | null;
  if ((m = RFC1123.exec(text))) parts = { day: m[1], month: m[2], year: Number(m[3]), time: m.slice(4, 7) };
  else if ((m = RFC850.exec(text))) {
    const yy = Number(m[3]);
    parts = { day: m[1], month: m[2], year: yy < 70 ? 2000 + yy : 1900 + yy, time: m.slice(4, 7) };
  } else if ((m = ASCTIME.exec(text))) parts = { day: m[2], month: m[1], year: Number(m[6]), time: m.slice(3, 6) };
  const month = parts && MONTHS[parts.month];
  if (!parts || month === undefined) return undefined;
  const [h, mi, s] = parts.time.map(Number);
  const ms = Date.UTC(parts.year, month, Number(parts.day), h, mi, s);
  return Number.isNaN(ms) ? undefined : ms / 1000;
}

/** The string the client signed: keyId, then `name: value` per listed header (`@request-target` is `METHOD /target`), each line ending in `\n`. */
export function signingString(ctx: PluginContext, params: SignatureParams): string {
  let out = `${params.keyId}\n`;
  for (const name of params.headers ?? []) {
    const value = name === '' ? undefined : requestHeader(ctx, name.toLowerCase());
    if (value !== undefined) out += `${name}: ${value}\n`;
    else if (name === '@request-target') out += `${ctx.method} ${ctx.requestUri || '/'}\n`;
  }
  return out;
}

/** Why the signature does not authenticate `entry` (logged, never sent), or undefined when it does. */
function signatureError(ctx: PluginContext, conf: HmacAuthConf, state: HmacState, params: SignatureParams, entry: ConsumerCredential<HmacCredential>): string | undefined {
  if (!state.allowed.has(params.algorithm!)) return 'Invalid algorithm';
  const dateHeader = requestHeader(ctx, 'date') ?? requestHeader(ctx, 'x-date');
  if (dateHeader === undefined) return 'Date header missing. failed to validate clock skew';
  const time = parseHttpTime(dateHeader);
  if (time === undefined) return 'Invalid GMT format time';
  if (Math.abs(Math.floor(Date.now() / 1000) - time) > conf.clock_skew) return 'Clock skew exceeded';
  if (conf.signed_headers && conf.signed_headers.length > 0) {
    if (!params.headers) return 'headers missing';
    const signed = new Set(params.headers);
    for (const header of conf.signed_headers) if (!signed.has(header)) return `expected header "${header}" missing in signing`;
  }
  const given = decodeBase64Strict(params.signature!);
  const expected = createHmac(DIGESTS[params.algorithm!], entry.conf.secret_key).update(signingString(ctx, params)).digest();
  if (!given || !sameSecret(given, expected)) return 'Invalid signature';
  return undefined;
}

/** Checks the body against `Digest: SHA-256=<base64>`; 413 when it is larger than allowed. */
async function digestOutcome(ctx: PluginContext, conf: HmacAuthConf): Promise<'ok' | 'invalid' | 'too-large'> {
  const digest = requestHeader(ctx, 'digest');
  if (digest === undefined) return 'invalid';
  const declared = Number(requestHeader(ctx, 'content-length'));
  if (declared > conf.max_req_body_size) return 'too-large';
  const body = await ctx.readBody();
  if (body.length > conf.max_req_body_size) return 'too-large';
  return digest === `SHA-256=${createHash('sha256').update(body).digest('base64')}` ? 'ok' : 'invalid';
}

function accept(ctx: PluginContext, conf: HmacAuthConf, entry: ConsumerCredential<HmacCredential>): PhaseOutcome {
  if (conf.hide_credentials) ctx.setHeader('authorization', undefined);
  ctx.attachConsumer(entry);
  return undefined;
}

export default definePlugin<HmacAuthConf, HmacState, HmacIndex>({
  name: NAME,
  version: 0.1,
  priority: 2530,
  type: 'auth',
  schema: {
    type: 'object',
    title: 'work with route or service object',
    properties: {
      allowed_algorithms: {
        type: 'array',
        minItems: 1,
        items: { type: 'string', enum: ALGORITHMS },
        default: ALGORITHMS,
      },
      clock_skew: { type: 'integer', default: 300, minimum: 1 },
      signed_headers: {
        type: 'array',
        items: { type: 'string', minLength: 1, maxLength: 50 },
      },
      validate_request_body: {
        type: 'boolean',
        title: 'A boolean value telling the plugin to enable body validation',
        default: false,
      },
      max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
      hide_credentials: { type: 'boolean', default: false },
      realm: { type: 'string', default: 'hmac' },
      anonymous_consumer: { type: 'string', minLength: 1 },
    },
  },
  consumerSchema: {
    type: 'object',
    title: 'work with consumer object',
    properties: {
      key_id: { type: 'string', minLength: 1, maxLength: 256 },
      secret_key: { type: 'string', minLength: 1, maxLength: 256 },
    },
    required: ['key_id', 'secret_key'],
  },
  compile(conf) {
    return { allowed: new Set(conf.allowed_algorithms), challenge: challenge('hmac', conf.realm) };
  },
  indexConsumers(entries) {
    return buildAuthIndex<HmacCredential, ConsumerCredential<HmacCredential>>(entries, (c) => c.key_id, (e) => e);
  },
  phases: {
    rewrite(ctx, conf, state) {
      const index = ctx.consumerIndex<HmacIndex>(NAME);
      const fail = (message: string) => {
        const exit = failOrAnonymous(ctx, NAME, index, conf, message, state.challenge);
        if (exit) return exit;
        if (conf.hide_credentials) ctx.setHeader('authorization', undefined);
        return undefined;
      };
      const params = parseSignatureAuthorization(requestHeader(ctx, 'authorization'));
      if (typeof params === 'string') {
        ctx.log('warn', `client request can't be validated: ${params}`);
        return fail(`client request can't be validated: ${params}`);
      }
      let reason: string | undefined;
      let entry: ConsumerCredential<HmacCredential> | undefined;
      if (!params.keyId || !params.signature) reason = 'keyId or signature missing';
      else if (!params.algorithm) reason = 'algorithm missing';
      else if (!(entry = index?.byKey.get(params.keyId))) reason = 'Invalid key_id';
      else reason = signatureError(ctx, conf, state, params, entry);
      if (reason) {
        ctx.log('warn', `client request can't be validated: ${reason}`);
        return fail("client request can't be validated");
      }
      if (!conf.validate_request_body) return accept(ctx, conf, entry!);
      return digestOutcome(ctx, conf).then((outcome) => {
        if (outcome === 'too-large') return { status: 413 };
        if (outcome === 'ok') return accept(ctx, conf, entry!);
        ctx.log('warn', "client request can't be validated: Invalid digest");
        return fail("client request can't be validated");
      });
    },
  },
});
