// Header rules of the proxy: which headers are hop-by-hop, what APISIX adds on the way to the
// upstream (X-Real-IP, X-Forwarded-*), and what it drops on the way back.
import type { IncomingHttpHeaders } from 'node:http';
import type { IpMatcher } from '../util/ip.ts';
import type { HeaderEdit } from './context.ts';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1), the ones the proxy always sets itself, and HTTP/2's
 * pseudo-headers (an HTTP/2 request's raw headers list them; the request line carries them).
 */
const REQUEST_DROP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'host', 'content-length', 'x-real-ip', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port',
  ':method', ':path', ':scheme', ':authority', ':protocol', 'http2-settings',
]);

/** Dropped from upstream responses: hop-by-hop, framing (Node re-frames the body), and Server (replaced by ours, as nginx does). */
const RESPONSE_DROP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'server',
]);

/** Name lengths of a set's members: a header whose name has another length cannot be in it (no lower-casing needed). */
function lengthsOf(names: Set<string>): Uint8Array {
  const lengths = new Uint8Array(64);
  for (const n of names) lengths[n.length] = 1;
  return lengths;
}
const REQUEST_DROP_LENGTHS = lengthsOf(REQUEST_DROP);
const RESPONSE_DROP_LENGTHS = lengthsOf(RESPONSE_DROP);

/** Extra header names listed in `Connection: a, b`, lower-case; undefined when none. */
export function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (!value) return undefined;
  let out: Set<string> | undefined;
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t && t !== 'close' && t !== 'keep-alive') (out ??= new Set()).add(t);
  }
  return out;
}

export interface ForwardedFacts {
  remoteAddr: string;
  scheme: string;
  host: string;
  port: number;
  /** trusted_addresses matcher; undefined when the key is unset. */
  trusted: IpMatcher | undefined;
}

/**
 * Builds the request head's header lines (each ending CRLF) from the client's raw headers:
 * hop-by-hop removed, Host from pass_host, X-Real-IP and X-Forwarded-* as APISIX sets them.
 */
export function upstreamRequestHeaders(rawHeaders: string[], headers: IncomingHttpHeaders, hostValue: string, facts: ForwardedFacts, edits?: Map<string, HeaderEdit>): string {
  const extraDrop = connectionTokens(headers.connection as string | undefined);
  let out = `Host: ${hostValue}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (edits?.has(name.toLowerCase())) continue;
    if (REQUEST_DROP_LENGTHS[name.length] === 1 || extraDrop) {
      const lower = name.toLowerCase();
      if (REQUEST_DROP.has(lower) || extraDrop?.has(lower)) continue;
      if (lower === 'forwarded' && !isTrusted(facts)) continue;
    }
    out += `${name}: ${rawHeaders[i + 1]}\r\n`;
  }
  const trusted = isTrusted(facts);
  const xff = headers['x-forwarded-for'];
  // Without trusted_addresses APISIX keeps the chain and appends the peer; with the list set, an
  // untrusted peer's chain is discarded.
  const keepChain = facts.trusted === undefined || trusted;
  const chain = keepChain && xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${facts.remoteAddr}` : facts.remoteAddr;
  if (!edits) {
    out += `X-Real-IP: ${facts.remoteAddr}\r\nX-Forwarded-For: ${chain}\r\n`;
    out += `X-Forwarded-Proto: ${(trusted && (headers['x-forwarded-proto'] as string | undefined)) || facts.scheme}\r\n`;
    out += `X-Forwarded-Host: ${(trusted && (headers['x-forwarded-host'] as string | undefined)) || facts.host}\r\n`;
    out += `X-Forwarded-Port: ${(trusted && (headers['x-forwarded-port'] as string | undefined)) || facts.port}\r\n`;
    return out;
  }
  // Plugins' header edits: a set header replaces ours and the client's, a removed one is not sent.
  const forwarded: Array<[string, string]> = [
    ['X-Real-IP', facts.remoteAddr],
    ['X-Forwarded-For', chain],
    ['X-Forwarded-Proto', (trusted && (headers['x-forwarded-proto'] as string | undefined)) || facts.scheme],
    ['X-Forwarded-Host', (trusted && (headers['x-forwarded-host'] as string | undefined)) || facts.host],
    ['X-Forwarded-Port', String((trusted && (headers['x-forwarded-port'] as string | undefined)) || facts.port)],
  ];
  for (const [name, value] of forwarded) if (!edits.has(name.toLowerCase())) out += `${name}: ${value}\r\n`;
  for (const [lower, edit] of edits) {
    const value = edit.value;
    if (value === undefined || lower === 'host' || lower === 'content-length' || lower === 'transfer-encoding') continue;
    if (typeof value === 'string') out += `${edit.name}: ${value}\r\n`;
    else for (const v of value) out += `${edit.name}: ${v}\r\n`;
  }
  return out;
}

function isTrusted(facts: ForwardedFacts): boolean {
  return facts.trusted !== undefined && facts.trusted(facts.remoteAddr);
}

/** Filters an upstream response's raw headers in place-free fashion for `res.writeHead`. */
export function downstreamResponseHeaders(raw: string[]): string[] {
  let extraDrop: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 10 && raw[i].toLowerCase() === 'connection') extraDrop = connectionTokens(raw[i + 1]);
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (RESPONSE_DROP_LENGTHS[name.length] === 1 || extraDrop) {
      const lower = name.toLowerCase();
      if (RESPONSE_DROP.has(lower) || extraDrop?.has(lower)) continue;
    }
    out.push(name, raw[i + 1]);
  }
  return out;
}
