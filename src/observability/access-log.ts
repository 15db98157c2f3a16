// The HTTP access log (nginx_config.http.enable_access_log, access_log, access_log_format,
// access_log_format_escape, access_log_buffer): one line per request in nginx's log_format
// language, buffered per worker and appended to the file off the request path. SIGUSR1 reopens
// the file, so logrotate can move it away first.
import fs from 'node:fs';
import path from 'node:path';

export type LogEscape = 'default' | 'json' | 'none';

export interface AccessLogSettings {
  /** Absolute path of the log file. */
  path: string;
  format: string;
  escape: LogEscape;
  /** Bytes buffered before a write (nginx `buffer=`); 0 writes every line at once. */
  bufferBytes: number;
  /** Longest time a line waits in the buffer (nginx `flush=`). */
  flushMs: number;
}

/** Where a line's variables come from (the request context). */
export interface VariableSource {
  get(name: string): string | undefined;
}

/** A format compiled once: literals and variable names alternate. */
export type LineFormat<S = VariableSource> = (vars: S) => string;

/** Picks, once per variable of a format, how to read it from a source (the request context offers direct getters). */
export type VariableAccessor<S> = (name: string) => (vars: S) => string | undefined;

const byName: VariableAccessor<VariableSource> = (name) => (vars) => vars.get(name);

/**
 * Compiles nginx's log_format: `$name` and `${name}` are variables (letters, digits, `_`); an
 * unset or empty variable prints `-`, as nginx does.
 */
export function compileLogFormat<S extends VariableSource>(format: string, escape: LogEscape, accessor: VariableAccessor<S> = byName): LineFormat<S> {
  const parts: Array<string | ((vars: S) => string | undefined)> = [];
  const re = /\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g;
  let last = 0;
  for (let m = re.exec(format); m; m = re.exec(format)) {
    if (m.index > last) parts.push(format.slice(last, m.index));
    parts.push(accessor(m[1] ?? m[2]));
    last = m.index + m[0].length;
  }
  if (last < format.length) parts.push(format.slice(last));
  const escapeValue = escape === 'json' ? escapeJson : escape === 'none' ? (v: string) => v : escapeDefault;
  return (vars) => {
    let line = '';
    for (const part of parts) {
      if (typeof part === 'string') line += part;
      else {
        const value = part(vars);
        line += value === undefined || value === '' ? '-' : escapeValue(value);
      }
    }
    return line;
  };
}

/** nginx's default escaping: `"`, `\`, control and non-ASCII bytes as `\xXX`. */
function escapeDefault(value: string): string {
  if (!/["\\\x00-\x1f\x7f-\uffff]/.test(value)) return value;
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte === 0x22 || byte === 0x5c || byte < 0x20 || byte >= 0x7f ? `\\x${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/** nginx's `escape=json`: `"` and `\` backslashed, control characters as `\uXXXX`. */
function escapeJson(value: string): string {
  return value.replace(/["\\\x00-\x1f]/g, (c) => {
    if (c === '"' || c === '\\') return `\\${c}`;
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

export class AccessLog<S extends VariableSource = VariableSource> {
  readonly #settings: AccessLogSettings;
  readonly #format: LineFormat<S>;
  readonly #onError: (message: string) => void;
  #fd: number | undefined;
  #buffer: string[] = [];
  #buffered = 0;
  #timer: NodeJS.Timeout | undefined;
  /** A write in progress: the next one waits, so lines stay in order. */
  #writing: Promise<void> = Promise.resolve();
  #failing = false;

  constructor(settings: AccessLogSettings, onError: (message: string) => void, accessor?: VariableAccessor<S>) {
    this.#settings = settings;
    this.#format = compileLogFormat(settings.format, settings.escape, accessor);
    this.#onError = onError;
    this.#open();
  }

  /** Formats one request's line; it reaches the file with the next flush. */
  write(vars: S): void {
    const line = `${this.#format(vars)}\n`;
    this.#buffer.push(line);
    this.#buffered += line.length;
    if (this.#buffered >= this.#settings.bufferBytes) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#settings.flushMs).unref();
  }

  /** Hands the buffered lines to one append (the file is opened O_APPEND, so workers never interleave a line). */
  flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#buffer.length === 0) return this.#writing;
    const data = Buffer.from(this.#buffer.join(''));
    this.#buffer = [];
    this.#buffered = 0;
    this.#writing = this.#writing.then(() => this.#append(data));
    return this.#writing;
  }

  #append(data: Buffer): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      fs.write(fd, data, (err) => {
        if (err && !this.#failing) this.#onError(`failed to write the access log ${this.#settings.path}: ${err.message}`);
        this.#failing = Boolean(err);
        resolve();
      });
    });
  }

  #open(): void {
    try {
      fs.mkdirSync(path.dirname(this.#settings.path), { recursive: true });
      this.#fd = fs.openSync(this.#settings.path, 'a');
    } catch (err) {
      this.#fd = undefined;
      this.#onError(`failed to open the access log ${this.#settings.path}: ${(err as Error).message}`);
    }
  }

  /** Flushes, then opens the path again (after a log rotation moved the old file). */
  async reopen(): Promise<void> {
    await this.flush();
    const old = this.#fd;
    this.#open();
    if (old !== undefined) fs.close(old, () => {});
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }
}
