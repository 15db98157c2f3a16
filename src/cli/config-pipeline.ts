// The config flow of a standalone node: read the declarative file, validate it, diff it against
// what workers have, and broadcast only the changes. A bad file or item never removes good config.
import type { ChangeEvent } from '../model/index.ts';
import { checkResource } from '../snapshot/check.ts';
import { diffResourceSets, emptyResourceSet, resourceSetEvents, type ResourceSet } from '../store/resource-set.ts';
import { fileExists, readStandaloneFile, watchStandaloneFile, type StandaloneFormat } from '../store/standalone.ts';
import { log } from '../util/log.ts';

export class FileConfigPipeline {
  readonly path: string;
  readonly format: StandaloneFormat;
  #current: ResourceSet = emptyResourceSet();
  #version = 0;
  #loadedOnce = false;
  #lastError: string | undefined;
  #unwatch: (() => void) | undefined;
  onChange: ((events: ChangeEvent[], version: number) => void) | undefined;

  constructor(path: string, format: StandaloneFormat) {
    this.path = path;
    this.format = format;
  }

  /** Reads the file now; returns false when it was rejected (the previous config stays). */
  reload(): boolean {
    if (!fileExists(this.path)) {
      this.#report(`declarative file ${this.path} not found; serving ${this.#loadedOnce ? 'the last good config' : 'no routes'} until it appears`);
      return false;
    }
    const result = readStandaloneFile(this.path, this.format, checkResource, this.#current);
    for (const warning of result.warnings) this.#reportOnce('warn', warning);
    for (const problem of result.problems) log('error', problem);
    if (!result.set) {
      this.#report(`${result.fileError}; keeping the last good config`);
      return false;
    }
    this.#lastError = undefined;
    this.#loadedOnce = true;
    const events = diffResourceSets(this.#current, result.set);
    this.#current = result.set;
    if (events.length === 0) return true;
    this.#version++;
    log('notice', `loaded ${this.path}: ${events.length} change(s), config version ${this.#version}`);
    this.onChange?.(events, this.#version);
    return true;
  }

  #report(message: string): void {
    // Log a repeated problem once, not on every poll.
    if (message === this.#lastError) return;
    this.#lastError = message;
    log('error', message);
  }

  readonly #warned = new Set<string>();
  #reportOnce(level: 'warn', message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    log(level, message);
  }

  watch(): void {
    this.#unwatch = watchStandaloneFile(this.path, () => this.reload());
  }

  close(): void {
    this.#unwatch?.();
  }

  get version(): number {
    return this.#version;
  }

  /** The whole current config as events, for a worker that starts (or restarts). */
  state(): { events: ChangeEvent[]; version: number } {
    return { events: resourceSetEvents(this.#current), version: this.#version };
  }
}
