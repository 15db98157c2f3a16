// Metrics that every worker writes into shared memory and the main thread reads for the
// Prometheus exposition. Values live in a SharedMemoryTable of their own (a counter adds under the
// slot's lock, so no increment is lost between workers); each series is described once, by the
// first worker that meets it, in an append-only arena in the same kind of memory. A scrape reads
// both: it never asks the workers, so the counts of a worker that died are still there.
import type { Counter, Gauge, Histogram, MetricsRegistry } from '../plugins/api.ts';
import { SharedMemoryTable, type SlotRef } from '../shm/table.ts';
import { collectFamilies, renderExposition } from './metrics-exporter.ts';

/** Series values never expire: counters live as long as the node. */
const FOREVER_MS = 100 * 365 * 24 * 3600 * 1000;
/** Value slots: every counter or gauge series takes one, a histogram series one plus one per four buckets. */
const VALUE_SLOTS = 1 << 17;
/** Bytes for series descriptions (a few hundred bytes each). */
const ARENA_BYTES = 16 * 1024 * 1024;

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** What the arena records for one series. */
export interface SeriesDescription {
  name: string;
  help: string;
  type: MetricType;
  labelNames: string[];
  labelValues: string[];
  buckets?: number[];
}

export interface MetricsMemory {
  values: SharedArrayBuffer;
  arena: SharedArrayBuffer;
}

/**
 * The arena: Int32 [lock, used bytes, dropped series] then records of [u32 length, JSON bytes].
 * Appends take the lock; readers only read up to `used`, which is published after the bytes.
 */
class Arena {
  readonly #header: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  static readonly HEADER = 16;

  constructor(buffer: SharedArrayBuffer) {
    this.#header = new Int32Array(buffer, 0, 4);
    this.#bytes = new Uint8Array(buffer);
    this.#view = new DataView(buffer);
  }

  append(record: SeriesDescription): boolean {
    const bytes = Buffer.from(JSON.stringify(record));
    const header = this.#header;
    while (Atomics.compareExchange(header, 0, 0, 1) !== 0);
    try {
      const used = Arena.HEADER + header[1];
      if (used + 4 + bytes.length > this.#bytes.length) {
        Atomics.add(header, 2, 1);
        return false;
      }
      this.#view.setUint32(used, bytes.length);
      this.#bytes.set(bytes, used + 4);
      Atomics.store(header, 1, header[1] + 4 + bytes.length);
      return true;
    } finally {
      Atomics.store(header, 0, 0);
    }
  }

  /** Records from byte `from` (of the record area) on, and where the next read starts. */
  read(from: number): { records: SeriesDescription[]; next: number } {
    const end = Atomics.load(this.#header, 1);
    const records: SeriesDescription[] = [];
    let at = from;
    while (at < end) {
      const length = this.#view.getUint32(Arena.HEADER + at);
      const start = Arena.HEADER + at + 4;
      records.push(JSON.parse(Buffer.from(this.#bytes.subarray(start, start + length)).toString('utf8')) as SeriesDescription);
      at += 4 + length;
    }
    return { records, next: at };
  }

  get dropped(): number {
    return Atomics.load(this.#header, 2);
  }

  get capacity(): number {
    return this.#bytes.length - Arena.HEADER;
  }

  get used(): number {
    return Atomics.load(this.#header, 1);
  }
}

/** The key of a series' values: metric name and label values, separated so no two series collide. */
function seriesKey(name: string, labelValues: readonly string[]): string {
  return labelValues.length === 0 ? name : `${name}\u0000${labelValues.join('\u0000')}`;
}

/** A series this thread has met: where its values live, and its histogram bucket slots once used. */
interface SeriesSlots {
  key: string;
  ref: SlotRef;
  buckets: Array<SlotRef | undefined> | undefined;
}

export class MetricsStore implements MetricsRegistry {
  readonly memory: MetricsMemory;
  readonly #values: SharedMemoryTable;
  readonly #arena: Arena;
  /** Series this thread has met, by key: their slots are located once, then updated without hashing. */
  readonly #known = new Map<string, SeriesSlots>();
  /** Main thread: the series read from the arena so far. */
  readonly #series: SeriesDescription[] = [];
  #arenaRead = 0;

  constructor(memory?: MetricsMemory) {
    this.memory = memory ?? {
      values: new SharedMemoryTable(undefined, VALUE_SLOTS).buffer,
      arena: new SharedArrayBuffer(Arena.HEADER + ARENA_BYTES),
    };
    this.#values = new SharedMemoryTable(this.memory.values);
    this.#arena = new Arena(this.memory.arena);
  }

  async exposition(prefix: string): Promise<string> {
    return renderExposition(await collectFamilies(this, prefix, {}));
  }

  counter(name: string, help: string, labelNames: readonly string[]): Counter {
    const add = (s: SeriesSlots, value: number) => {
      if (!this.#values.addAt(s.ref, 0, value)) this.#values.addAt(this.#relocated(s).ref, 0, value);
    };
    const series = (labelValues: readonly string[]) => this.#seriesSlots(name, help, 'counter', labelNames, labelValues);
    return {
      inc: (value, labelValues = []) => add(series(labelValues), value),
      labels: (labelValues) => {
        const s = series(labelValues);
        return { inc: (value) => add(s, value) };
      },
    };
  }

  gauge(name: string, help: string, labelNames: readonly string[]): Gauge {
    const series = (labelValues: readonly string[]) => this.#seriesSlots(name, help, 'gauge', labelNames, labelValues);
    const set = (s: SeriesSlots, value: number) => {
      if (!this.#values.setAt(s.ref, 0, value)) this.#values.setAt(this.#relocated(s).ref, 0, value);
    };
    const add = (s: SeriesSlots, value: number) => {
      if (!this.#values.addAt(s.ref, 0, value)) this.#values.addAt(this.#relocated(s).ref, 0, value);
    };
    return {
      set: (value, labelValues = []) => set(series(labelValues), value),
      inc: (value, labelValues = []) => add(series(labelValues), value),
      labels: (labelValues) => {
        const s = series(labelValues);
        return { set: (value) => set(s, value), inc: (value) => add(s, value) };
      },
    };
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    const bounds = [...buckets].sort((a, b) => a - b);
    const series = (labelValues: readonly string[]) => this.#seriesSlots(name, help, 'histogram', labelNames, labelValues, bounds);
    const observe = (s: SeriesSlots, value: number) => {
      // count and sum in the series' own slot, bucket counts four to a slot.
      if (!this.#values.addTwoAt(s.ref, 0, 1, 1, value)) this.#values.addTwoAt(this.#relocated(s).ref, 0, 1, 1, value);
      let bucket = 0;
      while (bucket < bounds.length && value > bounds[bucket]) bucket++;
      const group = bucket >> 2;
      const slots = (s.buckets ??= []);
      let ref = slots[group];
      if (!ref || !this.#values.addAt(ref, bucket & 3, 1)) {
        ref = slots[group] = this.#values.locate(`${s.key}\u0001${group}`, FOREVER_MS);
        this.#values.addAt(ref, bucket & 3, 1);
      }
    };
    return {
      observe: (value, labelValues = []) => observe(series(labelValues), value),
      labels: (labelValues) => {
        const s = series(labelValues);
        return { observe: (value) => observe(s, value) };
      },
    };
  }

  /** The series' slots, describing it in the arena the first time any thread meets it. */
  #seriesSlots(name: string, help: string, type: MetricType, labelNames: readonly string[], labelValues: readonly string[], buckets?: number[]): SeriesSlots {
    const key = seriesKey(name, labelValues);
    const known = this.#known.get(key);
    if (known) return known;
    const slots: SeriesSlots = { key, ref: this.#values.locate(key, FOREVER_MS), buckets: undefined };
    // values[3] of the series slot marks "described": only the first thread to set it appends.
    if (this.#values.flagOnceAt(slots.ref, 3)) {
      this.#arena.append({ name, help, type, labelNames: [...labelNames], labelValues: [...labelValues], ...(buckets ? { buckets } : {}) });
    }
    this.#known.set(key, slots);
    return slots;
  }

  /** The series' slot was taken over (the value table filled up): find or claim it again. */
  #relocated(s: SeriesSlots): SeriesSlots {
    s.ref = this.#values.locate(s.key, FOREVER_MS);
    s.buckets = undefined;
    return s;
  }

  /** Every series described so far, with its current values (main thread, at scrape time). */
  snapshot(): Array<{ series: SeriesDescription; value: number; sum: number; buckets: number[] }> {
    const { records, next } = this.#arena.read(this.#arenaRead);
    this.#series.push(...records);
    this.#arenaRead = next;
    return this.#series.map((series) => {
      const key = seriesKey(series.name, series.labelValues);
      const [value, sum] = this.#values.update(key, (v) => [v[0], v[1]], 0);
      const buckets: number[] = [];
      if (series.buckets) {
        for (let group = 0; group <= series.buckets.length >> 2; group++) {
          const counts = this.#values.update(`${key}\u0001${group}`, (v) => [v[0], v[1], v[2], v[3]], 0);
          buckets.push(...counts);
        }
        buckets.length = series.buckets.length + 1;
      }
      return { series, value, sum, buckets };
    });
  }

  /** Capacity and use of the series descriptions' memory, for `shared_dict`-style gauges. */
  usage(): Array<{ name: string; capacity: number; free: number }> {
    return [{ name: 'metrics-series', capacity: this.#arena.capacity, free: this.#arena.capacity - this.#arena.used }];
  }

  /** Series refused because the arena was full. */
  get droppedSeries(): number {
    return this.#arena.dropped;
  }
}

let store: MetricsStore | undefined;

/** Makes this thread write into the node's metrics memory (a worker gets it from the main thread). */
export function attachMetricsMemory(memory: MetricsMemory): void {
  store = new MetricsStore(memory);
}

/** The node's metrics store, created on first use when none was attached (the main thread, tests). */
export function metricsStore(): MetricsStore {
  return (store ??= new MetricsStore());
}
