// serverless-pre-function and serverless-post-function: run JavaScript functions given in the
// configuration, in one phase of the request. Contract: apache/apisix apisix/plugins/serverless/init.lua
// (3.x), with JavaScript in place of Lua.
//
// SECURITY: the functions are code written by whoever can change the configuration (Admin API,
// standalone file, etcd). They run inside the gateway's process with the gateway's privileges:
// they can read any request, the process environment and the file system, and make network
// calls. There is no sandbox. Give configuration rights only to people you would give a shell on
// the gateway host, or leave these plugins out of config.yaml's `plugins:` list.
import { definePlugin, type MaybePromise, type PhaseExit, type PhaseOutcome, type PluginContext, type PluginDefinition } from '../api.ts';

export type ServerlessPhase = 'rewrite' | 'access' | 'header_filter' | 'body_filter' | 'log' | 'before_proxy';

export interface ServerlessConf {
  phase: ServerlessPhase;
  functions: string[];
}

/**
 * A configured function. In `body_filter` it also gets the chunk and the end flag and may return
 * a Buffer or string to send instead; elsewhere it may return `{ status, body?, headers? }` (or a
 * promise of it) to end the request, in the phases that can end it.
 */
export type ServerlessFunction = (conf: ServerlessConf, ctx: PluginContext, chunk?: Buffer, eof?: boolean) => unknown;

interface ServerlessState {
  phase: ServerlessPhase;
  functions: ServerlessFunction[];
}

const schema = {
  type: 'object',
  properties: {
    phase: { type: 'string', default: 'access', enum: ['rewrite', 'access', 'header_filter', 'body_filter', 'log', 'before_proxy'] },
    functions: { type: 'array', items: { type: 'string' }, minItems: 1 },
  },
  required: ['functions'],
};

/**
 * Turns a function's source into the function. The source is either an expression whose value is
 * the function (`(conf, ctx) => {...}`, `function (conf, ctx) {...}`, `async (conf, ctx) => ...`) or,
 * like APISIX's Lua chunks, a body that returns it (`return (conf, ctx) => {...}`).
 * Throws with a message that says what is wrong.
 */
export function loadFunction(source: string): ServerlessFunction {
  let factory: () => unknown;
  const expression = source.trim().replace(/;+$/, '');
  try {
    // The newline keeps a trailing `// comment` from swallowing the closing parenthesis.
    factory = new Function(`"use strict";\nreturn (${expression}\n);`) as () => unknown;
  } catch {
    try {
      factory = new Function(`"use strict";\n${source}`) as () => unknown;
    } catch (err) {
      throw new Error(`failed to compile: ${(err as Error).message}`);
    }
  }
  let value: unknown;
  try {
    value = factory();
  } catch (err) {
    throw new Error(`failed to evaluate: ${(err as Error).message}`);
  }
  if (typeof value !== 'function') throw new Error(`only accept JavaScript function, the input code type is ${value === null ? 'null' : typeof value}`);
  return value as ServerlessFunction;
}

/** A function's result as a phase exit: `{ status, ... }` or a bare status code; anything else goes on. */
function toExit(result: unknown): PhaseExit | undefined {
  if (typeof result === 'number') return { status: result };
  if (result !== null && typeof result === 'object' && typeof (result as PhaseExit).status === 'number') return result as PhaseExit;
  return undefined;
}

function isPromise(value: unknown): value is Promise<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as Promise<unknown>).then === 'function';
}

/** Calls the functions in order; the first that returns an exit ends the request. */
function runFunctions(functions: readonly ServerlessFunction[], conf: ServerlessConf, ctx: PluginContext, from = 0): MaybePromise<PhaseOutcome> {
  for (let i = from; i < functions.length; i++) {
    const result = functions[i](conf, ctx);
    if (isPromise(result)) {
      // Only an asynchronous function makes the phase asynchronous.
      return result.then((value) => toExit(value) ?? runFunctions(functions, conf, ctx, i + 1));
    }
    const exit = toExit(result);
    if (exit) return exit;
  }
  return undefined;
}

/** Same, for phases that cannot end the request: results are ignored, promises awaited in order. */
function runForEffect(functions: readonly ServerlessFunction[], conf: ServerlessConf, ctx: PluginContext, from = 0): MaybePromise<void> {
  for (let i = from; i < functions.length; i++) {
    const result = functions[i](conf, ctx);
    if (isPromise(result)) return result.then(() => runForEffect(functions, conf, ctx, i + 1));
  }
  return undefined;
}

/** Body chunks go through the functions in turn; a returned Buffer or string replaces the chunk. */
function runBodyFilter(functions: readonly ServerlessFunction[], conf: ServerlessConf, ctx: PluginContext, chunk: Buffer, eof: boolean, from = 0, changed = false): MaybePromise<Buffer | undefined> {
  for (let i = from; i < functions.length; i++) {
    const result = functions[i](conf, ctx, chunk, eof);
    if (isPromise(result)) {
      return result.then((value) => {
        const next = asChunk(value);
        return runBodyFilter(functions, conf, ctx, next ?? chunk, eof, i + 1, changed || next !== undefined);
      });
    }
    const next = asChunk(result);
    if (next !== undefined) {
      chunk = next;
      changed = true;
    }
  }
  return changed ? chunk : undefined;
}

function asChunk(value: unknown): Buffer | undefined {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value);
  return undefined;
}

/** Builds one of the two serverless plugins; they differ only in name and priority. */
export function serverlessPlugin(name: string, priority: number): PluginDefinition<ServerlessConf, ServerlessState> {
  return definePlugin<ServerlessConf, ServerlessState>({
    name,
    version: 0.1,
    priority,
    schema,

    check(conf) {
      for (let i = 0; i < conf.functions.length; i++) {
        try {
          loadFunction(conf.functions[i]);
        } catch (err) {
          return `functions[${i + 1}]: ${(err as Error).message}`;
        }
      }
      return undefined;
    },

    compile(conf) {
      return { phase: conf.phase, functions: conf.functions.map(loadFunction) };
    },

    phases: {
      rewrite: (ctx, conf, state) => (state.phase === 'rewrite' ? runFunctions(state.functions, conf, ctx) : undefined),
      access: (ctx, conf, state) => (state.phase === 'access' ? runFunctions(state.functions, conf, ctx) : undefined),
      before_proxy: (ctx, conf, state) => (state.phase === 'before_proxy' ? runFunctions(state.functions, conf, ctx) : undefined),
      header_filter: (ctx, conf, state) => (state.phase === 'header_filter' ? runForEffect(state.functions, conf, ctx) : undefined),
      body_filter: (ctx, conf, state, chunk, eof) => (state.phase === 'body_filter' ? runBodyFilter(state.functions, conf, ctx, chunk, eof) : undefined),
      log: (ctx, conf, state) => (state.phase === 'log' ? runForEffect(state.functions, conf, ctx) : undefined),
    },
  });
}
