// IPv4/IPv6 address and CIDR matching, compiled once per config version.
// Used by route `remote_addrs`, the `ipmatch` operator of `vars` and (later) ip-restriction.
import { isIPv4, isIPv6 } from 'node:net';

/** Parses an IPv4 or IPv6 address into 16 bytes (IPv4 mapped into ::ffff:0:0/96); undefined when invalid. */
export function parseIp(text: string): Uint8Array | undefined {
  if (isIPv4(text)) return ipv4Bytes(text);
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  if (!isIPv6(text)) return undefined;
  return ipv6Bytes(text);
}

function ipv4Bytes(text: string): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[12 + i] = Number(parts[i]);
  return out;
}

function ipv6Bytes(text: string): Uint8Array {
  const out = new Uint8Array(16);
  let tail = text;
  // An embedded dotted IPv4 tail (::ffff:1.2.3.4) fills the last four bytes.
  const lastColon = text.lastIndexOf(':');
  const dotted = text.slice(lastColon + 1);
  let words: number[];
  if (dotted.includes('.')) {
    const v4 = ipv4Bytes(dotted);
    tail = text.slice(0, lastColon + 1) + ((v4[12] << 8) | v4[13]).toString(16) + ':' + ((v4[14] << 8) | v4[15]).toString(16);
  }
  const halves = tail.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  words = head.map((w) => parseInt(w, 16));
  const fill = 8 - head.length - rest.length;
  for (let i = 0; i < fill; i++) words.push(0);
  for (const w of rest) words.push(parseInt(w, 16));
  for (let i = 0; i < 8; i++) {
    out[i * 2] = words[i] >> 8;
    out[i * 2 + 1] = words[i] & 0xff;
  }
  return out;
}

interface Cidr { bytes: Uint8Array; prefix: number }

/** Parses `ip` or `ip/prefix`; returns an error message for bad input. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const bytes = parseIp(addr);
  if (!bytes) return `invalid ip address: ${text}`;
  const v4 = isIPv4(addr);
  const max = v4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return `invalid ip address: ${text}`;
    prefix = Number(p);
  }
  return { bytes, prefix: v4 ? prefix + 96 : prefix };
}

export function isValidIpOrCidr(text: string): boolean {
  return typeof parseCidr(text) !== 'string';
}

function contains(cidr: Cidr, ip: Uint8Array): boolean {
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) if (cidr.bytes[i] !== ip[i]) return false;
  const bits = cidr.prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (cidr.bytes[full] & mask) === (ip[full] & mask);
}

export type IpMatcher = (ip: string) => boolean;

/**
 * Compiles a list of IPs/CIDRs into a matcher. Throws with the offending entry on bad input
 * (config time only). Exact addresses are checked through a Set before the CIDR scan. IPv4 and
 * IPv6 entries match only addresses of their own family (as resty.ipmatcher): `::/0` does not
 * cover IPv4 clients.
 */
export function compileIpMatcher(list: readonly string[]): IpMatcher {
  if (list.length === 0) throw new Error('invalid ip address: empty list');
  // Exact entries as written (canonical IPv4 text usually matches the socket's), checked before parsing.
  const exactText = new Set<string>();
  const v4 = { exact: new Set<string>(), cidrs: [] as Cidr[] };
  const v6 = { exact: new Set<string>(), cidrs: [] as Cidr[] };
  for (const item of list) {
    const parsed = parseCidr(item);
    if (typeof parsed === 'string') throw new Error(parsed);
    const family = item.includes(':') ? v6 : v4;
    if (parsed.prefix === 128) {
      family.exact.add(Buffer.from(parsed.bytes).toString('hex'));
      exactText.add(item.split('/')[0]);
    } else {
      family.cidrs.push(parsed);
    }
  }
  return (ip: string) => {
    if (exactText.has(ip)) return true;
    const bytes = parseIp(ip);
    if (!bytes) return false;
    const family = ip.includes(':') ? v6 : v4;
    if (family.exact.size && family.exact.has(Buffer.from(bytes).toString('hex'))) return true;
    for (const c of family.cidrs) if (contains(c, bytes)) return true;
    return false;
  };
}
