// Schema pieces shared by several resource kinds (apache/apisix: apisix/schema_def.lua).

export const HOST_PATTERN = '^\\*$|^\\*?[0-9a-zA-Z-._\\[\\]:]+$';

export const idSchema = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' },
    { type: 'integer', minimum: 1 },
  ],
  description: 'Resource id: 1-64 characters of [a-zA-Z0-9-_.], or a positive integer.',
} as const;

export const hostSchema = {
  type: 'string',
  pattern: HOST_PATTERN,
  description: 'Exact host, `*.example.com` (leading wildcard only) or `*`.',
} as const;

export const labelsSchema = {
  type: 'object',
  description: 'Key/value labels for filtering.',
  patternProperties: { '.*': { type: 'string', minLength: 1, maxLength: 256, pattern: '^\\S+$' } },
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
    connect: { type: 'number', exclusiveMinimum: 0 },
    send: { type: 'number', exclusiveMinimum: 0 },
    read: { type: 'number', exclusiveMinimum: 0 },
  },
  required: ['connect', 'send', 'read'],
  additionalProperties: false,
} as const;

export const pluginsSchema = {
  type: 'object',
  description: 'Plugin name → plugin configuration.',
} as const;

export const metadataProperties = {
  id: idSchema,
  name: { type: 'string', minLength: 1, maxLength: 256 },
  desc: { type: 'string', maxLength: 256 },
  labels: labelsSchema,
  create_time: { type: 'integer' },
  update_time: { type: 'integer' },
} as const;

export const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'] as const;

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
