// ua-restriction: allows (allowlist) or denies (denylist) requests by regexes found in the
// User-Agent header. APISIX: apisix/plugins/ua-restriction.lua.
import { definePlugin } from '../../api.ts';
import { checkPcreList, compileRegexList, type StringTest } from '../../lib/matchers.ts';

interface UaRestrictionConf {
  bypass_missing: boolean;
  allowlist?: string[];
  denylist?: string[];
  message: string;
}

interface UaRestrictionState {
  listed: StringTest;
  /** true: only listed agents pass (allowlist); false: listed agents are refused (denylist). */
  allowOnlyListed: boolean;
  body: { message: string };
}

const RULES = { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } };

export default definePlugin<UaRestrictionConf, UaRestrictionState>({
  name: 'ua-restriction',
  version: 0.1,
  priority: 2999,
  schema: {
    type: 'object',
    properties: {
      bypass_missing: { type: 'boolean', default: false },
      allowlist: RULES,
      denylist: RULES,
      message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Not allowed' },
    },
    oneOf: [{ required: ['allowlist'] }, { required: ['denylist'] }],
  },

  check(conf) {
    return checkPcreList(conf.allowlist) ?? checkPcreList(conf.denylist);
  },

  compile(conf) {
    return {
      listed: compileRegexList(conf.allowlist ?? conf.denylist ?? []),
      allowOnlyListed: conf.allowlist !== undefined,
      body: { message: conf.message },
    };
  },

  phases: {
    access(ctx, conf, state) {
      const agent = ctx.header('user-agent');
      if (agent === undefined) return conf.bypass_missing ? undefined : { status: 403, body: state.body };
      // APISIX strips surrounding whitespace before matching.
      if (state.listed(agent.trim()) !== state.allowOnlyListed) return { status: 403, body: state.body };
      return undefined;
    },
  },
});
