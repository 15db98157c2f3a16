// Metrics that every worker writes into shared memory and the main thread reads for the
// Prometheus exposition. Values live in a SharedMemoryTable of their own (a counter adds under the
// slot's lock, so no increment is lost between workers); each series is described once, by the
// first worker that meets it, in an append-only arena in the same kind of memory. A scrape reads
// both: it never asks the workers, so the counts of a worker that died are still there.
import type { Counter, Gauge, Histogram, MetricsRegistry } from '../plugins/api.ts';
import { SharedMemoryTable } from '../shm/table.ts';

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

export class MetricsStore implements MetricsRegistry {
  readonly memory: MetricsMemory;
  readonly #values: SharedMemoryTable;
  readonly #arena: Arena;
  /** Series this thread has described already (so the arena check runs once per series per thread). */
  readonly #known = new Set<string>();
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

  counter(name: string, help: string, labelNames: readonly string[]): Counter {
    return { inc: (value, labelValues = []) => this.#add(this.#describe(name, help, 'counter', labelNames, labelValues), 0, value) };
  }

  gauge(name: string, help: string, labelNames: readonly string[]): Gauge {
    return {
      set: (value, labelValues = []) => this.#set(this.#describe(name, help, 'gauge', labelNames, labelValues), value),
      inc: (value, labelValues = []) => this.#add(this.#describe(name, help, 'gauge', labelNames, labelValues), 0, value),
    };
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    const bounds = [...buckets].sort((a, b) => a - b);
    return {
      observe: (value, labelValues = []) => {
        const key = this.#describe(name, help, 'histogram', labelNames, labelValues, bounds);
        // count and sum in the series' own slot, the bucket's count in slot (bucket / 4).
        this.#values.update(key, (v) => {
          v[0] += 1;
          v[1] += value;
        }, FOREVER_MS);
        let bucket = bounds.findIndex((b) => value <= b);
        if (bucket === -1) bucket = bounds.length; // +Inf
        this.#add(`${key}\u0001${bucket >> 2}`, bucket & 3, 1);
      },
    };
  }

  /** The series' key, describing it in the arena the first time any thread meets it. */
  #describe(name: string, help: string, type: MetricType, labelNames: readonly string[], labelValues: readonly string[], buckets?: number[]): string {
    const key = seriesKey(name, labelValues);
    if (this.#known.has(key)) return key;
    // values[3] of the series slot marks "described": only the first thread to set it appends.
    const first = this.#values.update(key, (v) => {
      if (v[3] !== 0) return false;
      v[3] = 1;
      return true;
    }, FOREVER_MS);
    if (first) this.#arena.append({ name, help, type, labelNames: [...labelNames], labelValues: [...labelValues], ...(buckets ? { buckets } : {}) });
    this.#known.add(key);
    return key;
  }

  #add(key: string, index: number, value: number): void {
    this.#values.update(key, (v) => {
      v[index] += value;
    }, FOREVER_MS);
  }

  #set(key: string, value: number): void {
    this.#values.update(key, (v) => {
      v[0] = value;
    }, FOREVER_MS);
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

  /** Capacity and use of the two memories, for `shared_dict`-style gauges. */
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
