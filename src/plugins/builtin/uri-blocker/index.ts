// uri-blocker: refuses requests whose URI matches any of a list of regexes.
// APISIX: apisix/plugins/uri-blocker.lua.
import { definePlugin, type PhaseExit } from '../../api.ts';
import { checkPcreList, compileRegexList, type StringTest } from '../../lib/matchers.ts';

interface UriBlockerConf {
  block_rules: string[];
  rejected_code: number;
  rejected_msg?: string;
  case_insensitive: boolean;
}

interface UriBlockerState {
  blocked: StringTest;
  exit: PhaseExit;
}

export default definePlugin<UriBlockerConf, UriBlockerState>({
  name: 'uri-blocker',
  version: 0.1,
  priority: 2900,
  schema: {
    type: 'object',
    properties: {
      block_rules: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 4096 }, uniqueItems: true },
      rejected_code: { type: 'integer', minimum: 200, default: 403 },
      rejected_msg: { type: 'string', minLength: 1 },
      case_insensitive: { type: 'boolean', default: false },
    },
    required: ['block_rules'],
  },

  check(conf) {
    return checkPcreList(conf.block_rules);
  },

  compile(conf) {
    return {
      // APISIX joins the rules into one alternation; with no rules that is the empty pattern,
      // which is found in every URI.
      blocked: conf.block_rules.length === 0 ? () => true : compileRegexList(conf.block_rules, conf.case_insensitive),
      // Without rejected_msg the exit has no body and the client gets the gateway's error page.
      exit: conf.rejected_msg === undefined ? { status: conf.rejected_code } : { status: conf.rejected_code, body: { error_msg: conf.rejected_msg } },
    };
  },

  phases: {
    rewrite(ctx, _conf, state) {
      // APISIX matches its `request_uri` variable, which it rebuilds from the normalised path and
      // the raw query string, so `/./internal` cannot slip past `^/internal/`.
      const query = ctx.queryString;
      const subject = query === '' ? ctx.uri : `${ctx.uri}?${query}`;
      return state.blocked(subject) ? { ...state.exit } : undefined;
    },
  },
});
