import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { EmbeddedStore } from '../../src/store/embedded.ts';
import { StoreConflictError, type StoreEvent, type WatchHandlers } from '../../src/store/types.ts';

const MODULE_URL = pathToFileURL(join(import.meta.dirname, '../../src/store/embedded.ts')).href;
const root = mkdtempSync(join(tmpdir(), 'causeway-embedded-'));
after(() => rmSync(root, { recursive: true, force: true }));

let seq = 0;
function dbPath(): string {
  seq += 1;
  return join(root, `case-${seq}`, 'nested', 'config.db');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Lets queued microtasks (watch delivery) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Recorder extends WatchHandlers {
  batches: { events: StoreEvent[]; revision: number }[];
  resyncs: string[];
  events(): StoreEvent[];
}

function recorder(): Recorder {
  const batches: Recorder['batches'] = [];
  const resyncs: string[] = [];
  return {
    batches,
    resyncs,
    onEvents(events, revision) {
      batches.push({ events, revision });
    },
    onResync(reason) {
      resyncs.push(reason);
    },
    events: () => batches.flatMap((b) => b.events),
  };
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(10);
  }
}

describe('EmbeddedStore', () => {
  it('starts at revision 1 and revisions every write like etcd', async () => {
    const path = dbPath();
    const store = new EmbeddedStore({ path });
    try {
      assert.equal(store.name, `embedded:${path}`);
      assert.equal(store.healthy, true);
      assert.deepEqual(await store.list(''), { items: [], revision: 1 });

      const a1 = await store.put('/apisix/routes/1', { uri: '/a' });
      assert.deepEqual(a1, { key: '/apisix/routes/1', value: { uri: '/a' }, createRevision: 2, modRevision: 2 });
      const b = await store.put('/apisix/upstreams/1', { type: 'roundrobin' });
      assert.equal(b.createRevision, 3);
      const a2 = await store.put('/apisix/routes/1', { uri: '/b' });
      assert.deepEqual([a2.createRevision, a2.modRevision], [2, 4]);
      assert.deepEqual(await store.get('/apisix/routes/1'), a2);
      assert.equal(store.revision, 4);

      assert.equal(await store.delete('/apisix/routes/missing'), false);
      assert.equal(store.revision, 4, 'deleting a missing key does not bump the revision');
      assert.equal(await store.delete('/apisix/routes/1'), true);
      assert.equal(store.revision, 5);
      assert.equal(await store.get('/apisix/routes/1'), undefined);

      const again = await store.put('/apisix/routes/1', { uri: '/c' });
      assert.deepEqual([again.createRevision, again.modRevision], [6, 6], 'a re-created key gets a new create revision');
    } finally {
      await store.close();
    }
  });

  it('lists a prefix sorted by key with the current revision', async () => {
    const store = new EmbeddedStore({ path: ':memory:' });
    try {
      for (const id of ['3', '1', '10', '2']) await store.put(`/apisix/routes/${id}`, { id });
      await store.put('/apisix/routes2/x', { other: true });
      await store.put('/apisix/route', { other: true });
      await store.put('/apisix/services/1', { s: 1 });
      const res = await store.list('/apisix/routes/');
      assert.deepEqual(res.items.map((i) => i.key), ['/apisix/routes/1', '/apisix/routes/10', '/apisix/routes/2', '/apisix/routes/3']);
      assert.deepEqual(res.items[0].value, { id: '1' });
      assert.equal(res.revision, 8);
      assert.equal((await store.list('/apisix/')).items.length, 7);
      assert.deepEqual((await store.list('/nothing/')).items, []);
      assert.equal(await store.get('/apisix/routes'), undefined);
    } finally {
      await store.close();
    }
  });

  it('compare-and-set on mod revision', async () => {
    const store = new EmbeddedStore({ path: ':memory:' });
    try {
      const created = await store.put('/k', { v: 1 }, { expectModRevision: 0 });
      await assert.rejects(store.put('/k', { v: 2 }, { expectModRevision: 0 }), StoreConflictError);
      await assert.rejects(store.put('/k', { v: 2 }, { expectModRevision: created.modRevision + 5 }), StoreConflictError);
      assert.equal(store.revision, created.modRevision, 'a refused write does not bump the revision');
      const updated = await store.put('/k', { v: 2 }, { expectModRevision: created.modRevision });
      assert.deepEqual(updated.value, { v: 2 });
      assert.deepEqual((await store.get('/k'))?.value, { v: 2 });
    } finally {
      await store.close();
    }
  });

  it('expires TTL keys with a delete event', async () => {
    const store = new EmbeddedStore({ path: dbPath(), sweepIntervalMs: 50 });
    try {
      const rec = recorder();
      store.watch('/apisix/', store.revision + 1, rec);
      const item = await store.put('/apisix/upstreams/tmp', { n: 1 }, { ttl: 0.2 });
      await store.put('/apisix/upstreams/keep', { n: 2 });
      assert.ok(await store.get('/apisix/upstreams/tmp'));
      await waitFor(() => rec.events().some((e) => e.type === 'delete'));
      const del = rec.events().find((e) => e.type === 'delete')!;
      assert.equal(del.key, '/apisix/upstreams/tmp');
      assert.equal(del.value, undefined);
      assert.equal(del.createRevision, item.createRevision);
      assert.equal(del.modRevision, item.modRevision + 2);
      assert.equal(store.revision, del.modRevision);
      assert.equal(await store.get('/apisix/upstreams/tmp'), undefined);
      assert.deepEqual((await store.list('/apisix/upstreams/')).items.map((i) => i.key), ['/apisix/upstreams/keep']);
    } finally {
      await store.close();
    }
  });

  it('never returns expired keys, even before the sweep runs', async () => {
    const store = new EmbeddedStore({ path: ':memory:', sweepIntervalMs: 60_000 });
    try {
      await store.put('/t/a', 1, { ttl: 0.05 });
      await store.put('/t/b', 2);
      await sleep(80);
      assert.equal(await store.get('/t/a'), undefined);
      assert.deepEqual((await store.list('/t/')).items.map((i) => i.key), ['/t/b']);
      // CAS on an expired key sees it as absent; its expiry is recorded first.
      const rec = recorder();
      store.watch('/t/', store.revision + 1, rec);
      const put = await store.put('/t/a', 3, { expectModRevision: 0 });
      await settle();
      assert.deepEqual(rec.events().map((e) => [e.type, e.key, e.modRevision]), [['delete', '/t/a', put.modRevision - 1], ['put', '/t/a', put.modRevision]]);
      assert.equal(put.createRevision, put.modRevision);
    } finally {
      await store.close();
    }
  });

  it('re-putting without ttl removes the expiry', async () => {
    const store = new EmbeddedStore({ path: ':memory:', sweepIntervalMs: 20 });
    try {
      await store.put('/k', 1, { ttl: 0.05 });
      await store.put('/k', 2);
      await sleep(100);
      assert.deepEqual((await store.get('/k'))?.value, 2);
      await assert.rejects(store.put('/k', 3, { ttl: 0 }), RangeError);
    } finally {
      await store.close();
    }
  });

  it('nextId gives increasing 20-digit ids, unique across reopen', async () => {
    const path = dbPath();
    const ids: string[] = [];
    let store = new EmbeddedStore({ path });
    for (let i = 0; i < 5; i++) ids.push(await store.nextId());
    await store.put('/apisix/routes/x', {});
    ids.push(await store.nextId());
    await store.close();
    store = new EmbeddedStore({ path });
    try {
      for (let i = 0; i < 5; i++) ids.push(await store.nextId());
      assert.deepEqual((await store.list('')).items.map((i) => i.key), ['/apisix/routes/x'], 'the counter is not a visible key');
    } finally {
      await store.close();
    }
    for (const id of ids) assert.match(id, /^\d{20}$/);
    assert.equal(new Set(ids).size, ids.length);
    const nums = ids.map(Number);
    for (let i = 1; i < nums.length; i++) assert.ok(nums[i] > nums[i - 1], `ids increase: ${ids[i - 1]} < ${ids[i]}`);
    assert.equal(ids[0], '00000000000000000002');
  });

  it('watch replays past events, then streams live ones, for its prefix only', async () => {
    const store = new EmbeddedStore({ path: dbPath() });
    try {
      await store.put('/apisix/routes/1', { v: 1 }); // 2
      await store.put('/apisix/services/1', { v: 1 }); // 3
      await store.put('/apisix/routes/2', { v: 1 }); // 4
      await store.delete('/apisix/routes/1'); // 5
      const rec = recorder();
      const stop = store.watch('/apisix/routes/', 3, rec);
      await settle();
      assert.deepEqual(rec.batches.map((b) => b.revision), [4, 5]);
      assert.deepEqual(rec.events().map((e) => [e.type, e.key, e.createRevision, e.modRevision]), [
        ['put', '/apisix/routes/2', 4, 4],
        ['delete', '/apisix/routes/1', 2, 5],
      ]);
      assert.deepEqual(rec.batches[0].events[0].value, { v: 1 });

      await store.put('/apisix/services/2', {}); // 6, other prefix
      await store.put('/apisix/routes/3', { v: 3 }); // 7
      await store.put('/apisix/routes/2', { v: 2 }); // 8
      await settle();
      assert.deepEqual(rec.batches.map((b) => b.revision), [4, 5, 7, 8]);
      assert.deepEqual(rec.batches[3].events, [{ type: 'put', key: '/apisix/routes/2', value: { v: 2 }, createRevision: 4, modRevision: 8 }]);
      assert.deepEqual(rec.resyncs, []);

      stop();
      await store.put('/apisix/routes/4', {});
      await settle();
      assert.equal(rec.batches.length, 4, 'no events after stop');

      // From "now" (the revision a list returned + 1): only live events.
      const live = recorder();
      const { revision } = await store.list('/apisix/routes/');
      store.watch('/apisix/routes/', revision + 1, live);
      await store.put('/apisix/routes/5', {});
      await settle();
      assert.deepEqual(live.events().map((e) => e.key), ['/apisix/routes/5']);
    } finally {
      await store.close();
    }
  });

  it('a watch from a compacted revision resyncs, then streams live events', async () => {
    const store = new EmbeddedStore({ path: dbPath(), historyLimit: 3 });
    try {
      for (let i = 1; i <= 6; i++) await store.put(`/r/${i}`, { i }); // revisions 2..7; history keeps 5..7
      const ok = recorder();
      store.watch('/r/', 5, ok);
      const rec = recorder();
      store.watch('/r/', 3, rec);
      await settle();
      assert.deepEqual(ok.batches.map((b) => b.revision), [5, 6, 7]);
      assert.deepEqual(ok.resyncs, []);
      assert.deepEqual(rec.resyncs, ['compacted']);
      assert.deepEqual(rec.batches, []);
      await store.put('/r/7', { i: 7 });
      await settle();
      assert.deepEqual(rec.events().map((e) => [e.key, e.modRevision]), [['/r/7', 8]]);
    } finally {
      await store.close();
    }
  });

  it('a live watcher sees every event of a burst larger than the history', async () => {
    const store = new EmbeddedStore({ path: ':memory:', historyLimit: 2 });
    try {
      const rec = recorder();
      store.watch('/b/', store.revision + 1, rec);
      await settle();
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 10; i++) writes.push(store.put(`/b/${i}`, i));
      await Promise.all(writes);
      await settle();
      assert.deepEqual(rec.resyncs, []);
      assert.deepEqual(rec.batches.map((b) => b.revision), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    } finally {
      await store.close();
    }
  });

  it('persists keys, revisions, history and compaction across close and reopen', async () => {
    const path = dbPath();
    let store = new EmbeddedStore({ path, historyLimit: 4 });
    for (let i = 0; i < 6; i++) await store.put(`/p/${i}`, { i, nested: { list: [i, 'x'] } }); // 2..7
    await store.delete('/p/0'); // 8
    await store.close();
    await assert.rejects(store.get('/p/1'), /closed/);

    store = new EmbeddedStore({ path, historyLimit: 4 });
    try {
      assert.equal(store.revision, 8);
      const res = await store.list('/p/');
      assert.equal(res.revision, 8);
      assert.deepEqual(res.items.map((i) => [i.key, i.createRevision, i.modRevision]), [
        ['/p/1', 3, 3], ['/p/2', 4, 4], ['/p/3', 5, 5], ['/p/4', 6, 6], ['/p/5', 7, 7],
      ]);
      assert.deepEqual(res.items[0].value, { i: 1, nested: { list: [1, 'x'] } });
      const replay = recorder();
      store.watch('/p/', 5, replay);
      const old = recorder();
      store.watch('/p/', 4, old);
      await settle();
      assert.deepEqual(replay.batches.map((b) => b.revision), [5, 6, 7, 8]);
      assert.deepEqual(old.resyncs, ['compacted']);
      assert.equal((await store.put('/p/new', 1)).modRevision, 9);
    } finally {
      await store.close();
    }
  });

  it('refuses a second owner of the same file', async () => {
    const path = dbPath();
    const store = new EmbeddedStore({ path });
    try {
      assert.throws(() => new EmbeddedStore({ path }), /in use/);
    } finally {
      await store.close();
    }
    // Released on close.
    const again = new EmbeddedStore({ path });
    await again.close();

    // Held by a live process; released when that process dies (even by SIGKILL).
    const child = spawnChild(`
      const { EmbeddedStore } = await import(process.argv[1]);
      const store = new EmbeddedStore({ path: process.argv[2] });
      await store.put('/held', 1);
      console.log('ready');
      setInterval(() => {}, 1000);
    `, [MODULE_URL, path]);
    try {
      await child.waitForLine((l) => l === 'ready');
      assert.throws(() => new EmbeddedStore({ path }), /in use/);
    } finally {
      await child.kill();
    }
    const after = new EmbeddedStore({ path });
    try {
      assert.deepEqual((await after.get('/held'))?.value, 1);
    } finally {
      await after.close();
    }
  });

  it('keeps every acknowledged write across kill -9', async () => {
    const path = dbPath();
    const N = 20_000; // far more than get written before the kill; bounded all the same
    const child = spawnChild(`
      const { EmbeddedStore } = await import(process.argv[1]);
      const store = new EmbeddedStore({ path: process.argv[2] });
      for (let i = 0; i < ${N}; i++) {
        await store.put('/apisix/routes/' + i, { uri: '/r/' + i, pad: 'x'.repeat(200) });
        if (i % 3 === 2) await store.delete('/apisix/routes/' + (i - 1));
        console.log('written ' + i);
      }
      console.log('done');
      setInterval(() => {}, 1000);
    `, [MODULE_URL, path]);
    let acked = -1;
    try {
      await child.waitForLine((l) => l.startsWith('written ') && Number(l.slice(8)) >= 25);
    } finally {
      await child.kill();
    }
    for (const l of child.lines) if (l.startsWith('written ')) acked = Math.max(acked, Number(l.slice(8)));
    assert.ok(acked >= 25, `acknowledged ${acked}`);
    assert.ok(!child.lines.includes('done'), 'killed mid-run');

    const store = new EmbeddedStore({ path });
    try {
      for (let i = 0; i <= acked; i++) {
        const item = await store.get(`/apisix/routes/${i}`);
        if (i % 3 === 1 && i + 1 <= acked) {
          assert.equal(item, undefined, `key ${i} was deleted`);
        } else if (i % 3 === 1 && item === undefined) {
          // Its delete (part of write i + 1) may have committed just before the kill, unacknowledged.
          assert.equal(i, acked);
        } else {
          assert.deepEqual(item?.value, { uri: `/r/${i}`, pad: 'x'.repeat(200) }, `key ${i} survived`);
        }
      }
      // Revisions stay consistent: the store keeps counting after the last recovered write.
      const { items, revision } = await store.list('/apisix/routes/');
      assert.ok(items.every((i) => i.modRevision <= revision));
      assert.equal((await store.put('/after', 1)).modRevision, revision + 1);
    } finally {
      await store.close();
    }
  });
});

interface Child {
  proc: ChildProcess;
  lines: string[];
  waitForLine(match: (line: string) => boolean, ms?: number): Promise<void>;
  kill(): Promise<void>;
}

function spawnChild(source: string, args: string[]): Child {
  const proc = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', source, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buffered = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const exited = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters) w();
  });
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  return {
    proc,
    lines,
    waitForLine(match, ms = 20_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (lines.some(match)) done(resolve);
        };
        const timer = setTimeout(() => done(() => reject(new Error(`child did not print the expected line; stderr: ${stderr}`))), ms);
        const onClose = () => done(() => reject(new Error(`child exited early (${proc.exitCode}); stderr: ${stderr}`)));
        const done = (fn: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          proc.off('close', onClose);
          fn();
        };
        waiters.add(check);
        proc.once('close', onClose);
        check();
      });
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}
