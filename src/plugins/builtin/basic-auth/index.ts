// basic-auth: a consumer authenticates with `Authorization: Basic base64(username:password)`.
// apache/apisix: apisix/plugins/basic-auth.lua.
import { definePlugin, type ConsumerCredential, type PluginContext } from '../../api.ts';
import { buildAuthIndex, challenge, decodeBase64Strict, failOrAnonymous, requestHeader, sameSecret, type AuthIndex } from '../../lib/auth.ts';

const NAME = 'basic-auth';

interface BasicAuthConf {
  hide_credentials: boolean;
  realm: string;
  anonymous_consumer?: string;
}

interface BasicAuthCredential {
  username: string;
  password: string;
}

interface BasicAuthState {
  challenge: string;
}

type BasicIndex = AuthIndex<ConsumerCredential<BasicAuthCredential>>;

/** The scheme is searched anywhere in the value, as APISIX's unanchored `Basic\s(.+)` does. */
const BASIC_VALUE = /Basic\s(.+)/;
/** PCRE's `\s` without Unicode: APISIX removes these from both halves. */
const ASCII_SPACES = /[ \t\n\v\f\r]+/g;

/** `{username, password}` from the header value, or why it cannot be read (logged, not sent). */
export function parseBasicAuthorization(value: string): { username: string; password: string } | string {
  const m = BASIC_VALUE.exec(value);
  if (!m) return 'Invalid authorization header format';
  const decoded = decodeBase64Strict(m[1]);
  if (!decoded) return `Failed to decode authentication header: ${m[1]}`;
  const text = decoded.toString('utf8');
  // Everything after the first colon is the password (RFC 7617), colons included.
  const colon = text.indexOf(':');
  if (colon === -1) return `Split authorization err: invalid decoded data: ${text}`;
  return {
    username: text.slice(0, colon).replace(ASCII_SPACES, ''),
    password: text.slice(colon + 1).replace(ASCII_SPACES, ''),
  };
}

function findCredential(ctx: PluginContext, index: BasicIndex | undefined): ConsumerCredential<BasicAuthCredential> | string {
  const header = requestHeader(ctx, 'authorization');
  if (header === undefined) return 'Missing authorization in request';
  const parsed = parseBasicAuthorization(header);
  if (typeof parsed === 'string') {
    ctx.log('warn', parsed);
    return 'Invalid authorization in request';
  }
  const entry = index?.byKey.get(parsed.username);
  if (!entry) {
    ctx.log('warn', 'failed to find user: invalid user');
    return 'Invalid user authorization';
  }
  if (!sameSecret(entry.conf.password, parsed.password)) return 'Invalid user authorization';
  return entry;
}

export default definePlugin<BasicAuthConf, BasicAuthState, BasicIndex>({
  name: NAME,
  version: 0.1,
  priority: 2520,
  type: 'auth',
  schema: {
    type: 'object',
    title: 'work with route or service object',
    properties: {
      hide_credentials: { type: 'boolean', default: false },
      realm: { type: 'string', default: 'basic' },
      anonymous_consumer: { type: 'string', minLength: 1 },
    },
  },
  consumerSchema: {
    type: 'object',
    title: 'work with consumer object',
    properties: {
      username: { type: 'string' },
      password: { type: 'string' },
    },
    required: ['username', 'password'],
  },
  compile(conf) {
    return { challenge: challenge('Basic', conf.realm) };
  },
  indexConsumers(entries) {
    return buildAuthIndex<BasicAuthCredential, ConsumerCredential<BasicAuthCredential>>(entries, (c) => c.username, (e) => e);
  },
  phases: {
    rewrite(ctx, conf, state) {
      const index = ctx.consumerIndex<BasicIndex>(NAME);
      const found = findCredential(ctx, index);
      if (typeof found === 'string') {
        const exit = failOrAnonymous(ctx, NAME, index, conf, found, state.challenge);
        if (exit) return exit;
      } else {
        ctx.attachConsumer(found);
      }
      if (conf.hide_credentials) ctx.setHeader('authorization', undefined);
      return undefined;
    },
  },
});
