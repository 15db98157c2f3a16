// Router micro-benchmark: build time, match cost and single-route change cost at 1k, 10k and 100k
// routes, in the default host mode and in parameter mode. Prints a markdown table.
//
//   node bench/router.ts [--sizes 1000,10000,100000] [--match-ms 200] [--changes 1000]
//
// Route mix for N routes (i = 0..N-1), by i % 10:
//   0-6  exact     /api/v1/svc{i}/items
//   7    prefix    /static/{i}/*
//   8    host      svc{i}.example.com + /api/v1/items   (hosts: in host mode, a host bucket each)
//   9    param     /api/v2/svc{i}/users/:id/orders/:oid  (parameter mode; elsewhere prefix /api/v2/svc{i}/users/*)
import { Router, type MatchInput, type RouteSpec, type RouterMode } from '../src/router/index.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i !== -1 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const SIZES = arg('sizes', '1000,10000,100000').split(',').map(Number);
const MATCH_MS = Number(arg('match-ms', '200'));
const CHANGES = Number(arg('changes', '1000'));
const MODES: RouterMode[] = ['radixtree_host_uri', 'radixtree_uri_with_parameter'];

const noVars = { get: () => undefined };

function spec(i: number, withParams: boolean): RouteSpec<number> {
  const id = `r${i}`;
  switch (i % 10) {
    case 7:
      return { id, paths: [`/static/${i}/*`], value: i };
    case 8:
      return { id, paths: ['/api/v1/items'], hosts: [`svc${i}.example.com`], value: i };
    case 9:
      return withParams
        ? { id, paths: [`/api/v2/svc${i}/users/:id/orders/:oid`], value: i }
        : { id, paths: [`/api/v2/svc${i}/users/*`], value: i };
    default:
      return { id, paths: [`/api/v1/svc${i}/items`], methods: ['GET'], value: i };
  }
}

function input(path: string, host = 'gw.local'): MatchInput {
  return { path, host, method: 'GET', remoteAddr: '10.1.2.3', vars: noVars };
}

/** Request sets for each kind, spread over the whole table; each entry knows the id it must hit. */
function targets(n: number, kind: 'exact' | 'prefix' | 'host' | 'param' | 'miss'): Array<[MatchInput, string | undefined]> {
  const out: Array<[MatchInput, string | undefined]> = [];
  const want = { exact: 0, prefix: 7, host: 8, param: 9, miss: 0 }[kind];
  for (let k = 0; k < 1024; k++) {
    const i = Math.floor(((k * 2654435761) % 2 ** 32) / 2 ** 32 * (n / 10)) * 10 + want;
    switch (kind) {
      case 'exact': out.push([input(`/api/v1/svc${i}/items`), `r${i}`]); break;
      case 'prefix': out.push([input(`/static/${i}/css/site.css`), `r${i}`]); break;
      case 'host': out.push([input('/api/v1/items', `svc${i}.example.com`), `r${i}`]); break;
      case 'param': out.push([input(`/api/v2/svc${i}/users/u${k}/orders/o${k}`), `r${i}`]); break;
      case 'miss': out.push([input(`/api/v1/svc${i}/missing`, `nohost${k}.example.org`), undefined]); break;
    }
  }
  return out;
}

function measureMatch(router: Router<number>, set: Array<[MatchInput, string | undefined]>): number {
  for (const [inp, id] of set) {
    const got = router.match(inp)?.id;
    if (got !== id) throw new Error(`bench setup: ${inp.host}${inp.path} matched ${got}, expected ${id}`);
  }
  let sink = 0;
  // Warm-up, then timed rounds until MATCH_MS elapsed.
  for (let r = 0; r < 50; r++) for (let k = 0; k < set.length; k++) sink += router.match(set[k][0])?.value ?? 1;
  let ops = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(MATCH_MS) * 1_000_000n;
  let now = start;
  while (now < deadline) {
    for (let r = 0; r < 20; r++) for (let k = 0; k < set.length; k++) sink += router.match(set[k][0])?.value ?? 1;
    ops += 20 * set.length;
    now = process.hrtime.bigint();
  }
  if (sink === -1) console.log(sink);
  return Number(now - start) / ops;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Times single-route changes on the full table: returns [median, p99] in microseconds. */
function measureChanges(router: Router<number>, n: number, withParams: boolean, op: 'upsert' | 'remove'): [number, number] {
  const samples: number[] = [];
  for (let c = 0; c < CHANGES; c++) {
    const i = (c * 7919) % n;
    const s = spec(i, withParams);
    let t0: bigint;
    let t1: bigint;
    if (op === 'upsert') {
      // A real change: a new path and priority for an existing route (old placement out, new in).
      const changed: RouteSpec<number> = { ...s, paths: s.paths.map((p) => p + (c % 2 === 0 ? '-v2' : '')), priority: c % 3 };
      t0 = process.hrtime.bigint();
      router.upsert(changed);
      t1 = process.hrtime.bigint();
      router.upsert(s);
    } else {
      t0 = process.hrtime.bigint();
      router.remove(s.id);
      t1 = process.hrtime.bigint();
      router.upsert(s);
    }
    samples.push(Number(t1 - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  return [percentile(samples, 0.5), percentile(samples, 0.99)];
}

function fmtMatch(ns: number): string {
  const perSec = 1e9 / ns;
  const rate = perSec >= 1e6 ? `${(perSec / 1e6).toFixed(1)} M/s` : `${(perSec / 1e3).toFixed(0)} k/s`;
  return `${ns.toFixed(0)} ns (${rate})`;
}

const fmtUs = ([p50, p99]: [number, number]) => `${p50.toFixed(1)} / ${p99.toFixed(1)}`;

const rows: string[] = [];
for (const n of SIZES) {
  for (const mode of MODES) {
    const withParams = mode === 'radixtree_uri_with_parameter';
    const specs = Array.from({ length: n }, (_, i) => spec(i, withParams));
    const router = new Router<number>(mode);
    const t0 = process.hrtime.bigint();
    for (const s of specs) router.upsert(s);
    const buildMs = Number(process.hrtime.bigint() - t0) / 1e6;
    if (router.size !== n) throw new Error('bench setup: size mismatch');

    const exact = measureMatch(router, targets(n, 'exact'));
    const prefix = measureMatch(router, targets(n, 'prefix'));
    const host = measureMatch(router, targets(n, 'host'));
    const param = withParams ? fmtMatch(measureMatch(router, targets(n, 'param'))) : '-';
    const miss = measureMatch(router, targets(n, 'miss'));
    const upsert = measureChanges(router, n, withParams, 'upsert');
    const remove = measureChanges(router, n, withParams, 'remove');
    rows.push(
      `| ${n.toLocaleString('en-US')} | ${mode} | ${buildMs.toFixed(1)} | ${fmtMatch(exact)} | ${fmtMatch(prefix)} | ${fmtMatch(host)} | ${param} | ${fmtMatch(miss)} | ${fmtUs(upsert)} | ${fmtUs(remove)} |`,
    );
    process.stderr.write(`done: ${n} ${mode}\n`);
  }
}

console.log(`Node ${process.version}, ${CHANGES} changes per op, ~${MATCH_MS} ms per match row\n`);
console.log('| routes | mode | build all (ms) | exact hit | prefix hit | host hit | param hit | miss | upsert one p50 / p99 (µs) | remove one p50 / p99 (µs) |');
console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(r);
