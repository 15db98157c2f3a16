// file-logger: appends one JSON log entry per line to a file, as APISIX's file-logger (apache/apisix:
// apisix/plugins/file-logger.lua). A relative `path` is relative to the directory Causeway runs in,
// as APISIX opens it relative to its working directory (its install directory, so `logs/file.log`
// lands beside the error log). `match` logs only the requests one of its expressions holds for.
//
// Writing never holds up a request: lines are queued per file and appended by one asynchronous
// writer per file and worker (each append is a single write to a file opened in append mode, so
// workers sharing a file do not interleave within a line). At most MAX_QUEUED lines wait per file;
// beyond that lines are dropped and counted. A rotated file (renamed or deleted, as logrotate does)
// is noticed within a second and the path opened again; an idle file is closed after a minute.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { validateExpr } from '../../../expr/index.ts';
import { definePlugin, type LogLevel } from '../../api.ts';
import { checkLogConf, LOG_SCHEMA_PROPERTIES, LogEntryBuilder, METADATA_LOG_FORMAT_SCHEMA, type LogEntryConf } from '../../lib/log-entry.ts';

interface FileLoggerConf extends LogEntryConf {
  path: string;
}

interface FileLoggerState {
  builder: LogEntryBuilder;
  file: FileSink;
}

const MAX_QUEUED = 8192;
const ROTATION_CHECK_MS = 1000;
const IDLE_CLOSE_MS = 60_000;

type Log = (level: LogLevel, message: string) => void;

/** Lines waiting for one file, and the handle they are appended through. */
class FileSink {
  readonly path: string;
  /** Lines dropped because MAX_QUEUED were already waiting. */
  dropped = 0;
  #log: Log;
  #queue: string[] = [];
  #writing = false;
  #handle: FileHandle | undefined;
  #checkedAt = 0;
  #idle: NodeJS.Timeout | undefined;
  #lastDropLog = -Infinity;

  constructor(path: string, log: Log) {
    this.path = path;
    this.#log = log;
  }

  write(line: string): void {
    if (this.#queue.length >= MAX_QUEUED) {
      this.dropped++;
      const now = performance.now();
      if (now - this.#lastDropLog >= 1000) {
        this.#lastDropLog = now;
        this.#log('error', `file-logger: ${MAX_QUEUED} lines already wait for ${this.path}; dropping (${this.dropped} dropped so far)`);
      }
      return;
    }
    this.#queue.push(line);
    if (!this.#writing) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    if (this.#idle) clearTimeout(this.#idle);
    while (this.#queue.length > 0) {
      const data = this.#queue.join('');
      this.#queue = [];
      let handle: FileHandle;
      try {
        handle = await this.#open();
      } catch (err) {
        this.#log('error', `failed to open file: ${this.path}, error info: ${(err as Error).message}`);
        continue;
      }
      try {
        await handle.write(data);
      } catch (err) {
        this.#log('error', `failed to write file: ${this.path}, error info: ${(err as Error).message}`);
        await this.#close();
      }
    }
    this.#writing = false;
    this.#idle = setTimeout(() => void this.#close(), IDLE_CLOSE_MS);
    this.#idle.unref();
  }

  /** The open handle, opened again when the path no longer names the file it points to (rotation). */
  async #open(): Promise<FileHandle> {
    const now = performance.now();
    if (this.#handle && now - this.#checkedAt >= ROTATION_CHECK_MS) {
      this.#checkedAt = now;
      const [onDisk, open] = await Promise.all([stat(this.path).catch(() => undefined), this.#handle.stat().catch(() => undefined)]);
      if (!onDisk || !open || onDisk.ino !== open.ino || onDisk.dev !== open.dev) await this.#close();
    }
    if (!this.#handle) {
      this.#handle = await open(this.path, 'a');
      this.#checkedAt = now;
    }
    return this.#handle;
  }

  async #close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = undefined;
    await handle?.close().catch(() => {});
  }
}

/** One sink per file and worker, shared by every instance that writes there. */
const sinks = new Map<string, FileSink>();

function sinkFor(path: string, log: Log): FileSink {
  const full = resolve(path);
  let sink = sinks.get(full);
  if (!sink) sinks.set(full, (sink = new FileSink(full, log)));
  return sink;
}

export default definePlugin<FileLoggerConf, FileLoggerState>({
  name: 'file-logger',
  version: 0.1,
  priority: 399,
  schema: {
    type: 'object',
    properties: {
      path: { type: 'string' },
      ...LOG_SCHEMA_PROPERTIES,
      match: { type: 'array', maxItems: 20, items: { type: 'array' } },
    },
    required: ['path'],
  },
  metadataSchema: {
    type: 'object',
    properties: { log_format: METADATA_LOG_FORMAT_SCHEMA },
  },
  check(conf, kind) {
    if (kind === 'metadata') return undefined;
    const err = checkLogConf(conf);
    if (err) return err;
    for (const rule of conf.match ?? []) {
      const bad = validateExpr(rule);
      if (bad) return `failed to validate the 'match' expression: ${bad}`;
    }
    return undefined;
  },
  compile(conf, env) {
    return { builder: new LogEntryBuilder('file-logger', conf), file: sinkFor(conf.path, env.log) };
  },
  phases: {
    access(ctx, _conf, state) {
      return state.builder.access(ctx);
    },
    body_filter(ctx, _conf, state, chunk) {
      return state.builder.bodyFilter(ctx, chunk);
    },
    log(ctx, _conf, state) {
      const entry = state.builder.entry(ctx);
      if (entry) state.file.write(`${JSON.stringify(entry)}\n`);
    },
  },
});
