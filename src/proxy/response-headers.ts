// Response headers as plugins see them: a flat [name, value, ...] list (the shape `writeHead`
// takes), case-insensitive. Before the response exists, plugins write into a pending list whose
// changes are replayed over the real headers when they arrive (APISIX's `core.response.set_header`
// in `access` works the same way).
import type { ResponseHeaders } from '../plugins/api.ts';

type Change = { op: 'set'; name: string; values: string[] } | { op: 'add'; name: string; value: string } | { op: 'remove'; name: string };

export class HeaderList implements ResponseHeaders {
  /** [name, value, name, value, ...] */
  flat: string[];
  /** Recorded changes while pending; undefined once applied to the real headers. */
  #changes: Change[] | undefined;

  constructor(flat: string[] = [], pending = false) {
    this.flat = flat;
    this.#changes = pending ? [] : undefined;
  }

  get(name: string): string | undefined {
    const lower = name.toLowerCase();
    const flat = this.flat;
    let out: string | undefined;
    for (let i = 0; i < flat.length; i += 2) {
      if (sameName(flat[i], lower)) out = out === undefined ? flat[i + 1] : `${out}, ${flat[i + 1]}`;
    }
    return out;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  set(name: string, value: string | number | readonly string[] | undefined): void {
    if (value === undefined) {
      this.remove(name);
      return;
    }
    const values = typeof value === 'object' ? [...value] : [String(value)];
    this.#drop(name);
    for (const v of values) this.flat.push(name, v);
    this.#changes?.push({ op: 'set', name, values });
  }

  add(name: string, value: string): void {
    this.flat.push(name, value);
    this.#changes?.push({ op: 'add', name, value });
  }

  remove(name: string): void {
    this.#drop(name);
    this.#changes?.push({ op: 'remove', name });
  }

  entries(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = 0; i < this.flat.length; i += 2) out.push([this.flat[i], this.flat[i + 1]]);
    return out;
  }

  /** Makes `flat` the real headers with the pending changes replayed over them; later changes apply directly. */
  applyTo(real: string[]): void {
    const changes = this.#changes ?? [];
    this.#changes = undefined;
    this.flat = real;
    for (const c of changes) {
      if (c.op === 'set') this.set(c.name, c.values);
      else if (c.op === 'add') this.add(c.name, c.value);
      else this.remove(c.name);
    }
  }

  #drop(name: string): void {
    const lower = name.toLowerCase();
    const flat = this.flat;
    let w = 0;
    for (let r = 0; r < flat.length; r += 2) {
      if (sameName(flat[r], lower)) continue;
      flat[w++] = flat[r];
      flat[w++] = flat[r + 1];
    }
    flat.length = w;
  }
}

/** Header name equality without lower-casing names that cannot match (most of them differ in length). */
function sameName(name: string, lower: string): boolean {
  return name.length === lower.length && (name === lower || name.toLowerCase() === lower);
}
