// referer-restriction: allows (whitelist) or denies (blacklist) requests by the host named in the
// Referer header; `*.example.com` entries match by suffix. APISIX: apisix/plugins/referer-restriction.lua.
import { definePlugin } from '../../api.ts';
import { compileHostMatcher, type StringTest } from '../../lib/matchers.ts';

interface RefererRestrictionConf {
  bypass_missing: boolean;
  whitelist?: string[];
  blacklist?: string[];
  message: string;
}

interface RefererRestrictionState {
  listed: StringTest;
  /** true: only listed hosts pass (whitelist); false: listed hosts are refused (blacklist). */
  allowOnlyListed: boolean;
  body: { message: string };
}

// APISIX's `core.schema.host_def`.
const HOST = { type: 'string', pattern: '^\\*$|^\\*?[0-9a-zA-Z-._\\[\\]:]+$' };

// The URL grammar APISIX reads the Referer with (lua-resty-http's parse_uri): an optional http or
// https scheme, then `//`, then the host (a bracketed IPv6 literal or anything up to `:`, `/`, `?`).
// A Referer that does not fit counts as missing.
const REFERER_URL = /^(?:(https?):)?\/\/([^[\]:/?]+|\[.+\])(?::(\d+))?([^?]*)\??(.*)/s;

export default definePlugin<RefererRestrictionConf, RefererRestrictionState>({
  name: 'referer-restriction',
  version: 0.1,
  priority: 2990,
  schema: {
    type: 'object',
    properties: {
      bypass_missing: { type: 'boolean', default: false },
      whitelist: { type: 'array', items: HOST, minItems: 1 },
      blacklist: { type: 'array', items: HOST, minItems: 1 },
      message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Your referer host is not allowed' },
    },
    oneOf: [{ required: ['whitelist'] }, { required: ['blacklist'] }],
  },

  compile(conf) {
    return {
      listed: compileHostMatcher(conf.whitelist ?? conf.blacklist ?? []),
      allowOnlyListed: conf.whitelist !== undefined,
      body: { message: conf.message },
    };
  },

  phases: {
    access(ctx, conf, state) {
      const referer = ctx.header('referer');
      const host = referer === undefined ? undefined : REFERER_URL.exec(referer)?.[2];
      const blocked = host === undefined ? !conf.bypass_missing : state.listed(host) !== state.allowOnlyListed;
      return blocked ? { status: 403, body: state.body } : undefined;
    },
  },
});
