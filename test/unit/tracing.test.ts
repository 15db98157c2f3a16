// Pure parts of the tracing plugins: W3C traceparent parsing, B3 single-header parsing, the OTLP
// encoders (protobuf checked by decoding with protobufjs and the .proto fixture), and the span batch
// queue's size, age and bound rules (durations in milliseconds so the cases run fast).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeOtlp } from '../helpers/collectors.ts';
import { collectorUrl } from '../../src/plugins/builtin/opentelemetry/index.ts';
import { bool, double, encodeJson, encodeProtobuf, int, str, type OtlpSpan } from '../../src/plugins/builtin/opentelemetry/otlp.ts';
import { parseB3 } from '../../src/plugins/builtin/zipkin/index.ts';
import { BatchQueue, type BatchSettings } from '../../src/plugins/lib/span-export.ts';
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from '../../src/plugins/lib/trace-context.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Lets the work scheduled with setImmediate run. */
const turn = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('timed out');
    await sleep(5);
  }
}
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('reads version 00 and later versions', () => {
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-01`), { traceId: TRACE, spanId: SPAN, flags: 1 });
    assert.deepEqual(parseTraceparent(` 00-${TRACE}-${SPAN}-00 `), { traceId: TRACE, spanId: SPAN, flags: 0 });
    assert.deepEqual(parseTraceparent(`cc-${TRACE}-${SPAN}-09-what-comes-next`), { traceId: TRACE, spanId: SPAN, flags: 9 });
    assert.deepEqual(parseTraceparent(`01-${TRACE}-${SPAN}-01`), { traceId: TRACE, spanId: SPAN, flags: 1 });
  });

  it('refuses malformed values', () => {
    for (const bad of [
      undefined,
      '',
      `00-${TRACE}-${SPAN}-01-extra`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `ff-${TRACE}-${SPAN}-01`,
      `0g-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-1`,
      `00_${TRACE}_${SPAN}_01`,
      `cc-${TRACE}-${SPAN}-01x`,
      `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01`,
    ]) {
      assert.equal(parseTraceparent(bad), undefined, String(bad));
    }
  });

  it('writes version 00 and makes non-zero ids', () => {
    assert.equal(formatTraceparent(TRACE, SPAN, true), `00-${TRACE}-${SPAN}-01`);
    assert.equal(formatTraceparent(TRACE, SPAN, false), `00-${TRACE}-${SPAN}-00`);
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      assert.match(t, /^[0-9a-f]{32}$/);
      assert.match(s, /^[0-9a-f]{16}$/);
      ids.add(t);
    }
    assert.equal(ids.size, 1000);
  });
});

describe('b3 single header', () => {
  it('reads its fields', () => {
    assert.deepEqual(parseB3('0'), { traceId: undefined, spanId: undefined, sampled: '0', parentSpanId: undefined });
    assert.deepEqual(parseB3(`${TRACE}-${SPAN}`), { traceId: TRACE, spanId: SPAN, sampled: undefined, parentSpanId: undefined });
    assert.deepEqual(parseB3(`${TRACE}-${SPAN}-d`), { traceId: TRACE, spanId: SPAN, sampled: 'd', parentSpanId: undefined });
    assert.deepEqual(parseB3(`${TRACE}-${SPAN}-1-${SPAN}`), { traceId: TRACE, spanId: SPAN, sampled: '1', parentSpanId: SPAN });
    assert.deepEqual(parseB3('a-b-c-d-e'), { traceId: 'a', spanId: 'b', sampled: 'c', parentSpanId: 'd-e' });
  });

  it('names what is missing', () => {
    assert.equal(parseB3(TRACE), 'missing span_id');
    assert.equal(parseB3(''), 'missing trace_id');
    assert.equal(parseB3(`-${SPAN}`), 'missing trace_id');
  });
});

describe('OTLP encoding', () => {
  const span: OtlpSpan = {
    traceId: TRACE,
    spanId: SPAN,
    parentSpanId: 'b7ad6b7169203331',
    traceState: 'k=v',
    flags: 0x301,
    name: 'GET /orders/*',
    kind: 2,
    startMicros: 1_700_000_000_123_456,
    endMicros: 1_700_000_000_223_456,
    attributes: [str('s', 'é ✓'), int('i', 503), int('neg', -7), double('d', 1.5), bool('b', true)],
    status: { code: 2, message: 'upstream response status: 503' },
  };
  const header = { resource: [str('service.name', 'svc'), double('build', 7)], scopeName: 'causeway', scopeVersion: '1.2.3' };

  for (const json of [false, true]) {
    it(`${json ? 'OTLP/JSON' : 'protobuf'} decodes to the same spans`, () => {
      const body = (json ? encodeJson : encodeProtobuf)(header, [span, { ...span, spanId: '1111111111111111', parentSpanId: undefined, traceState: undefined, status: undefined, attributes: [] }]);
      const out = decodeOtlp(body, json);
      assert.deepEqual(out.resource, { 'service.name': 'svc', build: 7 });
      assert.deepEqual(out.scope, { name: 'causeway', version: '1.2.3' });
      assert.equal(out.spans.length, 2);
      const [a, b] = out.spans;
      assert.equal(a.traceId, TRACE);
      assert.equal(a.spanId, SPAN);
      assert.equal(a.parentSpanId, 'b7ad6b7169203331');
      assert.equal(a.traceState, 'k=v');
      assert.equal(a.flags, 0x301);
      assert.equal(a.name, 'GET /orders/*');
      assert.equal(a.kind, 2);
      assert.equal(a.startNanos, 1_700_000_000_123_456_000n);
      assert.equal(a.endNanos, 1_700_000_000_223_456_000n);
      assert.deepEqual(a.attributes, { s: 'é ✓', i: 503, neg: -7, d: 1.5, b: true });
      assert.deepEqual(a.status, { code: 2, message: 'upstream response status: 503' });
      assert.equal(b.parentSpanId, '');
      assert.equal(b.traceState, '');
      assert.deepEqual(b.status, { code: 0, message: '' });
      assert.deepEqual(b.attributes, {});
    });
  }

  it('collector addresses become /v1/traces URLs', () => {
    assert.equal(collectorUrl('127.0.0.1:4318')?.href, 'http://127.0.0.1:4318/v1/traces');
    assert.equal(collectorUrl('https://otel.example:443/')?.href, 'https://otel.example/v1/traces');
    assert.equal(collectorUrl('[::1]:4318')?.href, 'http://[::1]:4318/v1/traces');
    assert.equal(collectorUrl('not a host:x'), undefined);
  });
});

describe('span batch queue', () => {
  const settings = (over: Partial<BatchSettings>): BatchSettings => ({
    maxQueueSize: 100,
    maxBatchSize: 10,
    maxAgeMs: 1000,
    idleMs: 0,
    tickMs: 10,
    dropOnQueueFull: true,
    maxInFlight: 2,
    ...over,
  });

  it('sends a full batch at once and a partial one when it is old enough', async () => {
    const sent: number[][] = [];
    const q = new BatchQueue<number>('t', settings({ maxBatchSize: 3, maxAgeMs: 300 }), async (b) => void sent.push(b), () => undefined);
    const pushedAt = performance.now();
    for (let i = 0; i < 4; i++) q.push(i);
    await turn();
    assert.deepEqual(sent, [[0, 1, 2]]);
    await until(() => sent.length === 2);
    assert.deepEqual(sent, [[0, 1, 2], [3]]);
    assert.ok(performance.now() - pushedAt >= 290, 'the partial batch waited for its age');
    assert.equal(q.size, 0);
  });

  it('drops spans while the queue is full, and says so', async () => {
    const lines: string[] = [];
    let release!: () => void;
    const hanging = new Promise<void>((resolve) => (release = resolve));
    const q = new BatchQueue<number>('t', settings({ maxQueueSize: 4, maxBatchSize: 2, maxInFlight: 1 }), () => hanging, (_l, m) => lines.push(m));
    for (let i = 0; i < 10; i++) q.push(i);
    // one batch being sent, four spans waiting; the rest dropped
    assert.equal(q.size, 6, 'bounded');
    assert.equal(lines.length, 1);
    assert.match(lines[0], /queue is full \(4 spans\), 1 span\(s\) dropped/);
    release();
    await until(() => q.size === 0);
  });

  it('without drop_on_queue_full, a full queue is sent at once', async () => {
    const sent: number[][] = [];
    const q = new BatchQueue<number>('t', settings({ maxQueueSize: 3, maxBatchSize: 10, maxAgeMs: 60_000, dropOnQueueFull: false }), async (b) => void sent.push(b), () => undefined);
    for (let i = 0; i < 4; i++) q.push(i);
    await turn();
    assert.deepEqual(sent, [[0, 1, 2]]);
    q.close();
    await turn();
    assert.deepEqual(sent, [[0, 1, 2], [3]]);
  });

  it('a failed export is logged and let go', async () => {
    const lines: string[] = [];
    const q = new BatchQueue<number>('t', settings({ maxBatchSize: 1 }), async () => {
      throw new Error('refused');
    }, (_l, m) => lines.push(m));
    q.push(1);
    q.push(2);
    await until(() => q.size === 0);
    assert.deepEqual(lines, ['t: failed to export 1 span(s): refused']);
  });
});
