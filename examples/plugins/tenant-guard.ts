// An example Causeway plugin: requests must name an allowed tenant in a header; the tenant is
// passed upstream as X-Tenant and echoed on the response. See docs/plugin-development.md.
import type { PluginDefinition } from 'causeway/plugin';

interface Conf {
  header: string;
  tenants: string[];
  rejected_code: number;
}

interface State {
  allowed: Set<string>;
  headerVar: string;
}

const plugin: PluginDefinition<Conf, State> = {
  name: 'tenant-guard',
  version: 0.1,
  priority: 90, // custom plugins: 0-100, after every builtin auth and limit plugin
  schema: {
    type: 'object',
    properties: {
      header: { type: 'string', minLength: 1, default: 'x-tenant-id' },
      tenants: { type: 'array', items: { type: 'string' }, minItems: 1, uniqueItems: true },
      rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 403 },
    },
    required: ['tenants'],
  },
  // Built once per config version: the request path only does a Set lookup.
  compile: (conf) => ({ allowed: new Set(conf.tenants), headerVar: conf.header.toLowerCase() }),
  phases: {
    access(ctx, conf, state) {
      const tenant = ctx.header(state.headerVar);
      if (tenant === undefined) return { status: conf.rejected_code, body: { message: `missing ${conf.header}` } };
      if (!state.allowed.has(tenant)) return { status: conf.rejected_code, body: { message: `tenant ${tenant} is not allowed` } };
      ctx.setHeader('X-Tenant', tenant);
      ctx.state.set('tenant', tenant);
    },
    header_filter(ctx) {
      const tenant = ctx.state.get('tenant');
      if (typeof tenant === 'string') ctx.response.headers.set('X-Tenant', tenant);
    },
  },
};

export default plugin;
