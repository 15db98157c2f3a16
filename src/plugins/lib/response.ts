// Helpers for plugins that look at or change the response: the variables nginx offers once the
// response exists, and the headers that stop being true when a plugin changes the body.
import type { PluginContext } from '../api.ts';

/**
 * Request variables plus the response-side ones (`status`, `sent_http_<name>`,
 * `upstream_http_<name>`), for `vars` conditions and header templates in response phases.
 */
export class ResponseVars {
  readonly #ctx: PluginContext;

  constructor(ctx: PluginContext) {
    this.#ctx = ctx;
  }

  get(name: string): string | undefined {
    if (name === 'status') {
      const status = this.#ctx.response.status;
      return status === 0 ? undefined : String(status);
    }
    if (name.startsWith('sent_http_')) return this.#responseHeader(name.slice(10));
    if (name.startsWith('upstream_http_')) return this.#responseHeader(name.slice(14));
    return this.#ctx.get(name);
  }

  #responseHeader(varName: string): string | undefined {
    return this.#ctx.response.headers.get(varName.replace(/_/g, '-'));
  }
}

/**
 * What APISIX's `core.response.clear_header_as_body_modified` removes: the length, the encoding
 * (the new body is not the upstream's compressed one) and the cache validators.
 */
export function clearHeadersForNewBody(ctx: PluginContext): void {
  const headers = ctx.response.headers;
  headers.remove('Content-Length');
  headers.remove('Content-Encoding');
  headers.remove('Last-Modified');
  headers.remove('ETag');
}
