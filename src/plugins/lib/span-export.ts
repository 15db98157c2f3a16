// Sending finished spans to a collector off the request path, as OpenTelemetry's batch span
// processor does (APISIX's `batch_span_processor` settings): a bounded queue per worker, cut into
// batches by size and age, each batch POSTed once by a keep-alive HTTP client. A dead or slow
// collector costs requests nothing: when the queue is full new spans are dropped (or, when dropping
// is not wanted, the queue is flushed at once and spans are dropped only while it stays full), and
// a batch that cannot be delivered is logged and let go.
import http from 'node:http';
import https from 'node:https';
import type { LogLevel } from '../api.ts';

export interface BatchSettings {
  /**
   * Spans waiting (queued, or cut into batches that wait for an export slot) before new ones are
   * dropped or a flush is forced; the batches being sent (at most `maxInFlight`) come on top.
   */
  maxQueueSize: number;
  /** Spans per export request. */
  maxBatchSize: number;
  /** A partial batch goes out once its oldest span waited this long. */
  maxAgeMs: number;
  /** A partial batch also goes out once no span arrived for this long (0: off). */
  idleMs: number;
  /** How often a partial batch is looked at. */
  tickMs: number;
  /** true: a span that finds the queue full is dropped; false: the queue is flushed at once first. */
  dropOnQueueFull: boolean;
  /** Export requests in flight at once. */
  maxInFlight: number;
}

/** Encodes a batch and sends it; resolves once the collector accepted it, rejects otherwise. */
export type SendBatch<T> = (items: T[]) => Promise<void>;

export type Logger = (level: LogLevel, message: string) => void;

/** How long between two log lines about the same kind of trouble. */
const LOG_EVERY_MS = 10_000;

export class BatchQueue<T> {
  readonly #name: string;
  readonly #settings: BatchSettings;
  readonly #send: SendBatch<T>;
  readonly #log: Logger;
  #queue: T[] = [];
  /** Batches cut and waiting for an export slot. */
  readonly #ready: T[][] = [];
  /** Spans in `#ready`. */
  #readySpans = 0;
  /** Spans being sent. */
  #sending = 0;
  #inFlight = 0;
  #firstAt = 0;
  #lastAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #dropped = 0;
  #lastDropLog = -Infinity;
  #lastFailLog = -Infinity;

  constructor(name: string, settings: BatchSettings, send: SendBatch<T>, log: Logger) {
    this.#name = name;
    this.#settings = settings;
    this.#send = send;
    this.#log = log;
  }

  /** Spans queued, cut into batches or being sent. */
  get size(): number {
    return this.#queue.length + this.#readySpans + this.#sending;
  }

  /** Spans waiting to be sent: what `maxQueueSize` bounds (those being sent add at most maxInFlight batches). */
  get #waiting(): number {
    return this.#queue.length + this.#readySpans;
  }

  push(item: T): void {
    if (this.#closed) return;
    const s = this.#settings;
    if (this.#waiting >= s.maxQueueSize) {
      if (!s.dropOnQueueFull) this.#cut();
      if (this.#waiting >= s.maxQueueSize) {
        this.#drop();
        return;
      }
    }
    const now = performance.now();
    if (this.#queue.length === 0) this.#firstAt = now;
    this.#lastAt = now;
    this.#queue.push(item);
    if (this.#queue.length >= s.maxBatchSize) this.#cut();
    else this.#arm();
  }

  /** Sends what is queued now, whatever its age. */
  flush(): void {
    this.#cut();
  }

  /** Stops the timer and sends what is queued; later pushes are ignored. */
  close(): void {
    this.flush();
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #drop(): void {
    this.#dropped++;
    const now = performance.now();
    if (now - this.#lastDropLog < LOG_EVERY_MS) return;
    this.#lastDropLog = now;
    this.#log('warn', `${this.#name}: queue is full (${this.#settings.maxQueueSize} spans), ${this.#dropped} span(s) dropped`);
    this.#dropped = 0;
  }

  #arm(): void {
    if (this.#timer || this.#queue.length === 0) return;
    this.#timer = setTimeout(this.#tick, this.#settings.tickMs);
    this.#timer.unref();
  }

  #tick = (): void => {
    this.#timer = undefined;
    if (this.#queue.length === 0) return;
    const s = this.#settings;
    const now = performance.now();
    if (now - this.#firstAt >= s.maxAgeMs || (s.idleMs > 0 && now - this.#lastAt >= s.idleMs)) this.#cut();
    else this.#arm();
  };

  /** Moves the queue into ready batches and starts sending. */
  #cut(): void {
    const queue = this.#queue;
    if (queue.length > 0) {
      this.#queue = [];
      const max = this.#settings.maxBatchSize;
      for (let i = 0; i < queue.length; i += max) this.#ready.push(queue.length <= max ? queue : queue.slice(i, i + max));
      this.#readySpans += queue.length;
    }
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < this.#settings.maxInFlight && this.#ready.length > 0) {
      const batch = this.#ready.shift()!;
      this.#readySpans -= batch.length;
      this.#sending += batch.length;
      this.#inFlight++;
      // Encoding and sending start on a later turn: never inside the request that pushed the span.
      setImmediate(() => this.#export(batch));
    }
  }

  async #export(batch: T[]): Promise<void> {
    try {
      await this.#send(batch);
    } catch (err) {
      const now = performance.now();
      if (now - this.#lastFailLog >= LOG_EVERY_MS) {
        this.#lastFailLog = now;
        this.#log('error', `${this.#name}: failed to export ${batch.length} span(s): ${(err as Error).message}`);
      }
    } finally {
      this.#inFlight--;
      this.#sending -= batch.length;
      this.#pump();
    }
  }
}

// Keep-alive agents shared by every exporter of this worker; idle sockets do not hold the worker open.
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16 });

/** Where and how an exporter POSTs. */
export interface PostTarget {
  url: URL;
  headers: Record<string, string>;
  timeoutMs: number;
}

/** POSTs `body`; resolves on a 2xx answer, rejects with the status or the network error. */
export function post(target: PostTarget, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const url = target.url;
    const tls = url.protocol === 'https:';
    const req = (tls ? https : http).request(
      {
        hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port === '' ? (tls ? 443 : 80) : Number(url.port),
        path: url.pathname + url.search,
        method: 'POST',
        headers: { ...target.headers, 'Content-Length': body.length },
        agent: tls ? httpsAgent : httpAgent,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          // Keep the start of an error answer for the log line.
          if (size < 512) chunks.push(c);
          size += c.length;
        });
        res.on('end', () => {
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`collector answered ${status}: ${Buffer.concat(chunks).toString('utf8', 0, 200).trim()}`));
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(target.timeoutMs, () => req.destroy(new Error(`no answer within ${target.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
