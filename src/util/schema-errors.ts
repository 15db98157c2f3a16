// Schema errors worded as APISIX words them. APISIX validates with lua-resty-jsonschema, whose
// messages nest one level per property (`property "upstream" validation failed: ...`) and per
// array item (`failed to validate item 2: ...`), and which checks a property's own schema before
// the object-level combinators. ajv collects every error; this picks the one APISIX would report
// first and renders it in the same words.
import type { ErrorObject } from 'ajv';

/** A clearer text registered for a combinator's schema (model/common.ts `withHint`), if any. */
export type HintLookup = (schema: unknown) => string | undefined;

const noHints: HintLookup = () => undefined;

/**
 * The error APISIX would report, as text (without the `invalid configuration: ` prefix). Used for
 * APISIX's own schemas (with their hints) and for schemas plugins or users supply.
 */
export function describeSchemaErrors(errors: readonly ErrorObject[], hints: HintLookup = noHints): string {
  const candidates = errors.filter((e) => !insideCombinatorBranch(e.schemaPath));
  const chosen = pickFirst(candidates.length ? candidates : errors);
  // lua-resty-jsonschema does not say why an if/then branch failed, only that it did.
  const branch = /\/(then|else)\//.exec(chosen.schemaPath);
  if (branch) return wrapPath(chosen.instancePath, `${branch[1]} clause did not match`, chosen.schemaPath);
  // ... and numbers the allOf branch that failed.
  const allOf = /(?:^#|\/)allOf\/(\d+)\//.exec(chosen.schemaPath);
  const leaf = leafMessage(chosen, hints);
  const message = allOf ? `allOf ${Number(allOf[1]) + 1} failed: ${leaf}` : leaf;
  return dependentSchemaError(chosen, message) ?? wrapPath(chosen.instancePath, message, chosen.schemaPath);
}

/**
 * An error inside a schema-valued `dependencies` entry: lua-resty-jsonschema validates the whole
 * object against the dependent schema and reports `failed to validate dependent schema for "<prop>": `
 * before what failed there (t/plugin/jwt-auth.t, limit-count-redis.t).
 */
function dependentSchemaError(e: ErrorObject, message: string): string | undefined {
  if (e.keyword === 'dependencies') return undefined;
  const tokens = e.schemaPath.split('/').slice(1);
  const at = tokens.indexOf('dependencies');
  if (at < 0 || at + 2 > tokens.length) return undefined;
  const outer = tokens.slice(0, at);
  const segments = e.instancePath.split('/').slice(1);
  const depth = segmentKinds(segments.length, outer).length;
  const outerPath = segments.slice(0, depth).map((s) => `/${s}`).join('');
  const innerPath = segments.slice(depth).map((s) => `/${s}`).join('');
  const prop = tokens[at + 1].replace(/~1/g, '/').replace(/~0/g, '~');
  const inner = wrapPath(innerPath, message, `#/${tokens.slice(at + 2).join('/')}`);
  return wrapPath(outerPath, `failed to validate dependent schema for ${luaQuote(prop)}: ${inner}`, `#/${outer.join('/')}`);
}

/** Errors from inside one branch of anyOf/oneOf/not explain why that branch failed; the combinator's own error is the one to report. */
function insideCombinatorBranch(schemaPath: string): boolean {
  return /\/(anyOf|oneOf)\/\d+\//.test(schemaPath) || /\/not\//.test(schemaPath);
}

const ORDER: Record<string, number> = {
  type: 0, properties: 1, items: 1, required: 2, dependencies: 3, additionalProperties: 4, patternProperties: 4,
  allOf: 6, anyOf: 7, oneOf: 8, not: 9, if: 10, then: 10, else: 10,
};

/**
 * lua-resty-jsonschema's order for one value: type, each property's own schema, required, extra
 * properties, value checks, then allOf, anyOf, oneOf, not, if/then/else. Two errors are compared
 * at the deepest value both lie in: an error further down went through `properties` there.
 */
function pickFirst(errors: readonly ErrorObject[]): ErrorObject {
  let best = errors[0];
  for (const e of errors.slice(1)) if (compare(e, best) < 0) best = e;
  return best;
}

function compare(a: ErrorObject, b: ErrorObject): number {
  const pa = a.instancePath.split('/').slice(1);
  const pb = b.instancePath.split('/').slice(1);
  let depth = 0;
  while (depth < pa.length && depth < pb.length && pa[depth] === pb[depth]) depth++;
  return rankAt(a, depth) - rankAt(b, depth);
}

/** The rank of the keyword through which `e` leaves the value `depth` segments down its path. */
function rankAt(e: ErrorObject, depth: number): number {
  const tokens = e.schemaPath.split('/').slice(1);
  let consumed = 0;
  let t = 0;
  for (; t < tokens.length && consumed < depth; t++) {
    const tok = tokens[t];
    if ((tok === 'properties' || tok === 'patternProperties') && t + 1 < tokens.length) {
      consumed++;
      t++;
    } else if (tok === 'items') {
      consumed++;
      if (/^\d+$/.test(tokens[t + 1] ?? '')) t++;
    } else if (tok === 'additionalProperties' && t + 1 < tokens.length) {
      consumed++;
    }
  }
  const tok = tokens[t] ?? e.keyword;
  return ORDER[tok] ?? 5;
}

function wrapPath(instancePath: string, message: string, schemaPath = ''): string {
  const unescape = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');
  const segments = instancePath.split('/').slice(1).map(unescape);
  const via = segmentKinds(segments.length, schemaPath.split('/').slice(1).map(unescape));
  let out = message;
  for (let i = segments.length - 1; i >= 0; i--) {
    const seg = segments[i];
    const how = via[i];
    if (how?.pattern !== undefined) out = `failed to validate ${seg} (matching ${luaQuote(how.pattern)}): ${out}`;
    else if (how ? how.item : /^\d+$/.test(seg)) out = `failed to validate item ${Number(seg) + 1}: ${out}`;
    else out = `property "${seg}" validation failed: ${out}`;
  }
  return out;
}

/**
 * How each instance segment was reached, read from the schema path: through `properties`,
 * `patternProperties` (lua-resty-jsonschema names the pattern) or `items`. Empty when the schema
 * path cannot be followed (the caller then guesses from the segment itself).
 */
function segmentKinds(count: number, tokens: string[]): Array<{ item: boolean; pattern?: string }> {
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
  return out.length === count ? out : [];
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

function leafMessage(e: ErrorObject, hints: HintLookup): string {
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
    case 'multipleOf':
      return `expected ${e.data} to be a multiple of ${p.multipleOf}`;
    case 'format':
      if (p.format === 'ipv4' || p.format === 'ipv6' || p.format === 'email') return `expect valid ${p.format === 'email' ? 'email' : p.format} address but got: ${String(e.data)}`;
      // APISIX spells IP-or-CIDR fields as an anyOf of ipv4/ipv6 formats.
      return 'object matches none of the required';
    case 'anyOf':
      return hinted(e, hints) ?? anyOfMessage(e.schema);
    case 'oneOf': {
      const both = p.passingSchemas as number[] | null;
      return hinted(e, hints) ?? (both ? `value should match only one schema, but matches both schemas ${both[0] + 1} and ${both[1] + 1}` : 'value should match only one schema, but matches none');
    }
    case 'not':
      return hinted(e, hints) ?? "value wasn't supposed to match schema";
    default:
      return e.message ?? 'is invalid';
  }
}

/** A clearer text registered for this combinator (withHint in common.ts), worded as APISIX's. */
function hinted(e: ErrorObject, hints: HintLookup): string | undefined {
  const hint = hints(e.parentSchema);
  return hint === undefined ? undefined : `value ${hint}`;
}

/** `object matches none of the required: ["a"] or ["b"]` when the branches are `required` lists. */
function anyOfMessage(branches: unknown): string {
  const lists = Array.isArray(branches) ? branches.flatMap((b) => (b && typeof b === 'object' && Array.isArray((b as { required?: unknown }).required) ? [JSON.stringify((b as { required: string[] }).required)] : [])) : [];
  return lists.length ? `object matches none of the required: ${lists.join(' or ')}` : 'object matches none of the required';
}
