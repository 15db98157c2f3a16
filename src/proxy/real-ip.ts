// nginx's realip module as APISIX configures it (nginx_config.http.real_ip_header, real_ip_from,
// real_ip_recursive): a request from a trusted address may name the real client in a header,
// and `$remote_addr` (routing, `remote_addrs`, X-Real-IP, X-Forwarded-For) then uses that address.
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { compileIpMatcher, type IpMatcher } from '../util/ip.ts';

export interface RealIpSettings {
  /** Lower-case header name, e.g. `x-real-ip` or `x-forwarded-for`. */
  header: string;
  trusted: IpMatcher;
  recursive: boolean;
}

export function compileRealIp(header: string, from: readonly string[], recursive: string): RealIpSettings | undefined {
  const addrs = from.filter((a) => a !== 'unix:');
  if (!header || addrs.length === 0) return undefined;
  return { header: header.toLowerCase(), trusted: compileIpMatcher(addrs), recursive: recursive === 'on' };
}

/** The client address after realip: the peer, or the address its trusted proxy reported. */
export function realClientAddr(peer: string, headers: IncomingHttpHeaders, settings: RealIpSettings | undefined): string {
  if (!settings || !settings.trusted(peer)) return peer;
  const raw = headers[settings.header];
  if (raw === undefined) return peer;
  const value = Array.isArray(raw) ? raw.join(',') : raw;
  const list = value.split(',');
  // Walk from the right: the last entry was added by the nearest proxy. Recursive mode skips
  // entries that are themselves trusted proxies.
  for (let i = list.length - 1; i >= 0; i--) {
    const addr = list[i].trim();
    if (!isIP(addr)) return peer;
    if (!settings.recursive || i === 0 || !settings.trusted(addr)) return addr;
  }
  return peer;
}
