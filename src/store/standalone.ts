// The standalone declarative file (apisix.yaml / apisix.json): parse, validate item by item, and
// watch for changes. A file that cannot be parsed changes nothing; an invalid item keeps its last
// good version (or stays absent) and is reported with its position, id and the failing field.
import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { substituteEnvInText, substituteEnvInValue } from '../conf/index.ts';
import { SERVED_KINDS, validatePluginsList, type PluginListEntry, type ServedKind } from '../model/index.ts';
import { emptyResourceSet, type ResourceSet } from './resource-set.ts';

/** APISIX's other top-level keys; accepted and ignored until their resource kinds exist here. */
const NOT_YET_SUPPORTED = new Set(['stream_routes', 'protos', 'secrets']);

export type ResourceChecker = (kind: ServedKind, value: unknown, id: string) => string | undefined;

export interface StandaloneResult {
  /** Undefined when the file as a whole was rejected. */
  set: ResourceSet | undefined;
  /** File-level error (unreadable, unparsable, wrong shape). */
  fileError?: string;
  /** Item-level errors, one line each. */
  problems: string[];
  /** Things ignored on purpose (kinds this version does not have yet). */
  warnings: string[];
  /**
   * The file's top-level `plugins` list (HTTP plugin names), which replaces config.yaml's list as
   * in APISIX's file-driven standalone mode; undefined when the file has none.
   */
  plugins?: string[];
}

export type StandaloneFormat = 'yaml' | 'json';

export function readStandaloneFile(path: string, format: StandaloneFormat, check: ResourceChecker, previous?: ResourceSet): StandaloneResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { set: undefined, fileError: `failed to read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, problems: [], warnings: [] };
  }
  return parseStandalone(text, format, check, previous, path);
}

export function parseStandalone(text: string, format: StandaloneFormat, check: ResourceChecker, previous?: ResourceSet, path = 'apisix.' + format): StandaloneResult {
  let doc: unknown;
  try {
    // YAML: substitution on the raw text, so quoting decides the type (APISIX's rule); JSON: on values.
    doc = format === 'yaml' ? parseYaml(quoteWildcardHosts(substituteEnvInText(text)), { uniqueKeys: true }) : substituteEnvInValue(JSON.parse(text));
  } catch (err) {
    return { set: undefined, fileError: `invalid ${path}: ${firstLine((err as Error).message)}`, problems: [], warnings: [] };
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    return { set: undefined, fileError: `invalid ${path}: the top level must be a mapping of resource kinds`, problems: [], warnings: [] };
  }
  const top = doc as Record<string, unknown>;
  const problems: string[] = [];
  const warnings: string[] = [];
  const set = emptyResourceSet();
  for (const key of Object.keys(top)) {
    if ((SERVED_KINDS as readonly string[]).includes(key) || key === 'plugins') continue;
    // `<kind>_conf_version` keys belong to APISIX's API-driven standalone mode; the file's mtime is its version.
    if (key.endsWith('_conf_version')) continue;
    if (NOT_YET_SUPPORTED.has(key)) {
      warnings.push(`${path}: "${key}" is not supported by this version yet and is ignored`);
      continue;
    }
    return { set: undefined, fileError: `invalid ${path}: unknown top-level key "${key}" (expected one of: ${[...SERVED_KINDS, ...NOT_YET_SUPPORTED].join(', ')})`, problems, warnings };
  }
  let plugins: string[] | undefined;
  if (top.plugins !== undefined && top.plugins !== null) {
    const err = validatePluginsList(top.plugins);
    if (err) return { set: undefined, fileError: `invalid ${path}: "plugins": ${err.replace(/^invalid configuration: /, '')}`, problems, warnings };
    // Stream plugins arrive with the stream proxy; the HTTP ones replace config.yaml's list.
    plugins = (top.plugins as PluginListEntry[]).filter((p) => !p.stream).map((p) => p.name);
  }
  for (const kind of SERVED_KINDS) {
    const items = top[kind];
    if (items === undefined || items === null) continue;
    if (!Array.isArray(items)) return { set: undefined, fileError: `invalid ${path}: "${kind}" must be a list`, problems, warnings };
    items.forEach((item, index) => {
      const id = itemId(kind, item, index);
      const where = `${kind}[${index}] (id ${id})`;
      if (set[kind].has(id)) {
        problems.push(`${path}: ${where}: duplicate id, item skipped`);
        return;
      }
      const value = withoutFileMarkers(item);
      const err = check(kind, value, id);
      if (err === undefined) {
        set[kind].set(id, value as object);
        return;
      }
      const kept = previous?.[kind].get(id);
      if (kept) set[kind].set(id, kept);
      problems.push(`${path}: ${where}: ${err}; ${kept ? 'keeping its last good version' : 'item skipped'}`);
    });
  }
  return { set, problems, warnings, plugins };
}

/** Drops the per-item `modifiedIndex` APISIX allows in the file (a reuse hint, not part of the resource). */
function withoutFileMarkers(item: unknown): unknown {
  if (!item || typeof item !== 'object' || !('modifiedIndex' in item)) return item;
  const { modifiedIndex: _unused, ...rest } = item as Record<string, unknown>;
  return rest;
}

/**
 * `host: *.example.com` written unquoted is an alias in YAML 1.2, but APISIX's YAML reader takes it as a
 * string, and files written for APISIX do this. A plain scalar starting with `*.` after a key or a list
 * dash is quoted before parsing (no alias name starts with a dot in a real apisix.yaml).
 */
function quoteWildcardHosts(text: string): string {
  return text.replace(/^(\s*(?:- +|[\w.-]+: +)(?:- +)?)(\*\.[^\s#,\]}'"]+)(?=\s*(?:#.*)?$)/gm, '$1"$2"');
}

/** An item's key: its `id`; a consumer's `username` (credentials keep their `user/credentials/id` id). */
function itemId(kind: ServedKind, item: unknown, index: number): string {
  const obj = item && typeof item === 'object' ? (item as { id?: unknown; username?: unknown }) : undefined;
  const id = kind === 'consumers' && !String(obj?.id ?? '').includes('/credentials/') ? obj?.username : obj?.id;
  return typeof id === 'string' || typeof id === 'number' ? String(id) : `arr_${index}`;
}

function firstLine(text: string): string {
  return text.split('\n')[0];
}

/**
 * Watches the file's modification time and size (a 250 ms stat poll: works across editors'
 * rename-on-save and on every filesystem) and calls `onChange` when they move.
 */
export function watchStandaloneFile(path: string, onChange: () => void): () => void {
  const listener = (curr: { mtimeMs: number; size: number; ino: number }, prev: { mtimeMs: number; size: number; ino: number }) => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.size !== prev.size || curr.ino !== prev.ino) onChange();
  };
  watchFile(path, { interval: 250, persistent: false }, listener);
  return () => unwatchFile(path, listener);
}

export function fileExists(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
