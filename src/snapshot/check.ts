// The data-plane checker: what a resource must pass before any worker sees it. Schema first
// (model/), then what only compiling proves (expressions, upstream nodes). Every config source uses it.
import { validateExpr } from '../expr/index.ts';
import { KIND_NAMES, validateResource, type ResourceKind, type Route } from '../model/index.ts';

export function checkResource(kind: ResourceKind, value: unknown): string | undefined {
  const schemaError = validateResource(kind, value);
  if (schemaError) return schemaError;
  const obj = value as { plugins?: Record<string, unknown> };
  if (obj.plugins) {
    // The plugin runtime is not part of this build: any plugin name is unknown, as APISIX says
    // for a plugin that is not enabled.
    const name = Object.keys(obj.plugins)[0];
    if (name !== undefined) return `unknown plugin [${name}]`;
  }
  if (kind === 'routes') {
    const route = value as Route;
    if (route.vars) {
      const err = validateExpr(route.vars);
      if (err) return `failed to validate the 'vars' expression: ${err}`;
    }
  }
  return undefined;
}

export { KIND_NAMES };
