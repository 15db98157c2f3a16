// JSON Schemas supplied by users inside a plugin's conf (request-validation's header_schema and
// body_schema), compiled once per config version with ajv. APISIX validates with
// lua-resty-jsonschema and sends its error text to the client, so failures are worded as that
// library words them: one error, nested one level per property (`property "a" validation failed: ...`)
// and per array item (`failed to validate item 2: ...`), picked in the order it checks keywords.
import { isIPv4, isIPv6 } from 'node:net';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

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
  return (value) => (validate(value) ? undefined : describeErrors(validate.errors ?? []));
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

/** The error lua-resty-jsonschema would report, as text. */
export function describeErrors(errors: readonly ErrorObject[]): string {
  // An error inside one branch of anyOf/oneOf/not only explains why that branch failed; the
  // combinator's own error is the one reported.
  const outer = errors.filter((e) => !/\/(anyOf|oneOf)\/\d+\/|\/not\//.test(e.schemaPath));
  const pool = outer.length ? outer : errors;
  let chosen = pool[0];
  for (const e of pool) if (checkedEarlier(e, chosen)) chosen = e;
  return nest(chosen, leafMessage(chosen));
}

// lua-resty-jsonschema's order for one value: type, the properties' and items' own schemas,
// required, dependencies, extra properties, value checks, then the combinators.
const KEYWORD_ORDER: Record<string, number> = {
  type: 0, properties: 1, patternProperties: 1, items: 1, required: 2, dependencies: 3, additionalProperties: 4,
  allOf: 6, anyOf: 7, oneOf: 8, not: 9, if: 10, then: 10, else: 10,
};
const VALUE_CHECK = 5;
/** Keywords followed in a schema path by a name or index rather than by another keyword. */
const NAMED = new Set(['properties', 'patternProperties', 'dependencies', 'definitions', '$defs', 'allOf', 'anyOf', 'oneOf']);

/** Whether `a` comes before `b` in lua-resty-jsonschema's order (schema order between siblings). */
function checkedEarlier(a: ErrorObject, b: ErrorObject): boolean {
  const ta = a.schemaPath.split('/').slice(1);
  const tb = b.schemaPath.split('/').slice(1);
  let i = 0;
  while (i < ta.length && i < tb.length && ta[i] === tb[i]) i++;
  if (!isKeywordAt(ta, i)) return false;
  return rank(ta, i) < rank(tb, i);
}

function isKeywordAt(tokens: readonly string[], index: number): boolean {
  let k = 0;
  while (k < index) {
    const t = tokens[k];
    k += NAMED.has(t) || (t === 'items' && /^\d+$/.test(tokens[k + 1] ?? '')) ? 2 : 1;
  }
  return k === index;
}

function rank(tokens: readonly string[], index: number): number {
  const t = tokens[index];
  if (t === undefined) return VALUE_CHECK;
  // additionalProperties with a schema descends into the extra properties like `properties` does.
  if (t === 'additionalProperties' && index + 1 < tokens.length) return KEYWORD_ORDER.properties;
  return KEYWORD_ORDER[t] ?? VALUE_CHECK;
}

/** Wraps the message in one `property "x" validation failed: ` / `failed to validate item n: ` per level. */
function nest(e: ErrorObject, message: string): string {
  const unescape = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');
  const segments = e.instancePath.split('/').slice(1).map(unescape);
  const via = howReached(segments.length, e.schemaPath.split('/').slice(1).map(unescape));
  let out = message;
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = segments[i];
    const how = via?.[i];
    if (how?.pattern !== undefined) out = `failed to validate ${seg} (matching ${luaQuote(how.pattern)}): ${out}`;
    else if (how ? how.item : /^\d+$/.test(seg)) out = `failed to validate item ${Number(seg) + 1}: ${out}`;
    else out = `property "${seg}" validation failed: ${out}`;
  }
  return out;
}

/** For each instance segment, whether it was reached as an array item or through a property pattern. */
function howReached(count: number, tokens: readonly string[]): Array<{ item: boolean; pattern?: string }> | undefined {
  const out: Array<{ item: boolean; pattern?: string }> = [];
  for (let t = 0; t < tokens.length && out.length < count; t++) {
    const tok = tokens[t];
    if (tok === 'properties' && t + 1 < tokens.length) {
      out.push({ item: false });
      t++;
    } else if (tok === 'patternProperties' && t + 1 < tokens.length) {
      out.push({ item: false, pattern: tokens[t + 1] });
      t++;
    } else if (tok === 'items') {
      out.push({ item: true });
      if (/^\d+$/.test(tokens[t + 1] ?? '')) t++;
    } else if (tok === 'additionalProperties' && t + 1 < tokens.length) {
      out.push({ item: false });
    }
  }
  return out.length === count ? out : undefined;
}

/** Lua's names for value types, as lua-resty-jsonschema prints them. */
function luaType(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'object') return 'table';
  return typeof value;
}

function luaQuote(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

function leafMessage(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type': {
      const types = String(p.type).split(',');
      return types.length > 1 ? `wrong type: expected one of ${types.join(', ')}, got ${luaType(e.data)}` : `wrong type: expected ${types[0]}, got ${luaType(e.data)}`;
    }
    case 'enum':
      return 'matches none of the enum values';
    case 'const':
      return 'failed to check const value';
    case 'required':
      return `property ${luaQuote(String(p.missingProperty))} is required`;
    case 'dependencies':
      return `property ${luaQuote(String(p.missingProperty))} is required when ${luaQuote(String(p.property))} is set`;
    case 'additionalProperties':
      return `additional properties forbidden, found ${String(p.additionalProperty)}`;
    case 'minLength':
      return `string too short, expected at least ${p.limit}, got ${[...String(e.data)].length}`;
    case 'maxLength':
      return `string too long, expected at most ${p.limit}, got ${[...String(e.data)].length}`;
    case 'pattern':
      return `failed to match pattern ${luaQuote(String(p.pattern))} with ${luaQuote(String(e.data))}`;
    case 'minimum':
      return `expected ${e.data} to be at least ${p.limit}`;
    case 'maximum':
      return `expected ${e.data} to be at most ${p.limit}`;
    case 'exclusiveMinimum':
      return `expected ${e.data} to be greater than ${p.limit}`;
    case 'exclusiveMaximum':
      return `expected ${e.data} to be smaller than ${p.limit}`;
    case 'multipleOf':
      return `expected ${e.data} to be a multiple of ${p.multipleOf}`;
    case 'minItems':
      return `expect array to have at least ${p.limit} items`;
    case 'maxItems':
      return `expect array to have at most ${p.limit} items`;
    case 'uniqueItems':
      return `expected unique items but items ${Math.min(Number(p.i), Number(p.j)) + 1} and ${Math.max(Number(p.i), Number(p.j)) + 1} are equal`;
    case 'minProperties':
      return `expect object to have at least ${p.limit} properties`;
    case 'maxProperties':
      return `expect object to have at most ${p.limit} properties`;
    case 'anyOf':
      return anyOfMessage(e.schema);
    case 'oneOf': {
      const both = p.passingSchemas as number[] | null;
      return both ? `value should match only one schema, but matches both schemas ${both[0] + 1} and ${both[1] + 1}` : 'value should match only one schema, but matches none';
    }
    case 'not':
      return "value wasn't supposed to match schema";
    default:
      return e.message ?? 'is invalid';
  }
}

/** `object matches none of the required: ["a"] or ["b"]` when the branches are `required` lists. */
function anyOfMessage(branches: unknown): string {
  const lists = Array.isArray(branches)
    ? branches.flatMap((b) => (b && typeof b === 'object' && Array.isArray((b as { required?: unknown }).required) ? [JSON.stringify((b as { required: unknown[] }).required)] : []))
    : [];
  return lists.length ? `object matches none of the required: ${lists.join(' or ')}` : 'object matches none of the required';
}
