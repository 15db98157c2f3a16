// The SSL resource: certificates served by SNI (type `server`) or presented to upstreams
// (type `client`) (apache/apisix: apisix/schema_def.lua `ssl`, apisix/ssl.lua `check_ssl_conf`).
import {
  certificateSchema,
  createTimeSchema,
  descSchema,
  hostSchema,
  idSchema,
  isSecretRef,
  labelsSchema,
  privateKeySchema,
  updateTimeSchema,
  withHint,
} from './common.ts';

export const sslSchema = {
  type: 'object',
  description: 'A certificate and key, chosen by SNI (`server`) or used for upstream mTLS (`client`).',
  properties: {
    id: idSchema,
    type: {
      type: 'string',
      enum: ['server', 'client'],
      default: 'server',
      description: '`server`: served to clients by SNI; `client`: presented to upstreams (mTLS).',
    },
    cert: certificateSchema,
    key: privateKeySchema,
    certs: { type: 'array', items: certificateSchema, description: 'Extra certificates (e.g. RSA + ECC), paired with `keys` by position.' },
    keys: { type: 'array', items: privateKeySchema, description: 'Private keys of `certs`, same order and count.' },
    sni: { ...hostSchema, description: 'Server name the certificate is served for (`*.example.com` wildcards allowed).' },
    snis: { type: 'array', minItems: 1, items: hostSchema, description: 'Server names the certificate is served for.' },
    client: {
      type: 'object',
      description: 'Client-certificate verification (mTLS with downstream clients).',
      properties: {
        ca: { ...certificateSchema, description: 'CA certificate(s) client certificates must chain to (PEM).' },
        depth: { type: 'integer', minimum: 0, default: 1, description: 'Maximum verification depth of the client chain.' },
        skip_mtls_uri_regex: {
          type: 'array',
          minItems: 1,
          uniqueItems: true,
          items: { type: 'string', description: 'URI regular expression.' },
          description: 'Requests whose URI matches any of these skip the client-certificate check.',
        },
      },
      required: ['ca'],
    },
    status: { type: 'integer', enum: [1, 0], default: 1, description: '1 = enabled, 0 = disabled.' },
    ssl_protocols: {
      type: 'array',
      maxItems: 3,
      uniqueItems: true,
      items: { enum: ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'] },
      description: 'TLS versions accepted for this certificate.',
    },
    desc: descSchema,
    labels: labelsSchema,
    create_time: createTimeSchema,
    update_time: updateTimeSchema,
  },
  if: { properties: { type: { enum: ['server'] } } },
  then: withHint(
    { oneOf: [{ required: ['cert', 'key', 'sni'] }, { required: ['cert', 'key', 'snis'] }] },
    'should match only one schema: exactly one of "sni" and "snis" is required',
  ),
  else: { required: ['cert', 'key'] },
  additionalProperties: false,
} as const;

export interface Ssl {
  id?: string | number;
  type?: 'server' | 'client';
  cert?: string;
  key?: string;
  certs?: string[];
  keys?: string[];
  sni?: string;
  snis?: string[];
  client?: { ca: string; depth?: number; skip_mtls_uri_regex?: string[] };
  status?: 0 | 1;
  ssl_protocols?: ('TLSv1.1' | 'TLSv1.2' | 'TLSv1.3')[];
  desc?: string;
  labels?: Record<string, string>;
  create_time?: number;
  update_time?: number;
}

export interface SslCheckOptions {
  /**
   * Decrypts a stored private key (APISIX AES-encrypts keys before writing them; a key that does
   * not start with `---` is taken as encrypted). Return undefined when decryption fails.
   * Without it, keys are checked as given.
   */
  decryptKey?: (stored: string) => string | undefined;
}

/**
 * Checks APISIX applies after the schema (apisix/ssl.lua `check_ssl_conf`), in the same order.
 * Certificates and keys are only checked to look like PEM blocks; real parsing happens when they
 * are loaded. A pair in which either side is a `$secret://` / `$env://` reference is skipped.
 */
export function checkSsl(ssl: Ssl, options: SslCheckOptions = {}): string | undefined {
  if (!isSecretRef(ssl.cert) && !isSecretRef(ssl.key)) {
    const err = checkPair(ssl.cert, ssl.key, options);
    if (err) return err;
  }
  if (ssl.type === 'client') return undefined;
  const certs = ssl.certs ?? [];
  const keys = ssl.keys ?? [];
  if (certs.length !== keys.length) return 'mismatched number of certs and keys';
  for (let i = 0; i < certs.length; i++) {
    if (isSecretRef(certs[i]) || isSecretRef(keys[i])) continue;
    const err = checkPair(certs[i], keys[i], options);
    if (err) return `failed to handle cert-key pair[${i + 1}]: ${err}`;
  }
  if (ssl.client && !isSecretRef(ssl.client.ca)) {
    const err = checkPair(ssl.client.ca, undefined, options);
    if (err) return `failed to validate client_cert: ${err}`;
  }
  return undefined;
}

function checkPair(cert: string | undefined, key: string | undefined, options: SslCheckOptions): string | undefined {
  if (!looksLikePemCert(cert ?? '')) return 'failed to parse cert: PEM_read_bio_X509_AUX() failed';
  if (key === undefined) return undefined;
  let plain: string | undefined = key;
  if (options.decryptKey && !key.startsWith('---')) {
    plain = options.decryptKey(key);
    if (plain === undefined) return 'failed to decrypt previous encrypted key';
  }
  if (!looksLikePemKey(plain)) return 'failed to parse key: PEM_read_bio_PrivateKey() failed';
  return undefined;
}

const CERT_LABELS = new Set(['CERTIFICATE', 'TRUSTED CERTIFICATE', 'X509 CERTIFICATE']);
const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'DSA PRIVATE KEY']);

interface PemBlock {
  label: string;
  headers: string[];
  body: string;
}

function pemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g)) {
    if (m[1] !== m[3]) continue;
    const lines = m[2].split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
    const headers = lines.filter((l) => l.includes(':'));
    const body = lines.filter((l) => !l.includes(':')).join('');
    blocks.push({ label: m[1], headers, body });
  }
  return blocks;
}

function isBase64Body(body: string): boolean {
  return body.length > 0 && body.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(body);
}

/** Every certificate block is well formed, and there is at least one. */
export function looksLikePemCert(text: string): boolean {
  const certs = pemBlocks(text).filter((b) => CERT_LABELS.has(b.label));
  return certs.length > 0 && certs.every((b) => b.headers.length === 0 && isBase64Body(b.body));
}

/** The first private-key block is well formed and not passphrase-protected. */
export function looksLikePemKey(text: string): boolean {
  const key = pemBlocks(text).find((b) => KEY_LABELS.has(b.label));
  return key !== undefined && key.headers.length === 0 && isBase64Body(key.body);
}
