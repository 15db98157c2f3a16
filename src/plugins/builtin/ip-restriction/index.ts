// ip-restriction: lets a request through only when the client address is (whitelist) or is not
// (blacklist) in a list of IPv4/IPv6 addresses and CIDR ranges. APISIX: apisix/plugins/ip-restriction.
import { definePlugin } from '../../api.ts';
import { compileIpMatcher, isValidIpOrCidr, type IpMatcher } from '../../../util/ip.ts';

interface IpRestrictionConf {
  whitelist?: string[];
  blacklist?: string[];
  message: string;
  response_code: number;
}

interface IpRestrictionState {
  /** The listed addresses and ranges (each family matches its own clients only, as resty.ipmatcher). */
  listed: IpMatcher;
  /** true: block what does not match (whitelist); false: block what matches (blacklist). */
  allowOnlyListed: boolean;
  exit: { status: number; body: { message: string } };
}

// APISIX's `core.schema.ip_def`, spelt with patterns only: the schema catches the obvious typos and
// `check` below rejects anything else that is not a real address or range.
const V4 = '(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const IP_ITEM = {
  anyOf: [
    { title: 'IPv4', type: 'string', pattern: `^(${V4}\\.){3}${V4}$` },
    { title: 'IPv4/CIDR', type: 'string', pattern: `^(${V4}\\.){3}${V4}/([12]?[0-9]|3[0-2])$` },
    { title: 'IPv6', type: 'string', pattern: '^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$' },
    { title: 'IPv6/CIDR', type: 'string', pattern: '^([a-fA-F0-9]{0,4}:){1,8}(:[a-fA-F0-9]{0,4}){0,8}([a-fA-F0-9]{0,4})?/[0-9]{1,3}$' },
  ],
};

const NEVER: IpMatcher = () => false;

export default definePlugin<IpRestrictionConf, IpRestrictionState>({
  name: 'ip-restriction',
  version: 0.1,
  priority: 3000,
  schema: {
    type: 'object',
    properties: {
      message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Your IP address is not allowed' },
      response_code: { type: 'integer', minimum: 403, maximum: 404, default: 403 },
      whitelist: { type: 'array', items: IP_ITEM, minItems: 1 },
      blacklist: { type: 'array', items: IP_ITEM, minItems: 1 },
    },
    oneOf: [{ required: ['whitelist'] }, { required: ['blacklist'] }],
  },

  check(conf) {
    for (const item of [...(conf.whitelist ?? []), ...(conf.blacklist ?? [])]) {
      if (!isValidIpOrCidr(item)) return `invalid ip address: ${item}`;
    }
    return undefined;
  },

  compile(conf) {
    const list = conf.whitelist ?? conf.blacklist ?? [];
    return {
      listed: list.length ? compileIpMatcher(list) : NEVER,
      allowOnlyListed: conf.whitelist !== undefined,
      exit: { status: conf.response_code, body: { message: conf.message } },
    };
  },

  phases: {
    access(ctx, _conf, state) {
      const listed = state.listed(ctx.remoteAddr);
      return listed === state.allowOnlyListed ? undefined : { status: state.exit.status, body: state.exit.body };
    },
  },
});
