// Upstream node health, shared by the main thread and every worker: one SharedArrayBuffer of target
// slots, allocated once by the main thread and mapped by each worker. The main thread's active
// checkers add and remove targets and report their probes; workers read the states on their pick
// path and report what live traffic sees (passive checks). Every worker sees a change at once, so
// there is one state per node for the whole gateway (APISIX keeps it per nginx worker in places,
// a known source of inconsistent answers).
//
// A global generation counter is bumped whenever a target is added or removed or a target crosses
// between up (healthy, mostly_healthy) and down (unhealthy, mostly_unhealthy). Readers cache what
// they derived from the table and recompute only when the generation moved.
//
// The counting follows lua-resty-healthcheck, which APISIX uses: four counters per target (success,
// http, tcp, timeout failures); a failure clears the success counter, a success clears the failure
// counters; a report in the direction the target already fully is (a success on a healthy target, a
// failure on an unhealthy one) is not counted; a counter reaching its limit moves the target to that
// side; short of the limit, a first failure makes a healthy target mostly_healthy and a first success
// makes an unhealthy target mostly_unhealthy. A limit of 0 turns that kind of report off. The counter
// that reached the limit keeps its value after the change, as APISIX's Control API shows it.
//
// Slot layout (Int32 words): [lock, hashA, hashB, used, state, success, http, tcp, timeout, spare].
// `used` is 0 for a never-used slot, 1 for a live target, 2 for a removed one (a tombstone the
// lookup skips). Only the main thread claims and frees slots; anyone updates counters under the
// slot's spin lock (a few arithmetic operations).
import { acquire, hashPair } from './table.ts';

export const HEALTHY = 1;
export const UNHEALTHY = 2;
export const MOSTLY_HEALTHY = 3;
export const MOSTLY_UNHEALTHY = 4;

/** Counter indices, as reported by checks. */
export const SUCCESS = 0;
export const HTTP_FAILURE = 1;
export const TCP_FAILURE = 2;
export const TIMEOUT_FAILURE = 3;

export const STATE_NAMES = ['', 'healthy', 'unhealthy', 'mostly_healthy', 'mostly_unhealthy'] as const;
export type StateName = 'healthy' | 'unhealthy' | 'mostly_healthy' | 'mostly_unhealthy';

const HEADER_WORDS = 8;
const SLOT_WORDS = 10;
const LOCK = 0;
const HASH_A = 1;
const HASH_B = 2;
const USED = 3;
const STATE = 4;
const COUNTERS = 5;
const PROBE = 64;
/** Counters are 8-bit in lua-resty-healthcheck; limits are at most 254. */
const COUNTER_MAX = 255;
const DEFAULT_SLOTS = 16_384;

/** A target's state and counters, as read for the Control API. */
export interface TargetStatus {
  state: StateName;
  success: number;
  http_failure: number;
  tcp_failure: number;
  timeout_failure: number;
}

/** A slot found for a key, with the key's hashes (to check on later updates that it is still that key's). */
export interface SlotRef {
  slot: number;
  a: number;
  b: number;
}

const scratch = new Int32Array(2);

function hashes(key: string): [number, number] {
  hashPair(key, scratch);
  return [scratch[0], scratch[1] | 1];
}

export function isUp(state: number): boolean {
  return state === HEALTHY || state === MOSTLY_HEALTHY;
}

export class HealthTable {
  readonly buffer: SharedArrayBuffer;
  readonly #words: Int32Array;
  readonly #slots: number;

  constructor(buffer?: SharedArrayBuffer, slots = DEFAULT_SLOTS) {
    this.buffer = buffer ?? new SharedArrayBuffer((HEADER_WORDS + slots * SLOT_WORDS) * 4);
    this.#words = new Int32Array(this.buffer);
    this.#slots = Math.floor((this.#words.length - HEADER_WORDS) / SLOT_WORDS);
  }

  /** Moves whenever a target is added or removed or changes between up and down. */
  get generation(): number {
    return Atomics.load(this.#words, 0);
  }

  #base(slot: number): number {
    return HEADER_WORDS + slot * SLOT_WORDS;
  }

  /** The live slot of `key`, or undefined. Any thread. */
  find(key: string): SlotRef | undefined {
    const [a, b] = hashes(key);
    const w = this.#words;
    const start = (a >>> 0) % this.#slots;
    for (let i = 0; i < PROBE; i++) {
      const slot = (start + i) % this.#slots;
      const base = this.#base(slot);
      const used = Atomics.load(w, base + USED);
      if (used === 0) return undefined;
      if (used === 1 && w[base + HASH_A] === a && w[base + HASH_B] === b) return { slot, a, b };
    }
    return undefined;
  }

  /** True while `ref` still names a live slot of the same key. */
  holds(ref: SlotRef): boolean {
    const base = this.#base(ref.slot);
    const w = this.#words;
    return Atomics.load(w, base + USED) === 1 && w[base + HASH_A] === ref.a && w[base + HASH_B] === ref.b;
  }

  /** The target's state (HEALTHY ... MOSTLY_UNHEALTHY), or 0 when the slot no longer holds it. */
  state(ref: SlotRef): number {
    if (!this.holds(ref)) return 0;
    return Atomics.load(this.#words, this.#base(ref.slot) + STATE);
  }

  /**
   * Adds a target (main thread only). An existing target keeps its state and counters; a new one
   * starts healthy with zero counters, as lua-resty-healthcheck's `add_target`. undefined when the
   * table has no room near the key's hash.
   */
  add(key: string): SlotRef | undefined {
    const existing = this.find(key);
    if (existing) return existing;
    const [a, b] = hashes(key);
    const w = this.#words;
    const start = (a >>> 0) % this.#slots;
    for (let i = 0; i < PROBE; i++) {
      const slot = (start + i) % this.#slots;
      const base = this.#base(slot);
      if (Atomics.load(w, base + USED) === 1) continue;
      acquire(w, base + LOCK);
      w[base + HASH_A] = a;
      w[base + HASH_B] = b;
      w[base + STATE] = HEALTHY;
      for (let c = 0; c < 4; c++) w[base + COUNTERS + c] = 0;
      Atomics.store(w, base + USED, 1);
      Atomics.store(w, base + LOCK, 0);
      Atomics.add(w, 0, 1);
      return { slot, a, b };
    }
    return undefined;
  }

  /** Removes a target (main thread only); its state is gone. */
  remove(ref: SlotRef): void {
    const base = this.#base(ref.slot);
    const w = this.#words;
    acquire(w, base + LOCK);
    const ours = w[base + USED] === 1 && w[base + HASH_A] === ref.a && w[base + HASH_B] === ref.b;
    if (ours) Atomics.store(w, base + USED, 2);
    Atomics.store(w, base + LOCK, 0);
    if (ours) Atomics.add(w, 0, 1);
  }

  /**
   * Counts one check result for the target. `counter` is SUCCESS or one of the failure kinds, `limit`
   * the number of such results that moves the target (0: not counted). Returns the new state when the
   * target changed state, else 0.
   */
  report(ref: SlotRef, counter: number, limit: number): number {
    if (limit <= 0) return 0;
    const w = this.#words;
    const base = this.#base(ref.slot);
    const towards = counter === SUCCESS ? HEALTHY : UNHEALTHY;
    // The common case, a success on a healthy target, takes no lock.
    if (Atomics.load(w, base + STATE) === towards && this.holds(ref)) return 0;
    acquire(w, base + LOCK);
    let changed = 0;
    try {
      if (w[base + USED] !== 1 || w[base + HASH_A] !== ref.a || w[base + HASH_B] !== ref.b) return 0;
      const current = w[base + STATE];
      if (current === towards) return 0;
      const at = base + COUNTERS + counter;
      const count = Math.min(COUNTER_MAX, w[at] + 1);
      w[at] = count;
      let anyFailure = false;
      if (counter === SUCCESS) {
        for (let c = 1; c < 4; c++) w[base + COUNTERS + c] = 0;
      } else {
        w[base + COUNTERS + SUCCESS] = 0;
        anyFailure = true;
      }
      let next = 0;
      if (count >= limit) next = towards;
      else if (current === HEALTHY && anyFailure) next = MOSTLY_HEALTHY;
      else if (current === UNHEALTHY && counter === SUCCESS) next = MOSTLY_UNHEALTHY;
      if (next !== 0 && next !== current) {
        Atomics.store(w, base + STATE, next);
        changed = next;
        if (isUp(next) !== isUp(current)) Atomics.add(w, 0, 1);
      }
    } finally {
      Atomics.store(w, base + LOCK, 0);
    }
    return changed;
  }

  /** State and counters of a target, or undefined when the slot no longer holds it. */
  status(ref: SlotRef): TargetStatus | undefined {
    if (!this.holds(ref)) return undefined;
    const w = this.#words;
    const base = this.#base(ref.slot);
    return {
      state: STATE_NAMES[w[base + STATE]] as StateName,
      success: w[base + COUNTERS + SUCCESS],
      http_failure: w[base + COUNTERS + HTTP_FAILURE],
      tcp_failure: w[base + COUNTERS + TCP_FAILURE],
      timeout_failure: w[base + COUNTERS + TIMEOUT_FAILURE],
    };
  }
}

let shared: HealthTable | undefined;

/** Makes this thread use the node's health table (a worker calls it with the buffer from the main thread). */
export function attachHealthMemory(buffer: SharedArrayBuffer): void {
  shared = new HealthTable(buffer);
}

/** The node's health table, created on first use when no buffer was attached (the main thread, tests). */
export function healthMemory(): HealthTable {
  return (shared ??= new HealthTable());
}
