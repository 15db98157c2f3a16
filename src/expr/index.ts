// APISIX's `vars` expression language (lua-resty-expr v1), used by route `vars`, `_meta.filter`
// and traffic-split `match`. A rule is compiled once, at config time, into a tree of closures;
// evaluating it only reads variables and compares (no parsing, regex compilation or throwing).
//
//   []                                         always true
//   [expr, expr, ...]                          all must hold (AND)
//   ["AND" | "OR" | "!AND" | "!OR", node, node, ...]
//   expr = [var, op, value] | [var, "!", op, value] | [var, value]   (the last means ==)
//
// See docs/expressions.md for the user-facing reference.
import { compileIpMatcher } from '../util/ip.ts';
import { toLuaNumber } from './number.ts';
import { compilePcre } from './regex.ts';
import type { Predicate, VarLookup, VarValue } from './vars.ts';

export type { Predicate, VarLookup, VarValue } from './vars.ts';
export { varsFromObject } from './vars.ts';
export { toLuaNumber, parseLuaNumber } from './number.ts';
export { compilePcre, translatePcre } from './regex.ts';

/** A rule that cannot be compiled; the message follows lua-resty-expr's wording where it has one. */
export class ExprError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExprError';
  }
}

type LogicOp = 'AND' | 'OR' | '!AND' | '!OR';

const OPERATORS: ReadonlySet<string> = new Set([
  '==', '~=', '>', '>=', '<', '<=', '~~', '~*', 'in', 'has', 'ipmatch',
]);

/** Guards against stack exhaustion on absurd input; real rules are a few levels deep. */
const MAX_DEPTH = 64;

const ALWAYS: Predicate = () => true;
const NEVER: Predicate = () => false;

/** Compiles a `vars` rule into a predicate. Throws ExprError on an invalid rule. */
export function compileExpr(rule: unknown): Predicate {
  if (rule === undefined || rule === null) throw new ExprError('missing argument rule');
  if (!Array.isArray(rule)) throw new ExprError(`rule must be an array, got ${typeName(rule)}`);
  if (rule.length === 0) return ALWAYS;
  if (!Array.isArray(rule[0]) && logicOp(rule[0]) === undefined) {
    // A bare [var, op, value] at the top level: APISIX wants [[var, op, value]].
    throw new ExprError('rule should be wrapped inside brackets');
  }
  return compileNode(rule, 1);
}

/** The error message for an invalid rule, or undefined when it compiles. */
export function validateExpr(rule: unknown): string | undefined {
  try {
    compileExpr(rule);
    return undefined;
  } catch (err) {
    if (err instanceof ExprError) return err.message;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Structure

function compileNode(node: unknown, depth: number): Predicate {
  if (!Array.isArray(node)) {
    throw new ExprError(`invalid expression: expected an array, got ${typeName(node)}`);
  }
  if (depth > MAX_DEPTH) throw new ExprError(`rule nested too deeply (more than ${MAX_DEPTH} levels)`);
  if (node.length === 0) throw new ExprError('rule too short');
  const head: unknown = node[0];
  if (Array.isArray(head)) {
    return combine('AND', node.map((child: unknown) => compileNode(child, depth + 1)));
  }
  const logic = logicOp(head);
  if (logic !== undefined) {
    // lua-resty-expr wants at least two operands after a logical operator.
    if (node.length <= 2) throw new ExprError('rule too short');
    return combine(logic, node.slice(1).map((child: unknown) => compileNode(child, depth + 1)));
  }
  return compileComparison(node);
}

function logicOp(value: unknown): LogicOp | undefined {
  if (typeof value !== 'string') return undefined;
  const upper = value.toUpperCase();
  return upper === 'AND' || upper === 'OR' || upper === '!AND' || upper === '!OR' ? upper : undefined;
}

function combine(op: LogicOp, preds: Predicate[]): Predicate {
  const base = op === 'AND' || op === '!AND' ? allOf(preds) : anyOf(preds);
  return op === '!AND' || op === '!OR' ? not(base) : base;
}

function allOf(preds: Predicate[]): Predicate {
  const n = preds.length;
  if (n === 1) return preds[0];
  if (n === 2) {
    const a = preds[0];
    const b = preds[1];
    return (vars) => a(vars) && b(vars);
  }
  return (vars) => {
    for (let i = 0; i < n; i++) if (!preds[i](vars)) return false;
    return true;
  };
}

function anyOf(preds: Predicate[]): Predicate {
  const n = preds.length;
  if (n === 1) return preds[0];
  if (n === 2) {
    const a = preds[0];
    const b = preds[1];
    return (vars) => a(vars) || b(vars);
  }
  return (vars) => {
    for (let i = 0; i < n; i++) if (preds[i](vars)) return true;
    return false;
  };
}

function not(pred: Predicate): Predicate {
  if (pred === ALWAYS) return NEVER;
  if (pred === NEVER) return ALWAYS;
  return (vars) => !pred(vars);
}

// ---------------------------------------------------------------------------------------------
// Comparisons

function compileComparison(expr: readonly unknown[]): Predicate {
  if (expr.length < 2) {
    throw new ExprError('invalid expression: expected [var, operator, value] or [var, "!", operator, value]');
  }
  if (expr.length > 4) {
    throw new ExprError(`invalid expression: too many elements (${expr.length}), at most 4 are allowed`);
  }
  let negate = false;
  let rawOp: unknown;
  let value: unknown;
  if (expr.length === 4) {
    if (expr[1] !== '!') throw new ExprError("bad 'not' expression");
    negate = true;
    rawOp = expr[2];
    value = expr[3];
  } else if (expr.length === 3) {
    rawOp = expr[1];
    value = expr[2];
  } else if (typeof expr[1] === 'string' && OPERATORS.has(expr[1].toLowerCase())) {
    // [var, op]: an operator with a missing (nil) value, as lua-resty-expr reads it.
    rawOp = expr[1];
    value = null;
  } else {
    // [var, value]: the compatibility spelling of [var, "==", value].
    rawOp = '==';
    value = expr[1];
  }

  const name: unknown = expr[0];
  if (typeof name !== 'string') {
    throw new ExprError(`invalid expression: first element must be a string (variable name), got ${typeName(name)}`);
  }
  if (name === '') throw new ExprError('invalid expression: variable name must not be empty');
  if (typeof rawOp !== 'string') throw new ExprError(`invalid operator '${show(rawOp)}'`);
  const op = rawOp.toLowerCase();
  if (!OPERATORS.has(op)) throw new ExprError(`invalid operator '${op}'`);
  if (value === undefined) value = null;

  const pred = compileOperator(name, op, value);
  return negate ? not(pred) : pred;
}

function compileOperator(name: string, op: string, value: unknown): Predicate {
  switch (op) {
    case '==':
      return compileEqual(name, op, value);
    case '~=':
      // Lua's ~= is exactly the negation of == in every case (nil and non-numeric included).
      return not(compileEqual(name, op, value));
    case '>':
    case '>=':
    case '<':
    case '<=':
      return compileNumeric(name, op, value);
    case '~~':
    case '~*':
      return compileRegex(name, op, value);
    case 'in':
      return compileIn(name, value);
    case 'has':
      return compileHas(name, value);
    case 'ipmatch':
      return compileIpmatch(name, value);
  }
  throw new ExprError(`invalid operator '${op}'`);
}

/**
 * The value an operator sees for a variable: repeated query args arrive as arrays, and APISIX's
 * `arg_*` yields the first one, so scalar operators read element 0 (`has` reads the array).
 */
function scalar(v: VarValue): unknown {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Equality of a variable value (or array element) with a string/number/boolean constant, the way
 * `in` and `has` compare: same type and value, except that a number or boolean variable stands
 * for its text (APISIX variables are strings), so 200 matches "200".
 */
function sameValue(x: unknown, constant: unknown): boolean {
  if (x === constant) return true;
  if (typeof constant === 'string' && (typeof x === 'number' || typeof x === 'boolean')) {
    return String(x) === constant;
  }
  return false;
}

function compileEqual(name: string, op: string, value: unknown): Predicate {
  if (value === null) {
    // JSON null is Lua nil: true when the variable is absent.
    return (vars) => {
      const x = scalar(vars.get(name));
      return x === undefined || x === null;
    };
  }
  if (typeof value === 'number') {
    // A number on the right converts the variable with Lua tonumber; non-numeric never equals.
    return (vars) => toLuaNumber(scalar(vars.get(name))) === value;
  }
  if (typeof value === 'string') {
    return (vars) => {
      const x = scalar(vars.get(name));
      if (typeof x === 'string') return x === value;
      if (typeof x === 'number' || typeof x === 'boolean') return String(x) === value;
      return false;
    };
  }
  if (typeof value === 'boolean') {
    return (vars) => scalar(vars.get(name)) === value;
  }
  throw new ExprError(
    `invalid value for operator '${op}': expected a string, number, boolean or null, got ${typeName(value)}`,
  );
}

function compileNumeric(name: string, op: string, value: unknown): Predicate {
  if (typeof value !== 'number' && typeof value !== 'string') {
    throw new ExprError(`invalid value for operator '${op}': expected a number or a numeric string, got ${typeName(value)}`);
  }
  const r = toLuaNumber(value);
  // A right side that is not a number makes the comparison false for every request, as in Lua.
  if (Number.isNaN(r)) return NEVER;
  switch (op) {
    case '>':
      return (vars) => toLuaNumber(scalar(vars.get(name))) > r;
    case '>=':
      return (vars) => toLuaNumber(scalar(vars.get(name))) >= r;
    case '<':
      return (vars) => toLuaNumber(scalar(vars.get(name))) < r;
    default:
      return (vars) => toLuaNumber(scalar(vars.get(name))) <= r;
  }
}

function compileRegex(name: string, op: string, value: unknown): Predicate {
  if (typeof value !== 'string') {
    throw new ExprError(`invalid value for operator '${op}': expected a regex string, got ${typeName(value)}`);
  }
  let re: RegExp;
  try {
    re = compilePcre(value, op === '~*');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ExprError(`invalid regex '${value}' for operator '${op}': ${reason}`);
  }
  return (vars) => {
    const x = scalar(vars.get(name));
    if (typeof x === 'string') return re.test(x);
    if (typeof x === 'number' || typeof x === 'boolean') return re.test(String(x));
    return false;
  };
}

function compileIn(name: string, value: unknown): Predicate {
  if (!Array.isArray(value)) {
    throw new ExprError(`invalid value for operator 'in': expected an array, got ${typeName(value)}`);
  }
  // Copied so later mutation of the config object cannot change a compiled route. Nulls, arrays
  // and objects can never equal a variable, so they are dropped.
  const list = value.filter((v: unknown) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean');
  const n = list.length;
  if (n === 0) return NEVER;
  return (vars) => {
    const x = scalar(vars.get(name));
    if (x === undefined || x === null) return false;
    for (let i = 0; i < n; i++) if (sameValue(x, list[i])) return true;
    return false;
  };
}

function compileHas(name: string, value: unknown): Predicate {
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
    throw new ExprError(`invalid value for operator 'has': expected a string, number or boolean, got ${typeName(value)}`);
  }
  return (vars) => {
    const x = vars.get(name);
    if (!Array.isArray(x)) return false;
    for (let i = 0; i < x.length; i++) if (sameValue(x[i], value)) return true;
    return false;
  };
}

function compileIpmatch(name: string, value: unknown): Predicate {
  let list: string[];
  if (typeof value === 'string' && value !== '') {
    list = [value];
  } else if (Array.isArray(value) && value.length > 0) {
    list = [];
    for (const item of value as unknown[]) {
      if (typeof item !== 'string') throw new ExprError(`invalid ip address: ${show(item)}`);
      list.push(item);
    }
  } else {
    throw new ExprError('invalid ip address');
  }
  let match: (ip: string) => boolean;
  try {
    match = compileIpMatcher(list);
  } catch (err) {
    throw new ExprError(err instanceof Error ? err.message : 'invalid ip address');
  }
  return (vars) => {
    const x = scalar(vars.get(name));
    return typeof x === 'string' ? match(x) : false;
  };
}

// ---------------------------------------------------------------------------------------------
// Messages

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function show(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return String(JSON.stringify(v));
  } catch {
    return String(v);
  }
}
