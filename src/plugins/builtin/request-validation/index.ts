// request-validation: checks the request headers and/or body against JSON Schemas before the
// request goes upstream. JSON bodies (the default) and application/x-www-form-urlencoded bodies are
// understood; a JSON body is forwarded as the value that was validated, re-encoded, so the
// upstream cannot read it differently (duplicate keys) and gets the schema's defaults.
// APISIX: apisix/plugins/request-validation.lua.
import { definePlugin, type PhaseExit, type PluginContext } from '../../api.ts';
import { compileUserSchema, type Validator } from '../../lib/json-schema.ts';
import { cjsonDecodeError } from './cjson-error.ts';

interface RequestValidationConf {
  header_schema?: Record<string, unknown>;
  body_schema?: Record<string, unknown>;
  rejected_code: number;
  rejected_msg?: string;
}

interface RequestValidationState {
  checkHeaders: ((ctx: PluginContext) => string | undefined) | undefined;
  checkBody: Validator | undefined;
}

function schemaError(schema: Record<string, unknown> | undefined): string | undefined {
  if (schema === undefined) return undefined;
  try {
    compileUserSchema(schema);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * APISIX validates nginx's header table, whose lookups ignore case and read `_` as `-`: a schema
 * naming `Content-Type` or `X_Api_Key` finds the header. Property names that differ from the
 * lower-case form get a copy of the header under that name before validation.
 */
function headerChecker(schema: Record<string, unknown>): (ctx: PluginContext) => string | undefined {
  const validate = compileUserSchema(schema);
  const named = new Set<string>([
    ...Object.keys((schema.properties as Record<string, unknown> | undefined) ?? {}),
    ...(Array.isArray(schema.required) ? schema.required.filter((n): n is string => typeof n === 'string') : []),
  ]);
  // [name in the schema, lower-case form, lower-case form with `-` for `_`]
  const aliases: Array<[string, string, string]> = [];
  for (const name of named) {
    const lower = name.toLowerCase();
    if (lower !== name || lower.includes('_')) aliases.push([name, lower, lower.replace(/_/g, '-')]);
  }
  return (ctx) => {
    // A copy: defaults the schema fills in must not leak into the request.
    const headers: Record<string, unknown> = { ...ctx.headers };
    for (const [name, lower, dashed] of aliases) {
      if (headers[name] !== undefined) continue;
      const value = headers[lower] ?? headers[dashed];
      if (value !== undefined) headers[name] = value;
    }
    return validate(headers);
  };
}

/**
 * `ngx.decode_args`: `&`-separated `key=value` pairs, `+` and `%XX` decoded; a key without `=` is
 * `true`; a repeated key collects its values in an array.
 */
export function decodeForm(body: Buffer): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf(0x26 /* & */, start);
    if (end === -1) end = body.length;
    if (end > start) {
      const eq = body.indexOf(0x3d /* = */, start);
      const hasValue = eq !== -1 && eq < end;
      const key = unescape(body.subarray(start, hasValue ? eq : end));
      const value: unknown = hasValue ? unescape(body.subarray(eq + 1, end)) : true;
      const previous = out[key];
      if (previous === undefined) out[key] = value;
      else if (Array.isArray(previous)) previous.push(value);
      else out[key] = [previous, value];
    }
    start = end + 1;
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x57 : -1;
}

/** `%XX` to the byte, `+` to a space; anything else (a stray `%` too) as it is. */
function unescape(part: Buffer): string {
  const bytes = Buffer.allocUnsafe(part.length);
  let n = 0;
  for (let i = 0; i < part.length; i++) {
    const c = part[i];
    if (c === 0x2b) {
      bytes[n++] = 0x20;
      continue;
    }
    if (c === 0x25 && i + 2 < part.length && hexValue(part[i + 1]) >= 0 && hexValue(part[i + 2]) >= 0) {
      bytes[n++] = hexValue(part[i + 1]) * 16 + hexValue(part[i + 2]);
      i += 2;
      continue;
    }
    bytes[n++] = c;
  }
  return bytes.toString('utf8', 0, n);
}

function reject(conf: RequestValidationConf, reason: string | undefined): PhaseExit {
  // A string body goes out as is (APISIX sends the validator's text, not JSON); with neither a
  // message nor a reason the client gets the gateway's error page for the code.
  const body = conf.rejected_msg ?? reason;
  return body === undefined ? { status: conf.rejected_code } : { status: conf.rejected_code, body };
}

async function validateBody(ctx: PluginContext, conf: RequestValidationConf, validate: Validator): Promise<PhaseExit | undefined> {
  const raw = await ctx.readBody();
  if (raw.length === 0) return reject(conf, undefined);
  // Node.js keeps the first of repeated Content-Type headers: the body is read by that one, and
  // only that one is forwarded, so the upstream cannot read the body by another.
  const type = ctx.header('content-type');
  if (type !== undefined) ctx.setHeader('Content-Type', type);
  if (type !== undefined && type.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    const err = validate(decodeForm(raw));
    return err === undefined ? undefined : reject(conf, err);
  }
  // Anything else is read as JSON.
  const text = raw.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return reject(conf, cjsonDecodeError(text));
  }
  const err = validate(value);
  if (err !== undefined) return reject(conf, err);
  ctx.setBody(JSON.stringify(value));
  return undefined;
}

export default definePlugin<RequestValidationConf, RequestValidationState>({
  name: 'request-validation',
  version: 0.1,
  priority: 2800,
  schema: {
    type: 'object',
    properties: {
      header_schema: { type: 'object' },
      body_schema: { type: 'object' },
      rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 400 },
      rejected_msg: { type: 'string', minLength: 1, maxLength: 256 },
    },
    anyOf: [{ required: ['header_schema'] }, { required: ['body_schema'] }],
  },

  check(conf) {
    return schemaError(conf.body_schema) ?? schemaError(conf.header_schema);
  },

  compile(conf) {
    return {
      checkHeaders: conf.header_schema ? headerChecker(conf.header_schema) : undefined,
      checkBody: conf.body_schema ? compileUserSchema(conf.body_schema) : undefined,
    };
  },

  phases: {
    rewrite(ctx, conf, state) {
      if (state.checkHeaders) {
        const err = state.checkHeaders(ctx);
        if (err !== undefined) return reject(conf, err);
      }
      return state.checkBody ? validateBody(ctx, conf, state.checkBody) : undefined;
    },
  },
});
