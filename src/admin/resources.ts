// Generic CRUD for every resource kind (apache/apisix: apisix/admin/resource.lua): id rules,
// timestamps, TTL, PATCH merge and sub-path, reference checks, envelopes.
import type { StoredItem } from '../store/types.ts';
import type { StoreAccess } from './access.ts';
import { checkConf, deleteBlocker, type CheckEnv } from './checks.ts';
import { itemEnvelope, type Envelopes } from './envelopes.ts';
import { AdminError, KEY_NOT_FOUND, badRequest, errorReply, reply, type AdminReply } from './errors.ts';
import type { KindSpec, Method } from './kinds.ts';
import { applyListQuery, numeric } from './paging.ts';
import { deepCopy, isObject, mergePatch, patchSubPath } from './patch.ts';

type Obj = Record<string, unknown>;

export interface ResourceRequest {
  method: Method;
  spec: KindSpec;
  /** The resource id from the URL (secrets: the part after the manager). */
  id: string | undefined;
  /** Consumer username (credentials), manager (secrets). */
  parent: string | undefined;
  /** Path segments after the id: the JSON sub-path of a PATCH. */
  rest: string[];
  /** Decoded JSON body; undefined when the request had none. */
  body: unknown;
  query: URLSearchParams;
}

export interface ResourceEnv extends CheckEnv {
  access: StoreAccess;
  envelopes: Envelopes;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

const now = () => Math.floor(Date.now() / 1000);

export async function handleResource(env: ResourceEnv, r: ResourceRequest): Promise<AdminReply> {
  if (r.spec.unsupported.includes(r.method)) {
    return errorReply(405, `not supported \`${r.method}\` method for ${r.spec.kind}`);
  }
  switch (r.method) {
    case 'GET': return get(env, r);
    case 'PUT': return put(env, r);
    case 'POST': return post(env, r);
    case 'PATCH': return patch(env, r);
    case 'DELETE': return remove(env, r);
  }
}

// --- keys ---

/** Store path of the kind's directory (`routes`, `consumers/jack/credentials`). */
function dirOf(r: ResourceRequest): string {
  const { spec } = r;
  if (spec.parent) return `${spec.parent.res}/${r.parent}/${spec.parent.segment}`;
  return spec.res;
}

/** Store path of one item; secrets are `secrets/<manager>/<id>`. */
function pathOf(r: ResourceRequest, id: string): string {
  if (r.spec.res === 'secrets') return `secrets/${r.parent}/${id}`;
  return `${dirOf(r)}/${id}`;
}

/** The id as the resource's checker sees it (secrets: `manager/id`). */
function fullId(r: ResourceRequest, id: string | undefined): string | undefined {
  if (id === undefined) return undefined;
  return r.spec.res === 'secrets' ? `${r.parent}/${id}` : id;
}

function ttlOf(r: ResourceRequest): { ttl?: number } {
  const ttl = numeric(r.query.get('ttl'));
  return ttl !== undefined && ttl > 0 ? { ttl } : {};
}

/** What a GET may show: SSL private keys never leave the Admin API. */
function visible(spec: KindSpec, value: unknown): unknown {
  if (spec.res !== 'ssls' || !isObject(value)) return value;
  const { key: _key, keys: _keys, ...rest } = value;
  return rest;
}

// --- id and body rules (resource.lua `check_conf`) ---

function forbiddenTimes(conf: Obj): string | undefined {
  const truthy = (v: unknown) => v !== undefined && v !== null && v !== false;
  for (const name of ['create_time', 'update_time']) if (truthy(conf[name])) return `the property is forbidden:  ${name}`;
  for (const part of ['upstream', 'plugins']) {
    const sub = conf[part];
    if (!isObject(sub)) continue;
    for (const name of ['create_time', 'update_time']) if (truthy(sub[name])) return `the property is forbidden:  ${part}.${name}`;
  }
  return undefined;
}

/**
 * APISIX's id rules, then the kind's checker. Returns the resolved id (as a string) or throws
 * a 400. `needId`: PUT/PATCH; POST refuses any id.
 */
async function checkWrite(env: ResourceEnv, r: ResourceRequest, urlId: string | undefined, conf: unknown, needId: boolean, allowTime: boolean): Promise<string | undefined> {
  const { spec } = r;
  if (conf === undefined) throw new AdminError(badRequest('missing configurations'));
  if (!isObject(conf)) throw new AdminError(badRequest(`invalid configuration: wrong type: expected object, got ${Array.isArray(conf) ? 'array' : conf === null ? 'null' : typeof conf}`));
  let id = urlId;
  if (!spec.noId) {
    const bodyId = conf.id;
    const effective = id ?? (bodyId === undefined || bodyId === null ? undefined : bodyId);
    if (needId && (effective === undefined || effective === '')) throw new AdminError(badRequest(`missing ${spec.kind} id`));
    if (!needId && effective !== undefined) throw new AdminError(badRequest(`wrong ${spec.kind} id, do not need it`));
    if (needId && bodyId !== undefined && bodyId !== null && String(bodyId) !== String(effective)) throw new AdminError(badRequest(`wrong ${spec.kind} id`));
    if (effective !== undefined) conf.id = effective;
    id = effective === undefined ? undefined : String(effective);
  }
  if (!allowTime) {
    const err = forbiddenTimes(conf);
    if (err) throw new AdminError(badRequest(err));
  }
  const err = await checkConf(env, spec, id, conf, spec.res === 'credentials' ? r.parent : undefined);
  if (err) throw new AdminError(badRequest(err));
  return id;
}

/** A credential's consumer must exist. */
async function checkParent(env: ResourceEnv, r: ResourceRequest): Promise<void> {
  const { spec } = r;
  if (!spec.parent) return;
  const found = await env.access.get(env.access.key(`${spec.parent.res}/${r.parent}`));
  if (found) return;
  throw new AdminError(errorReply(404, 'consumer not found'));
}

// --- methods ---

async function get(env: ResourceEnv, r: ResourceRequest): Promise<AdminReply> {
  const { access, envelopes } = env;
  if (r.id !== undefined) {
    const item = await access.get(access.key(pathOf(r, r.id)));
    if (!item) return KEY_NOT_FOUND;
    return reply(200, envelopes.one(itemEnvelope(item, visible(r.spec, item.value))));
  }
  const dir = r.spec.res === 'secrets' ? 'secrets' : dirOf(r);
  const items: StoredItem[] = await access.list(dir, true, r.spec.res === 'secrets' ? 2 : 1);
  // APISIX creates an `init_dir` key for every top-level directory, so an empty top-level list is
  // `{"list":[],"total":0}`; a consumer's credentials directory has no such key, and etcd's empty
  // answer becomes 404 `Key not found` (t/admin/credentials.t, list after the consumer is deleted).
  if (r.spec.parent && items.length === 0) return KEY_NOT_FOUND;
  let list = items.map((it) => itemEnvelope(it, visible(r.spec, it.value)));
  if (!envelopes.v3) return reply(200, envelopes.list(access.key(dir), list, list.length));
  const outcome = applyListQuery(list, r.query, r.spec.filterFields, (msg) => env.log('warn', msg));
  if ('status' in outcome) return outcome;
  list = outcome.list;
  return reply(200, envelopes.list(access.key(dir), list, outcome.total));
}

async function put(env: ResourceEnv, r: ResourceRequest): Promise<AdminReply> {
  const { spec } = r;
  if (spec.res === 'secrets' && r.id === undefined) return badRequest('missing secret id');
  const conf = r.body;
  let id = await checkWrite(env, r, fullId(r, r.id), conf, !spec.noId, false);
  const value = conf as Obj;
  if (spec.res === 'consumers') {
    if (typeof value.username !== 'string') return badRequest('invalid configuration: property "username" is required');
    id = value.username;
  } else if (spec.res === 'plugin_metadata') {
    value.id = id;
  } else if (spec.res === 'secrets') {
    id = r.id;
  }
  if (spec.res === 'credentials') await checkParent(env, r);
  const key = env.access.key(pathOf(r, id!));
  const prev = await env.access.get(key);
  if (spec.res !== 'plugin_metadata') {
    const prevCreate = isObject(prev?.value) ? (prev.value as Obj).create_time : undefined;
    value.create_time = typeof prevCreate === 'number' ? prevCreate : now();
    value.update_time = now();
  }
  const stored = await env.access.put(key, value, ttlOf(r));
  return reply(prev ? 200 : 201, env.envelopes.written(stored.key, stored.value ?? value, 'set'));
}

async function post(env: ResourceEnv, r: ResourceRequest): Promise<AdminReply> {
  const conf = r.body;
  await checkWrite(env, r, r.id, conf, false, false);
  const value = conf as Obj;
  const id = await env.access.nextId();
  value.id = id;
  value.create_time = now();
  value.update_time = now();
  const stored = await env.access.put(env.access.key(pathOf(r, id)), value, ttlOf(r));
  return reply(201, env.envelopes.written(stored.key, stored.value ?? value, 'create'));
}

async function patch(env: ResourceEnv, r: ResourceRequest): Promise<AdminReply> {
  const { spec } = r;
  const id = r.id;
  const rest = r.rest;
  if (spec.res === 'secrets' && id === undefined) return badRequest('no secret id');
  if (id === undefined) return badRequest(`missing ${spec.kind} id`);
  const body = r.body;
  if (body === undefined) return badRequest('missing new configuration');
  const subPath = spec.parent ? '' : rest.join('/');
  if (subPath === '' && !isObject(body)) return badRequest('invalid configuration');

  const key = env.access.key(pathOf(r, id));
  const old = await env.access.get(key);
  if (!old) return KEY_NOT_FOUND;
  let node = deepCopy(old.value) as Obj;
  if (!isObject(node)) node = {};
  if (subPath !== '') {
    const out = patchSubPath(node, subPath, deepCopy(body));
    if ('error' in out) return badRequest(out.error);
    if (!isObject(out.value)) return badRequest('invalid configuration');
    node = out.value;
    node.update_time = now();
  } else {
    const patchBody = deepCopy(body) as Obj;
    node = mergePatch(node, patchBody);
    if (patchBody.update_time === undefined || patchBody.update_time === null) node.update_time = now();
  }
  if (node.create_time === undefined) node.create_time = now();
  await checkWrite(env, r, fullId(r, id), node, true, true);
  const stored = await env.access.put(key, node, { ...ttlOf(r), expectModRevision: old.modRevision });
  return reply(200, env.envelopes.written(stored.key, stored.value ?? node, 'compareAndSwap'));
}

async function remove(env: ResourceEnv, r: ResourceRequest): Promise<AdminReply> {
  const { spec } = r;
  const id = r.id;
  if (id === undefined) return badRequest(`missing ${spec.kind} id`);
  if (r.query.get('force') !== 'true') {
    const blocker = await deleteBlocker(env.access, spec.res, id);
    if (blocker) return badRequest(blocker);
  }
  const key = env.access.key(pathOf(r, id));
  if (spec.res === 'consumers') {
    for (const cred of await env.access.list(`consumers/${id}/credentials`, false)) await env.access.delete(cred.key);
  }
  const existed = await env.access.delete(key);
  if (!existed) return KEY_NOT_FOUND;
  return reply(200, env.envelopes.deleted(key));
}
