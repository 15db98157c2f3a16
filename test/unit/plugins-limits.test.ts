// The limit plugins' pure parts: `$var` templates, request keys, conf fingerprints, the policy
// schemas, and each local algorithm run on the node's shared-memory table.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import type { CompileEnv, PluginContext, PluginDefinition } from '../../src/plugins/api.ts';
import { compileRequestKey, confFingerprint, resourceKey, stableJson } from '../../src/plugins/lib/limit.ts';
import { SharedMemoryTable } from '../../src/shm/table.ts';
import apiBreaker from '../../src/plugins/builtin/api-breaker/index.ts';
import limitConn from '../../src/plugins/builtin/limit-conn/index.ts';
import limitCount from '../../src/plugins/builtin/limit-count/index.ts';
import limitReq from '../../src/plugins/builtin/limit-req/index.ts';

/** Just enough of a request for the limit plugins: variables, response headers and per-request state. */
function request(values: Record<string, string> = {}, remoteAddr = '10.0.0.1') {
  const headers = new Map<string, string[]>();
  const response = {
    status: 0,
    fromGateway: false,
    headers: {
      get: (n: string) => headers.get(n.toLowerCase())?.join(', '),
      set: (n: string, v: unknown) => (v === undefined ? headers.delete(n.toLowerCase()) : headers.set(n.toLowerCase(), [String(v)])),
      add: (n: string, v: string) => headers.set(n.toLowerCase(), [...(headers.get(n.toLowerCase()) ?? []), v]),
      has: (n: string) => headers.has(n.toLowerCase()),
      remove: (n: string) => headers.delete(n.toLowerCase()),
      entries: () => [...headers].map(([k, v]) => [k, v.join(', ')]),
    },
  };
  const ctx = {
    remoteAddr,
    host: 'example.com',
    uri: '/api',
    startTime: performance.now(),
    state: new Map<string, unknown>(),
    response,
    get: (name: string) => (name === 'remote_addr' ? remoteAddr : values[name]),
    metadata: () => undefined,
  };
  return ctx as unknown as PluginContext & { response: typeof response };
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });

/** Validates like the runtime (defaults filled in) and compiles an instance on a fresh shared table. */
function instance<C, S>(plugin: PluginDefinition<C, S>, raw: object, table = new SharedMemoryTable(undefined, 1024)) {
  const conf = structuredClone(raw) as C;
  const validate = ajv.compile(plugin.schema);
  assert.ok(validate(conf), JSON.stringify(validate.errors));
  assert.equal(plugin.check?.(conf, 'route'), undefined);
  const env: CompileEnv = {
    log: () => {},
    sharedTable: (name) => ({ update: (key, fn, ttl) => table.update(`${name}\u0000${key}`, fn, ttl) }),
    compileUpstream: () => {
      throw new Error('not here');
    },
    owner: { kind: 'route', id: '1' },
    attributes: undefined,
  };
  const state = plugin.compile!(conf, env);
  return { conf, state, table };
}

describe('request keys', () => {
  it('var: the variable, or the client address when it is absent', () => {
    const key = compileRequestKey('var', 'http_x_user');
    assert.equal(key(request({ http_x_user: 'jack' })), 'jack');
    assert.equal(key(request({})), '10.0.0.1');
  });

  it('var_combination: the rendered template, or the client address when nothing resolved', () => {
    const key = compileRequestKey('var_combination', '$http_a $http_b');
    assert.equal(key(request({ http_a: 'x', http_b: 'y' })), 'x y');
    assert.equal(key(request({ http_b: 'y' })), ' y');
    assert.equal(key(request({ http_a: '' })), ' ');
    assert.equal(key(request({})), '10.0.0.1');
    assert.equal(compileRequestKey('var_combination', 'no variables')(request({})), '10.0.0.1');
  });

  it('constant: the key itself', () => {
    assert.equal(compileRequestKey('constant', 'everyone')(request({})), 'everyone');
  });
});

describe('instance scope', () => {
  it('fingerprints the conf whatever its key order, without _meta', () => {
    assert.equal(confFingerprint({ a: 1, b: [1, { c: 2, d: 3 }] }), confFingerprint({ b: [1, { d: 3, c: 2 }], a: 1, _meta: { disable: false } }));
    assert.notEqual(confFingerprint({ a: 1 }), confFingerprint({ a: 2 }));
    assert.equal(stableJson({ b: 1, a: [true, null] }), '{"a":[true,null],"b":1}');
  });

  it('names resources as APISIX keys them', () => {
    assert.equal(resourceKey({ kind: 'route', id: '1' }), '/apisix/routes/1');
    assert.equal(resourceKey({ kind: 'global_rules', id: 'g' }), '/apisix/global_rules/g');
  });
});

describe('policy schemas', () => {
  const validate = ajv.compile(limitCount.schema);

  it('local needs no redis attributes and gets none filled in', () => {
    const conf: Record<string, unknown> = { count: 1, time_window: 1 };
    assert.ok(validate(conf));
    assert.equal(conf.policy, 'local');
    assert.equal(conf.redis_port, undefined);
  });

  it('redis requires redis_host and fills its defaults', () => {
    assert.equal(validate({ count: 1, time_window: 1, policy: 'redis' }), false);
    const conf: Record<string, unknown> = { count: 1, time_window: 1, policy: 'redis', redis_host: '127.0.0.1' };
    assert.ok(validate(conf));
    assert.equal(conf.redis_port, 6379);
    assert.equal(conf.redis_timeout, 1000);
  });

  it('redis-cluster requires the nodes and a name', () => {
    assert.equal(validate({ count: 1, time_window: 1, policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:7000'] }), false);
    assert.ok(validate({ count: 1, time_window: 1, policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:7000'], redis_cluster_name: 'c' }));
  });
});

describe('limit-count (local)', () => {
  it('lets `count` requests through, then rejects with the quota headers', () => {
    const { conf, state } = instance(limitCount, { count: 2, time_window: 60 });
    const statuses: Array<number | undefined> = [];
    const remaining: Array<string | undefined> = [];
    for (let i = 0; i < 3; i++) {
      const ctx = request();
      const out = limitCount.phases.access!(ctx, conf, state) as { status: number } | undefined;
      statuses.push(out?.status);
      remaining.push(ctx.response.headers.get('X-RateLimit-Remaining'));
      assert.equal(ctx.response.headers.get('X-RateLimit-Limit'), '2');
      assert.equal(ctx.response.headers.get('X-RateLimit-Reset'), '60');
    }
    assert.deepEqual(statuses, [undefined, undefined, 503]);
    assert.deepEqual(remaining, ['1', '0', '0']);
  });

  it('counts each key apart and answers rejected_msg as error_msg', () => {
    const { conf, state } = instance(limitCount, { count: 1, time_window: 60, key: 'http_x_user', rejected_code: 429, rejected_msg: 'slow down' });
    assert.equal(limitCount.phases.access!(request({ http_x_user: 'a' }), conf, state), undefined);
    assert.equal(limitCount.phases.access!(request({ http_x_user: 'b' }), conf, state), undefined);
    assert.deepEqual(limitCount.phases.access!(request({ http_x_user: 'a' }), conf, state), { status: 429, body: { error_msg: 'slow down' } });
  });

  it('refuses a group whose conf differs from the one already seen', () => {
    const group = `g-${process.pid}-${Date.now()}`;
    const first = { count: 1, time_window: 60, group, key: 'remote_addr', key_type: 'var', rejected_code: 503, policy: 'local', allow_degradation: false, show_limit_quota_header: true };
    assert.equal(limitCount.check!(first as never, 'route'), undefined);
    assert.equal(limitCount.check!(structuredClone(first) as never, 'route'), undefined);
    assert.equal(limitCount.check!({ ...first, count: 2 } as never, 'route'), 'group conf mismatched');
  });
});

describe('limit-req (local)', () => {
  it('delays a request within the burst and rejects past it', async () => {
    const { conf, state } = instance(limitReq, { rate: 1, burst: 1, key: 'remote_addr' });
    assert.equal(limitReq.phases.access!(request(), conf, state), undefined);
    const delayed = limitReq.phases.access!(request(), conf, state);
    assert.ok(delayed instanceof Promise, 'the second request waits for its turn');
    assert.deepEqual(limitReq.phases.access!(request(), conf, state), { status: 503 });
    await delayed;
  });

  it('lets the burst through at once with nodelay', () => {
    const { conf, state } = instance(limitReq, { rate: 1, burst: 1, key: 'remote_addr', nodelay: true, rejected_msg: 'no' });
    assert.equal(limitReq.phases.access!(request(), conf, state), undefined);
    assert.equal(limitReq.phases.access!(request(), conf, state), undefined);
    assert.deepEqual(limitReq.phases.access!(request(), conf, state), { status: 503, body: { error_msg: 'no' } });
  });
});

describe('limit-conn (local)', () => {
  it('admits conn, delays the burst, rejects past conn + burst, and frees places in log', async () => {
    const { conf, state } = instance(limitConn, { conn: 1, burst: 1, default_conn_delay: 0.01, key: 'remote_addr', only_use_default_delay: true });
    const first = request();
    assert.equal(limitConn.phases.access!(first, conf, state), undefined);
    const second = request();
    const wait = limitConn.phases.access!(second, conf, state);
    assert.ok(wait instanceof Promise, 'the burst request is delayed');
    await wait;
    assert.deepEqual(limitConn.phases.access!(request(), conf, state), { status: 503 });
    limitConn.phases.log!(first, conf, state);
    limitConn.phases.log!(first, conf, state); // a second log call gives nothing back twice
    const third = request();
    assert.ok(limitConn.phases.access!(third, conf, state) instanceof Promise, 'one place was freed, the burst one is taken again');
    limitConn.phases.log!(second, conf, state);
    limitConn.phases.log!(third, conf, state);
    assert.equal(limitConn.phases.access!(request(), conf, state), undefined);
  });
});

describe('api-breaker', () => {
  function answered(ctx: ReturnType<typeof request>, status: number) {
    ctx.response.status = status;
    return ctx;
  }

  it('opens after `failures` unhealthy answers and closes after `successes` healthy ones', () => {
    const { conf, state } = instance(apiBreaker, {
      break_response_code: 502,
      break_response_body: 'broken',
      break_response_headers: [{ key: 'X-Client', value: '$remote_addr' }],
      unhealthy: { http_statuses: [500], failures: 2 },
      healthy: { http_statuses: [200], successes: 1 },
    });
    assert.equal(apiBreaker.phases.access!(request(), conf, state), undefined);
    apiBreaker.phases.log!(answered(request(), 500), conf, state);
    assert.equal(apiBreaker.phases.access!(request(), conf, state), undefined);
    apiBreaker.phases.log!(answered(request(), 500), conf, state);
    const ctx = request();
    assert.deepEqual(apiBreaker.phases.access!(ctx, conf, state), { status: 502, body: 'broken' });
    assert.equal(ctx.response.headers.get('X-Client'), '10.0.0.1');
    // another path of the same host is its own API
    const other = request();
    (other as { uri: string }).uri = '/other';
    assert.equal(apiBreaker.phases.access!(other, conf, state), undefined);
    // one healthy answer (let through by another route of the API) closes it
    apiBreaker.phases.log!(answered(request(), 200), conf, state);
    assert.equal(apiBreaker.phases.access!(request(), conf, state), undefined);
  });

  it('answers the bare code without a body', () => {
    const { conf, state } = instance(apiBreaker, { break_response_code: 599, unhealthy: { failures: 1 } });
    apiBreaker.phases.log!(answered(request(), 500), conf, state);
    assert.deepEqual(apiBreaker.phases.access!(request(), conf, state), { status: 599 });
  });
});
