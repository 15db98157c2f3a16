// The shape shared by APISIX's batch loggers (http-logger, tcp-logger, udp-logger, syslog): the
// conf schema with the entry options and the batch processor's fields (`wrap_schema`), the metadata
// schema (`log_format`, `max_pending_entries`), and the phases: `access` reads the request body
// when it may be logged, `body_filter` keeps the response body, `log` builds the entry and hands it
// to the instance's batch processor. Sending happens later, on timers; no phase waits for it.
import type { CompileEnv, JsonSchema, PluginContext, PluginDefinition } from '../api.ts';
import { BatchManager, BatchProcessor, batchSchemaProperties, DEFAULT_MAX_PENDING_ENTRIES, MAX_PENDING_ENTRIES_SCHEMA, type BatchConf, type BatchSender } from './batch-processor.ts';
import { checkLogConf, LOG_SCHEMA_PROPERTIES, LogEntryBuilder, METADATA_LOG_FORMAT_SCHEMA, type LogEntryConf } from './log-entry.ts';

export type LoggerConf = LogEntryConf & BatchConf;

/** Where one instance's batches go. */
export interface LogSink<E> {
  send: BatchSender<E>;
  /** Closes connections kept open; `send` may be called again afterwards (it reopens). */
  close?(): void;
}

export interface BatchLoggerSpec<C extends LoggerConf, E> {
  name: string;
  version: number;
  priority: number;
  /** The batch processor's default `name` (`http logger`). */
  loggerName: string;
  /** The plugin's own properties (entry options and batch fields are added). */
  properties: Record<string, JsonSchema>;
  required: string[];
  /** Checks beyond the schema, after the entry options' (APISIX's `check_schema`). */
  check?(conf: C): string | undefined;
  /** The sink of one configured instance; called on its first entry. */
  sink(conf: C, env: CompileEnv): LogSink<E>;
  /** What the processor buffers for an entry (default: the entry itself). */
  encode?(entry: Record<string, unknown>, ctx: PluginContext, conf: C): E | undefined;
}

export interface LoggerState<C, E> {
  conf: C;
  builder: LogEntryBuilder;
  env: CompileEnv;
  sink: LogSink<E> | undefined;
  processor: BatchProcessor<E> | undefined;
}

interface LoggerMetadata {
  log_format?: Record<string, unknown>;
  max_pending_entries?: number;
}

/** The metadata schema of a batch logger. */
export function batchLoggerMetadataSchema(): JsonSchema {
  return {
    type: 'object',
    properties: {
      log_format: METADATA_LOG_FORMAT_SCHEMA,
      max_pending_entries: MAX_PENDING_ENTRIES_SCHEMA,
    },
  };
}

export function defineBatchLogger<C extends LoggerConf, E = Record<string, unknown>>(spec: BatchLoggerSpec<C, E>): PluginDefinition<C, LoggerState<C, E>> {
  const manager = BatchManager.of(spec.name);
  // The plugin's own properties win over the shared ones, as in `wrap_schema`.
  const properties = { ...batchSchemaProperties(spec.loggerName), ...LOG_SCHEMA_PROPERTIES, ...spec.properties };
  const encode = spec.encode;

  const processorOf = (state: LoggerState<C, E>): BatchProcessor<E> => {
    if (state.processor) return state.processor;
    const sink = (state.sink ??= spec.sink(state.conf, state.env));
    const owner = state.env.owner;
    // APISIX's gauge: entries waiting per logger and route, summed over the workers.
    const pending = state.env.metrics
      .gauge('apisix_batch_process_entries', 'batch process remaining entries', ['name', 'route_id', 'server_addr'])
      .labels([spec.name, owner.kind === 'route' ? owner.id : '', '']);
    state.processor = new BatchProcessor<E>(manager, state.conf, (entries, max) => sink.send(entries, max), state.env.log, pending);
    return state.processor;
  };

  return {
    name: spec.name,
    version: spec.version,
    priority: spec.priority,
    schema: { type: 'object', properties, required: spec.required },
    metadataSchema: batchLoggerMetadataSchema(),
    check(conf, kind) {
      if (kind === 'metadata') return undefined;
      return checkLogConf(conf) ?? spec.check?.(conf);
    },
    compile(conf, env) {
      // Cheap and without side effects: the processor and its sink start with the first entry.
      return { conf, builder: new LogEntryBuilder(spec.name, conf), env, sink: undefined, processor: undefined };
    },
    dispose(state) {
      const processor = state.processor;
      if (!processor) return;
      processor.flush();
      processor.whenIdle(() => state.sink?.close?.());
    },
    destroy() {
      manager.flushAll();
    },
    phases: {
      access(ctx, _conf, state) {
        return state.builder.access(ctx);
      },
      body_filter(ctx, _conf, state, chunk) {
        return state.builder.bodyFilter(ctx, chunk);
      },
      log(ctx, conf, state) {
        const limit = ctx.metadata<LoggerMetadata>(spec.name)?.max_pending_entries ?? DEFAULT_MAX_PENDING_ENTRIES;
        if (!manager.admit(limit, state.env.log)) return;
        const entry = state.builder.entry(ctx);
        if (!entry) return;
        const item = encode ? encode(entry, ctx, conf) : (entry as E);
        if (item === undefined) return;
        processorOf(state).push(item);
      },
    },
  };
}

/** A batch as JSON: one object when `batch_max_size` is 1, else an array (APISIX's encoding). */
export function jsonBatch(entries: readonly unknown[], batchMaxSize: number): string {
  return JSON.stringify(batchMaxSize === 1 ? entries[0] : entries);
}
