// Resource kinds, their schemas and the one validator every config source uses
// (standalone file now; Admin API and etcd with the same calls).
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isValidIpOrCidr } from '../util/ip.ts';
import { routeSchema, type Route } from './route.ts';
import { serviceSchema, type Service } from './service.ts';
import { checkUpstream, upstreamSchema, type Upstream } from './upstream.ts';

export type { Route } from './route.ts';
export type { Service } from './service.ts';
export type { Upstream, UpstreamNodeSpec } from './upstream.ts';
export { parseNodeAddress } from './upstream.ts';

/** Resource kinds by their plural name, as used in URLs, etcd keys and the standalone file. */
export const RESOURCE_KINDS = ['routes', 'services', 'upstreams'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export interface ResourceTypes {
  routes: Route;
  services: Service;
  upstreams: Upstream;
}

/** One resource created, replaced (value set) or deleted (value undefined). */
export interface ChangeEvent {
  kind: ResourceKind;
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

const ajv = new Ajv({ allErrors: false, useDefaults: false, strict: false });
ajv.addFormat('ip-or-cidr', { type: 'string', validate: isValidIpOrCidr });

const validators = new Map<ResourceKind, ValidateFunction>();
for (const kind of RESOURCE_KINDS) validators.set(kind, ajv.compile(SCHEMAS[kind]));

/** Semantic checks beyond the schema, per kind; `inline` upstreams are checked too. */
type Checker = (value: any) => string | undefined;
const extraChecks: Partial<Record<ResourceKind, Checker>> = {
  upstreams: checkUpstream,
  routes: (route: Route) => (route.upstream ? checkUpstream(route.upstream) : undefined),
  services: (svc: Service) => (svc.upstream ? checkUpstream(svc.upstream) : undefined),
};

/** Validates one resource; returns APISIX-style error text, or undefined when valid. */
export function validateResource(kind: ResourceKind, value: unknown): string | undefined {
  const validate = validators.get(kind)!;
  if (!validate(value)) return `invalid configuration: ${describeAjvError(validate.errors![0])}`;
  return extraChecks[kind]?.(value);
}

function describeAjvError(err: ErrorObject): string {
  const path = err.instancePath.replace(/^\//, '').replace(/\//g, '.');
  let detail = err.message ?? 'is invalid';
  if (err.keyword === 'additionalProperties') {
    const extra = (err.params as { additionalProperty: string }).additionalProperty;
    return `additional properties forbidden, found ${path ? path + '.' : ''}${extra}`;
  }
  if (err.keyword === 'enum') detail += `: ${JSON.stringify((err.params as { allowedValues: unknown[] }).allowedValues)}`;
  if (err.keyword === 'required') {
    const missing = (err.params as { missingProperty: string }).missingProperty;
    return `property "${path ? path + '.' : ''}${missing}" is required`;
  }
  if (err.keyword === 'oneOf' || err.keyword === 'anyOf' || err.keyword === 'not') {
    return `value ${path ? `of "${path}" ` : ''}${combinatorHint(err)}`;
  }
  return path ? `property "${path}" validation failed: ${detail}` : detail;
}

function combinatorHint(err: ErrorObject): string {
  const where = err.schemaPath;
  if (where.includes('allOf/0')) return 'should match only one schema: exactly one of "uri" and "uris" is required';
  if (where.includes('allOf/1')) return 'should not have both "host" and "hosts"';
  if (where.includes('allOf/2')) return 'should not have both "remote_addr" and "remote_addrs"';
  if (where.includes('allOf/3')) return 'should match at least one schema: one of "plugins", "upstream", "upstream_id", "service_id", "script" is required';
  if (err.keyword === 'oneOf' && err.instancePath.endsWith('upstream') || where.startsWith('#/oneOf')) {
    return 'should match only one schema: exactly one of "nodes" and "service_name"+"discovery_type" is required';
  }
  return `does not match the schema (${err.message})`;
}
