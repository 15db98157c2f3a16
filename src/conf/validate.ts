// A small hand-written schema walker: it reports the first problem with the key's full path
// (`apisix.node_listen[1].port: must be an integer between 1 and 65535`) and suggests the closest known key for
// typos (`unknown key "apisix.node_listn" (did you mean "apisix.node_listen"?)`).
import { ConfigError } from './error.ts';
import { isPlainObject } from './object.ts';

type Kind = 'number' | 'string' | 'boolean' | 'array' | 'object';

interface Base {
  /** Must be present in its parent object (after the merge). */
  required?: boolean;
  /** Extra check run after the type check; returns an error (without the path) or undefined. */
  refine?: (value: unknown, path: string) => string | undefined;
}
export type Spec = Base & (
  | { type: 'object'; props: Record<string, Spec>; patternProps?: Array<[RegExp, Spec]>; removed?: Record<string, string> }
  | { type: 'map'; values?: Spec }
  | { type: 'array'; items: Spec; minItems?: number; what?: string }
  | { type: 'string'; enum?: readonly string[]; pattern?: RegExp; what?: string }
  | { type: 'integer'; min?: number; max?: number }
  | { type: 'number'; min?: number }
  | { type: 'boolean' }
  | { type: 'any' }
  | { type: 'union'; of: Spec[]; what: string }
);

// ---- spec builders ---------------------------------------------------------------------------------------------

export const req = <S extends Spec>(spec: S): S => ({ ...spec, required: true });
export const obj = (props: Record<string, Spec>, extra: Partial<Extract<Spec, { type: 'object' }>> = {}): Spec =>
  ({ type: 'object', props, ...extra });
export const map = (values?: Spec): Spec => ({ type: 'map', values });
export const arr = (items: Spec, extra: { minItems?: number; what?: string } = {}): Spec => ({ type: 'array', items, ...extra });
export const str = (extra: { pattern?: RegExp; what?: string; refine?: Base['refine'] } = {}): Spec => ({ type: 'string', ...extra });
export const oneOf = (...values: string[]): Spec => ({ type: 'string', enum: values });
export const int = (min?: number, max?: number): Spec => ({ type: 'integer', min, max });
export const num = (min?: number): Spec => ({ type: 'number', min });
export const bool = (): Spec => ({ type: 'boolean' });
export const any = (): Spec => ({ type: 'any' });
export const union = (what: string, ...of: Spec[]): Spec => ({ type: 'union', of, what });
export const port = (): Spec => int(1, 65535);

// ---- messages --------------------------------------------------------------------------------------------------

function describe(spec: Spec): string {
  switch (spec.type) {
    case 'object': return 'an object';
    case 'map': return 'an object';
    case 'array': return spec.what ?? `an array of ${plural(describe(spec.items))}`;
    case 'string':
      if (spec.enum) return spec.enum.length === 1 ? `"${spec.enum[0]}"` : `one of ${spec.enum.join(', ')}`;
      return spec.what ?? 'a string';
    case 'integer':
      if (spec.min !== undefined && spec.max !== undefined) return `an integer between ${spec.min} and ${spec.max}`;
      if (spec.min !== undefined) return `an integer >= ${spec.min}`;
      return 'an integer';
    case 'number': return spec.min !== undefined ? `a number >= ${spec.min}` : 'a number';
    case 'boolean': return 'a boolean (true or false)';
    case 'any': return 'any value';
    case 'union': return spec.what;
  }
}

function plural(text: string): string {
  return text.replace(/^an? (\w+)/, (_m, noun: string) => `${noun}s`).replace(/^one of/, 'values among');
}

function kindOf(value: unknown): Kind | 'null' {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return 'object';
  return typeof value as Kind;
}

function kindsOf(spec: Spec): Kind[] {
  switch (spec.type) {
    case 'object': case 'map': return ['object'];
    case 'array': return ['array'];
    case 'string': return ['string'];
    case 'integer': case 'number': return ['number'];
    case 'boolean': return ['boolean'];
    case 'any': return ['number', 'string', 'boolean', 'array', 'object'];
    case 'union': return spec.of.flatMap(kindsOf);
  }
}

function fail(path: string, message: string): never {
  throw new ConfigError(`${path}: ${message}`);
}

export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

function suggestion(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = levenshtein(key, candidate);
    if (d < bestDistance) { best = candidate; bestDistance = d; }
  }
  return best;
}

const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

// ---- walker ----------------------------------------------------------------------------------------------------

/** Checks `value` against `spec`; throws ConfigError for the first problem found. */
export function check(value: unknown, spec: Spec, path: string): void {
  const kind = kindOf(value);
  switch (spec.type) {
    case 'any':
      break;
    case 'union': {
      const candidates = spec.of.filter((branch) => kindsOf(branch).includes(kind as Kind));
      if (candidates.length === 0) fail(path, `must be ${spec.what}`);
      const structured = candidates.length === 1 && (kind === 'object' || kind === 'array');
      if (structured) {
        check(value, candidates[0], path); // descend, so the message names the nested key
      } else if (!candidates.some((branch) => passes(value, branch, path))) {
        fail(path, `must be ${spec.what}`);
      }
      break;
    }
    case 'object': {
      if (kind !== 'object') fail(path, `must be ${describe(spec)}`);
      const record = value as Record<string, unknown>;
      for (const [key, item] of Object.entries(record)) {
        const child = join(path, key);
        const removed = spec.removed?.[key];
        if (removed !== undefined) fail(child, removed);
        const sub = Object.hasOwn(spec.props, key) ? spec.props[key] : spec.patternProps?.find(([re]) => re.test(key))?.[1];
        if (sub === undefined) {
          const near = suggestion(key, Object.keys(spec.props));
          throw new ConfigError(`unknown key "${child}"` + (near ? ` (did you mean "${join(path, near)}"?)` : ''));
        }
        if ((item === null || item === undefined) && sub.type !== 'any') fail(child, `must be ${describe(sub)}`);
        check(item, sub, child);
      }
      for (const [key, sub] of Object.entries(spec.props)) {
        if (sub.required && !Object.hasOwn(record, key)) {
          fail(join(path, key), 'is required (a YAML null removes the default)');
        }
      }
      break;
    }
    case 'map': {
      if (kind !== 'object') fail(path, 'must be an object');
      if (spec.values) {
        for (const [key, item] of Object.entries(value as Record<string, unknown>)) check(item, spec.values, join(path, key));
      }
      break;
    }
    case 'array': {
      if (kind !== 'array') fail(path, `must be ${describe(spec)}`);
      const list = value as unknown[];
      if (spec.minItems !== undefined && list.length < spec.minItems) {
        fail(path, `must have at least ${spec.minItems} item${spec.minItems === 1 ? '' : 's'}`);
      }
      list.forEach((item, i) => check(item, spec.items, `${path}[${i}]`));
      break;
    }
    case 'string': {
      if (kind !== 'string') fail(path, `must be ${describe(spec)}`);
      const text = value as string;
      if (spec.enum && !spec.enum.includes(text)) fail(path, `must be ${describe(spec)} (got "${text}")`);
      if (spec.pattern && !spec.pattern.test(text)) fail(path, `must be ${describe(spec)} (got "${text}")`);
      break;
    }
    case 'integer': {
      const n = value as number;
      if (kind !== 'number' || !Number.isInteger(n) || (spec.min !== undefined && n < spec.min) ||
          (spec.max !== undefined && n > spec.max)) {
        fail(path, `must be ${describe(spec)}`);
      }
      break;
    }
    case 'number': {
      const n = value as number;
      if (kind !== 'number' || !Number.isFinite(n) || (spec.min !== undefined && n < spec.min)) fail(path, `must be ${describe(spec)}`);
      break;
    }
    case 'boolean':
      if (kind !== 'boolean') fail(path, `must be ${describe(spec)}`);
      break;
  }
  const problem = spec.refine?.(value, path);
  if (problem !== undefined) fail(path, problem);
}

function passes(value: unknown, spec: Spec, path: string): boolean {
  try {
    check(value, spec, path);
    return true;
  } catch (err) {
    if (err instanceof ConfigError) return false;
    throw err;
  }
}
