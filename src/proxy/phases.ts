// The plugin phase driver's place in the request path. Plugins arrive with the plugin runtime;
// until then a route's phases are empty and requests pass straight through.
import type { CompiledRoute } from '../snapshot/types.ts';
import type { RequestContext } from './context.ts';

/** A phase's verdict to end the request early, as APISIX's `return code, body`. */
export interface PhaseStop {
  status: number;
  body?: string | object;
  headers?: Record<string, string>;
}

/** Runs rewrite and access phases (global rules, then the route's plugins); a result stops the request. */
export function runAccessPhases(_ctx: RequestContext, _route: CompiledRoute): PhaseStop | undefined {
  return undefined;
}
