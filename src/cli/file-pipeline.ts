// Config from the standalone declarative file (data plane with config_provider yaml/json).
import { fileExists, readStandaloneFile, watchStandaloneFile, type StandaloneFormat } from '../store/standalone.ts';
import { log } from '../util/log.ts';
import { ConfigPipeline } from './config-pipeline.ts';

export class FileConfigPipeline extends ConfigPipeline {
  readonly path: string;
  readonly format: StandaloneFormat;
  #loadedOnce = false;
  #unwatch: (() => void) | undefined;

  constructor(path: string, format: StandaloneFormat) {
    super();
    this.path = path;
    this.format = format;
  }

  /** Reads the file now; returns false when it was rejected (the previous config stays). */
  reload(): boolean {
    if (!fileExists(this.path)) {
      this.reportOnce('error', `declarative file ${this.path} not found; serving ${this.#loadedOnce ? 'the last good config' : 'no routes'} until it appears`);
      return false;
    }
    const result = readStandaloneFile(this.path, this.format, (kind, value, id) => this.check(kind, value, id), this.current);
    for (const warning of result.warnings) this.reportOnce('warn', warning);
    for (const problem of result.problems) log('error', problem);
    if (!result.set) {
      this.reportOnce('error', `${result.fileError}; keeping the last good config`);
      return false;
    }
    this.clearReports();
    this.#loadedOnce = true;
    this.setPluginsList(result.plugins);
    const changes = this.replaceAll(result.set);
    if (changes > 0) log('notice', `loaded ${this.path}: ${changes} change(s), config version ${this.version}`);
    return true;
  }

  refresh(): void {
    this.reload();
  }

  watch(): void {
    this.#unwatch = watchStandaloneFile(this.path, () => this.reload());
  }

  notReadyReason(): string | undefined {
    return undefined;
  }

  close(): void {
    this.#unwatch?.();
  }
}
