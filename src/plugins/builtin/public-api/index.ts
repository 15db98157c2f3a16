// public-api: serves on this route the endpoints plugins offer (the prometheus metrics when
// `plugin_attr.prometheus.enable_export_server` is false), so they can be exposed, and protected by
// the route's other plugins, on the proxy port.
// Contract: apache/apisix apisix/plugins/public-api.lua.
import { definePlugin, type PluginApi } from '../../api.ts';

interface PublicApiConf {
  uri?: string;
}

export default definePlugin<PublicApiConf, () => readonly PluginApi[]>({
  name: 'public-api',
  version: 0.1,
  priority: 501,
  schema: {
    type: 'object',
    properties: {
      uri: { type: 'string' },
    },
  },
  compile: (_conf, env) => env.pluginApis,
  phases: {
    access(ctx, conf, apis) {
      // `uri` names the endpoint when the route's own path differs from it.
      const uri = conf.uri ?? ctx.uri;
      const api = apis().find((a) => a.uri === uri && a.methods.includes(ctx.method));
      return api ? api.handler(ctx) : { status: 404 };
    },
  },
});
