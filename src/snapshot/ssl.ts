// SSL objects as the TLS listener and the upstream side use them (apache/apisix:
// apisix/ssl/router/radixtree_sni.lua). Each enabled `server` SSL is indexed by exact name and by
// `*.` wildcard, with its certificate pairs (RSA beside ECDSA), its protocol range and its
// client-certificate policy. `client` SSLs are kept by id for upstreams' `tls.client_cert_id`.
// A change replaces only that SSL's entry; handshakes in flight keep the one they started with.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { Ssl } from '../model/index.ts';
import { compileNgxRegex } from '../plugins/lib/pcre.ts';

export type TlsVersion = 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** One certificate chain and its key. */
export interface ServedCertificate {
  cert: string;
  key: string;
  /** An EC key: served to clients that accept ECDSA signatures. */
  ecdsa: boolean;
}

/** `client`: downstream mutual TLS. */
export interface ClientVerification {
  ca: string;
  /** The certificates of `ca`, for measuring chain depth. */
  caCertificates: X509Certificate[];
  /** Longest chain accepted, counted as OpenSSL counts it (1 = a certificate the CA signed directly). */
  depth: number;
  /** Requests whose `$uri` matches one of these need no client certificate; undefined = every request does. */
  skip: RegExp[] | undefined;
}

/** A `server` SSL ready to serve. Replaced, never mutated, when its config changes. */
export interface ServedSsl {
  id: string;
  names: string[];
  /** The primary pair first, then `certs`/`keys` in order. */
  certificates: ServedCertificate[];
  /** `ssl_protocols` as a range; undefined = the listener's (apisix.ssl.ssl_protocols). */
  protocols: { min: TlsVersion; max: TlsVersion } | undefined;
  client: ClientVerification | undefined;
}

const VERSION_ORDER: TlsVersion[] = ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** The pair for a client: an ECDSA one when it accepts ECDSA and one exists, otherwise the first RSA one. */
export function certificateFor(ssl: ServedSsl, acceptsEcdsa: boolean): ServedCertificate {
  const wanted = ssl.certificates.find((c) => c.ecdsa === acceptsEcdsa);
  return wanted ?? ssl.certificates[0];
}

/** The PEM strings of a `client` SSL, for upstream mTLS. Replaced when the SSL changes. */
export interface ClientCertificate {
  cert: string;
  key: string;
}

export class SniIndex {
  readonly #byId = new Map<string, ServedSsl>();
  readonly #clientById = new Map<string, ClientCertificate>();
  /** exact name → SSL ids, in the order they were added */
  readonly #exact = new Map<string, string[]>();
  /** `.example.com` (the wildcard's suffix) → SSL ids */
  readonly #wildcard = new Map<string, string[]>();
  /** How many SSLs have `client` set. */
  #verifying = 0;

  get size(): number {
    return this.#byId.size;
  }

  /** Some SSL asks clients for certificates: requests on TLS listeners then check their Host (see tls-front.ts). */
  get verifiesClients(): boolean {
    return this.#verifying > 0;
  }

  /** Adds, replaces (value set) or removes (undefined) one SSL. Throws when a PEM or regex cannot be loaded. */
  apply(id: string, ssl: Ssl | undefined): void {
    const compiled = ssl && ssl.status !== 0 ? compileSsl(id, ssl) : undefined;
    this.#remove(id);
    this.#clientById.delete(id);
    if (!ssl || !compiled) return;
    if ('clientPair' in compiled) {
      this.#clientById.set(id, compiled.clientPair);
      return;
    }
    this.#byId.set(id, compiled);
    if (compiled.client) this.#verifying++;
    for (const name of compiled.names) {
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
    if (old.client) this.#verifying--;
    for (const name of old.names) {
      const [map, key] = name.startsWith('*.') ? [this.#wildcard, name.slice(1)] : [this.#exact, name];
      const ids = map.get(key)?.filter((x) => x !== id);
      if (ids?.length) map.set(key, ids);
      else map.delete(key);
    }
  }

  /** The SSL for a server name: an exact name first, then the longest matching wildcard. */
  find(servername: string): ServedSsl | undefined {
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

  /**
   * A `client` SSL by id, for `tls.client_cert_id`. `wrongType` when the id names a `server` SSL
   * (APISIX answers 502 either way and logs which).
   */
  clientCertificate(id: string): ClientCertificate | 'wrongType' | undefined {
    return this.#clientById.get(id) ?? (this.#byId.has(id) ? 'wrongType' : undefined);
  }
}

function compileSsl(id: string, ssl: Ssl): ServedSsl | { clientPair: ClientCertificate } {
  if (ssl.type === 'client') {
    // Loading it now refuses a broken pair when the config arrives rather than on a request.
    tls.createSecureContext({ cert: ssl.cert, key: ssl.key });
    return { clientPair: { cert: ssl.cert!, key: ssl.key! } };
  }
  const pairs = [{ cert: ssl.cert!, key: ssl.key! }];
  (ssl.certs ?? []).forEach((cert, i) => pairs.push({ cert, key: ssl.keys![i] }));
  const certificates = pairs.map(({ cert, key }) => {
    tls.createSecureContext({ cert, key });
    return { cert, key, ecdsa: createPrivateKey(key).asymmetricKeyType === 'ec' };
  });
  const listed = ssl.ssl_protocols;
  const protocols = listed?.length
    ? {
        min: VERSION_ORDER.find((v) => listed.includes(v))!,
        max: [...VERSION_ORDER].reverse().find((v) => listed.includes(v))!,
      }
    : undefined;
  let client: ClientVerification | undefined;
  if (ssl.client) {
    tls.createSecureContext({ ca: ssl.client.ca });
    client = {
      ca: ssl.client.ca,
      caCertificates: (ssl.client.ca.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem)),
      depth: ssl.client.depth ?? 1,
      skip: ssl.client.skip_mtls_uri_regex?.map((pattern) => compileNgxRegex(pattern, 'jo').once),
    };
  }
  return {
    id,
    names: (ssl.snis ?? (ssl.sni ? [ssl.sni] : [])).map((n) => n.toLowerCase()),
    certificates,
    protocols,
    client,
  };
}
