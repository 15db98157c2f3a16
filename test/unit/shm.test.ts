// The node-wide shared table: exact counts under contention from several threads, entry expiry,
// and a lock left taken by a worker that died mid-update.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { SharedMemoryTable } from '../../src/shm/table.ts';

const INCREMENTS = 20_000;

function countIn(buffer: SharedArrayBuffer, key: string, times: number): Promise<void> {
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(${JSON.stringify(new URL('../../src/shm/table.ts', import.meta.url).href)}).then(({ SharedMemoryTable }) => {
      const table = new SharedMemoryTable(workerData.buffer);
      for (let i = 0; i < workerData.times; i++) table.update(workerData.key, (v) => { v[0] += 1; }, 60000);
      parentPort.postMessage('done');
    });`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { buffer, key, times } });
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
}

describe('shared memory table', () => {
  it('loses no increment when three threads update one key at once', async () => {
    const table = new SharedMemoryTable(undefined, 1024);
    await Promise.all([countIn(table.buffer, 'k', INCREMENTS), countIn(table.buffer, 'k', INCREMENTS), countIn(table.buffer, 'k', INCREMENTS)]);
    assert.equal(table.update('k', (v) => v[0], 0), 3 * INCREMENTS);
  });

  it('keeps keys apart, and an expired entry starts from zero', () => {
    const table = new SharedMemoryTable(undefined, 1024);
    for (let i = 0; i < 500; i++) table.update(`key-${i}`, (v) => (v[0] = i), 60_000);
    for (let i = 0; i < 500; i++) assert.equal(table.update(`key-${i}`, (v) => v[0], 0), i);
    table.update('short', (v) => (v[0] = 7), 1);
    const until = Date.now() + 5;
    while (Date.now() < until) {
      // let the 1 ms entry expire
    }
    assert.equal(table.update('short', (v) => v[0], 0), 0);
  });

  it('takes over a lock that a dead worker left taken', () => {
    const table = new SharedMemoryTable(undefined, 64);
    const meta = new Int32Array(table.buffer, 0, 64 * 4);
    for (let slot = 0; slot < 64; slot++) meta[slot * 4] = 1; // every slot locked, nobody to release
    const started = Date.now();
    assert.equal(table.update('k', (v) => ++v[0], 1000), 1);
    assert.ok(Date.now() - started < 5_000);
  });
});
