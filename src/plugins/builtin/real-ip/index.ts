// real-ip: takes the client address from a header or variable (X-Forwarded-For, a query argument,
// ...) and makes it the request's `remote_addr` / `remote_port` for everything that follows.
// Contract: apache/apisix apisix/plugins/real-ip.lua (3.x).
import { isIP } from 'node:net';
import { definePlugin, type PluginContext } from '../../api.ts';
import { compileIpMatcher, isValidIpOrCidr, type IpMatcher } from '../../../util/ip.ts';

// APISIX's `core.schema.ip_def`: an IPv4 or IPv6 address, or either with a prefix.
const ipDef = [
  { title: 'IPv4', type: 'string', format: 'ipv4' },
  { title: 'IPv4/CIDR', type: 'string', pattern: '^([0-9]{1,3}\\.){3}[0-9]{1,3}/([12]?[0-9]|3[0-2])$' },
  { title: 'IPv6', type: 'string', format: 'ipv6' },
  { title: 'IPv6/CIDR', type: 'string', pattern: '^([a-fA-F0-9]{0,4}:){1,8}(:[a-fA-F0-9]{0,4}){0,8}([a-fA-F0-9]{0,4})?/[0-9]{1,3}$' },
];

const schema = {
  type: 'object',
  properties: {
    trusted_addresses: { type: 'array', items: { anyOf: ipDef }, minItems: 1 },
    source: { type: 'string', minLength: 1 },
    recursive: { type: 'boolean', default: false },
  },
  required: ['source'],
};

interface RealIpConf {
  trusted_addresses?: string[];
  source: string;
  recursive: boolean;
}

interface RealIpState {
  trusted: IpMatcher | undefined;
  /** `http_x_forwarded_for` is read specially (its last address); any other source is a variable. */
  fromForwardedFor: boolean;
  source: string;
  recursive: boolean;
}

/**
 * Splits `ip`, `ip:port`, `[v6]`, `[v6]:port` or a bare IPv6 address as APISIX's
 * `core.utils.parse_addr` does; the port is undefined when absent or not a number.
 */
export function parseAddress(addr: string): { host: string; port: number | undefined } {
  if (addr.startsWith('[')) {
    if (addr.endsWith(']')) return { host: addr, port: undefined };
    const colon = addr.lastIndexOf(':');
    if (colon === -1 || addr[colon - 1] !== ']') return { host: addr, port: undefined };
    return { host: addr.slice(0, colon), port: portNumber(addr.slice(colon + 1)) };
  }
  let colons = 0;
  for (let i = 0; i < addr.length; i++) {
    const c = addr[i];
    if (c === '.') break;
    // Two colons before any dot: an IPv6 address, which carries no port in this form.
    if (c === ':' && ++colons === 2) return { host: addr, port: undefined };
  }
  const colon = addr.lastIndexOf(':', addr.length - 2);
  if (colon === -1) return { host: addr, port: undefined };
  return { host: addr.slice(0, colon), port: portNumber(addr.slice(colon + 1)) };
}

function portNumber(text: string): number | undefined {
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/** The address the configured source names, before validation. */
function sourceAddress(ctx: PluginContext, state: RealIpState): string | undefined {
  if (!state.fromForwardedFor) return ctx.get(state.source);
  const list = ctx.header('x-forwarded-for');
  if (list === undefined) return undefined;
  const lastComma = list.lastIndexOf(',');
  if (lastComma === -1) return list;
  if (state.recursive && state.trusted) {
    // From the right, the first address that is not one of our trusted proxies.
    const addrs = list.split(/,\s*/);
    for (let i = addrs.length - 1; i >= 1; i--) if (!state.trusted(addrs[i])) return addrs[i];
    return addrs[0];
  }
  let start = lastComma + 1;
  while (list.charCodeAt(start) === 32) start++;
  return list.slice(start);
}

export default definePlugin<RealIpConf, RealIpState>({
  name: 'real-ip',
  version: 0.1,
  priority: 23000,
  schema,

  check(conf) {
    for (const cidr of conf.trusted_addresses ?? []) if (!isValidIpOrCidr(cidr)) return `invalid ip address: ${cidr}`;
    return undefined;
  },

  compile(conf) {
    return {
      trusted: conf.trusted_addresses ? compileIpMatcher(conf.trusted_addresses) : undefined,
      fromForwardedFor: conf.source === 'http_x_forwarded_for',
      source: conf.source,
      recursive: conf.recursive === true,
    };
  },

  phases: {
    rewrite(ctx, _conf, state) {
      // Only a trusted peer may tell us who the client is.
      if (state.trusted && !state.trusted(ctx.remoteAddr)) return undefined;
      const addr = sourceAddress(ctx, state);
      if (addr === undefined) {
        ctx.log('warn', 'missing real address');
        return undefined;
      }
      const { host, port } = parseAddress(addr);
      const ip = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
      if (isIP(ip) === 0) {
        ctx.log('warn', `bad address: ${addr}`);
        return undefined;
      }
      if (port !== undefined && (port < 1 || port > 65535)) {
        ctx.log('warn', `bad port: ${port}`);
        return undefined;
      }
      ctx.setRemoteAddr(ip, port);
      return undefined;
    },
  },
});
