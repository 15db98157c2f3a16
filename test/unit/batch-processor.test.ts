// The batch processor behind the loggers (apache/apisix t/utils/batch-processor.t): batching,
// timers, retries, the pending bound and the send concurrency. Durations are fractions of a second
// here (the plugin schemas take whole seconds) so the cases run in milliseconds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchManager, BatchProcessor, batchStats, type BatchConf, type BatchSender } from '../../src/plugins/lib/batch-processor.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let managers = 0;

function setup(conf: Partial<BatchConf>, send: BatchSender<number>) {
  const lines: string[] = [];
  const manager = BatchManager.of(`test-${++managers}`);
  const processor = new BatchProcessor<number>(
    manager,
    { name: 'test logger', batch_max_size: 1000, inactive_timeout: 5, buffer_duration: 60, max_retry_count: 0, retry_delay: 1, ...conf },
    send,
    (level, message) => lines.push(`[${level}] ${message}`),
  );
  return { manager, processor, lines };
}

function recorder() {
  const batches: Array<{ entries: number[]; max: number }> = [];
  const send: BatchSender<number> = async (entries, max) => {
    batches.push({ entries: [...entries], max });
  };
  return { batches, send };
}

describe('batch processor', () => {
  it('sends a batch as soon as batch_max_size entries are buffered, the rest after inactive_timeout', async () => {
    const { batches, send } = recorder();
    const { processor, manager } = setup({ batch_max_size: 2, inactive_timeout: 0.05 }, send);
    for (let i = 1; i <= 5; i++) processor.push(i);
    await sleep(0);
    assert.deepEqual(batches.map((b) => b.entries), [[1, 2], [3, 4]]);
    assert.equal(manager.pending, 1);
    await sleep(120);
    assert.deepEqual(batches.map((b) => b.entries), [[1, 2], [3, 4], [5]]);
    assert.deepEqual([manager.pending, manager.sent, manager.failed], [0, 5, 0]);
    assert.ok(processor.idle);
  });

  it('batch_max_size 1 sends every entry at once, and the sender is told the batch size', async () => {
    const { batches, send } = recorder();
    const { processor } = setup({ batch_max_size: 1 }, send);
    processor.push(7);
    processor.push(8);
    await sleep(0);
    assert.deepEqual(batches, [{ entries: [7], max: 1 }, { entries: [8], max: 1 }]);
  });

  it('buffer_duration bounds how long the oldest entry waits while entries keep coming', async () => {
    const { batches, send } = recorder();
    const { processor } = setup({ inactive_timeout: 0.2, buffer_duration: 0.1 }, send);
    const started = performance.now();
    for (let i = 0; i < 12; i++) {
      processor.push(i);
      await sleep(25);
    }
    // never quiet for 200 ms, yet the first entries left about 100 ms after the first push
    assert.ok(batches.length >= 2, `${batches.length} batches after ${Math.round(performance.now() - started)} ms`);
    assert.equal(batches[0].entries[0], 0);
  });

  it('a failed batch is retried after retry_delay, up to max_retry_count, then dropped and counted', async () => {
    let calls = 0;
    const { processor, manager, lines } = setup({ batch_max_size: 1, max_retry_count: 2, retry_delay: 0 }, async () => {
      calls++;
      if (calls < 3) throw new Error(`sink down ${calls}`);
    });
    processor.push(1);
    await sleep(50);
    assert.equal(calls, 3);
    assert.deepEqual([manager.pending, manager.sent, manager.failed], [0, 1, 0]);
    assert.deepEqual(lines, ['[error] Batch Processor[test logger] failed to process entries: sink down 1', '[error] Batch Processor[test logger] failed to process entries: sink down 2']);

    const failing = setup({ batch_max_size: 2, max_retry_count: 1, retry_delay: 0 }, async () => {
      throw new Error('refused');
    });
    failing.processor.push(1);
    failing.processor.push(2);
    await sleep(50);
    assert.deepEqual([failing.manager.pending, failing.manager.sent, failing.manager.failed], [0, 0, 2]);
    assert.equal(failing.lines.at(-1), '[error] Batch Processor[test logger] exceeded the max_retry_count[2] dropping the entries');
  });

  it('admit refuses entries while max_pending_entries wait, counts them and logs a summary at most once a second', async () => {
    const hung: BatchSender<number> = () => new Promise(() => {});
    const { processor, manager, lines } = setup({ batch_max_size: 1 }, hung);
    let admitted = 0;
    for (let i = 0; i < 20; i++) {
      if (!manager.admit(5, (level, message) => lines.push(`[${level}] ${message}`))) continue;
      admitted++;
      processor.push(i);
    }
    assert.deepEqual([admitted, manager.pending, manager.discarded], [5, 5, 15]);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /^\[error\] max pending entries limit exceeded\. discarding entry\. plugin: test-\d+ pending_entries: 5 max_pending_entries: 5 discarded_entries: 1$/);
    assert.ok(batchStats().some((s) => s.plugin === manager.plugin && s.discarded === 15 && s.pending === 5));
  });

  it('at most eight batches of one processor are being sent at once; the others wait their turn', async () => {
    const releases: Array<() => void> = [];
    const { processor, manager } = setup({ batch_max_size: 1 }, () => new Promise<void>((resolve) => releases.push(resolve)));
    for (let i = 0; i < 12; i++) processor.push(i);
    await sleep(0);
    assert.equal(releases.length, 8);
    assert.equal(manager.pending, 12);
    releases.splice(0, 2).forEach((release) => release());
    await sleep(0);
    assert.equal(releases.length, 8, 'two finished, two more started');
    assert.equal(manager.pending, 10);
  });

  it('flush sends what is buffered at once; whenIdle runs once everything is delivered', async () => {
    const { batches, send } = recorder();
    const { processor } = setup({ batch_max_size: 100, inactive_timeout: 60 }, send);
    processor.push(1);
    processor.push(2);
    let idle = false;
    processor.whenIdle(() => (idle = true));
    assert.equal(idle, false);
    processor.flush();
    await sleep(0);
    assert.deepEqual(batches.map((b) => b.entries), [[1, 2]]);
    assert.equal(idle, true);
  });
});
