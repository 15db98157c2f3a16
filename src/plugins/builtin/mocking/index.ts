// mocking: answers requests with a made-up response instead of proxying them, as APISIX's mocking
// plugin (apache/apisix: apisix/plugins/mocking.lua). The body is `response_example` as written, or
// an example generated from `response_schema` (JSON for JSON and text content types, XML for XML
// ones). The body and `response_headers` values may use request variables (`$remote_addr`).
// With `with_mock_header` the response says who mocked it: `x-mock-by: Causeway/<version>` (APISIX
// sends the same header with `APISIX/<version>`).
import { definePlugin, type PhaseExit, type PluginContext } from '../../api.ts';
import { compileTemplate, type Template } from '../../lib/interpolate.ts';
import { VERSION } from '../../../util/version.ts';
import { generateObject, toJson, toXml } from './generate.ts';

interface MockingConf {
  delay: number;
  response_status: number;
  content_type: string;
  response_example?: string;
  response_schema?: Record<string, unknown>;
  with_mock_header: boolean;
  response_headers?: Record<string, string | number>;
}

type BodyFormat = 'json' | 'xml' | 'none';

interface MockingState {
  /** The fixed body (`response_example`), or undefined when it is generated per request. */
  example: Template | undefined;
  format: BodyFormat;
  headers: Array<[string, Template | string]>;
}

const MOCK_HEADER_VALUE = `Causeway/${VERSION}`;

const SUPPORTED_CONTENT_TYPES = new Set(['application/xml', 'application/json', 'text/plain', 'text/html', 'text/xml']);

const schema = {
  type: 'object',
  properties: {
    // seconds
    delay: { type: 'integer', default: 0 },
    response_status: { type: 'integer', default: 200, minimum: 100 },
    content_type: { type: 'string', default: 'application/json;charset=utf8' },
    response_example: { type: 'string' },
    response_schema: { type: 'object' },
    with_mock_header: { type: 'boolean', default: true },
    response_headers: {
      type: 'object',
      minProperties: 1,
      patternProperties: { '^[^:]+$': { oneOf: [{ type: 'string' }, { type: 'number' }] } },
    },
  },
  anyOf: [{ required: ['response_example'] }, { required: ['response_schema'] }],
};

/**
 * The media type of a Content-Type, as APISIX reads it: everything before the last `;` (when the
 * value is printable ASCII), the whole value otherwise; compared as written (case and spaces count).
 */
function mediaType(contentType: string): string {
  const semicolon = contentType.lastIndexOf(';');
  if (semicolon === -1 || !/^[ -~]*$/.test(contentType)) return contentType;
  return contentType.slice(0, semicolon);
}

function formatFor(contentType: string): BodyFormat {
  const type = mediaType(contentType);
  if (type === 'application/xml' || type === 'text/xml') return 'xml';
  if (type === 'application/json' || type === 'text/plain') return 'json';
  return 'none';
}

function generatedBody(conf: MockingConf, state: MockingState, ctx: PluginContext): string {
  if (state.format === 'none') {
    ctx.log('error', 'json schema body only support xml and json content type');
    return '';
  }
  const value = generateObject(conf.response_schema!);
  const text = state.format === 'xml' ? toXml(value) : toJson(value);
  // APISIX resolves variables in the generated text too; only examples can bring a `$`.
  return text.includes('$') ? compileTemplate(text).render(ctx) : text;
}

function mockResponse(ctx: PluginContext, conf: MockingConf, state: MockingState): PhaseExit {
  const headers = ctx.response.headers;
  headers.set('Content-Type', conf.content_type);
  if (conf.with_mock_header) headers.set('x-mock-by', MOCK_HEADER_VALUE);
  for (const [name, value] of state.headers) headers.add(name, typeof value === 'string' ? value : value.render(ctx));
  const body = state.example ? state.example.render(ctx) : generatedBody(conf, state, ctx);
  return { status: conf.response_status, body };
}

export default definePlugin<MockingConf, MockingState>({
  name: 'mocking',
  version: 0.1,
  priority: 10900,
  schema,

  check(conf) {
    if (!SUPPORTED_CONTENT_TYPES.has(mediaType(conf.content_type))) return 'unsupported content type!';
    return undefined;
  },

  compile(conf) {
    return {
      example: conf.response_example === undefined ? undefined : compileTemplate(conf.response_example),
      format: formatFor(conf.content_type),
      headers: Object.entries(conf.response_headers ?? {}).map(([name, value]) => [name, typeof value === 'number' ? String(value) : compileTemplate(value)]),
    };
  },

  phases: {
    access(ctx, conf, state) {
      if (conf.delay > 0) {
        return new Promise<PhaseExit>((resolve) => setTimeout(() => resolve(mockResponse(ctx, conf, state)), conf.delay * 1000));
      }
      return mockResponse(ctx, conf, state);
    },
  },
});
