// response-rewrite: changes the response the client gets (status, headers, body or regex edits of
// the body), only when the response matches `vars`.
// Contract: apache/apisix apisix/plugins/response-rewrite.lua (3.x).
import { isUtf8 } from 'node:buffer';
import { compileExpr, validateExpr, type Predicate } from '../../../expr/index.ts';
import { definePlugin, type PluginContext } from '../../api.ts';
import { checkFlatHeaders, headerText, isOperationsForm } from '../../lib/header-ops.ts';
import { compileTemplate, type Template } from '../../lib/interpolate.ts';
import { compileNgxRegex, compileReplacement, substituteAll, substituteFirst, type NgxRegex, type Replacement } from '../../lib/pcre.ts';
import { ResponseVars, clearHeadersForNewBody } from '../../lib/response.ts';

const headerValue = { oneOf: [{ type: 'string' }, { type: 'number' }] };

const schema = {
  type: 'object',
  properties: {
    headers: {
      description: 'new headers for response',
      anyOf: [
        { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } },
        {
          properties: {
            add: {
              type: 'array',
              minItems: 1,
              // "Set-Cookie: <cookie-name>=<cookie-value>; Max-Age=<number>"
              items: { type: 'string', pattern: '^[^:]+:[^:]+[^/]$' },
            },
            set: { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } },
            remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
          },
        },
      ],
    },
    body: { description: 'new body for response', type: 'string' },
    body_base64: { description: 'whether new body for response need base64 decode before return', type: 'boolean', default: false },
    status_code: { description: 'new status code for response', type: 'integer', minimum: 200, maximum: 598 },
    vars: { type: 'array' },
    filters: {
      description: 'a group of filters that modify response body by replacing one specified string by another',
      type: 'array',
      minItems: 1,
      items: {
        description: 'filter that modifies response body',
        type: 'object',
        required: ['regex', 'replace'],
        properties: {
          regex: { description: 'match pattern on response body', type: 'string', minLength: 1 },
          scope: { description: 'regex substitution range', type: 'string', enum: ['once', 'global'], default: 'once' },
          replace: { description: 'regex substitution content', type: 'string' },
          options: { description: 'regex options', type: 'string', default: 'jo' },
        },
      },
    },
  },
  dependencies: {
    body: { not: { required: ['filters'] } },
    filters: { not: { required: ['body'] } },
  },
};

interface FilterConf {
  regex: string;
  scope: 'once' | 'global';
  replace: string;
  options: string;
}

interface ResponseRewriteConf {
  headers?: Record<string, unknown>;
  body?: string;
  body_base64: boolean;
  status_code?: number;
  vars?: unknown[];
  filters?: FilterConf[];
}

interface BodyFilterRule {
  regex: NgxRegex;
  replace: Replacement;
  global: boolean;
}

interface HeaderOp {
  name: string;
  value: Template;
}

interface ResponseRewriteState {
  /** Per-request marker in ctx.state, unique to this configured instance. */
  key: string;
  matches: Predicate | undefined;
  statusCode: number | undefined;
  body: Buffer | undefined;
  filters: BodyFilterRule[] | undefined;
  add: HeaderOp[];
  set: HeaderOp[];
  remove: string[];
}

/** What a matched request keeps between body chunks. */
interface BodyProgress {
  /** Body mode: the new body went out already. Filter mode: chunks held until the last one. */
  sent: boolean;
  held: Buffer[];
}

const EMPTY = Buffer.alloc(0);
let instanceCount = 0;

/** ngx.decode_base64's acceptance: base64 characters up to optional `=` padding, never one leftover character. */
function decodeBase64(text: string): Buffer | undefined {
  const unpadded = text.replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(unpadded) || unpadded.length % 4 === 1) return undefined;
  return Buffer.from(unpadded, 'base64');
}

/** `Name: value` of the `add` list, split as APISIX does (`^([^:\s]+)\s*:\s*([^:]+)$`). */
function splitAddEntry(entry: string): { name: string; value: string } | undefined {
  const m = /^([^:\s]+)\s*:\s*([^:]+)$/.exec(entry);
  return m ? { name: m[1], value: m[2] } : undefined;
}

function compileHeaderOps(headers: Record<string, unknown> | undefined): Pick<ResponseRewriteState, 'add' | 'set' | 'remove'> {
  const ops = { add: [] as HeaderOp[], set: [] as HeaderOp[], remove: [] as string[] };
  if (!headers) return ops;
  const toOps = (entries: Record<string, unknown>) => Object.entries(entries).map(([name, value]) => ({ name, value: compileTemplate(headerText(value)) }));
  if (!isOperationsForm(headers)) {
    ops.set = toOps(headers);
    return ops;
  }
  for (const entry of (headers.add as string[] | undefined) ?? []) {
    const parsed = splitAddEntry(entry);
    if (parsed) ops.add.push({ name: parsed.name, value: compileTemplate(parsed.value) });
  }
  ops.set = toOps((headers.set as Record<string, unknown> | undefined) ?? {});
  ops.remove = (headers.remove as string[] | undefined) ?? [];
  return ops;
}

export default definePlugin<ResponseRewriteConf, ResponseRewriteState>({
  name: 'response-rewrite',
  version: 0.1,
  priority: 899,
  schema,

  check(conf) {
    if (conf.headers && !isOperationsForm(conf.headers)) {
      const err = checkFlatHeaders(conf.headers, false);
      if (err) return err;
    }
    if (conf.body_base64) {
      if (!conf.body || decodeBase64(conf.body) === undefined) return 'invalid base64 content';
    }
    if (conf.vars) {
      const err = validateExpr(conf.vars);
      if (err) return `failed to validate the 'vars' expression: ${err}`;
    }
    for (const filter of conf.filters ?? []) {
      try {
        compileNgxRegex(filter.regex, filter.options);
      } catch (err) {
        return `regex "${filter.regex}" validation failed: ${(err as Error).message}`;
      }
      try {
        compileReplacement(filter.replace);
      } catch (err) {
        return `regex "${filter.regex}" validation failed: ${(err as Error).message}`;
      }
    }
    if (conf.headers && isOperationsForm(conf.headers)) {
      for (const entry of (conf.headers.add as string[] | undefined) ?? []) {
        if (!splitAddEntry(entry)) return `invalid header in headers.add: ${entry}`;
      }
    }
    return undefined;
  },

  compile(conf) {
    let body: Buffer | undefined;
    if (conf.body !== undefined) body = conf.body_base64 ? decodeBase64(conf.body) ?? EMPTY : Buffer.from(conf.body, 'utf8');
    return {
      key: `response-rewrite#${++instanceCount}`,
      matches: conf.vars ? compileExpr(conf.vars) : undefined,
      statusCode: conf.status_code,
      body,
      filters: conf.filters?.map((f) => ({ regex: compileNgxRegex(f.regex, f.options), replace: compileReplacement(f.replace), global: f.scope === 'global' })),
      ...compileHeaderOps(conf.headers),
    };
  },

  phases: {
    header_filter(ctx, _conf, state) {
      // `status` and response headers are readable by `vars` and by header values from here on.
      const vars = new ResponseVars(ctx);
      if (state.matches && !state.matches(vars)) return;
      if (state.statusCode !== undefined) ctx.response.status = state.statusCode;
      if (state.body !== undefined || state.filters !== undefined) {
        ctx.state.set(state.key, { sent: false, held: [] } satisfies BodyProgress);
        clearHeadersForNewBody(ctx);
      }
      applyHeaderOps(ctx, state, vars);
    },

    body_filter(ctx, _conf, state, chunk, eof) {
      const progress = ctx.state.get(state.key) as BodyProgress | undefined;
      if (progress === undefined) return undefined;
      if (state.filters) {
        if (!eof) {
          progress.held.push(chunk);
          return EMPTY;
        }
        progress.held.push(chunk);
        return filterBody(Buffer.concat(progress.held), state.filters);
      }
      // Body mode: the configured body replaces the first chunk and ends the response.
      if (progress.sent) return EMPTY;
      progress.sent = true;
      return state.body;
    },
  },
});

function applyHeaderOps(ctx: PluginContext, state: ResponseRewriteState, vars: ResponseVars): void {
  const headers = ctx.response.headers;
  for (const op of state.add) headers.add(op.name, op.value.render(vars));
  for (const op of state.set) {
    const value = op.value.render(vars);
    // Setting a header to '' removes it (nginx's ngx.header semantics).
    if (value === '') headers.remove(op.name);
    else headers.set(op.name, value);
  }
  for (const name of state.remove) headers.remove(name);
}

/** Runs the filters over the whole body; text that is not UTF-8 is matched byte for byte. */
function filterBody(body: Buffer, filters: readonly BodyFilterRule[]): Buffer {
  const encoding = isUtf8(body) ? 'utf8' : 'latin1';
  let text = body.toString(encoding);
  for (const f of filters) text = f.global ? substituteAll(text, f.regex, f.replace) : substituteFirst(text, f.regex, f.replace);
  return Buffer.from(text, encoding);
}
