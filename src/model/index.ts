// Resource kinds, their schemas and the one validator every config source uses
// (standalone file now; Admin API and etcd with the same calls).
import { Ajv, type ValidateFunction } from 'ajv';
import { isValidIpOrCidr } from '../util/ip.ts';
import { describeSchemaErrors } from '../util/schema-errors.ts';
import { hintFor } from './common.ts';
import { consumerSchema, type Consumer } from './consumer.ts';
import { consumerGroupSchema, type ConsumerGroup } from './consumer_group.ts';
import { credentialSchema, type Credential } from './credential.ts';
import { globalRuleSchema, type GlobalRule } from './global_rule.ts';
import { pluginConfigSchema, type PluginConfig } from './plugin_config.ts';
import { pluginMetadataSchema, type PluginMetadata } from './plugin_metadata.ts';
import { pluginsListSchema } from './plugins_list.ts';
import { protoSchema, type Proto } from './proto.ts';
import { routeSchema, type Route } from './route.ts';
import { isSecretManager, SECRET_SCHEMAS, type Secret } from './secret.ts';
import { serviceSchema, type Service } from './service.ts';
import { checkSsl, sslSchema, type Ssl, type SslCheckOptions } from './ssl.ts';
import { checkStreamRoute, streamRouteSchema, type StreamRoute } from './stream_route.ts';
import { checkUpstream, upstreamSchema, type Upstream } from './upstream.ts';

export type { Route } from './route.ts';
export type { Service } from './service.ts';
export type { Upstream, UpstreamNodeSpec } from './upstream.ts';
export type { Consumer } from './consumer.ts';
export type { Credential } from './credential.ts';
export type { ConsumerGroup } from './consumer_group.ts';
export type { PluginConfig } from './plugin_config.ts';
export type { GlobalRule } from './global_rule.ts';
export type { PluginMetadata } from './plugin_metadata.ts';
export type { Ssl, SslCheckOptions } from './ssl.ts';
export type { Secret, SecretManager, VaultSecret, AwsSecret, GcpSecret } from './secret.ts';
export type { StreamRoute } from './stream_route.ts';
export type { Proto } from './proto.ts';
export type { PluginListEntry } from './plugins_list.ts';
export { parseNodeAddress } from './upstream.ts';
export { SECRET_MANAGERS, SECRET_SCHEMAS, isSecretManager } from './secret.ts';
export { isSecretRef } from './common.ts';
export { looksLikePemCert, looksLikePemKey } from './ssl.ts';

/** Resource kinds the data plane serves today, by their plural name (URLs, etcd keys, standalone file). */
export const RESOURCE_KINDS = ['routes', 'services', 'upstreams'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export interface ResourceTypes {
  routes: Route;
  services: Service;
  upstreams: Upstream;
}

/**
 * Every kind a data plane reads: the proxied kinds plus what plugins use. Credentials travel as
 * `consumers` with id `{username}/credentials/{id}`; plugin metadata has the plugin name as id.
 */
export const SERVED_KINDS = [...RESOURCE_KINDS, 'consumers', 'consumer_groups', 'plugin_configs', 'global_rules', 'plugin_metadata', 'ssls'] as const;
export type ServedKind = (typeof SERVED_KINDS)[number];

export function isServedKind(kind: string): kind is ServedKind {
  return (SERVED_KINDS as readonly string[]).includes(kind);
}

/** One resource created, replaced (value set) or deleted (value undefined). */
export interface ChangeEvent {
  kind: ServedKind;
  id: string;
  value: object | undefined;
}

export const SCHEMAS: Record<ResourceKind, object> = {
  routes: routeSchema,
  services: serviceSchema,
  upstreams: upstreamSchema,
};

/** APISIX's singular word for a kind, used in error strings. */
export const KIND_NAMES: Record<ResourceKind, string> = { routes: 'route', services: 'service', upstreams: 'upstream' };

/**
 * Every kind the Admin API stores, by its plural name (the etcd key segment). Credentials are
 * kind `consumers` with id `{username}/credentials/{id}`; secrets are kind `secrets` with id
 * `{manager}/{id}`; plugin metadata has the plugin name as id.
 */
export const ADMIN_KINDS = [
  'routes',
  'services',
  'upstreams',
  'consumers',
  'consumer_groups',
  'plugin_configs',
  'global_rules',
  'plugin_metadata',
  'ssls',
  'secrets',
  'stream_routes',
  'protos',
] as const;
export type AdminKind = (typeof ADMIN_KINDS)[number];

export interface AdminResourceTypes extends ResourceTypes {
  consumers: Consumer | Credential;
  consumer_groups: ConsumerGroup;
  plugin_configs: PluginConfig;
  global_rules: GlobalRule;
  plugin_metadata: PluginMetadata;
  ssls: Ssl;
  secrets: Secret;
  stream_routes: StreamRoute;
  protos: Proto;
}

/** APISIX's `kind` word per Admin API kind (apisix/admin/<resource>.lua), used in error strings. */
export const ADMIN_KIND_NAMES: Record<AdminKind, string> = {
  routes: 'route',
  services: 'service',
  upstreams: 'upstream',
  consumers: 'consumer',
  consumer_groups: 'consumer group',
  plugin_configs: 'plugin config',
  global_rules: 'global rule',
  // apisix/admin/plugin_metadata.lua declares `kind = "plugin_metadata"` (admin-api.md §5).
  plugin_metadata: 'plugin_metadata',
  ssls: 'ssl',
  secrets: 'secret',
  stream_routes: 'stream route',
  protos: 'proto',
};

/** The kind word of credentials (apisix/admin/credentials.lua), which live under `consumers`. */
export const CREDENTIAL_KIND_NAME = 'credential';

export function isAdminKind(name: string): name is AdminKind {
  return (ADMIN_KINDS as readonly string[]).includes(name);
}

/** True for a `consumers` id of the form `{username}/credentials/{id}`. */
export function isCredentialId(id: string | undefined): boolean {
  return id !== undefined && id.includes('/credentials/');
}

/** The kind word for error strings, `credential` for credential ids under `consumers`. */
export function adminKindName(kind: AdminKind, id?: string): string {
  return kind === 'consumers' && isCredentialId(id) ? CREDENTIAL_KIND_NAME : ADMIN_KIND_NAMES[kind];
}

/**
 * Core schemas by the singular name `GET /apisix/admin/schema/{name}` serves (APISIX looks the
 * name up in apisix/schema_def.lua; secret schemas live elsewhere and are not served there).
 */
export const SCHEMA_NAMES: Record<string, object> = {
  route: routeSchema,
  service: serviceSchema,
  upstream: upstreamSchema,
  consumer: consumerSchema,
  credential: credentialSchema,
  consumer_group: consumerGroupSchema,
  plugin_config: pluginConfigSchema,
  global_rule: globalRuleSchema,
  ssl: sslSchema,
  proto: protoSchema,
  stream_route: streamRouteSchema,
  plugins: pluginsListSchema,
};

// allErrors: the error APISIX reports first is chosen among all of them (errors.ts).
const ajv = new Ajv({ allErrors: true, useDefaults: false, strict: false, verbose: true });
ajv.addFormat('ip-or-cidr', { type: 'string', validate: isValidIpOrCidr });

const compiled = new Map<object, ValidateFunction>();
function validatorFor(schema: object): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}
for (const schema of [...Object.values(SCHEMA_NAMES), ...Object.values(SECRET_SCHEMAS), pluginMetadataSchema]) validatorFor(schema);

/** Semantic checks beyond the schema, per kind; `inline` upstreams are checked too. */
type Checker = (value: any) => string | undefined;
const extraChecks: Partial<Record<ResourceKind, Checker>> = {
  upstreams: checkUpstream,
  routes: (route: Route) => (route.upstream ? checkUpstream(route.upstream) : undefined),
  services: (svc: Service) => (svc.upstream ? checkUpstream(svc.upstream) : undefined),
};

/** Validates one resource; returns APISIX-style error text, or undefined when valid. */
export function validateResource(kind: ResourceKind, value: unknown): string | undefined {
  return schemaError(SCHEMAS[kind], value) ?? extraChecks[kind]?.(value);
}

function schemaError(schema: object, value: unknown): string | undefined {
  const validate = validatorFor(schema);
  return validate(value) ? undefined : `invalid configuration: ${describeSchemaErrors(validate.errors!, hintFor)}`;
}

/** The schema an Admin API object is checked against, or the error that prevents choosing one. */
function adminSchema(kind: AdminKind, id: string | undefined, value: unknown): object | string {
  switch (kind) {
    case 'routes':
    case 'services':
    case 'upstreams':
      return SCHEMAS[kind];
    case 'consumers':
      return isCredentialId(id) ? credentialSchema : consumerSchema;
    case 'consumer_groups':
      return consumerGroupSchema;
    case 'plugin_configs':
      return pluginConfigSchema;
    case 'global_rules':
      return globalRuleSchema;
    case 'plugin_metadata':
      return pluginMetadataSchema;
    case 'ssls':
      return sslSchema;
    case 'stream_routes':
      return streamRouteSchema;
    case 'protos':
      return protoSchema;
    case 'secrets': {
      const bodyId = isPlainObject(value) && typeof value.id === 'string' ? value.id : undefined;
      const manager = (id ?? bodyId)?.split('/')[0];
      if (!manager) return 'missing secret type';
      return isSecretManager(manager) ? SECRET_SCHEMAS[manager] : `invalid secret manager: ${manager}`;
    }
  }
}

/**
 * APISIX sets `conf.id` from the URL before checking the schema (apisix/admin/resource.lua), so a
 * body without `id` is checked with the key's id; consumers (id = username) and plugin metadata
 * (id = plugin name) are not.
 */
function withId(kind: AdminKind, id: string | undefined, value: unknown): unknown {
  if (id === undefined || !isPlainObject(value) || value.id !== undefined) return value;
  if (kind === 'plugin_metadata' || (kind === 'consumers' && !isCredentialId(id))) return value;
  return { ...value, id };
}

/**
 * Schema-only check of an Admin API object, as `POST /apisix/admin/schema/validate/{resource}`
 * does: no semantic checks, no reference lookups.
 */
export function validateAdminSchema(kind: AdminKind, id: string | undefined, value: unknown): string | undefined {
  const schema = adminSchema(kind, id, value);
  if (typeof schema === 'string') return schema;
  return schemaError(schema, withId(kind, id, value));
}

/**
 * Validates one Admin API object of `kind` stored under `id` (the id part of its etcd key, see
 * `kindOfKey`; undefined for a POST body): the kind's schema (the credential schema for
 * `{username}/credentials/{id}`, the manager's schema for secrets `{manager}/{id}`), then the
 * checks that need only the object itself (upstream rules for upstreams and inline upstreams,
 * SSL cert/key sanity, stream route self-reference). Checks that need other objects (references,
 * plugins, duplicate auth keys) belong to the caller. Returns APISIX-style error text or undefined.
 */
export function validateAdminResource(
  kind: AdminKind,
  id: string | undefined,
  value: unknown,
  options: SslCheckOptions = {},
): string | undefined {
  const schemaErr = validateAdminSchema(kind, id, value);
  if (schemaErr) return schemaErr;
  switch (kind) {
    case 'routes':
    case 'services':
    case 'upstreams':
      return extraChecks[kind]?.(value);
    case 'stream_routes': {
      const route = value as StreamRoute;
      return (route.upstream ? checkUpstream(route.upstream) : undefined) ?? checkStreamRoute(route, id);
    }
    case 'ssls':
      return checkSsl(value as Ssl, options);
    default:
      return undefined;
  }
}

/** Validates the enabled-plugin list stored at `/apisix/plugins`. */
export function validatePluginsList(value: unknown): string | undefined {
  return schemaError(pluginsListSchema, value);
}

const ID_PATTERN = /^[a-zA-Z0-9-_.]+$/;
const CREDENTIAL_FULL_ID = /^[a-zA-Z0-9-_]+\/credentials\/[a-zA-Z0-9-_.]+$/;
const ID_ERROR = 'invalid configuration: property "id" validation failed: object matches none of the required';

/**
 * APISIX's `id_schema` (admin-api.md §7): a string of 1-64 characters of `[a-zA-Z0-9-_.]`, or an
 * integer ≥ 1. Returns APISIX's error text for anything else (a missing id is the caller's
 * `missing <kind> id`).
 */
export function checkId(id: unknown): string | undefined {
  if (typeof id === 'string' && id.length >= 1 && id.length <= 64 && ID_PATTERN.test(id)) return undefined;
  if (typeof id === 'number' && Number.isInteger(id) && id >= 1) return undefined;
  return ID_ERROR;
}

/** A credential id: any `checkId` id, or the standalone file's `<username>/credentials/<id>` (15-128 chars). */
export function checkCredentialId(id: unknown): string | undefined {
  if (typeof id === 'string' && id.length >= 15 && id.length <= 128 && CREDENTIAL_FULL_ID.test(id)) return undefined;
  return checkId(id);
}

function normalizePrefix(prefix: string): string {
  return prefix.replace(/\/+$/, '');
}

/** The etcd key of an object: `{prefix}/{kind}/{id}` (e.g. `/apisix/consumers/jack/credentials/c1`). */
export function keyOf(kind: AdminKind, id: string, prefix: string): string {
  return `${normalizePrefix(prefix)}/${kind}/${id}`;
}

/**
 * The (kind, id) an etcd key holds, or undefined for keys that are not resources (`/apisix/gen_id`,
 * `/apisix/plugins`, directory placeholders ending in `/`, sub-resources of other shapes).
 */
export function kindOfKey(key: string, prefix: string): { kind: AdminKind; id: string } | undefined {
  const base = `${normalizePrefix(prefix)}/`;
  if (!key.startsWith(base)) return undefined;
  const rest = key.slice(base.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const kind = rest.slice(0, slash);
  if (!isAdminKind(kind)) return undefined;
  const id = rest.slice(slash + 1);
  const segments = id.split('/');
  if (segments.some((s) => s === '')) return undefined;
  const shapeOk =
    kind === 'consumers'
      ? segments.length === 1 || (segments.length === 3 && segments[1] === 'credentials')
      : kind === 'secrets'
        ? segments.length === 2
        : segments.length === 1;
  return shapeOk ? { kind, id } : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}


