// The shared metrics store and the text exposition: exact sums from several threads, histogram
// buckets, and APISIX's layout of the output.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { renderExposition } from '../../src/observability/exposition.ts';
import { MetricsStore } from '../../src/observability/metrics-store.ts';

const STORE_URL = new URL('../../src/observability/metrics-store.ts', import.meta.url).href;

/** Runs `count` increments of one counter and one histogram series in a worker thread on the same memory. */
function hammer(memory: MetricsStore['memory'], count: number): Promise<void> {
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(({ MetricsStore }) => {
      const store = new MetricsStore(workerData.memory);
      const c = store.counter('t_requests', 'requests', ['route']);
      const h = store.histogram('t_latency', 'latency', ['route'], [1, 10]);
      const bound = c.labels(['b']);
      for (let i = 0; i < workerData.count; i++) {
        c.inc(1, ['a']);
        bound.inc(2);
        h.observe(i % 3 === 0 ? 0.5 : i % 3 === 1 ? 5 : 50, ['a']);
      }
      parentPort.postMessage('done');
    });
  `;
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { url: STORE_URL, memory, count } });
    worker.once('message', () => worker.terminate().then(() => resolve()));
    worker.once('error', reject);
  });
}

describe('metrics store', () => {
  it('sums the updates of several threads exactly, and describes each series once', async () => {
    const main = new MetricsStore();
    await Promise.all([hammer(main.memory, 3000), hammer(main.memory, 3000), hammer(main.memory, 3000)]);
    const snap = main.snapshot();
    const byKey = new Map(snap.map((s) => [`${s.series.name}/${s.series.labelValues.join(',')}`, s]));
    assert.equal(snap.length, 3, JSON.stringify(snap.map((s) => s.series.name)));
    assert.equal(byKey.get('t_requests/a')!.value, 9000);
    assert.equal(byKey.get('t_requests/b')!.value, 18000);
    const latency = byKey.get('t_latency/a')!;
    assert.equal(latency.value, 9000);
    assert.deepEqual(latency.buckets, [3000, 3000, 3000]);
    assert.equal(latency.sum, 3 * 1000 * (0.5 + 5 + 50));
  });

  it('keeps counting for a series another store described first', () => {
    const a = new MetricsStore();
    const b = new MetricsStore(a.memory);
    a.counter('shared', 'h', ['x']).inc(1, ['1']);
    b.counter('shared', 'h', ['x']).inc(4, ['1']);
    const snap = a.snapshot();
    assert.equal(snap.length, 1);
    assert.equal(snap[0].value, 5);
  });
});

describe('exposition', () => {
  it('writes HELP and TYPE once, sorted series, cumulative zero-padded buckets, count and sum', () => {
    const text = renderExposition([
      {
        name: 'apisix_http_latency',
        help: 'HTTP request latency in milliseconds per service in APISIX',
        type: 'histogram',
        samples: [{ labelNames: ['type', 'route'], labelValues: ['request', '1'], value: 3, sum: 61.5, buckets: [1, 1, 0, 1], bounds: [1, 5, 60000] }],
      },
      {
        name: 'apisix_bandwidth',
        help: 'Total bandwidth',
        type: 'counter',
        samples: [
          { labelNames: ['type'], labelValues: ['ingress'], value: 10 },
          { labelNames: ['type'], labelValues: ['egress'], value: 20 },
        ],
      },
      { name: 'apisix_node_info', help: 'Info of APISIX node', type: 'gauge', samples: [{ labelNames: ['hostname'], labelValues: ['a "quoted"\\name'], value: 1 }] },
    ]);
    assert.equal(
      text,
      [
        '# HELP apisix_bandwidth Total bandwidth',
        '# TYPE apisix_bandwidth counter',
        'apisix_bandwidth{type="egress"} 20',
        'apisix_bandwidth{type="ingress"} 10',
        '# HELP apisix_http_latency HTTP request latency in milliseconds per service in APISIX',
        '# TYPE apisix_http_latency histogram',
        'apisix_http_latency_bucket{type="request",route="1",le="00001.0"} 1',
        'apisix_http_latency_bucket{type="request",route="1",le="00005.0"} 2',
        'apisix_http_latency_bucket{type="request",route="1",le="60000.0"} 2',
        'apisix_http_latency_bucket{type="request",route="1",le="+Inf"} 3',
        'apisix_http_latency_count{type="request",route="1"} 3',
        'apisix_http_latency_sum{type="request",route="1"} 61.5',
        '# HELP apisix_node_info Info of APISIX node',
        '# TYPE apisix_node_info gauge',
        'apisix_node_info{hostname="a \\"quoted\\"\\\\name"} 1',
        '',
      ].join('\n'),
    );
  });
});
