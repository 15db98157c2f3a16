// Server certificates by SNI (apache/apisix: apisix/ssl/router/radixtree_sni.lua): each enabled
// `server` SSL becomes one TLS context, indexed by exact name and by `*.` wildcard. A change
// replaces only that SSL's context; handshakes in flight keep the one they started with.
import tls from 'node:tls';
import type { Ssl } from '../model/index.ts';

interface CompiledSsl {
  id: string;
  names: string[];
  context: tls.SecureContext;
  /** The PEM pair, for a listener's default context (apisix.ssl.fallback_sni). */
  pair: { cert: string; key: string };
}

export class SniIndex {
  readonly #byId = new Map<string, CompiledSsl>();
  /** exact name → SSL ids, in the order they were added */
  readonly #exact = new Map<string, string[]>();
  /** `.example.com` (the wildcard's suffix) → SSL ids */
  readonly #wildcard = new Map<string, string[]>();

  get size(): number {
    return this.#byId.size;
  }

  /** Adds, replaces (value set) or removes (undefined) one SSL. Throws when its PEM cannot be loaded. */
  apply(id: string, ssl: Ssl | undefined): void {
    this.#remove(id);
    if (!ssl || ssl.type === 'client' || ssl.status === 0) return;
    // One pair per context: OpenSSL behind Node's SNI callback keeps a single working key type per
    // context, so the extra `certs`/`keys` pairs (RSA beside ECDSA) are accepted but not served yet.
    const context = tls.createSecureContext({ cert: ssl.cert, key: ssl.key });
    const names = (ssl.snis ?? (ssl.sni ? [ssl.sni] : [])).map((n) => n.toLowerCase());
    this.#byId.set(id, { id, names, context, pair: { cert: ssl.cert!, key: ssl.key! } });
    for (const name of names) {
      const [map, key] = name.startsWith('*.') ? [this.#wildcard, name.slice(1)] : [this.#exact, name];
      const ids = map.get(key);
      if (ids) ids.push(id);
      else map.set(key, [id]);
    }
  }

  #remove(id: string): void {
    const old = this.#byId.get(id);
    if (!old) return;
    this.#byId.delete(id);
    for (const name of old.names) {
      const [map, key] = name.startsWith('*.') ? [this.#wildcard, name.slice(1)] : [this.#exact, name];
      const ids = map.get(key)?.filter((x) => x !== id);
      if (ids?.length) map.set(key, ids);
      else map.delete(key);
    }
  }

  /** The context for a server name: an exact name first, then the longest matching wildcard. */
  contextFor(servername: string): tls.SecureContext | undefined {
    return this.#find(servername)?.context;
  }

  /** The certificate and key served for a name (a listener's default, for clients that send none). */
  pairFor(servername: string): { cert: string; key: string } | undefined {
    return this.#find(servername)?.pair;
  }

  #find(servername: string): CompiledSsl | undefined {
    const name = servername.toLowerCase();
    const exact = this.#exact.get(name);
    if (exact) return this.#byId.get(exact[0]);
    // `*.example.com` covers `a.example.com` and `a.b.example.com`, not `example.com`.
    for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
      const ids = this.#wildcard.get(name.slice(dot));
      if (ids) return this.#byId.get(ids[0]);
    }
    return undefined;
  }
}
