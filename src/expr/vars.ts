// The one way code outside the proxy reads request variables (`uri`, `host`, `http_x_foo`, `arg_a`,
// `cookie_b`, `remote_addr`, `uri_param_id`, ...). The proxy's request context implements it and
// caches values per request; unit tests use plain maps.

/** A request variable: a string, a list (repeated query args, `has` operands), a number, or absent. */
export type VarValue = string | number | boolean | readonly unknown[] | null | undefined;

export interface VarLookup {
  get(name: string): VarValue;
}

/** A compiled condition over request variables. */
export type Predicate = (vars: VarLookup) => boolean;

/** A VarLookup over a plain object, for tests and for the config-time checks. */
export function varsFromObject(values: Record<string, VarValue>): VarLookup {
  return { get: (name) => values[name] };
}
