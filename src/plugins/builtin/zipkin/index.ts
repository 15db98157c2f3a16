// zipkin: traces requests as Zipkin spans with B3 propagation, reported to a Zipkin v2 endpoint.
// Contract: apache/apisix apisix/plugins/zipkin.lua, zipkin/codec.lua, zipkin/reporter.lua and
// docs/en/latest/plugins/zipkin.md (3.x).
//
// - rewrite: reads B3 from the request: the single `b3` header (`traceid-spanid-sampled-parentspanid`,
//   or `0`; it is not passed upstream, and a malformed one is answered with 400) or the
//   `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-ParentSpanId`, `X-B3-Sampled` and `X-B3-Flags` headers.
//   `X-B3-Sampled`/the sampled field decide sampling when present (`X-B3-Flags: 1` or `d` forces it),
//   otherwise `sample_ratio` does. An unsampled request is sent upstream with `X-B3-Sampled: 0`.
// - The spans: `apisix.request` (SERVER, child of the client's span) and, with `span_version` 2,
//   `apisix.proxy` (request start to the response head) and `apisix.response_span` (response head to
//   the end); with `span_version` 1, `apisix.rewrite`, `apisix.access`, `apisix.proxy` and its child
//   `apisix.body_filter`.
// - access: the upstream gets `X-B3-TraceId`, `X-B3-ParentSpanId` (the request span), `X-B3-SpanId`
//   (the proxy span) and `X-B3-Sampled: 1`.
// - log: the spans go to the batch processor (as APISIX's reporter: 1000 spans, or 5 s without a new
//   span, or 60 s; no retry) and are POSTed as a JSON array of Zipkin v2 spans, off the request path.
import { definePlugin, type PluginContext } from '../../api.ts';
import { BatchManager, BatchProcessor, DEFAULT_MAX_PENDING_ENTRIES, type BatchConf, type BatchLog } from '../../lib/batch-processor.ts';
import { post } from '../../lib/span-export.ts';
import { isHex, newSpanId, newTraceId, SpanClock } from '../../lib/trace-context.ts';

const NAME = 'zipkin';
/** ctx.state key of the request's trace. */
const KEY = 'zipkin.trace';

const schema = {
  type: 'object',
  properties: {
    endpoint: { type: 'string' },
    sample_ratio: { type: 'number', minimum: 0.00001, maximum: 1 },
    service_name: { type: 'string', description: 'service name for zipkin reporter', default: 'APISIX' },
    server_addr: {
      type: 'string',
      description: 'default is $server_addr, you can specify your external ip address',
      pattern: '^[0-9]{1,3}.[0-9]{1,3}.[0-9]{1,3}.[0-9]{1,3}$',
    },
    span_version: { enum: [1, 2], default: 2 },
  },
  required: ['endpoint', 'sample_ratio'],
};

interface ZipkinConf {
  endpoint: string;
  sample_ratio: number;
  service_name: string;
  server_addr?: string;
  span_version: 1 | 2;
}

interface Endpoint {
  serviceName?: string;
  ipv4?: string;
  ipv6?: string;
  port?: number;
}

/** A Zipkin v2 span (zipkin2-api.yaml `Span`). */
interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  kind?: 'SERVER';
  timestamp: number;
  duration: number;
  localEndpoint: Endpoint;
  remoteEndpoint?: Endpoint;
  tags?: Record<string, string>;
}

interface ZipkinState {
  reporter: Reporter | undefined;
  v1: boolean;
  setVars: boolean;
}

interface Trace {
  traceId: string;
  requestSpanId: string;
  parentId: string | undefined;
  proxySpanId: string;
  start: number;
  rewriteEnd: number;
  accessEnd: number | undefined;
  headerAt: number | undefined;
}

// APISIX's reporter (zipkin/reporter.lua) hands spans to a batch processor configured so.
const REPORT_CONF: BatchConf = {
  name: 'zipkin_report',
  batch_max_size: 1000,
  inactive_timeout: 5,
  buffer_duration: 60,
  max_retry_count: 0,
  retry_delay: 1,
};
const REPORT_TIMEOUT_MS = 10_000;

const manager = BatchManager.of(NAME);

interface Reporter {
  processor: BatchProcessor<ZipkinSpan>;
  log: BatchLog;
}

/** This worker's reporters by endpoint. */
const reporters = new Map<string, Reporter>();

function reporterFor(endpoint: string, log: BatchLog): Reporter | undefined {
  let reporter = reporters.get(endpoint);
  if (reporter) return reporter;
  let url: URL;
  try {
    url = new URL(endpoint);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    log('error', `${NAME}: invalid endpoint "${endpoint}": spans are not reported`);
    return undefined;
  }
  const target = { url, headers: { 'Content-Type': 'application/json' }, timeoutMs: REPORT_TIMEOUT_MS };
  const processor = new BatchProcessor<ZipkinSpan>(manager, REPORT_CONF, (spans) => post(target, Buffer.from(JSON.stringify(spans))), log);
  reporter = { processor, log };
  reporters.set(endpoint, reporter);
  return reporter;
}

interface B3 {
  traceId: string | undefined;
  spanId: string | undefined;
  sampled: string | undefined;
  parentSpanId: string | undefined;
}

/** The single `b3` header: `0`, or `traceid-spanid[-sampled[-parentspanid]]`; a string is the error. */
export function parseB3(b3: string): B3 | string {
  if (b3 === '0') return { traceId: undefined, spanId: undefined, sampled: '0', parentSpanId: undefined };
  const pieces = b3.split('-');
  // At most four pieces: the last one keeps any further dashes (ngx.re.split with a limit).
  if (pieces.length > 4) pieces.splice(3, pieces.length - 3, pieces.slice(3).join('-'));
  if (pieces[0] === undefined || pieces[0] === '') return 'missing trace_id';
  if (pieces[1] === undefined || pieces[1] === '') return 'missing span_id';
  return { traceId: pieces[0], spanId: pieces[1], sampled: pieces[2], parentSpanId: pieces[3] };
}

/** The extracted parent, or undefined when an id is missing or malformed (a new trace starts). */
function validContext(b3: B3): { traceId: string; spanId: string | undefined } | undefined {
  const { traceId, spanId, parentSpanId } = b3;
  if (traceId === undefined || !(isHex(traceId, 16) || isHex(traceId, 32))) return undefined;
  if (parentSpanId !== undefined && !isHex(parentSpanId, 16)) return undefined;
  if (spanId !== undefined && !isHex(spanId, 16)) return undefined;
  return { traceId: traceId.toLowerCase(), spanId: spanId?.toLowerCase() };
}

function sample(ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  return Math.random() < ratio;
}

function endpointOf(addr: string, port: number | undefined, serviceName?: string): Endpoint {
  const e: Endpoint = {};
  if (serviceName !== undefined) e.serviceName = serviceName;
  if (addr.includes(':')) e.ipv6 = addr;
  else if (addr !== '') e.ipv4 = addr;
  if (port !== undefined && port > 0) e.port = port;
  return e;
}

function lastUpstreamStatus(ctx: PluginContext): string | undefined {
  const v = ctx.get('upstream_status');
  if (v === undefined || v === '') return ctx.get('status');
  const comma = v.lastIndexOf(',');
  return comma === -1 ? v : v.slice(comma + 1).trim();
}

function report(ctx: PluginContext, conf: ZipkinConf, state: ZipkinState, trace: Trace): void {
  const reporter = state.reporter;
  if (!reporter) return;
  const spans: ZipkinSpan[] = [];
  const end = performance.now();
  const clock = new SpanClock();
  const local = endpointOf(conf.server_addr || (ctx.get('server_addr') ?? ''), Number(ctx.get('server_port')), conf.service_name);
  const span = (name: string, id: string, parentId: string | undefined, from: number, to: number): ZipkinSpan => {
    const s: ZipkinSpan = { traceId: trace.traceId, id, name, timestamp: clock.micros(from), duration: Math.max(0, Math.floor((to - from) * 1000)), localEndpoint: local };
    if (parentId !== undefined) s.parentId = parentId;
    return s;
  };
  const request = span('apisix.request', trace.requestSpanId, trace.parentId, trace.start, end);
  request.kind = 'SERVER';
  request.remoteEndpoint = endpointOf(ctx.remoteAddr, ctx.remotePort);
  const tags: Record<string, string> = { component: 'apisix', 'http.method': ctx.method, 'http.url': ctx.get('request_uri') ?? ctx.requestUri };
  const status = lastUpstreamStatus(ctx);
  if (status !== undefined) tags['http.status_code'] = status;
  request.tags = tags;
  spans.push(request);
  const headerAt = trace.headerAt;
  if (!state.v1) {
    spans.push(span('apisix.proxy', trace.proxySpanId, trace.requestSpanId, trace.start, headerAt ?? end));
    if (headerAt !== undefined) spans.push(span('apisix.response_span', newSpanId(), trace.requestSpanId, headerAt, end));
  } else {
    spans.push(span('apisix.rewrite', newSpanId(), trace.requestSpanId, trace.start, trace.rewriteEnd));
    if (trace.accessEnd !== undefined) {
      spans.push(span('apisix.access', newSpanId(), trace.requestSpanId, trace.rewriteEnd, trace.accessEnd));
      spans.push(span('apisix.proxy', trace.proxySpanId, trace.requestSpanId, trace.accessEnd, end));
      if (headerAt !== undefined) spans.push(span('apisix.body_filter', newSpanId(), trace.proxySpanId, headerAt, end));
    }
  }
  // Spans waiting to be reported are bounded per worker, as the loggers' entries are.
  for (const s of spans) if (manager.admit(DEFAULT_MAX_PENDING_ENTRIES, reporter.log)) reporter.processor.push(s);
}

export default definePlugin<ZipkinConf, ZipkinState>({
  name: NAME,
  version: 0.1,
  priority: 12011,
  schema,

  compile(conf, env) {
    return {
      reporter: reporterFor(conf.endpoint, env.log),
      v1: conf.span_version === 1,
      setVars: (env.attributes as { set_ngx_var?: unknown } | undefined)?.set_ngx_var === true,
    };
  },

  destroy() {
    manager.flushAll();
    reporters.clear();
  },

  phases: {
    rewrite(ctx, conf, state) {
      if (ctx.state.has(KEY)) return undefined;
      // X-B3-Flags: 1 (debug) forces sampling, unless a sampled field says otherwise.
      let ratio: number | undefined = ctx.header('x-b3-flags') === '1' ? 1 : undefined;
      let b3: B3;
      const single = ctx.header('b3');
      if (single !== undefined) {
        // The single header is not passed upstream: the upstream gets the multi-header form.
        ctx.setHeader('b3', undefined);
        const parsed = parseB3(single);
        if (typeof parsed === 'string') {
          ctx.log('error', `invalid b3 header: ${single}, ignored: ${parsed}`);
          return { status: 400 };
        }
        b3 = parsed;
        if (b3.sampled === 'd') {
          ctx.setHeader('x-b3-flags', '1');
          b3.sampled = '1';
        }
      } else {
        b3 = {
          traceId: ctx.header('x-b3-traceid'),
          spanId: ctx.header('x-b3-spanid'),
          sampled: ctx.header('x-b3-sampled'),
          parentSpanId: ctx.header('x-b3-parentspanid'),
        };
      }
      if (b3.sampled === '1' || b3.sampled === 'true') ratio = 1;
      else if (b3.sampled === '0' || b3.sampled === 'false') ratio = 0;

      if (!sample(ratio ?? conf.sample_ratio)) {
        // Decided once per request, also when a global rule and the route both have the plugin.
        ctx.state.set(KEY, undefined);
        ctx.setHeader('x-b3-sampled', '0');
        // The single header's ids still reach the upstream, the client's span as the parent.
        if (single !== undefined && b3.traceId !== undefined) {
          ctx.setHeader('x-b3-traceid', b3.traceId);
          if (b3.spanId !== undefined) ctx.setHeader('x-b3-parentspanid', b3.spanId);
          ctx.setHeader('x-b3-spanid', undefined);
        }
        return undefined;
      }

      const parent = validContext(b3);
      if (!parent && b3.traceId !== undefined) ctx.log('warn', `${NAME}: invalid B3 ids in the request; starting a new trace`);
      const now = performance.now();
      const trace: Trace = {
        traceId: parent?.traceId ?? newTraceId(),
        requestSpanId: newSpanId(),
        parentId: parent?.spanId,
        proxySpanId: newSpanId(),
        start: ctx.startTime,
        rewriteEnd: now,
        accessEnd: undefined,
        headerAt: undefined,
      };
      ctx.state.set(KEY, trace);
      if (state.setVars) {
        ctx.setVar('zipkin_context_traceparent', `00-${trace.traceId.padStart(32, '0')}-${trace.requestSpanId}-01`);
        ctx.setVar('zipkin_trace_id', trace.traceId);
        ctx.setVar('zipkin_span_id', trace.requestSpanId);
      }
      return undefined;
    },

    access(ctx) {
      const trace = ctx.state.get(KEY) as Trace | undefined;
      if (!trace) return undefined;
      trace.accessEnd ??= performance.now();
      ctx.setHeader('x-b3-traceid', trace.traceId);
      ctx.setHeader('x-b3-parentspanid', trace.requestSpanId);
      ctx.setHeader('x-b3-spanid', trace.proxySpanId);
      ctx.setHeader('x-b3-sampled', '1');
      return undefined;
    },

    header_filter(ctx) {
      const trace = ctx.state.get(KEY) as Trace | undefined;
      if (trace) trace.headerAt ??= performance.now();
    },

    log(ctx, conf, state) {
      const trace = ctx.state.get(KEY) as Trace | undefined;
      if (!trace) return;
      // Reported once, whichever instance's log runs first.
      ctx.state.delete(KEY);
      report(ctx, conf, state, trace);
    },
  },
});
