// Worker threads: a rolling replacement (SIGUSR2, or SIGHUP with changed worker settings) under load
// loses no request, and a worker that dies is replaced from the full current config.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { parseNodeConfig } from '../../src/conf/index.ts';
import { WorkerSupervisor } from '../../src/workers/supervisor.ts';
import { freePort, request, sleep, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

/** Runs `clients` request loops against `url` until `stop()` resolves; counts outcomes. */
function loadLoop(url: string, clients: number) {
  const counts = { ok: 0, failed: 0, errors: [] as string[] };
  let running = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const one = (useAgent: boolean) =>
    new Promise<void>((resolve) => {
      const req = http.get(url, { agent: useAgent ? agent : false }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) counts.ok++;
          else {
            counts.failed++;
            counts.errors.push(`status ${res.statusCode}`);
          }
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        counts.failed++;
        counts.errors.push(`${err.message} (${useAgent ? "keep-alive" : "new connection"}, reused=${(req as { reusedSocket?: boolean }).reusedSocket})`);
        resolve();
      });
    });
  const loops = Array.from({ length: clients }, async (_, i) => {
    // Half the clients keep connections alive, half open a new one per request.
    for (let n = 0; running && n < 100_000; n++) await one(i % 2 === 0);
  });
  return {
    counts,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return counts;
    },
  };
}

// Linux resets connections still queued on a listener that closes unless net.ipv4.tcp_migrate_req
// moves them to another listener of the same port; lossless replacement needs it (docs/operating.md).
const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req';

function setMigrateReq(value: string): string | undefined {
  try {
    const before = readFileSync(MIGRATE_REQ, 'utf8').trim();
    writeFileSync(MIGRATE_REQ, value);
    return before;
  } catch {
    return undefined;
  }
}

describe('rolling worker replacement', () => {
  let up: Upstream;
  let gw: Gateway;
  let migrateReqBefore: string | undefined;

  before(async () => {
    migrateReqBefore = setMigrateReq('1');
    up = await startUpstream();
    gw = await startGateway({
      workers: 2,
      config: { nginx_config: { error_log_level: 'notice' } },
      routes: { routes: [{ id: 1, uri: '/load', upstream: { nodes: { [up.node]: 1 } } }] },
    });
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
    if (migrateReqBefore !== undefined) setMigrateReq(migrateReqBefore);
  });

  it('SIGUSR2 replaces every worker under load with no failed request', async () => {
    const load = loadLoop(gw.url('/load'), 4);
    await sleep(500);
    gw.proc.kill('SIGUSR2');
    await waitFor(() => /replaced 2 worker\(s\)/.test(gw.output()), 10_000, 'first replacement');
    gw.proc.kill('SIGUSR2');
    await waitFor(() => (gw.output().match(/replaced 2 worker\(s\)/g) ?? []).length === 2, 10_000, 'second replacement');
    await sleep(500);
    const counts = await load.stop();
    assert.ok(counts.ok > 100, `only ${counts.ok} requests went through`);
    if (migrateReqBefore !== undefined) {
      assert.equal(counts.failed, 0, `failed requests: ${counts.errors.slice(0, 5).join('; ')}`);
    } else {
      // Without the sysctl only connections the kernel queued on a closing listener may be reset.
      const other = counts.errors.filter((e) => !/ECONNRESET \(new connection/.test(e));
      assert.deepEqual(other, []);
    }
    const st = JSON.parse((await request(`http://127.0.0.1:${gw.statusPort}/status/config`)).body);
    assert.equal(st.workers.length, 2);
    for (const w of st.workers) assert.equal(w.version, st.version);
  });

  it('replacement workers serve config changes made after they started', async () => {
    gw.writeRoutes({ routes: [{ id: 1, uri: '/load', upstream: { nodes: { [up.node]: 1 } } }, { id: 2, uri: '/later', upstream: { nodes: { [up.node]: 1 } } }] });
    await waitFor(async () => {
      for (let i = 0; i < 6; i++) if ((await request(gw.url('/later'))).status !== 200) return false;
      return true;
    }, 5000, 'new route on every worker');
  });
});

describe('a worker that dies', () => {
  let up: Upstream;
  let supervisor: WorkerSupervisor;
  let port: number;

  before(async () => {
    up = await startUpstream();
    port = await freePort();
    const config = parseNodeConfig('nginx_config:\n  error_log_level: error\n');
    const route = { id: '1', uri: '/crash', upstream: { nodes: { [up.node]: 1 } } };
    supervisor = new WorkerSupervisor({
      count: 2,
      config,
      prefix: mkdtempSync(join(tmpdir(), 'causeway-workers-')),
      listeners: [{ ip: '127.0.0.1', port }],
      reusePort: true,
      currentState: () => ({ events: [{ kind: 'routes', id: '1', value: route }], version: 7 }),
    });
    await supervisor.start();
  });

  after(async () => {
    await supervisor?.stop(2000);
    await up?.close();
  });

  it('is replaced from the current config while the other keeps serving', async () => {
    const url = `http://127.0.0.1:${port}/crash`;
    assert.equal((await request(url)).status, 200);
    const load = loadLoop(url, 2);
    await sleep(300);
    const okBefore = load.counts.ok;
    await supervisor.terminate(0);
    // the surviving worker keeps answering while the replacement starts
    await sleep(100);
    assert.ok(load.counts.ok > okBefore, 'no request was served after the crash');
    await waitFor(() => supervisor.allApplied(7), 10_000, 'replacement worker with the full config');
    const afterReplacement = load.counts.failed;
    await sleep(500);
    const counts = await load.stop();
    assert.equal(counts.failed, afterReplacement, `requests failed after the replacement: ${counts.errors.slice(-3).join('; ')}`);
    for (let i = 0; i < 10; i++) assert.equal((await request(url)).status, 200);
  });
});
