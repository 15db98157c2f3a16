// request-id: gives every request an id in a request header (keeping one the client sent) and,
// by default, echoes it in the response.
// Contract: apache/apisix apisix/plugins/request-id.lua (3.x, with the `ksuid` algorithm).
import { randomFillSync, randomUUID } from 'node:crypto';
import { definePlugin } from '../../api.ts';

const DEFAULT_CHAR_SET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIGKLMNOPQRSTUVWXYZ0123456789';

const schema = {
  type: 'object',
  properties: {
    header_name: { type: 'string', default: 'X-Request-Id' },
    include_in_response: { type: 'boolean', default: true },
    algorithm: { type: 'string', enum: ['uuid', 'nanoid', 'range_id', 'ksuid'], default: 'uuid' },
    range_id: {
      type: 'object',
      properties: {
        length: { type: 'integer', minimum: 6, default: 16 },
        // At least 6 characters, so ids do not repeat too easily.
        char_set: { type: 'string', minLength: 6, default: DEFAULT_CHAR_SET },
      },
      default: { length: 16, char_set: DEFAULT_CHAR_SET },
    },
  },
};

interface RequestIdConf {
  header_name: string;
  include_in_response: boolean;
  algorithm: 'uuid' | 'nanoid' | 'range_id' | 'ksuid';
  range_id: { length: number; char_set: string };
}

interface RequestIdState {
  headerName: string;
  lowerName: string;
  /** Where the id waits for header_filter (APISIX keeps it in `ctx["request-id-<header>"]`). */
  stateKey: string;
  includeInResponse: boolean;
  generate: () => string;
}

// Random bytes are drawn in blocks: one crypto call serves many ids.
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

function randomBytes(n: number): Buffer {
  if (poolOffset + n > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const out = pool.subarray(poolOffset, poolOffset + n);
  poolOffset += n;
  return out;
}

// nanoid's URL-safe alphabet (64 symbols, so a random byte masked to 6 bits picks one uniformly).
const NANOID_ALPHABET = 'useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict';
const NANOID_LENGTH = 21;

/** A 21-character nanoid from a cryptographic source. */
export function nanoid(): string {
  const bytes = randomBytes(NANOID_LENGTH);
  let id = '';
  for (let i = 0; i < NANOID_LENGTH; i++) id += NANOID_ALPHABET[bytes[i] & 63];
  return id;
}

/** `length` characters drawn from `charSet` (APISIX draws them with math.random too). */
export function rangeId(length: number, charSet: string): string {
  let id = '';
  for (let i = 0; i < length; i++) id += charSet[Math.floor(Math.random() * charSet.length)];
  return id;
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KSUID_EPOCH = 1_400_000_000;
const KSUID_LENGTH = 27;

/** A KSUID: 4 bytes of seconds since 2014-05-13 and 16 random bytes, base62 in 27 characters. */
export function ksuid(nowSeconds = Math.floor(Date.now() / 1000)): string {
  let value = BigInt((nowSeconds - KSUID_EPOCH) >>> 0);
  for (const b of randomBytes(16)) value = (value << 8n) | BigInt(b);
  let id = '';
  while (value > 0n) {
    id = BASE62[Number(value % 62n)] + id;
    value /= 62n;
  }
  return id.padStart(KSUID_LENGTH, '0');
}

function generatorFor(conf: RequestIdConf): () => string {
  switch (conf.algorithm) {
    case 'nanoid':
      return nanoid;
    case 'range_id': {
      const { length, char_set: charSet } = conf.range_id;
      return () => rangeId(length, charSet);
    }
    case 'ksuid':
      return () => ksuid();
    default:
      return randomUUID;
  }
}

export default definePlugin<RequestIdConf, RequestIdState>({
  name: 'request-id',
  version: 0.1,
  priority: 12015,
  schema,

  compile(conf) {
    return {
      headerName: conf.header_name,
      lowerName: conf.header_name.toLowerCase(),
      stateKey: `request-id-${conf.header_name}`,
      includeInResponse: conf.include_in_response,
      generate: generatorFor(conf),
    };
  },

  phases: {
    rewrite(ctx, _conf, state) {
      let id = ctx.header(state.lowerName);
      // A client-sent id is kept; an empty one counts as none.
      if (id === undefined || id === '') {
        id = state.generate();
        ctx.setHeader(state.headerName, id);
      }
      if (state.includeInResponse) ctx.state.set(state.stateKey, id);
      return undefined;
    },

    header_filter(ctx, _conf, state) {
      if (!state.includeInResponse) return;
      // The upstream's own id, if it sent one, wins.
      if (ctx.response.headers.get(state.headerName)) return;
      const id = ctx.state.get(state.stateKey) as string | undefined;
      if (id !== undefined) ctx.response.headers.set(state.headerName, id);
    },
  },
});
