// Schema pieces shared by several resource kinds (apache/apisix: apisix/schema_def.lua).

export const HOST_PATTERN = '^\\*$|^\\*?[0-9a-zA-Z-._\\[\\]:]+$';

/** `uri_def` in schema_def.lua: `scheme://host[:port]…`. */
export const URI_PATTERN = '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?';

export const idSchema = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' },
    { type: 'integer', minimum: 1 },
  ],
  description: 'Resource id: 1-64 characters of [a-zA-Z0-9-_.], or a positive integer.',
} as const;

/** A credential's id: a plain id, or the `<username>/credentials/<id>` form of the standalone file. */
export const credentialIdSchema = {
  anyOf: [
    idSchema,
    { type: 'string', minLength: 15, maxLength: 128, pattern: '^[a-zA-Z0-9-_]+/credentials/[a-zA-Z0-9-_.]+$' },
  ],
  description: 'Credential id: a plain resource id, or `<username>/credentials/<id>` (15-128 characters).',
} as const;

export const hostSchema = {
  type: 'string',
  pattern: HOST_PATTERN,
  description: 'Exact host, `*.example.com` (leading wildcard only) or `*`.',
} as const;

export const labelsSchema = {
  type: 'object',
  description: 'Key/value labels for filtering.',
  patternProperties: {
    '.*': { type: 'string', minLength: 1, maxLength: 256, pattern: '^\\S+$', description: 'Label value: 1-256 non-blank characters.' },
  },
} as const;

export const ipOrCidrSchema = {
  type: 'string',
  format: 'ip-or-cidr',
  description: 'IPv4 or IPv6 address, optionally with a /prefix.',
} as const;

export const timeoutSchema = {
  type: 'object',
  description: 'Upstream timeouts in seconds.',
  properties: {
    connect: { type: 'number', exclusiveMinimum: 0, description: 'Time allowed to establish the connection, in seconds.' },
    send: { type: 'number', exclusiveMinimum: 0, description: 'Time allowed between two writes of the request, in seconds.' },
    read: { type: 'number', exclusiveMinimum: 0, description: 'Time allowed between two reads of the response, in seconds.' },
  },
  required: ['connect', 'send', 'read'],
  additionalProperties: false,
} as const;

export const pluginsSchema = {
  type: 'object',
  description: 'Plugin name → plugin configuration.',
} as const;

export const nameSchema = { type: 'string', minLength: 1, maxLength: 256, description: 'Human-readable name (1-256 characters).' } as const;
export const descSchema = { type: 'string', maxLength: 256, description: 'Free-text description (at most 256 characters).' } as const;
export const createTimeSchema = { type: 'integer', description: 'Creation time, unix seconds (set by the Admin API).' } as const;
export const updateTimeSchema = { type: 'integer', description: 'Last update time, unix seconds (set by the Admin API).' } as const;

export const metadataProperties = {
  id: idSchema,
  name: nameSchema,
  desc: descSchema,
  labels: labelsSchema,
  create_time: createTimeSchema,
  update_time: updateTimeSchema,
} as const;

/** PEM certificate text (or a `$secret://` / `$env://` reference to one). */
export const certificateSchema = {
  type: 'string',
  minLength: 128,
  maxLength: 65536,
  description: 'PEM certificate (128-65536 characters), or a `$secret://` / `$env://` reference.',
} as const;

/** PEM private key text (or a `$secret://` / `$env://` reference to one). */
export const privateKeySchema = {
  type: 'string',
  minLength: 64,
  maxLength: 65536,
  description: 'PEM private key (64-65536 characters), or a `$secret://` / `$env://` reference.',
} as const;

export const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'] as const;

// Error hints: the wording used when a combinator (oneOf / anyOf / not) directly inside a
// schema object fails as a whole. Kept outside the schemas so `GET /schema/{name}` serves plain JSON Schema.
const HINTS = new WeakMap<object, string>();

/** Registers `hint` (e.g. `should not have both "a" and "b"`) for combinator failures of `schema`. */
export function withHint<T extends object>(schema: T, hint: string): T {
  HINTS.set(schema, hint);
  return schema;
}

export function hintFor(schema: unknown): string | undefined {
  return schema !== null && typeof schema === 'object' ? HINTS.get(schema) : undefined;
}

/** `$secret://…` or `$env://…` (case-insensitive): resolved at run time, so content checks are skipped. */
export function isSecretRef(value: unknown): boolean {
  return typeof value === 'string' && (value.startsWith('$secret://') || value.toUpperCase().startsWith('$ENV://'));
}

export interface Timeout {
  connect: number;
  send: number;
  read: number;
}

export interface Metadata {
  id?: string | number;
  name?: string;
  desc?: string;
  labels?: Record<string, string>;
  create_time?: number;
  update_time?: number;
}
