// A fixed-size hash table in one SharedArrayBuffer that every worker thread maps: rate-limit
// counters, connection counts and breaker state are the same on every worker of a node (APISIX
// keeps them per nginx worker or in a lua shared dict; here it is plain shared memory).
//
// Layout per slot: four Int32 words [lock, hashA, hashB, used] and five Float64 words
// [expiresAt, v0, v1, v2, v3]. A key is identified by two independent 32-bit hashes; it lives in
// one of PROBE slots from hashA. An update takes the slot's spin lock (critical sections are a
// few arithmetic operations), so concurrent workers never lose an increment.
import type { SharedTable } from '../plugins/api.ts';

/** A key's slot as `locate` found it: the slot and the key's hashes, to check it still holds the key. */
export interface SlotRef {
  readonly slot: number;
  readonly a: number;
  readonly b: number;
}

const INT_WORDS = 4;
const FLOAT_WORDS = 5;
const PROBE = 16;
const DEFAULT_SLOTS = 1 << 16;

export class SharedMemoryTable {
  readonly buffer: SharedArrayBuffer;
  readonly #meta: Int32Array;
  readonly #data: Float64Array;
  readonly #slots: number;
  readonly #values = new Float64Array(4);

  constructor(buffer?: SharedArrayBuffer, slots = DEFAULT_SLOTS) {
    this.buffer = buffer ?? new SharedArrayBuffer(slots * (INT_WORDS * 4 + FLOAT_WORDS * 8));
    this.#slots = Math.floor(this.buffer.byteLength / (INT_WORDS * 4 + FLOAT_WORDS * 8));
    this.#meta = new Int32Array(this.buffer, 0, this.#slots * INT_WORDS);
    this.#data = new Float64Array(this.buffer, this.#slots * INT_WORDS * 4, this.#slots * FLOAT_WORDS);
  }

  update<R>(key: string, fn: (values: Float64Array, now: number) => R, ttlMs: number): R {
    const now = Date.now();
    const slot = this.#claimSlot(key, now);
    const data = this.#data;
    const d = slot * FLOAT_WORDS;
    const values = this.#values;
    if (this.#fresh) {
      data[d] = now + (ttlMs > 0 ? ttlMs : 60_000);
      values.fill(0);
    } else {
      for (let i = 0; i < 4; i++) values[i] = data[d + 1 + i];
    }
    try {
      return fn(values, now);
    } finally {
      for (let i = 0; i < 4; i++) data[d + 1 + i] = values[i];
      if (ttlMs > 0) data[d] = now + ttlMs;
      Atomics.store(this.#meta, slot * INT_WORDS, 0);
    }
  }

  /** Whether the slot the last #claimSlot returned was (re)claimed for its key, values not yet valid. */
  #fresh = false;

  /**
   * Locks the slot of `key` and returns it. A slot that held another key, or an expired entry, is
   * claimed for this key (its hashes written, `#fresh` set); the caller resets the values.
   */
  #claimSlot(key: string, now: number): number {
    hashPair(key);
    const a = pair[0];
    const b = pair[1] | 1; // never 0: 0 marks an empty slot
    const slot = this.#lockSlot(a, b, now);
    const meta = this.#meta;
    const m = slot * INT_WORDS;
    this.#fresh = meta[m + 1] !== a || meta[m + 2] !== b || meta[m + 3] === 0 || this.#data[slot * FLOAT_WORDS] <= now;
    if (this.#fresh) {
      meta[m + 1] = a;
      meta[m + 2] = b;
      meta[m + 3] = 1;
    }
    return slot;
  }

  /**
   * The slot that holds `key` now (claimed with `ttlMs` if new), for callers that update the same
   * key many times: `addAt` then skips hashing and probing. The slot may later be taken over by
   * another key (the table was full); `addAt` notices and returns false.
   */
  locate(key: string, ttlMs: number): SlotRef {
    const now = Date.now();
    const slot = this.#claimSlot(key, now);
    const d = slot * FLOAT_WORDS;
    if (this.#fresh) this.#data.fill(0, d + 1, d + FLOAT_WORDS);
    this.#data[d] = now + ttlMs;
    const m = slot * INT_WORDS;
    const ref = { slot, a: this.#meta[m + 1], b: this.#meta[m + 2] };
    Atomics.store(this.#meta, m, 0);
    return ref;
  }

  /** Adds `value` to value `index` of a located slot; false when the slot now belongs to another key. */
  addAt(ref: SlotRef, index: number, value: number): boolean {
    const meta = this.#meta;
    const m = ref.slot * INT_WORDS;
    acquire(meta, m);
    const ours = meta[m + 1] === ref.a && meta[m + 2] === ref.b && meta[m + 3] !== 0;
    if (ours) this.#data[ref.slot * FLOAT_WORDS + 1 + index] += value;
    Atomics.store(meta, m, 0);
    return ours;
  }

  /** Adds to two values of a located slot under one lock (a histogram's count and sum). */
  addTwoAt(ref: SlotRef, i: number, v: number, j: number, w: number): boolean {
    const meta = this.#meta;
    const m = ref.slot * INT_WORDS;
    acquire(meta, m);
    const ours = meta[m + 1] === ref.a && meta[m + 2] === ref.b && meta[m + 3] !== 0;
    if (ours) {
      const d = ref.slot * FLOAT_WORDS + 1;
      this.#data[d + i] += v;
      this.#data[d + j] += w;
    }
    Atomics.store(meta, m, 0);
    return ours;
  }

  /** Sets value `index` to 1 if it was 0; true for the one caller that set it (a first-use flag shared by threads). */
  flagOnceAt(ref: SlotRef, index: number): boolean {
    const meta = this.#meta;
    const m = ref.slot * INT_WORDS;
    acquire(meta, m);
    const d = ref.slot * FLOAT_WORDS + 1 + index;
    const first = meta[m + 1] === ref.a && meta[m + 2] === ref.b && this.#data[d] === 0;
    if (first) this.#data[d] = 1;
    Atomics.store(meta, m, 0);
    return first;
  }

  /** Sets value `index` of a located slot; false when the slot now belongs to another key. */
  setAt(ref: SlotRef, index: number, value: number): boolean {
    const meta = this.#meta;
    const m = ref.slot * INT_WORDS;
    acquire(meta, m);
    const ours = meta[m + 1] === ref.a && meta[m + 2] === ref.b && meta[m + 3] !== 0;
    if (ours) this.#data[ref.slot * FLOAT_WORDS + 1 + index] = value;
    Atomics.store(meta, m, 0);
    return ours;
  }

  /** Its size, and the bytes in slots holding no live entry (prometheus' shared_dict gauges; a scan, for scrapes only). */
  usage(): { capacity: number; free: number } {
    const now = Date.now();
    let free = 0;
    for (let slot = 0; slot < this.#slots; slot++) {
      if (Atomics.load(this.#meta, slot * INT_WORDS + 3) === 0 || this.#data[slot * FLOAT_WORDS] <= now) free++;
    }
    const slotBytes = INT_WORDS * 4 + FLOAT_WORDS * 8;
    return { capacity: this.#slots * slotBytes, free: free * slotBytes };
  }

  /** Finds the key's slot (or the best one to take over) and returns it locked. */
  #lockSlot(a: number, b: number, now: number): number {
    const meta = this.#meta;
    const data = this.#data;
    const start = (a >>> 0) % this.#slots;
    for (;;) {
      let target = -1;
      let oldest = -1;
      let oldestExpiry = Infinity;
      for (let i = 0; i < PROBE; i++) {
        const slot = (start + i) % this.#slots;
        const m = slot * INT_WORDS;
        if (Atomics.load(meta, m + 3) === 0) {
          if (target === -1) target = slot;
          continue;
        }
        if (meta[m + 1] === a && meta[m + 2] === b) {
          target = slot;
          break;
        }
        const expiry = data[slot * FLOAT_WORDS];
        if (expiry <= now && target === -1) target = slot;
        if (expiry < oldestExpiry) {
          oldestExpiry = expiry;
          oldest = slot;
        }
      }
      // Every probed slot holds a live key: the one closest to expiring gives way.
      if (target === -1) target = oldest;
      const m = target * INT_WORDS;
      acquire(meta, m);
      // Another worker may have claimed the slot for a different key between the probe and the lock.
      const used = meta[m + 3] !== 0;
      const ours = meta[m + 1] === a && meta[m + 2] === b;
      if (!used || ours || data[target * FLOAT_WORDS] <= now || target === oldest) return target;
      Atomics.store(meta, m, 0);
    }
  }
}

const pair = new Int32Array(2);

/** How long a lock may stay taken before it is presumed to belong to a worker that died holding it. */
const STALE_LOCK_MS = 200;

/**
 * Takes a slot's spin lock. The holder is inside a few arithmetic operations, so the wait is short;
 * a lock held far longer belonged to a worker that was terminated mid-update, and is taken over
 * rather than blocking every worker on that key forever.
 */
export function acquire(meta: Int32Array, index: number): void {
  let spins = 0;
  let since = 0;
  while (Atomics.compareExchange(meta, index, 0, 1) !== 0) {
    if (++spins % 4096 !== 0) continue;
    const now = Date.now();
    if (since === 0) since = now;
    else if (now - since > STALE_LOCK_MS) {
      Atomics.store(meta, index, 1);
      return;
    }
  }
}

/** Two independent 32-bit hashes of `text` (FNV-1a with two seeds, then a murmur finaliser) in one pass, into `pair`. */
export function hashPair(text: string, out: Int32Array = pair): void {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x01000193);
  }
  out[0] = finalise(h1);
  out[1] = finalise(h2);
}

function finalise(h: number): number {
  h ^= h >>> 13;
  h = Math.imul(h, 0x5bd1e995);
  return (h ^ (h >>> 15)) | 0;
}

let shared: SharedMemoryTable | undefined;

/** Makes this thread use the node's shared memory (a worker calls it with the buffer from the main thread). */
export function attachSharedMemory(buffer: SharedArrayBuffer): void {
  shared = new SharedMemoryTable(buffer);
}

/** The node's shared table, created on first use when no buffer was attached (the main thread, tests). */
export function sharedMemory(): SharedMemoryTable {
  return (shared ??= new SharedMemoryTable());
}

/** A named view: keys of different tables never collide. */
export function namedTable(name: string): SharedTable {
  const prefix = `${name}\u0000`;
  return {
    update: (key, fn, ttlMs) => sharedMemory().update(prefix + key, fn, ttlMs),
  };
}
