// Route host patterns: `api.example.com`, `*.example.com` (any host ending in `.example.com`, so
// not `example.com` itself), `*` (any host). Case-insensitive. A pattern with `:port`
// (`api.example.com:8080`, `[::1]:8080`, `*.example.com:8443`) is compared against the raw Host
// header, port included.

export interface HostPattern {
  /** Lower-cased pattern as written. */
  readonly source: string;
  readonly wildcard: boolean;
  /** The exact host, or for a wildcard the suffix after `*` (empty for `*`). */
  readonly host: string;
  /** Port the pattern requires, or null. */
  readonly port: string | null;
}

const NAME_RE = /^[0-9a-z._-]+$/;
const IPV6_RE = /^\[[0-9a-f:.]+\]$/;

function bad(raw: string, why: string): Error {
  return new Error(`invalid host ${JSON.stringify(raw)}: ${why}`);
}

export function parseHostPattern(raw: unknown): HostPattern {
  if (typeof raw !== 'string') throw new Error(`invalid host ${JSON.stringify(raw) ?? String(raw)}: must be a string`);
  if (raw.length === 0) throw bad(raw, 'must not be empty');
  if (raw.length > 255 + 7) throw bad(raw, 'too long');
  const source = raw.toLowerCase();
  let rest = source;
  let port: string | null = null;
  if (rest.startsWith('[') || rest.startsWith('*[')) {
    const close = rest.indexOf(']');
    if (close === -1) throw bad(raw, 'unterminated "["');
    if (close + 1 < rest.length) {
      if (rest.charCodeAt(close + 1) !== 0x3a) throw bad(raw, 'unexpected text after "]"');
      port = rest.slice(close + 2);
      rest = rest.slice(0, close + 1);
    }
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon !== -1) {
      port = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
      if (rest.includes(':')) throw bad(raw, 'an IPv6 address must be written in brackets');
    }
  }
  if (port !== null && (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)) {
    throw bad(raw, `invalid port ${JSON.stringify(port)}`);
  }
  const wildcard = rest.charCodeAt(0) === 0x2a;
  const host = wildcard ? rest.slice(1) : rest;
  if (host.includes('*')) throw bad(raw, '"*" is only allowed as the first character');
  if (host.length === 0) {
    if (!wildcard) throw bad(raw, 'missing host name');
  } else if (!NAME_RE.test(host) && !(!wildcard && IPV6_RE.test(host))) {
    throw bad(raw, 'only letters, digits, ".", "-", "_" and a bracketed IPv6 address are allowed');
  }
  return { source, wildcard, host, port };
}

/** Does a port-less host match the host part of a pattern? */
export function hostMatches(pattern: HostPattern, host: string): boolean {
  if (!pattern.wildcard) return host === pattern.host;
  return host.length >= pattern.host.length && host.endsWith(pattern.host);
}

/** Splits a raw Host header into a lower-cased host and its port ('' when none). */
export function splitHostPort(raw: string): { host: string; port: string } {
  const text = raw.toLowerCase();
  let colon: number;
  if (text.charCodeAt(0) === 0x5b /* [ */) {
    const close = text.indexOf(']');
    colon = close !== -1 && text.charCodeAt(close + 1) === 0x3a ? close + 1 : -1;
  } else {
    colon = text.lastIndexOf(':');
  }
  if (colon === -1) return { host: text, port: '' };
  return { host: text.slice(0, colon), port: text.slice(colon + 1) };
}

/** A route's host list as one condition (uri modes). */
export class HostMatcher {
  private readonly any: boolean;
  private readonly exact: ReadonlySet<string>;
  private readonly suffixes: readonly string[];
  private readonly ported: readonly HostPattern[];

  constructor(patterns: readonly HostPattern[]) {
    let any = false;
    const exact = new Set<string>();
    const suffixes: string[] = [];
    const ported: HostPattern[] = [];
    for (const p of patterns) {
      if (p.port !== null) ported.push(p);
      else if (!p.wildcard) exact.add(p.host);
      else if (p.host === '') any = true;
      else suffixes.push(p.host);
    }
    this.any = any;
    this.exact = exact;
    this.suffixes = suffixes;
    this.ported = ported;
  }

  /** The exact hosts when the list holds nothing else (no wildcard, no port); otherwise null. */
  exactOnly(): string[] | null {
    return !this.any && this.suffixes.length === 0 && this.ported.length === 0 ? [...this.exact] : null;
  }

  test(host: string, hostWithPort: string | undefined): boolean {
    if (this.any) return true;
    if (this.exact.has(host)) return true;
    const suffixes = this.suffixes;
    for (let i = 0; i < suffixes.length; i++) {
      const s = suffixes[i];
      if (host.length >= s.length && host.endsWith(s)) return true;
    }
    if (this.ported.length > 0) {
      const hp = splitHostPort(hostWithPort ?? host);
      if (hp.port !== '') {
        for (const p of this.ported) if (p.port === hp.port && hostMatches(p, hp.host)) return true;
      }
    }
    return false;
  }
}

/**
 * Values keyed by host pattern, searched the way APISIX's host router walks its reversed-host
 * radix tree: the exact host first, then wildcard suffixes from the longest to the shortest,
 * `*` (empty suffix) last. Lookup cost is one hash probe per distinct wildcard suffix length.
 */
export class HostTable<V> {
  readonly exact = new Map<string, V>();
  readonly wild = new Map<string, V>();
  /** Distinct wildcard suffix lengths, longest first. */
  lengths: number[] = [];
  private readonly lengthRefs = new Map<number, number>();

  get size(): number {
    return this.exact.size + this.wild.size;
  }

  get(p: HostPattern): V | undefined {
    return p.wildcard ? this.wild.get(p.host) : this.exact.get(p.host);
  }

  set(p: HostPattern, value: V): void {
    if (!p.wildcard) {
      this.exact.set(p.host, value);
      return;
    }
    if (!this.wild.has(p.host)) {
      const n = p.host.length;
      const refs = this.lengthRefs.get(n) ?? 0;
      this.lengthRefs.set(n, refs + 1);
      if (refs === 0) {
        const lengths = this.lengths.slice();
        let i = 0;
        while (i < lengths.length && lengths[i] > n) i++;
        lengths.splice(i, 0, n);
        this.lengths = lengths;
      }
    }
    this.wild.set(p.host, value);
  }

  delete(p: HostPattern): boolean {
    if (!p.wildcard) return this.exact.delete(p.host);
    if (!this.wild.delete(p.host)) return false;
    const n = p.host.length;
    const refs = (this.lengthRefs.get(n) ?? 1) - 1;
    if (refs > 0) this.lengthRefs.set(n, refs);
    else {
      this.lengthRefs.delete(n);
      this.lengths = this.lengths.filter((x) => x !== n);
    }
    return true;
  }
}
