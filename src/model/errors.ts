// Schema errors worded as APISIX words them. APISIX validates with lua-resty-jsonschema, whose
// messages nest one level per property (`property "upstream" validation failed: ...`) and per
// array item (`failed to validate item 2: ...`), and which checks a property's own schema before
// the object-level combinators. ajv collects every error; this picks the one APISIX would report
// first and renders it in the same words.
import type { ErrorObject } from 'ajv';
import { hintFor } from './common.ts';

/** The error APISIX would report, as text (without the `invalid configuration: ` prefix). */
export function describeSchemaErrors(errors: readonly ErrorObject[]): string {
  const candidates = errors.filter((e) => !insideCombinatorBranch(e.schemaPath));
  const chosen = [...(candidates.length ? candidates : errors)].sort((a, b) => rank(a) - rank(b))[0];
  // lua-resty-jsonschema does not say why an if/then branch failed, only that it did.
  const branch = /\/(then|else)\//.exec(chosen.schemaPath);
  if (branch) return wrapPath(chosen.instancePath, `${branch[1]} clause did not match`);
  // ... and numbers the allOf branch that failed.
  const allOf = /(?:^#|\/)allOf\/(\d+)\//.exec(chosen.schemaPath);
  const leaf = leafMessage(chosen);
  return wrapPath(chosen.instancePath, allOf ? `allOf ${Number(allOf[1]) + 1} failed: ${leaf}` : leaf);
}

/** Errors from inside one branch of anyOf/oneOf/not explain why that branch failed; the combinator's own error is the one to report. */
function insideCombinatorBranch(schemaPath: string): boolean {
  return /\/(anyOf|oneOf)\/\d+\//.test(schemaPath) || /\/not\//.test(schemaPath);
}

/**
 * lua-resty-jsonschema's order for one value: type, each property's own schema, required, extra
 * properties, value checks, then allOf, anyOf, oneOf, not, if/then/else.
 */
function rank(e: ErrorObject): number {
  if (e.instancePath !== '') return e.keyword === 'type' ? 0.5 : 1;
  const top = e.schemaPath.split('/')[1] ?? e.keyword;
  const order: Record<string, number> = {
    type: 0, properties: 1, required: 2, dependencies: 3, additionalProperties: 4, patternProperties: 4,
    allOf: 6, anyOf: 7, oneOf: 8, not: 9, if: 10, then: 10, else: 10,
  };
  return order[top] ?? 5;
}

function wrapPath(instancePath: string, message: string): string {
  const segments = instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let out = message;
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = segments[i];
    out = /^\d+$/.test(seg) ? `failed to validate item ${Number(seg) + 1}: ${out}` : `property "${seg}" validation failed: ${out}`;
  }
  return out;
}

/** Lua's type names, as lua-resty-jsonschema prints them. */
function luaType(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (Array.isArray(value) || typeof value === 'object') return 'table';
  return typeof value;
}

/** Lua's `%q`: a double-quoted string with backslashes and quotes escaped. */
function luaQuote(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

function leafMessage(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type':
      return String(p.type).includes(',')
        ? `wrong type: expected one of ${String(p.type).split(',').join(', ')}, got ${luaType(e.data)}`
        : `wrong type: expected ${p.type}, got ${luaType(e.data)}`;
    case 'enum':
      return 'matches none of the enum values';
    case 'const':
      return 'failed to check const value';
    case 'required':
      return `property ${luaQuote(String(p.missingProperty))} is required`;
    case 'dependencies':
      return `property ${luaQuote(String(p.missingProperty))} is required when ${luaQuote(String(p.property))} is set`;
    case 'additionalProperties':
      return `additional properties forbidden, found ${p.additionalProperty}`;
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
    case 'format':
      // APISIX spells IP fields as an anyOf of ipv4/ipv6 formats.
      return 'object matches none of the required';
    case 'anyOf':
      return hinted(e) ?? anyOfMessage(e.schema);
    case 'oneOf': {
      const both = p.passingSchemas as number[] | null;
      return hinted(e) ?? (both ? `value should match only one schema, but matches both schemas ${both[0] + 1} and ${both[1] + 1}` : 'value should match only one schema, but matches none');
    }
    case 'not':
      return hinted(e) ?? "value wasn't supposed to match schema";
    default:
      return e.message ?? 'is invalid';
  }
}

/** A clearer text registered for this combinator (withHint in common.ts), worded as APISIX's. */
function hinted(e: ErrorObject): string | undefined {
  const hint = hintFor(e.parentSchema);
  return hint === undefined ? undefined : `value ${hint}`;
}

/** `object matches none of the required: ["a"] or ["b"]` when the branches are `required` lists. */
function anyOfMessage(branches: unknown): string {
  const lists = Array.isArray(branches) ? branches.flatMap((b) => (b && typeof b === 'object' && Array.isArray((b as { required?: unknown }).required) ? [JSON.stringify((b as { required: string[] }).required)] : [])) : [];
  return lists.length ? `object matches none of the required: ${lists.join(' or ')}` : 'object matches none of the required';
}
