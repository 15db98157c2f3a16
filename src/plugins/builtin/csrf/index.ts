// csrf: double-submit-cookie protection. Every response carries a fresh signed token in a cookie;
// an unsafe request (anything but GET, HEAD, OPTIONS) must send the same token back in a header,
// and the token's signature and age are checked. APISIX: apisix/plugins/csrf.lua.
//
// The token is APISIX's: base64 of `{"sign":..,"random":..,"expires":<issue time>}`, signed with
// sha256 over `{expires:<t>,random:<r>,key:<key>}` with numbers written as Lua writes them, so
// tokens issued by APISIX and by Causeway with the same key are interchangeable.
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { definePlugin, type PhaseExit } from '../../api.ts';

interface CsrfConf {
  key: string;
  expires: number;
  name: string;
}

interface CsrfState {
  /** Header names to look the token up by: the name lower-cased, then with `_` read as `-` (as nginx's header table does). */
  headerNames: readonly string[];
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const NO_HEADER_TOKEN: PhaseExit = { status: 401, body: { error_msg: 'no csrf token in headers' } };
const NO_COOKIE: PhaseExit = { status: 401, body: { error_msg: 'no csrf cookie' } };
const MISMATCH: PhaseExit = { status: 401, body: { error_msg: 'csrf token mismatch' } };
const BAD_SIGNATURE: PhaseExit = { status: 401, body: { error_msg: 'Failed to verify the csrf token signature' } };

/** A number as Lua's tostring and cjson write it (`%.14g`). */
export function luaNumberText(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  if (n === 0) return Object.is(n, -0) ? '-0' : '0';
  const [mantissa, exponentText] = n.toExponential(13).split('e');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 14) {
    const sign = exponent < 0 ? '-' : '+';
    return `${stripZeros(mantissa)}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return stripZeros(n.toFixed(13 - exponent));
}

function stripZeros(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

function sign(random: string, expires: string, key: string): string {
  return createHash('sha256').update(`{expires:${expires},random:${random},key:${key}}`).digest('hex');
}

/** Lua concatenates numbers and strings alike; anything else makes APISIX fail the check. */
function concatText(value: unknown): string | undefined {
  if (typeof value === 'number') return luaNumberText(value);
  if (typeof value === 'string') return value;
  return undefined;
}

/** A new token issued at `now` (seconds). */
export function issueToken(key: string, now: number): string {
  // A random number in (0, 1), written with the 14 significant digits Lua keeps; the signature
  // covers that text, which reads back to the same text when the token is checked.
  const randomText = luaNumberText(randomInt(1, 2 ** 47) / 2 ** 47);
  const expires = luaNumberText(now);
  return Buffer.from(`{"sign":"${sign(randomText, expires, key)}","random":${randomText},"expires":${expires}}`).toString('base64');
}

/** Whether `token` is a well-formed token signed with `key` and not older than `maxAge` seconds (0: no limit). */
export function verifyToken(token: string, key: string, maxAge: number, now: number): boolean {
  let fields: unknown;
  try {
    fields = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
  } catch {
    return false;
  }
  if (fields === null || typeof fields !== 'object') return false;
  const { random, expires, sign: given } = fields as Record<string, unknown>;
  const randomText = concatText(random);
  if (randomText === undefined || typeof expires !== 'number' || typeof given !== 'string') return false;
  if (maxAge > 0 && now - expires > maxAge) return false;
  const expected = Buffer.from(sign(randomText, luaNumberText(expires), key));
  const actual = Buffer.from(given);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** nginx's cookie date (`ngx.cookie_time`): `Thu, 18-Nov-10 11:27:35 GMT`, four-digit years after 2037. */
export function cookieTime(seconds: number): string {
  const d = new Date(seconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  const year = d.getUTCFullYear();
  return `${DAYS[d.getUTCDay()]}, ${two(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${year > 2037 ? year : two(year % 100)} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} GMT`;
}

export default definePlugin<CsrfConf, CsrfState>({
  name: 'csrf',
  version: 0.1,
  priority: 2980,
  schema: {
    type: 'object',
    properties: {
      key: { type: 'string', description: 'use to generate csrf token' },
      expires: { type: 'integer', default: 7200, description: 'expires time(s) for csrf token' },
      name: { type: 'string', default: 'apisix-csrf-token', description: 'the csrf token name' },
    },
    required: ['key'],
  },

  compile(conf) {
    const lower = conf.name.toLowerCase();
    const dashed = lower.replace(/_/g, '-');
    return { headerNames: dashed === lower ? [lower] : [lower, dashed] };
  },

  phases: {
    access(ctx, conf, state) {
      if (SAFE_METHODS.has(ctx.method)) return undefined;
      let headerToken: string | undefined;
      for (const name of state.headerNames) if ((headerToken = ctx.header(name)) !== undefined) break;
      if (!headerToken) return NO_HEADER_TOKEN;
      const cookieToken = ctx.cookies.get(conf.name);
      if (cookieToken === undefined) return NO_COOKIE;
      if (headerToken !== cookieToken) return MISMATCH;
      if (!verifyToken(cookieToken, conf.key, conf.expires, Math.floor(Date.now() / 1000))) return BAD_SIGNATURE;
      return undefined;
    },

    header_filter(ctx, conf) {
      const now = Math.floor(Date.now() / 1000);
      ctx.response.headers.add('Set-Cookie', `${conf.name}=${issueToken(conf.key, now)};path=/;SameSite=Lax;Expires=${cookieTime(now + conf.expires)}`);
    },
  },
});
