// key-auth: a consumer authenticates with an API key sent in a header (default `apikey`), or in
// the query string when the header is absent, or as `Authorization: Bearer <key>` with
// `bearer_token`. apache/apisix: apisix/plugins/key-auth.lua.
import { definePlugin, type ConsumerCredential, type PluginContext } from '../../api.ts';
import {
  buildAuthIndex,
  challenge,
  failOrAnonymous,
  hideQueryArg,
  queryCredential,
  requestHeader,
  type AuthIndex,
} from '../../lib/auth.ts';

const NAME = 'key-auth';
const BEARER_PREFIX = 'Bearer ';

interface KeyAuthConf {
  header: string;
  query: string;
  realm: string;
  hide_credentials: boolean;
  bearer_token: boolean;
  anonymous_consumer?: string;
}

interface KeyAuthCredential {
  key: string;
}

interface KeyAuthState {
  /** Lower-case name of the header the key is read from. */
  header: string;
  /** `WWW-Authenticate` value of this instance's 401 answers. */
  challenge: string;
}

type KeyIndex = AuthIndex<ConsumerCredential<KeyAuthCredential>>;

/** The credential the request carries, or the message to answer with. */
function findCredential(ctx: PluginContext, conf: KeyAuthConf, state: KeyAuthState, index: KeyIndex | undefined): ConsumerCredential<KeyAuthCredential> | string {
  let fromHeader = true;
  let key: string | string[] | undefined = requestHeader(ctx, state.header);
  if (key === undefined) {
    key = queryCredential(ctx, conf.query);
    fromHeader = false;
  }
  if (key === undefined) return 'Missing API key in request';
  if (conf.bearer_token && fromHeader) {
    if (!(key as string).startsWith(BEARER_PREFIX)) return 'Invalid Bearer token format';
    key = (key as string).slice(BEARER_PREFIX.length);
  }
  const entry = typeof key === 'string' ? index?.byKey.get(key) : undefined;
  if (!entry) return 'Invalid API key in request';
  if (conf.hide_credentials) {
    if (fromHeader) ctx.setHeader(state.header, undefined);
    else hideQueryArg(ctx, conf.query);
  }
  return entry;
}

export default definePlugin<KeyAuthConf, KeyAuthState, KeyIndex>({
  name: NAME,
  version: 0.1,
  priority: 2500,
  type: 'auth',
  schema: {
    type: 'object',
    properties: {
      header: { type: 'string', default: 'apikey' },
      query: { type: 'string', default: 'apikey' },
      realm: { type: 'string', default: 'key' },
      hide_credentials: { type: 'boolean', default: false },
      bearer_token: { type: 'boolean', default: false },
      anonymous_consumer: { type: 'string', minLength: 1 },
    },
  },
  consumerSchema: {
    type: 'object',
    properties: {
      key: { type: 'string' },
    },
    required: ['key'],
  },
  compile(conf) {
    return {
      header: conf.bearer_token ? 'authorization' : conf.header.toLowerCase(),
      challenge: challenge(conf.bearer_token ? 'Bearer' : 'apikey', conf.realm),
    };
  },
  indexConsumers(entries) {
    return buildAuthIndex<KeyAuthCredential, ConsumerCredential<KeyAuthCredential>>(entries, (c) => c.key, (e) => e);
  },
  phases: {
    rewrite(ctx, conf, state) {
      const index = ctx.consumerIndex<KeyIndex>(NAME);
      const found = findCredential(ctx, conf, state, index);
      if (typeof found === 'string') return failOrAnonymous(ctx, NAME, index, conf, found, state.challenge);
      ctx.attachConsumer(found);
      return undefined;
    },
  },
});
