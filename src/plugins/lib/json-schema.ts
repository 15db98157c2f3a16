// JSON Schemas supplied by users inside a plugin's conf (request-validation's header_schema and
// body_schema), compiled once per config version with ajv. APISIX validates with
// lua-resty-jsonschema and sends its error text to the client, so failures are worded as that
// library words them: one error, nested one level per property (`property "a" validation failed: ...`)
// and per array item (`failed to validate item 2: ...`), picked in the order it checks keywords.
import { isIPv4, isIPv6 } from 'node:net';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { describeSchemaErrors } from '../../util/schema-errors.ts';

// useDefaults: lua-resty-jsonschema writes a property's `default` into the validated value, and
// APISIX forwards the body it validated, so defaults reach the upstream.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true, logger: false });
ajv.addFormat('ipv4', { type: 'string', validate: (s: string) => isIPv4(s) });
ajv.addFormat('ipv6', { type: 'string', validate: (s: string) => isIPv6(s) });

/** Validates a value (filling in defaults); returns the error text, or undefined when it is valid. */
export type Validator = (value: unknown) => string | undefined;

/** Compiles a user's schema; throws an Error whose message says why it is not a usable schema. */
export function compileUserSchema(schema: Record<string, unknown>): Validator {
  // Only draft-07 is loaded; a `$schema` naming another draft would make ajv refuse the schema.
  const { $schema: _dialect, ...own } = schema;
  if (!ajv.validateSchema(own)) throw new Error(describeSchemaProblem(ajv.errors ?? []));
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(own);
  } finally {
    // Compiled functions keep what they need; dropping the cache entry keeps memory flat across
    // config versions and lets two routes use the same `$id`.
    ajv.removeSchema(own);
  }
  return (value) => (validate(value) ? undefined : describeSchemaErrors(validate.errors ?? []));
}

/** Why a schema is invalid, in lua-resty-jsonschema's words for the usual mistakes. */
function describeSchemaProblem(errors: readonly ErrorObject[]): string {
  const badType = errors.find((e) => e.instancePath.endsWith('/type') && typeof e.data === 'string');
  if (badType) return `invalid JSON type: ${badType.data as string}`;
  const notList = errors.find((e) => e.keyword === 'type' && String((e.params as { type?: unknown }).type) === 'array');
  if (notList) return `table expected, got ${luaType(notList.data)}`;
  const first = errors[0];
  return first ? `${first.instancePath || 'schema'} ${first.message ?? 'is invalid'}`.trim() : 'invalid JSON schema';
}

/** Lua's type names, as lua-resty-jsonschema prints them. */
function luaType(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (Array.isArray(value) || typeof value === 'object') return 'table';
  return typeof value;
}
