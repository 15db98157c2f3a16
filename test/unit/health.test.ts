// Health checks without a network: the shared health table counts as lua-resty-healthcheck does
// (and loses no report between threads), the settings carry APISIX's defaults, and every balancer
// type skips unhealthy nodes, with APISIX's rule when all of them are unhealthy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { varsFromObject } from '../../src/expr/vars.ts';
import { HEALTHY, HTTP_FAILURE, HealthTable, MOSTLY_HEALTHY, MOSTLY_UNHEALTHY, SUCCESS, TCP_FAILURE, TIMEOUT_FAILURE, UNHEALTHY, type SlotRef } from '../../src/shm/health.ts';
import { createBalancer, type Balancer, type BalancerType, type UpstreamNode } from '../../src/upstream/balancer/index.ts';
import { healthSettings, healthTargets, targetKey } from '../../src/upstream/health/config.ts';
import { HealthBalancer, HealthView } from '../../src/upstream/health/view.ts';

function counters(table: HealthTable, ref: SlotRef): [string, number, number, number, number] {
  const s = table.status(ref)!;
  return [s.state, s.success, s.http_failure, s.tcp_failure, s.timeout_failure];
}

describe('health table', () => {
  it('adds targets healthy, finds them by key, and keeps an existing target as it is', () => {
    const table = new HealthTable(undefined, 256);
    const a = table.add('c\u0000a')!;
    assert.deepEqual(table.find('c\u0000a'), a);
    assert.equal(table.find('c\u0000b'), undefined);
    table.report(a, HTTP_FAILURE, 1);
    assert.deepEqual(table.add('c\u0000a'), a);
    assert.equal(table.state(a), UNHEALTHY);
  });

  it('counts failures towards unhealthy: mostly_healthy first, the counter that reached the limit stays', () => {
    const table = new HealthTable(undefined, 256);
    const t = table.add('t')!;
    assert.equal(table.report(t, SUCCESS, 2), 0, 'a success on a healthy target is not counted');
    assert.deepEqual(counters(table, t), ['healthy', 0, 0, 0, 0]);
    assert.equal(table.report(t, HTTP_FAILURE, 3), MOSTLY_HEALTHY);
    assert.equal(table.report(t, HTTP_FAILURE, 3), 0);
    assert.deepEqual(counters(table, t), ['mostly_healthy', 0, 2, 0, 0]);
    assert.equal(table.report(t, HTTP_FAILURE, 3), UNHEALTHY);
    assert.deepEqual(counters(table, t), ['unhealthy', 0, 3, 0, 0]);
    assert.equal(table.report(t, TCP_FAILURE, 2), 0, 'a failure on an unhealthy target is not counted');
    assert.deepEqual(counters(table, t), ['unhealthy', 0, 3, 0, 0]);
  });

  it('counts successes towards healthy: a success clears the failure counters', () => {
    const table = new HealthTable(undefined, 256);
    const t = table.add('t')!;
    table.report(t, TIMEOUT_FAILURE, 1);
    assert.deepEqual(counters(table, t), ['unhealthy', 0, 0, 0, 1]);
    assert.equal(table.report(t, SUCCESS, 2), MOSTLY_UNHEALTHY);
    assert.deepEqual(counters(table, t), ['mostly_unhealthy', 1, 0, 0, 0]);
    assert.equal(table.report(t, SUCCESS, 2), HEALTHY);
    assert.deepEqual(counters(table, t), ['healthy', 2, 0, 0, 0]);
  });

  it('a failure clears the success counter; mostly_healthy stays until a limit is reached', () => {
    const table = new HealthTable(undefined, 256);
    const t = table.add('t')!;
    table.report(t, TCP_FAILURE, 3);
    table.report(t, SUCCESS, 2);
    assert.deepEqual(counters(table, t), ['mostly_healthy', 1, 0, 0, 0]);
    table.report(t, TCP_FAILURE, 3);
    assert.deepEqual(counters(table, t), ['mostly_healthy', 0, 0, 1, 0]);
    table.report(t, SUCCESS, 2);
    table.report(t, SUCCESS, 2);
    assert.deepEqual(counters(table, t), ['healthy', 2, 0, 0, 0]);
  });

  it('ignores reports with a limit of 0', () => {
    const table = new HealthTable(undefined, 256);
    const t = table.add('t')!;
    for (let i = 0; i < 5; i++) assert.equal(table.report(t, TCP_FAILURE, 0), 0);
    assert.deepEqual(counters(table, t), ['healthy', 0, 0, 0, 0]);
  });

  it('moves the generation on adds, removals and up/down changes only', () => {
    const table = new HealthTable(undefined, 256);
    const g0 = table.generation;
    const t = table.add('t')!;
    const g1 = table.generation;
    assert.notEqual(g1, g0);
    table.report(t, HTTP_FAILURE, 2);
    assert.equal(table.generation, g1, 'healthy → mostly_healthy is still up');
    table.report(t, HTTP_FAILURE, 2);
    const g2 = table.generation;
    assert.notEqual(g2, g1);
    table.remove(t);
    assert.notEqual(table.generation, g2);
  });

  it('forgets a removed target: reports to it are dropped, adding it again starts healthy', () => {
    const table = new HealthTable(undefined, 256);
    const t = table.add('t')!;
    table.report(t, HTTP_FAILURE, 1);
    table.remove(t);
    assert.equal(table.find('t'), undefined);
    assert.equal(table.report(t, SUCCESS, 1), 0);
    assert.equal(table.status(t), undefined);
    const again = table.add('t')!;
    assert.deepEqual(counters(table, again), ['healthy', 0, 0, 0, 0]);
    // keys added after the removed one are still found past its tombstone
    for (let i = 0; i < 100; i++) table.add(`k${i}`);
    for (let i = 0; i < 100; i++) assert.ok(table.find(`k${i}`), `k${i}`);
  });

  it('loses no report when threads count failures on one target at once', async () => {
    const table = new HealthTable(undefined, 64);
    const ref = table.add('shared')!;
    const source = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(${JSON.stringify(new URL('../../src/shm/health.ts', import.meta.url).href)}).then((m) => {
        const table = new m.HealthTable(workerData.buffer);
        const ref = table.find('shared');
        for (let i = 0; i < 80; i++) table.report(ref, m.HTTP_FAILURE, 254);
        parentPort.postMessage('done');
      });`;
    await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<void>((resolve, reject) => {
            const worker = new Worker(source, { eval: true, workerData: { buffer: table.buffer } });
            worker.once('message', () => resolve());
            worker.once('error', reject);
          }),
      ),
    );
    assert.deepEqual(counters(table, ref), ['mostly_healthy', 0, 240, 0, 0]);
  });
});

describe('health settings', () => {
  it('fills APISIX\'s defaults', () => {
    const s = healthSettings({ active: {} });
    assert.equal(s.active.type, 'http');
    assert.equal(s.active.timeoutMs, 1000);
    assert.equal(s.active.concurrency, 10);
    assert.equal(s.active.httpPath, '/');
    assert.equal(s.active.httpMethod, 'GET');
    assert.equal(s.active.httpsVerifyCertificate, true);
    assert.deepEqual([s.active.healthyIntervalMs, s.active.unhealthyIntervalMs], [1000, 1000]);
    assert.deepEqual([s.active.successes, s.active.httpFailures, s.active.tcpFailures, s.active.timeouts], [2, 5, 2, 3]);
    assert.deepEqual([200, 302, 404, 429, 500, 505, 201].map((c) => s.active.statuses[c]), [1, 1, 2, 2, 2, 2, 0]);
    assert.equal(s.passive.configured, false);
    assert.deepEqual([s.passive.successes, s.passive.httpFailures, s.passive.tcpFailures, s.passive.timeouts], [5, 5, 2, 7]);
    assert.deepEqual([200, 226, 308, 429, 500, 503, 502].map((c) => s.passive.statuses[c]), [1, 1, 1, 2, 2, 2, 0]);
  });

  it('names targets by address, port (checks.active.port) and host (checks.active.host)', () => {
    const nodes = [
      { host: '10.0.0.1', port: 80, key: '10.0.0.1:80' },
      { host: '10.0.0.1', port: 81, key: '10.0.0.1:81' },
      { host: 'b.example', port: 80, key: 'b.example:80' },
    ];
    const plain = healthTargets(nodes, healthSettings({ active: {} }), 'node', undefined);
    assert.deepEqual(plain.targets.map((t) => [t.ip, t.port, t.hostname, t.hostheader]), [
      ['10.0.0.1', 80, '10.0.0.1', undefined],
      ['10.0.0.1', 81, '10.0.0.1', undefined],
      ['b.example', 80, 'b.example', 'b.example'],
    ]);
    const fixedPort = healthTargets(nodes, healthSettings({ active: { port: 9000, host: 'probe.test' } }), 'rewrite', 'up.test');
    assert.deepEqual(fixedPort.targets.map((t) => [t.ip, t.port, t.hostname, t.hostheader]), [
      ['10.0.0.1', 9000, 'probe.test', 'up.test'],
      ['b.example', 9000, 'probe.test', 'up.test'],
    ]);
    assert.deepEqual(fixedPort.byNode, [0, 0, 1]);
  });
});

function node(host: string, weight = 1, priority = 0): UpstreamNode {
  return { host, port: 80, weight, priority, key: `${host}:80` };
}

const CTX = { vars: varsFromObject({ remote_addr: '1.2.3.4', arg_id: 'k' }) };

/** A checked upstream over `nodes`, its table, and a way to set a node's health. */
function checked(nodes: UpstreamNode[], type: BalancerType) {
  const table = new HealthTable(undefined, 256);
  const settings = healthSettings({ active: {} });
  const view = new HealthView('upstreams/t', settings, nodes, 'pass', undefined, table);
  const refs = new Map<string, SlotRef>();
  const { targets, byNode } = healthTargets(nodes, settings, 'pass', undefined);
  nodes.forEach((n, i) => refs.set(n.key, table.add(targetKey('upstreams/t', targets[byNode[i]]))!));
  const balancer: Balancer = new HealthBalancer(createBalancer(nodes, { type, hash_on: 'vars', key: 'arg_id' }), view);
  return {
    balancer,
    view,
    down: (host: string) => table.report(refs.get(`${host}:80`)!, HTTP_FAILURE, 1),
    up: (host: string) => table.report(refs.get(`${host}:80`)!, SUCCESS, 1),
    picks: (n: number, tried?: ReadonlySet<string>) => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const picked = balancer.pick({ ...CTX, vars: varsFromObject({ remote_addr: '1.2.3.4', arg_id: `k${i}` }) }, tried);
        seen.add(picked?.host ?? '-');
      }
      return [...seen].sort();
    },
  };
}

describe('balancers over health', () => {
  for (const type of ['roundrobin', 'chash', 'least_conn', 'ewma'] as BalancerType[]) {
    it(`${type}: skips unhealthy nodes, and uses them all when every node is unhealthy`, () => {
      const u = checked([node('a'), node('b'), node('c')], type);
      assert.deepEqual(u.picks(200), ['a', 'b', 'c']);
      u.down('b');
      assert.deepEqual(u.picks(200), ['a', 'c']);
      u.down('a');
      assert.deepEqual(u.picks(200), ['c']);
      assert.deepEqual(u.picks(10, new Set(['c:80'])), ['-'], 'a retry never goes to an unhealthy node');
      u.down('c');
      assert.deepEqual(u.picks(200), ['a', 'b', 'c'], 'all unhealthy: all used');
      u.up('b');
      assert.deepEqual(u.picks(200), ['b']);
    });
  }

  it('priority tiers: an unhealthy tier gives way to the next; all unhealthy uses the tiers as configured', () => {
    const u = checked([node('a', 1, 10), node('b', 1, 10), node('c', 1, 0)], 'roundrobin');
    assert.deepEqual(u.picks(50), ['a', 'b']);
    u.down('a');
    assert.deepEqual(u.picks(50), ['b']);
    u.down('b');
    assert.deepEqual(u.picks(50), ['c']);
    u.down('c');
    assert.deepEqual(u.picks(50), ['a', 'b']);
  });

  it('weight-0 nodes do not count as healthy for the all-unhealthy rule', () => {
    const u = checked([node('a'), node('b'), node('z', 0)], 'roundrobin');
    u.down('a');
    u.down('b');
    assert.deepEqual(u.picks(50), ['a', 'b']);
  });

  it('chash keeps the keys of healthy nodes where they were', () => {
    const u = checked([node('a'), node('b'), node('c'), node('d')], 'chash');
    const before = Array.from({ length: 300 }, (_, i) => u.balancer.pick({ vars: varsFromObject({ arg_id: `k${i}` }) })!.host);
    u.down('c');
    const after = Array.from({ length: 300 }, (_, i) => u.balancer.pick({ vars: varsFromObject({ arg_id: `k${i}` }) })!.host);
    for (let i = 0; i < 300; i++) {
      if (before[i] !== 'c') assert.equal(after[i], before[i]);
      else assert.notEqual(after[i], 'c');
    }
  });

  it('without a checker (no targets in the table) every node is healthy', () => {
    const table = new HealthTable(undefined, 64);
    const view = new HealthView('upstreams/none', healthSettings({ active: {} }), [node('a'), node('b')], 'pass', undefined, table);
    assert.equal(view.unhealthy(), undefined);
    view.report('a:80', 'tcp');
    assert.equal(view.unhealthy(), undefined);
  });

  it('passive reports: tcp failures and timeouts always count, statuses only with checks.passive', () => {
    const nodes = [node('a'), node('b')];
    for (const [checks, aStaysUp] of [
      [{ active: {} }, true],
      [{ active: {}, passive: { unhealthy: { http_statuses: [500], http_failures: 2 } } }, false],
    ] as const) {
      const table = new HealthTable(undefined, 64);
      const settings = healthSettings(checks);
      const view = new HealthView('upstreams/p', settings, nodes, 'pass', undefined, table);
      const { targets } = healthTargets(nodes, settings, 'pass', undefined);
      for (const t of targets) table.add(targetKey('upstreams/p', t));
      view.report('a:80', 500);
      view.report('a:80', 500);
      assert.equal(view.nodeUp('a:80'), aStaysUp);
      view.report('b:80', 'tcp');
      view.report('b:80', 'tcp');
      assert.equal(view.nodeUp('b:80'), aStaysUp ? false : true, 'b: with a down too, all unhealthy means all used');
    }
  });
});
