import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { varsFromObject, type VarValue } from '../../src/expr/vars.ts';
import {
  ChashBalancer,
  createBalancer,
  DECAY_TIME_MS,
  EwmaBalancer,
  FAILURE_PENALTY_MS,
  hashString,
  LeastConnBalancer,
  MAX_RING_POINTS,
  parseKeyTemplate,
  POINTS_PER_WEIGHT,
  type Balancer,
  type PickContext,
  type UpstreamNode,
} from '../../src/upstream/balancer/index.ts';

function node(host: string, weight = 1, priority = 0, port = 80): UpstreamNode {
  return { host, port, weight, priority, key: `${host}:${port}` };
}

function ctx(values: Record<string, VarValue> = {}, consumerName?: string): PickContext {
  return { vars: varsFromObject(values), consumerName };
}

const NO_VARS = ctx();

function pickHosts(b: Balancer, n: number, c: PickContext = NO_VARS, tried?: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(b.pick(c, tried)?.host ?? '-');
  return out;
}

function countHosts(hosts: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const h of hosts) counts[h] = (counts[h] ?? 0) + 1;
  return counts;
}

/** Deterministic pseudo-random keys (xorshift32), so the statistical tests never flake. */
function randomKeys(count: number, seed = 0x9e3779b9): string[] {
  let x = seed | 0;
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    keys.push(`${(x >>> 0).toString(16)}-${i}`);
  }
  return keys;
}

function chashOn(nodes: UpstreamNode[]): Balancer {
  return createBalancer(nodes, { type: 'chash', hash_on: 'vars', key: 'arg_id' });
}

function mapKeys(b: Balancer, keys: string[]): string[] {
  return keys.map((k) => b.pick(ctx({ arg_id: k }))!.host);
}

describe('createBalancer', () => {
  it('defaults to roundrobin and rejects unknown types', () => {
    const b = createBalancer([node('a', 2), node('b', 1)], {});
    assert.deepEqual(pickHosts(b, 6), ['a', 'b', 'a', 'a', 'b', 'a']);
    assert.throws(() => createBalancer([node('a')], { type: 'random' as never }), /unknown balancer type/);
  });

  it('returns undefined with no nodes or only weight-0 nodes, for every type', () => {
    for (const type of ['roundrobin', 'chash', 'least_conn', 'ewma'] as const) {
      assert.equal(createBalancer([], { type }).pick(NO_VARS), undefined, type);
      assert.equal(createBalancer([node('a', 0), node('b', 0)], { type }).pick(ctx({ remote_addr: '1.2.3.4' })), undefined, type);
    }
  });

  it('never picks weight-0 nodes, for every type', () => {
    for (const type of ['roundrobin', 'chash', 'least_conn', 'ewma'] as const) {
      const b = createBalancer([node('zero', 0), node('a', 1), node('b', 1)], { type, key: 'arg_id' });
      for (const k of randomKeys(300)) {
        const picked = b.pick(ctx({ arg_id: k }));
        assert.ok(picked !== undefined && picked.host !== 'zero', type);
      }
    }
  });

  it('takes weights as integers >= 0 and keeps the first of duplicate keys', () => {
    const b = createBalancer([node('a', 2.9), node('b', 1.2), node('c', -3), node('a', 50)], {});
    assert.deepEqual(countHosts(pickHosts(b, 300)), { a: 200, b: 100 });
  });

  it('returns the configured node objects (metadata included)', () => {
    const a = { ...node('a'), metadata: { zone: 'x' } };
    const picked = createBalancer([a], {}).pick(NO_VARS);
    assert.equal(picked, a);
    assert.deepEqual(picked?.metadata, { zone: 'x' });
  });

  it('keys IPv6 nodes without a key as [addr]:port', () => {
    const picked = createBalancer([{ host: '::1', port: 8080, weight: 1, priority: 0, key: '' }], {}).pick(NO_VARS);
    assert.equal(picked?.key, '[::1]:8080');
  });
});

describe('roundrobin', () => {
  it('distributes exactly by weight (3:2:1 over 600 picks)', () => {
    const b = createBalancer([node('a', 3), node('b', 2), node('c', 1)], { type: 'roundrobin' });
    assert.deepEqual(countHosts(pickHosts(b, 600)), { a: 300, b: 200, c: 100 });
  });

  it('is smooth: 5,1,1 interleaves as a a b a c a a', () => {
    const b = createBalancer([node('a', 5), node('b', 1), node('c', 1)], { type: 'roundrobin' });
    const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
    assert.deepEqual(pickHosts(b, 21), [...cycle, ...cycle, ...cycle]);
  });

  it('is smooth: every full cycle of 3:2:1 is exact and interleaved', () => {
    const b = createBalancer([node('a', 3), node('b', 2), node('c', 1)], { type: 'roundrobin' });
    const picks = pickHosts(b, 60);
    assert.deepEqual(picks.slice(0, 6), ['a', 'b', 'a', 'c', 'b', 'a']);
    for (let i = 0; i < 60; i += 6) assert.deepEqual(countHosts(picks.slice(i, i + 6)), { a: 3, b: 2, c: 1 });
    for (let i = 1; i < picks.length; i++) assert.ok(!(picks[i] === 'b' && picks[i - 1] === 'b'), 'b never twice in a row');
  });

  it('equal weights rotate in order', () => {
    const b = createBalancer([node('a'), node('b'), node('c')], {});
    assert.deepEqual(pickHosts(b, 6), ['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('skips tried nodes and keeps the remaining ratio', () => {
    const b = createBalancer([node('a', 3), node('b', 2), node('c', 1)], {});
    assert.deepEqual(countHosts(pickHosts(b, 300, NO_VARS, new Set(['a:80']))), { b: 200, c: 100 });
    assert.deepEqual(pickHosts(b, 3, NO_VARS, new Set(['a:80', 'b:80'])), ['c', 'c', 'c']);
    assert.equal(b.pick(NO_VARS, new Set(['a:80', 'b:80', 'c:80'])), undefined);
    assert.equal(createBalancer([node('a')], {}).pick(NO_VARS, new Set(['a:80'])), undefined);
  });

  it('ignores tried keys that are not its nodes', () => {
    const b = createBalancer([node('a', 1), node('b', 1)], {});
    assert.deepEqual(pickHosts(b, 4, NO_VARS, new Set(['zzz:80'])), ['a', 'b', 'a', 'b']);
  });
});

describe('chash', () => {
  const four = [node('n1'), node('n2'), node('n3'), node('n4')];

  it('maps the same key to the same node, independent of node order', () => {
    const b = chashOn(four);
    const reversed = chashOn([...four].reverse());
    const keys = randomKeys(1000);
    const first = mapKeys(b, keys);
    assert.deepEqual(mapKeys(b, keys), first);
    assert.deepEqual(mapKeys(reversed, keys), first);
    assert.ok(new Set(first).size === 4, 'all nodes used');
  });

  it('spreads 10k random keys in proportion to weights', () => {
    const nodes = [node('w1', 1), node('w2', 2), node('w3', 3), node('w4', 4)];
    const counts = countHosts(mapKeys(chashOn(nodes), randomKeys(10_000)));
    for (const n of nodes) {
      const expected = (10_000 * n.weight) / 10;
      const actual = counts[n.host] ?? 0;
      assert.ok(Math.abs(actual - expected) / expected < 0.2, `${n.host}: ${actual} vs ${expected}`);
    }
  });

  it('spreads equal-weight keys evenly', () => {
    const counts = countHosts(mapKeys(chashOn(four), randomKeys(10_000, 12345)));
    for (const n of four) assert.ok(Math.abs(counts[n.host] - 2500) < 500, `${n.host}: ${counts[n.host]}`);
  });

  it('remaps about 1/5 of keys when a 5th node joins, all of them to the new node', () => {
    const keys = randomKeys(10_000);
    const before = mapKeys(chashOn(four), keys);
    const after = mapKeys(chashOn([...four, node('n5')]), keys);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      assert.equal(after[i], 'n5', 'a key only moves to the new node');
    }
    const fraction = moved / keys.length;
    assert.ok(fraction > 0.1 && fraction < 0.3, `remapped ${fraction}`);
  });

  it('remaps only the removed node\'s keys when one of 5 leaves', () => {
    const five = [...four, node('n5')];
    const keys = randomKeys(10_000, 777);
    const before = mapKeys(chashOn(five), keys);
    const after = mapKeys(chashOn(five.filter((n) => n.host !== 'n3')), keys);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      assert.equal(before[i], 'n3', 'only keys of the removed node move');
    }
    const fraction = moved / keys.length;
    assert.ok(fraction > 0.1 && fraction < 0.3, `remapped ${fraction}`);
  });

  it('moves few keys when one node\'s weight changes', () => {
    const keys = randomKeys(10_000, 4242);
    const before = mapKeys(chashOn(four), keys);
    const after = mapKeys(chashOn([node('n1', 2), node('n2'), node('n3'), node('n4')]), keys);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      assert.equal(after[i], 'n1', 'keys only move to the heavier node');
    }
    assert.ok(moved / keys.length < 0.3, `remapped ${moved / keys.length}`);
  });

  it('sizes the ring by gcd-reduced weight and caps it', () => {
    const b1 = new ChashBalancer([node('a', 100), node('b', 200)], {});
    assert.equal(b1.ringSize, POINTS_PER_WEIGHT * 3);
    const b2 = new ChashBalancer([node('a', 1000), node('b', 999)], {});
    assert.ok(b2.ringSize <= MAX_RING_POINTS && b2.ringSize > MAX_RING_POINTS - 10, `ring ${b2.ringSize}`);
  });

  describe('hash_on', () => {
    it('vars (default) hashes the named variable', () => {
      const b = new ChashBalancer(four, { key: 'uri' });
      assert.equal(b.hashOf(ctx({ uri: '/a/b', remote_addr: '1.1.1.1' })), hashString('/a/b'));
      const dflt = createBalancer(four, { type: 'chash', key: 'uri' });
      const viaVars = createBalancer(four, { type: 'chash', hash_on: 'vars', key: 'uri' });
      for (const k of randomKeys(200)) assert.equal(dflt.pick(ctx({ uri: k })), viaVars.pick(ctx({ uri: k })));
    });

    it('vars stringifies numbers and lists', () => {
      const b = new ChashBalancer(four, { hash_on: 'vars', key: 'arg_id' });
      assert.equal(b.hashOf(ctx({ arg_id: 42 })), hashString('42'));
      assert.equal(b.hashOf(ctx({ arg_id: ['x', 'y'] })), hashString('x,y'));
    });

    it('header reads http_<name> lower-cased with dashes as underscores', () => {
      const b = new ChashBalancer(four, { hash_on: 'header', key: 'X-User-Id' });
      assert.equal(b.hashOf(ctx({ http_x_user_id: 'alice', remote_addr: '1.1.1.1' })), hashString('alice'));
      // Same string, same ring: a header value lands where a remote_addr of that value would.
      const byAddr = createBalancer(four, { type: 'chash', key: 'remote_addr' });
      const byHeader = createBalancer(four, { type: 'chash', hash_on: 'header', key: 'X-User-Id' });
      for (const k of randomKeys(200)) {
        assert.equal(byHeader.pick(ctx({ http_x_user_id: k, remote_addr: '9.9.9.9' })), byAddr.pick(ctx({ remote_addr: k })));
      }
    });

    it('cookie reads cookie_<name>', () => {
      const b = new ChashBalancer(four, { hash_on: 'cookie', key: 'sid' });
      assert.equal(b.hashOf(ctx({ cookie_sid: 's-123', remote_addr: '1.1.1.1' })), hashString('s-123'));
    });

    it('consumer uses the consumer name', () => {
      const b = new ChashBalancer(four, { hash_on: 'consumer' });
      assert.equal(b.hashOf(ctx({ remote_addr: '1.1.1.1' }, 'jack')), hashString('jack'));
      const lb = createBalancer(four, { type: 'chash', hash_on: 'consumer' });
      const first = lb.pick(ctx({ remote_addr: '1.1.1.1' }, 'jack'));
      for (const addr of ['2.2.2.2', '3.3.3.3', '4.4.4.4']) assert.equal(lb.pick(ctx({ remote_addr: addr }, 'jack')), first);
    });

    it('vars_combinations resolves $var and ${var} templates', () => {
      const values = { host: 'example.com', remote_addr: '10.0.0.1', http_x: 'foo', arg_a: 'bar' };
      assert.equal(new ChashBalancer(four, { hash_on: 'vars_combinations', key: '$host$remote_addr' }).hashOf(ctx(values)), hashString('example.com10.0.0.1'));
      assert.equal(new ChashBalancer(four, { hash_on: 'vars_combinations', key: '${http_x}-$arg_a' }).hashOf(ctx(values)), hashString('foo-bar'));
      assert.equal(new ChashBalancer(four, { hash_on: 'vars_combinations', key: 'u:${http_x}x\\$arg_a' }).hashOf(ctx(values)), hashString('u:foox$arg_a'));
      // A missing variable resolves to the empty string while another one resolves.
      assert.equal(new ChashBalancer(four, { hash_on: 'vars_combinations', key: '${http_x}-$arg_missing' }).hashOf(ctx(values)), hashString('foo-'));
    });

    it('parses key templates', () => {
      assert.deepEqual(parseKeyTemplate('$host$remote_addr'), [
        { literal: '', variable: 'host' },
        { literal: '', variable: 'remote_addr' },
      ]);
      assert.deepEqual(parseKeyTemplate('a${http_x}-$arg_a!'), [
        { literal: 'a', variable: 'http_x' },
        { literal: '-', variable: 'arg_a' },
        { literal: '!', variable: undefined },
      ]);
      assert.deepEqual(parseKeyTemplate('cost $ 5 \\$x ${bad'), [{ literal: 'cost $ 5 $x ${bad', variable: undefined }]);
    });

    it('falls back to remote_addr when the key resolves empty', () => {
      const fallback = hashString('10.0.0.1');
      const c = ctx({ remote_addr: '10.0.0.1', uri: '' });
      assert.equal(new ChashBalancer(four, { hash_on: 'vars', key: 'arg_missing' }).hashOf(c), fallback);
      assert.equal(new ChashBalancer(four, { hash_on: 'vars', key: 'uri' }).hashOf(c), fallback);
      assert.equal(new ChashBalancer(four, { hash_on: 'header', key: 'X-None' }).hashOf(c), fallback);
      assert.equal(new ChashBalancer(four, { hash_on: 'cookie', key: 'none' }).hashOf(c), fallback);
      assert.equal(new ChashBalancer(four, { hash_on: 'consumer' }).hashOf(c), fallback);
      assert.equal(new ChashBalancer(four, { hash_on: 'vars_combinations', key: '${http_a}-$arg_b' }).hashOf(c), fallback);
      assert.equal(new ChashBalancer(four, { hash_on: 'vars', key: 'remote_addr' }).hashOf(c), fallback);
    });
  });

  it('on retry walks the ring to the node the key would get without the tried ones', () => {
    const keys = randomKeys(500, 31337);
    const b = chashOn(four);
    let moved = 0;
    for (const k of keys) {
      const c = ctx({ arg_id: k });
      const primary = b.pick(c)!;
      const second = b.pick(c, new Set([primary.key]))!;
      assert.notEqual(second.key, primary.key);
      assert.equal(b.pick(c, new Set([primary.key])), second, 'retry is deterministic');
      const without = chashOn(four.filter((n) => n.key !== primary.key));
      assert.equal(second.host, without.pick(c)!.host);
      const third = b.pick(c, new Set([primary.key, second.key]))!;
      assert.ok(third.key !== primary.key && third.key !== second.key);
      const fourth = b.pick(c, new Set([primary.key, second.key, third.key]))!;
      assert.equal(new Set([primary.host, second.host, third.host, fourth.host]).size, 4);
      assert.equal(b.pick(c, new Set(four.map((n) => n.key))), undefined);
      if (second.host !== primary.host) moved++;
    }
    assert.equal(moved, keys.length);
  });
});

describe('least_conn', () => {
  it('prefers the least loaded node', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const b = createBalancer(nodes, { type: 'least_conn' });
    b.started!(nodes[0]);
    b.started!(nodes[0]);
    b.started!(nodes[1]);
    assert.equal(b.pick(NO_VARS)?.host, 'c');
    b.started!(nodes[2]);
    assert.equal(b.pick(NO_VARS)?.host, 'b');
    b.finished!(nodes[0], 5, false);
    b.finished!(nodes[0], 5, false);
    assert.equal(b.pick(NO_VARS)?.host, 'a');
  });

  it('rotates among equally loaded nodes', () => {
    const b = createBalancer([node('a'), node('b'), node('c')], { type: 'least_conn' });
    assert.deepEqual(pickHosts(b, 6), ['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('respects weights: (active + 1) / weight', () => {
    const b = createBalancer([node('heavy', 3), node('light', 1)], { type: 'least_conn' });
    const counts: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      const n = b.pick(NO_VARS)!;
      b.started!(n);
      counts[n.host] = (counts[n.host] ?? 0) + 1;
    }
    assert.ok(Math.abs(counts.heavy - 300) <= 1 && Math.abs(counts.light - 100) <= 1, JSON.stringify(counts));
    // With nothing in flight, the heavier node scores lower.
    assert.equal(createBalancer([node('light', 1), node('heavy', 3)], { type: 'least_conn' }).pick(NO_VARS)?.host, 'heavy');
  });

  it('spreads concurrent requests that finish', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const b = createBalancer(nodes, { type: 'least_conn' });
    // a is stuck with long requests; the rest finish quickly.
    for (let i = 0; i < 5; i++) b.started!(nodes[0]);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const n = b.pick(NO_VARS)!;
      b.started!(n);
      counts[n.host] = (counts[n.host] ?? 0) + 1;
      b.finished!(n, 1, false);
    }
    assert.deepEqual(counts, { b: 50, c: 50 });
  });

  it('skips tried nodes and never counts below zero', () => {
    const nodes = [node('a'), node('b')];
    const b = new LeastConnBalancer(nodes);
    b.started(nodes[1]);
    assert.equal(b.pick(NO_VARS, new Set(['a:80']))?.host, 'b');
    assert.equal(b.pick(NO_VARS, new Set(['a:80', 'b:80'])), undefined);
    b.finished(nodes[0], 1, true);
    b.finished(nodes[0], 1, true);
    assert.equal(b.activeCount('a:80'), 0);
    assert.equal(b.activeCount('b:80'), 1);
    b.finished({ ...node('ghost') }, 1, false); // unknown nodes are ignored
  });
});

describe('ewma', () => {
  function clock(): { now: () => number; advance(ms: number): void } {
    let t = 1_000;
    return { now: () => t, advance: (ms) => void (t += ms) };
  }

  /** Deterministic random in [0, 1). */
  function rng(seed = 1): () => number {
    let x = seed;
    return () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 4294967296;
    };
  }

  it('prefers the faster node after feedback', () => {
    const c = clock();
    const nodes = [node('slow'), node('fast')];
    const b = new EwmaBalancer(nodes, { now: c.now, random: rng() });
    b.finished(nodes[0], 100, false);
    b.finished(nodes[1], 10, false);
    c.advance(50);
    assert.deepEqual(countHosts(pickHosts(b, 100)), { fast: 100 });
  });

  it('never picks the slowest of three (power of two choices) and favours the fastest', () => {
    const c = clock();
    const nodes = [node('a'), node('b'), node('c')];
    const b = new EwmaBalancer(nodes, { now: c.now, random: rng(7) });
    b.finished(nodes[0], 300, false);
    b.finished(nodes[1], 20, false);
    b.finished(nodes[2], 80, false);
    const counts = countHosts(pickHosts(b, 3000));
    assert.equal(counts.a, undefined);
    assert.ok(counts.b > 1800 && counts.b < 2200, JSON.stringify(counts)); // expected 2/3
    assert.ok(counts.c > 800 && counts.c < 1200, JSON.stringify(counts)); // expected 1/3
  });

  it('starts unknown nodes at 0 latency', () => {
    const c = clock();
    const nodes = [node('known'), node('new')];
    const b = new EwmaBalancer(nodes, { now: c.now, random: rng() });
    b.finished(nodes[0], 5, false);
    assert.equal(b.latency('new:80'), 0);
    assert.deepEqual(countHosts(pickHosts(b, 20)), { new: 20 });
  });

  it('decays with a 10 s time constant and takes peaks immediately', () => {
    const c = clock();
    const nodes = [node('a'), node('b')];
    const b = new EwmaBalancer(nodes, { now: c.now, random: rng() });
    b.finished(nodes[0], 100, false);
    assert.equal(b.latency('a:80'), 100);
    c.advance(DECAY_TIME_MS);
    assert.ok(Math.abs(b.latency('a:80') - 100 / Math.E) < 1e-9);
    // A lower sample 10 s later moves the average part of the way.
    b.finished(nodes[0], 20, false);
    const expected = 100 / Math.E + 20 * (1 - 1 / Math.E);
    assert.ok(Math.abs(b.latency('a:80') - expected) < 1e-9);
    // A spike replaces it at once.
    c.advance(1);
    b.finished(nodes[0], 500, false);
    assert.equal(b.latency('a:80'), 500);
  });

  it('penalizes failures even when they were fast', () => {
    const c = clock();
    const nodes = [node('flaky'), node('ok')];
    const b = new EwmaBalancer(nodes, { now: c.now, random: rng() });
    b.finished(nodes[0], 1, true);
    b.finished(nodes[1], 50, false);
    assert.ok(b.latency('flaky:80') >= FAILURE_PENALTY_MS);
    assert.equal(b.pick(NO_VARS)?.host, 'ok');
  });

  it('scores by active requests and weight', () => {
    const c = clock();
    const nodes = [node('a'), node('b')];
    const b = new EwmaBalancer(nodes, { now: c.now, random: rng() });
    b.finished(nodes[0], 40, false);
    b.finished(nodes[1], 40, false);
    b.started(nodes[0]);
    assert.equal(b.pick(NO_VARS)?.host, 'b');
    b.started(nodes[1]);
    b.started(nodes[1]);
    assert.equal(b.pick(NO_VARS)?.host, 'a');

    const w = new EwmaBalancer([node('light', 1), node('heavy', 4)], { now: c.now, random: rng(3) });
    w.finished(node('light', 1), 40, false);
    w.finished(node('heavy', 4), 100, false); // 100/4 = 25 < 40/1
    assert.deepEqual(countHosts(pickHosts(w, 10)), { heavy: 10 });
  });

  it('skips tried nodes', () => {
    const c = clock();
    const nodes = [node('a'), node('b'), node('c')];
    const b = new EwmaBalancer(nodes, { now: c.now, random: rng(5) });
    b.finished(nodes[0], 1, false);
    b.finished(nodes[1], 100, false);
    b.finished(nodes[2], 200, false);
    assert.deepEqual(countHosts(pickHosts(b, 50, NO_VARS, new Set(['a:80']))), { b: 50 });
    assert.deepEqual(countHosts(pickHosts(b, 10, NO_VARS, new Set(['a:80', 'b:80']))), { c: 10 });
    assert.equal(b.pick(NO_VARS, new Set(['a:80', 'b:80', 'c:80'])), undefined);
  });

  it('works through createBalancer with the real clock', () => {
    const nodes = [node('slow'), node('fast')];
    const b = createBalancer(nodes, { type: 'ewma' });
    b.started!(nodes[0]);
    b.finished!(nodes[0], 250, false);
    b.started!(nodes[1]);
    b.finished!(nodes[1], 5, false);
    assert.deepEqual(countHosts(pickHosts(b, 20)), { fast: 20 });
  });
});

describe('priority tiers', () => {
  const nodes = [node('low', 1, -5), node('high1', 1, 10), node('mid', 1, 0), node('high2', 1, 10)];

  it('uses the highest tier until all of its nodes are tried', () => {
    for (const type of ['roundrobin', 'chash', 'least_conn', 'ewma'] as const) {
      const b = createBalancer(nodes, { type, key: 'remote_addr' });
      const c = ctx({ remote_addr: '192.0.2.7' });
      for (let i = 0; i < 20; i++) assert.match(b.pick(c)!.host, /^high/, type);
      const first = b.pick(c)!;
      const other = first.host === 'high1' ? 'high2' : 'high1';
      assert.equal(b.pick(c, new Set([first.key]))?.host, other, type);
      assert.equal(b.pick(c, new Set(['high1:80', 'high2:80']))?.host, 'mid', type);
      assert.equal(b.pick(c, new Set(['high1:80', 'high2:80', 'mid:80']))?.host, 'low', type);
      assert.equal(b.pick(c, new Set(['high1:80', 'high2:80', 'mid:80', 'low:80'])), undefined, type);
    }
  });

  it('keeps weights within a tier', () => {
    const b = createBalancer([node('a', 3, 1), node('b', 1, 1), node('backup', 5, 0)], {});
    assert.deepEqual(countHosts(pickHosts(b, 400)), { a: 300, b: 100 });
    assert.deepEqual(countHosts(pickHosts(b, 10, NO_VARS, new Set(['a:80', 'b:80']))), { backup: 10 });
  });

  it('treats a tier of weight-0 nodes as absent', () => {
    const b = createBalancer([node('off', 0, 10), node('on', 1, 0)], {});
    assert.equal(b.pick(NO_VARS)?.host, 'on');
  });

  it('routes started/finished to the node\'s tier', () => {
    const ns = [node('h1', 1, 1), node('h2', 1, 1), node('l', 1, 0)];
    const b = createBalancer(ns, { type: 'least_conn' });
    b.started!(ns[0]);
    b.started!(ns[2]);
    assert.deepEqual(pickHosts(b, 3), ['h2', 'h2', 'h2']);
    b.finished!(ns[0], 1, false);
    b.started!(ns[1]);
    assert.equal(b.pick(NO_VARS)?.host, 'h1');
    assert.equal(b.pick(NO_VARS, new Set(['h1:80', 'h2:80']))?.host, 'l');
  });
});
