// End-to-end tests of the etcd ConfigStore against a real etcd 3.4 (one per file, on loopback):
// CRUD and revisions, listing with APISIX's placeholder keys, CAS, TTL, ids, watches through
// compaction, etcd stop/start, etcd losing its data, a silently dead connection, failover across
// endpoints, and auth (on a second etcd, so the others run without it).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import { EtcdStore, type EtcdStoreOptions } from '../../src/store/etcd.ts';
import { StoreConflictError, StoreUnavailableError, type StoreEvent, type WatchHandlers } from '../../src/store/types.ts';
import { freePort, sleep, waitFor } from '../helpers/gateway.ts';
import { etcdCompact, etcdEnableAuth, etcdPutRaw, etcdRevision, makeEtcdCerts, startEtcd, type EtcdCerts, type EtcdProcess } from '../helpers/etcd.ts';

interface Seen extends StoreEvent {
  batchRevision: number;
}

function recorder() {
  const events: Seen[] = [];
  const resyncs: string[] = [];
  const health: Array<{ down: boolean; reason?: string }> = [];
  const handlers: WatchHandlers = {
    onEvents(batch, revision) {
      for (const e of batch) events.push({ ...e, batchRevision: revision });
    },
    onResync(reason) {
      resyncs.push(reason);
    },
    onHealth(down, reason) {
      health.push({ down, reason });
    },
  };
  return { events, resyncs, health, handlers };
}

/** `put:/k` / `delete:/k` strings, in delivery order. */
function trace(events: StoreEvent[]): string[] {
  return events.map((e) => `${e.type}:${e.key}`);
}

let etcd: EtcdProcess;
const stores: EtcdStore[] = [];

function open(options: Partial<EtcdStoreOptions> = {}): EtcdStore {
  const store = new EtcdStore({ hosts: [etcd.endpoint], timeoutSeconds: 5, ...options });
  stores.push(store);
  return store;
}

before(async () => {
  etcd = await startEtcd();
});

after(async () => {
  for (const s of stores) await s.close();
  await etcd?.destroy();
});

describe('etcd store', () => {
  it('puts, gets and deletes with etcd revisions', async () => {
    const store = open();
    assert.equal(store.name, `etcd:${etcd.endpoint}`);
    const first = await store.put('/crud/a', { id: 'a', n: 1 });
    assert.equal(first.key, '/crud/a');
    assert.deepEqual(first.value, { id: 'a', n: 1 });
    assert.equal(first.createRevision, first.modRevision);
    assert.equal(first.modRevision, await etcdRevision(etcd.endpoint));

    const second = await store.put('/crud/a', { id: 'a', n: 2 });
    assert.equal(second.createRevision, first.createRevision);
    assert.equal(second.modRevision, first.modRevision + 1);
    assert.deepEqual(await store.get('/crud/a'), second);

    assert.equal(await store.get('/crud/missing'), undefined);
    assert.equal(await store.delete('/crud/a'), true);
    assert.equal(await store.delete('/crud/a'), false);
    assert.equal(await store.get('/crud/a'), undefined);

    const again = await store.put('/crud/a', 'text');
    assert.ok(again.createRevision > second.modRevision, 'a re-created key has a new create revision');
    assert.equal((await store.get('/crud/a'))?.value, 'text');
    assert.equal(store.healthy, true);
  });

  it('lists a prefix without placeholder keys, non-JSON values or neighbouring prefixes', async () => {
    const store = open();
    await etcdPutRaw(etcd.endpoint, '/apisix/routes/', 'init_dir');
    await store.put('/apisix/routes/1', { id: '1', uri: '/a' });
    await store.put('/apisix/routes/2', { id: '2', uri: '/b' });
    await etcdPutRaw(etcd.endpoint, '/apisix/routes/bad', 'not json {');
    await store.put('/apisix/routes2/x', { id: 'x' });
    await store.put('/apisix/routesX', { id: 'y' });
    await store.put('/apisix/route', { id: 'z' });

    const listed = await store.list('/apisix/routes/');
    assert.deepEqual(listed.items.map((i) => i.key), ['/apisix/routes/1', '/apisix/routes/2']);
    assert.deepEqual(listed.items[0].value, { id: '1', uri: '/a' });
    assert.equal(listed.revision, await etcdRevision(etcd.endpoint));
    // get() hands a non-JSON value back as its raw text.
    assert.equal((await store.get('/apisix/routes/bad'))?.value, 'not json {');
    assert.equal((await store.get('/apisix/routes/'))?.value, 'init_dir');
  });

  it('lists across pages from one snapshot, and non-ASCII prefixes', async () => {
    const store = open({ listPageSize: 2 });
    for (let i = 0; i < 7; i++) await store.put(`/paged/é/${i}`, { i });
    await store.put('/paged/f/0', { i: 'other' });
    const listed = await store.list('/paged/é/');
    assert.deepEqual(listed.items.map((i) => (i.value as { i: number }).i), [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(listed.revision, await etcdRevision(etcd.endpoint));
    const all = await store.list('/paged/');
    assert.equal(all.items.length, 8);
  });

  it('compare-and-set on mod revision; 0 means "must not exist"', async () => {
    const store = open();
    const created = await store.put('/cas/a', { v: 1 }, { expectModRevision: 0 });
    assert.equal(created.createRevision, created.modRevision);
    await assert.rejects(store.put('/cas/a', { v: 2 }, { expectModRevision: 0 }), StoreConflictError);
    await assert.rejects(store.put('/cas/a', { v: 2 }, { expectModRevision: created.modRevision - 1 }), StoreConflictError);
    const updated = await store.put('/cas/a', { v: 2 }, { expectModRevision: created.modRevision });
    assert.equal(updated.createRevision, created.createRevision);
    assert.ok(updated.modRevision > created.modRevision);
    await assert.rejects(store.put('/cas/a', { v: 3 }, { expectModRevision: created.modRevision }), /expected mod revision \d+, found mod revision \d+/);
    assert.deepEqual((await store.get('/cas/a'))?.value, { v: 2 });
    await assert.rejects(store.put('/cas/missing', { v: 1 }, { expectModRevision: 5 }), StoreConflictError);
  });

  it('expires a key with a TTL (lease) and the watch sees the delete', async () => {
    const store = open();
    const rec = recorder();
    const item = await store.put('/ttl/a', { v: 1 }, { ttl: 1 });
    const stop = store.watch('/ttl/', item.modRevision + 1, rec.handlers);
    try {
      assert.deepEqual((await store.get('/ttl/a'))?.value, { v: 1 });
      // etcd's minimum lease is ~2 s (1.5 × election timeout), checked every 500 ms.
      await waitFor(async () => (await store.get('/ttl/a')) === undefined, 6_000, 'the key to expire');
      await waitFor(() => rec.events.length === 1, 3_000, 'the delete event');
      assert.deepEqual(trace(rec.events), ['delete:/ttl/a']);
    } finally {
      stop();
    }
  });

  it('hands out 20-digit, increasing ids', async () => {
    const store = open();
    const ids = [await store.nextId(), await store.nextId(), await store.nextId()];
    for (const id of ids) assert.match(id, /^\d{20}$/);
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2]);
    const gen = await store.get('/apisix/gen_id');
    assert.equal(String(gen?.modRevision).padStart(20, '0'), ids[2]);
  });

  it('watches puts and deletes in order, one batch per revision', async () => {
    const store = open();
    const start = await store.list('/w/');
    const rec = recorder();
    const stop = store.watch('/w/', start.revision + 1, rec.handlers);
    try {
      await store.put('/w/a', { v: 1 });
      await etcdPutRaw(etcd.endpoint, '/w/dir/', 'init_dir');
      await store.put('/w/b', { v: 2 });
      await store.put('/w/a', { v: 3 });
      await store.put('/other/x', { v: 0 });
      await store.delete('/w/b');
      await etcdPutRaw(etcd.endpoint, '/w/a', 'garbage');
      await waitFor(() => rec.events.length === 5, 5_000, 'five events');
      assert.deepEqual(trace(rec.events), ['put:/w/a', 'put:/w/b', 'put:/w/a', 'delete:/w/b', 'delete:/w/a']);
      assert.deepEqual(rec.events[2].value, { v: 3 });
      assert.equal(rec.events[3].value, undefined);
      for (const e of rec.events) assert.equal(e.batchRevision, e.modRevision);
      const revs = rec.events.map((e) => e.modRevision);
      assert.deepEqual(revs, [...revs].sort((a, b) => a - b));
      assert.equal(new Set(revs).size, revs.length);
      assert.deepEqual(rec.resyncs, []);
      assert.deepEqual(rec.health, []);
    } finally {
      stop();
    }
  });

  it('replays from an older revision, and watches from "now" when fromRevision is 0', async () => {
    const store = open();
    const r0 = await etcdRevision(etcd.endpoint);
    await store.put('/replay/a', { v: 1 });
    await store.put('/replay/b', { v: 2 });
    const rec = recorder();
    const stop = store.watch('/replay/', r0 + 1, rec.handlers);
    const recNow = recorder();
    const stopNow = store.watch('/replay/', 0, recNow.handlers);
    try {
      await waitFor(() => rec.events.length === 2, 5_000, 'replayed events');
      // Keep writing until the "now" watch (created asynchronously) sees something.
      let n = 0;
      await waitFor(async () => {
        await store.put(`/replay/c${n++}`, { n });
        return recNow.events.length > 0;
      }, 5_000, 'the "now" watch');
      const last = `put:/replay/c${n - 1}`;
      await waitFor(() => rec.events.length === 2 + n && trace(recNow.events).at(-1) === last, 5_000, 'every new event on both watches');
      assert.deepEqual(trace(rec.events.slice(0, 2)), ['put:/replay/a', 'put:/replay/b']);
      const nowKeys = trace(recNow.events);
      assert.ok(nowKeys.every((k) => k.startsWith('put:/replay/c')), nowKeys.join());
      assert.deepEqual(nowKeys, trace(rec.events).slice(-nowKeys.length));
    } finally {
      stop();
      stopNow();
    }
  });

  it('resyncs when the start revision was compacted, then keeps delivering', async () => {
    const store = open();
    const r0 = await etcdRevision(etcd.endpoint);
    await store.put('/compact/a', { v: 1 });
    await store.put('/compact/b', { v: 2 });
    await store.delete('/compact/a');
    await etcdCompact(etcd.endpoint, await etcdRevision(etcd.endpoint));
    const rec = recorder();
    const stop = store.watch('/compact/', r0 + 1, rec.handlers);
    try {
      await waitFor(() => rec.resyncs.length === 1, 5_000, 'the compaction resync');
      assert.deepEqual(rec.resyncs, ['compacted']);
      const relisted = await store.list('/compact/');
      assert.deepEqual(relisted.items.map((i) => i.key), ['/compact/b']);
      await store.put('/compact/c', { v: 3 });
      await store.delete('/compact/b');
      await waitFor(() => rec.events.length === 2, 5_000, 'events after the resync');
      assert.deepEqual(trace(rec.events), ['put:/compact/c', 'delete:/compact/b']);
      assert.deepEqual(rec.resyncs, ['compacted']);
    } finally {
      stop();
    }
  });

  it('fails over from a dead endpoint, and reports unavailability when none answers', async () => {
    const dead1 = `http://127.0.0.1:${await freePort()}`;
    const dead2 = `http://127.0.0.1:${await freePort()}`;
    const store = open({ hosts: [dead1, etcd.endpoint] });
    assert.equal(store.name, `etcd:${dead1},${etcd.endpoint}`);
    const item = await store.put('/failover/a', { v: 1 });
    assert.deepEqual((await store.get('/failover/a'))?.value, { v: 1 });
    assert.equal((await store.list('/failover/')).items.length, 1);
    assert.equal(store.healthy, true);
    const rec = recorder();
    const stop = store.watch('/failover/', item.modRevision + 1, rec.handlers);
    try {
      await store.delete('/failover/a');
      await waitFor(() => rec.events.length === 1, 5_000, 'the delete event');
      assert.deepEqual(rec.health, []);
    } finally {
      stop();
    }

    const none = open({ hosts: [dead1, dead2] });
    await assert.rejects(none.get('/failover/a'), (err: Error) => {
      assert.ok(err instanceof StoreUnavailableError, String(err));
      assert.match(err.message, /ECONNREFUSED/);
      return true;
    });
    assert.equal(none.healthy, false);
    await assert.rejects(none.nextId(), StoreUnavailableError);
    const recNone = recorder();
    const stopNone = none.watch('/failover/', 1, recNone.handlers);
    try {
      await waitFor(() => recNone.health.length === 1, 5_000, 'the down report');
      assert.equal(recNone.health[0].down, true);
    } finally {
      stopNone();
    }
  });

  it('rides out an etcd stop and start mid-watch: no event lost or repeated', async () => {
    const store = open();
    const writer = open();
    const start = await store.list('/restart/');
    const rec = recorder();
    const stop = store.watch('/restart/', start.revision + 1, rec.handlers);
    const expected: string[] = [];
    try {
      for (let i = 1; i <= 3; i++) {
        await writer.put(`/restart/k${i}`, { i });
        expected.push(`put:/restart/k${i}`);
      }
      await waitFor(() => rec.events.length === 3, 5_000, 'events before the stop');

      await etcd.stop();
      await waitFor(() => rec.health.some((h) => h.down), 5_000, 'the down report');
      await assert.rejects(store.get('/restart/k1'), StoreUnavailableError);
      await assert.rejects(store.put('/restart/x', { x: 1 }), StoreUnavailableError);
      assert.equal(store.healthy, false);

      await etcd.start();
      // Written before the watch is back (it is still backing off): must come from the resume.
      for (let i = 4; i <= 6; i++) {
        await writer.put(`/restart/k${i}`, { i });
        expected.push(`put:/restart/k${i}`);
      }
      await waitFor(() => rec.health.at(-1)?.down === false, 20_000, 'the up report');
      await writer.delete('/restart/k1');
      expected.push('delete:/restart/k1');
      for (let i = 7; i <= 8; i++) {
        await writer.put(`/restart/k${i}`, { i });
        expected.push(`put:/restart/k${i}`);
      }
      await waitFor(() => rec.events.length >= expected.length, 10_000, 'every event');
      await sleep(200);
      assert.deepEqual(trace(rec.events), expected);
      const revs = rec.events.map((e) => e.modRevision);
      assert.equal(new Set(revs).size, revs.length, 'no event delivered twice');
      assert.deepEqual(rec.resyncs, [], 'a restart with its data is not a resync');
      assert.deepEqual(rec.health.map((h) => h.down), [true, false]);
      assert.deepEqual((await store.get('/restart/k8'))?.value, { i: 8 });
      assert.equal(store.healthy, true);
    } finally {
      stop();
    }
  });

  it('probes a quiet watch and reconnects when its connection is silently dead', async () => {
    const proxy = await blackholeProxy(Number(new URL(etcd.endpoint).port));
    const store = open({ hosts: [proxy.endpoint], timeoutSeconds: 1, watchIdleSeconds: 1 });
    const writer = open();
    try {
      const start = await store.list('/dead/');
      const rec = recorder();
      const stop = store.watch('/dead/', start.revision + 1, rec.handlers);
      try {
        await writer.put('/dead/a', { v: 1 });
        await waitFor(() => rec.events.length === 1, 5_000, 'the first event');
        proxy.freeze();
        await writer.put('/dead/b', { v: 2 });
        await waitFor(() => rec.health.some((h) => h.down), 10_000, 'the down report');
        assert.equal(rec.events.length, 1);
        proxy.thaw();
        await waitFor(() => rec.health.at(-1)?.down === false, 15_000, 'the up report');
        await writer.put('/dead/c', { v: 3 });
        await waitFor(() => rec.events.length === 3, 5_000, 'the missed and the new event');
        assert.deepEqual(trace(rec.events), ['put:/dead/a', 'put:/dead/b', 'put:/dead/c']);
        assert.deepEqual(rec.resyncs, []);
      } finally {
        stop();
      }
    } finally {
      await store.close();
      proxy.close();
    }
  });

  it('close() ends watches and refuses further calls', async () => {
    const store = new EtcdStore({ hosts: [etcd.endpoint], timeoutSeconds: 5 });
    const writer = open();
    const rec = recorder();
    const item = await writer.put('/closing/a', { v: 1 });
    store.watch('/closing/', item.modRevision, rec.handlers);
    await waitFor(() => rec.events.length === 1, 5_000, 'the replayed event');
    await store.close();
    await writer.put('/closing/b', { v: 2 });
    await sleep(300);
    assert.equal(rec.events.length, 1);
    assert.deepEqual(rec.health, []);
    await assert.rejects(store.get('/closing/a'), StoreUnavailableError);
    assert.equal(store.healthy, false);
    await store.close();
  });

  // Last on this etcd: it loses its data.
  it('resyncs when etcd comes back without its data (revision went backwards)', async () => {
    const store = open();
    for (let i = 0; i < 20; i++) await store.put('/wipe/filler', { i });
    const start = await store.list('/wipe/');
    const rec = recorder();
    const stop = store.watch('/wipe/', start.revision + 1, rec.handlers);
    try {
      await store.put('/wipe/a', { v: 1 });
      await waitFor(() => rec.events.length === 1, 5_000, 'the first event');
      etcd.kill();
      await waitFor(() => rec.health.some((h) => h.down), 5_000, 'the down report');
      await etcd.stop();
      rmSync(etcd.dataDir, { recursive: true, force: true });
      await etcd.start();
      await waitFor(() => rec.resyncs.length === 1, 20_000, 'the restart resync');
      assert.deepEqual(rec.resyncs, ['etcd restarted']);
      assert.equal(rec.health.at(-1)?.down, false);
      assert.deepEqual((await store.list('/wipe/')).items, []);
      const b = await store.put('/wipe/b', { v: 2 });
      assert.ok(b.modRevision < start.revision, 'the new etcd counts from scratch');
      await waitFor(() => rec.events.length === 2, 5_000, 'an event from the new etcd');
      assert.deepEqual(trace(rec.events), ['put:/wipe/a', 'put:/wipe/b']);
    } finally {
      stop();
    }
  });
});

describe('etcd store with auth', () => {
  let secured: EtcdProcess;

  before(async () => {
    secured = await startEtcd({ args: ['--auth-token-ttl', '1'] });
    await etcdEnableAuth(secured.endpoint, 'secret');
  });

  after(async () => {
    await secured?.destroy();
  });

  it('authenticates, re-authenticates after the token expired, and keeps watching', async () => {
    const store = new EtcdStore({ hosts: [secured.endpoint], user: 'root', password: 'secret', timeoutSeconds: 5 });
    stores.push(store);
    const created = await store.put('/auth/a', { v: 1 });
    assert.deepEqual((await store.get('/auth/a'))?.value, { v: 1 });
    const rec = recorder();
    const stop = store.watch('/auth/', created.modRevision + 1, rec.handlers);
    try {
      await store.put('/auth/b', { v: 2 });
      await waitFor(() => rec.events.length === 1, 5_000, 'the first event');
      await sleep(2_500); // the simple token (TTL 1 s) has expired
      assert.deepEqual((await store.list('/auth/')).items.map((i) => i.key), ['/auth/a', '/auth/b']);
      assert.match(await store.nextId(), /^\d{20}$/);
      await store.delete('/auth/a');
      await waitFor(() => rec.events.length === 2, 5_000, 'the delete event');
      assert.deepEqual(trace(rec.events), ['put:/auth/b', 'delete:/auth/a']);
      assert.match(secured.output(), /invalid auth token/, 'etcd refused the expired token at least once');
    } finally {
      stop();
    }
  });

  it('refuses without credentials or with a wrong password', async () => {
    const anonymous = new EtcdStore({ hosts: [secured.endpoint], timeoutSeconds: 5 });
    const wrong = new EtcdStore({ hosts: [secured.endpoint], user: 'root', password: 'nope', timeoutSeconds: 5 });
    stores.push(anonymous, wrong);
    await assert.rejects(anonymous.get('/auth/a'), /user name is empty/);
    await assert.rejects(wrong.get('/auth/a'), (err: Error) => {
      assert.ok(err instanceof StoreUnavailableError, String(err));
      assert.match(err.message, /authentication .* failed/);
      return true;
    });
  });
});

describe('etcd store over TLS', () => {
  let certs: EtcdCerts | undefined;
  let tlsEtcd: EtcdProcess | undefined;

  before(async () => {
    certs = makeEtcdCerts();
    if (certs) tlsEtcd = await startEtcd({ tls: { certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.ca } });
  });

  after(async () => {
    await tlsEtcd?.destroy();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  it('uses a client certificate, verifies etcd against the CA and the SNI name', async (t) => {
    if (!certs || !tlsEtcd) return t.skip('openssl is not available');
    const client = { cert: certs.clientCert, key: certs.clientKey };
    const store = new EtcdStore({ hosts: [tlsEtcd.endpoint], timeoutSeconds: 5, tls: { ...client, ca: certs.ca, sni: 'etcd.test' } });
    stores.push(store);
    const item = await store.put('/tls/a', { v: 1 });
    const rec = recorder();
    const stop = store.watch('/tls/', item.modRevision, rec.handlers);
    try {
      await waitFor(() => rec.events.length === 1, 5_000, 'the event over TLS');
    } finally {
      stop();
    }

    const unverified = new EtcdStore({ hosts: [tlsEtcd.endpoint], timeoutSeconds: 5, tls: { ...client, verify: false } });
    const wrongName = new EtcdStore({ hosts: [tlsEtcd.endpoint], timeoutSeconds: 5, tls: { ...client, ca: certs.ca } });
    const noClientCert = new EtcdStore({ hosts: [tlsEtcd.endpoint], timeoutSeconds: 5, tls: { ca: certs.ca, sni: 'etcd.test' } });
    const untrusted = new EtcdStore({ hosts: [tlsEtcd.endpoint], timeoutSeconds: 5, tls: { ...client, sni: 'etcd.test' } });
    stores.push(unverified, wrongName, noClientCert, untrusted);
    assert.deepEqual((await unverified.get('/tls/a'))?.value, { v: 1 });
    // The certificate names etcd.test, not 127.0.0.1.
    await assert.rejects(wrongName.get('/tls/a'), /altnames/);
    await assert.rejects(noClientCert.get('/tls/a'), StoreUnavailableError);
    await assert.rejects(untrusted.get('/tls/a'), /self[- ]signed|unable to (get|verify)/);
  });
});

interface BlackholeProxy {
  endpoint: string;
  /** Existing connections go silent for good; new ones are accepted and never answered. */
  freeze(): void;
  /** New connections are forwarded again. */
  thaw(): void;
  close(): void;
}

/** A TCP proxy that can simulate a dead network path without closing any connection. */
async function blackholeProxy(targetPort: number): Promise<BlackholeProxy> {
  let frozen = false;
  const live = new Set<{ silenced: boolean }>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    if (frozen) return; // held open, never answered
    const state = { silenced: false };
    live.add(state);
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      sockets.delete(upstream);
      if (!state.silenced) client.destroy();
    });
    client.on('close', () => upstream.destroy());
    client.on('data', (d) => {
      if (!state.silenced) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!state.silenced) client.write(d);
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    freeze() {
      frozen = true;
      for (const s of live) s.silenced = true;
      live.clear();
    },
    thaw() {
      frozen = false;
    },
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
