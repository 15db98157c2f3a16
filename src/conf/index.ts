// Loading of the node's config.yaml: parse, `${{VAR}}` substitution, deep merge over the built-in defaults,
// validation, typed result. Contract: APISIX's config.yaml (see docs/configuration.md).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { DEFAULT_CONFIG } from './defaults.ts';
import { substituteEnvInValue } from './env.ts';
import { ConfigError } from './error.ts';
import { mergeConfig } from './merge.ts';
import { deepClone, isPlainObject, type PlainObject } from './object.ts';
import { checkRules } from './rules.ts';
import { CONFIG_SCHEMA } from './schema.ts';
import type { NodeConfig } from './types.ts';
import { check } from './validate.ts';

export { ConfigError } from './error.ts';
export { DEFAULT_CONFIG } from './defaults.ts';
export { substituteEnvInText, substituteEnvInValue } from './env.ts';
export { httpListeners, sslListeners, workerCount, type Listen } from './listen.ts';
export { adminEnabled } from './rules.ts';
export { parseDurationSeconds, parseSizeBytes } from './units.ts';
export type * from './types.ts';

/** Validates a merged tree and returns it typed. Throws ConfigError naming the offending key path. */
export function validateNodeConfig(tree: unknown): NodeConfig {
  check(tree, CONFIG_SCHEMA, '');
  const config = tree as NodeConfig;
  checkRules(config);
  return config;
}

/** Parses config.yaml text (env substitution, merge over DEFAULT_CONFIG, validation). Throws ConfigError. */
export function parseNodeConfig(text: string, env: NodeJS.ProcessEnv = process.env): NodeConfig {
  const doc = parseDocument(text, { uniqueKeys: true, merge: true });
  const problem = doc.errors[0];
  if (problem !== undefined) {
    const firstLine = problem.message.split('\n')[0].replace(/:$/, '');
    throw new ConfigError(`invalid config.yaml file: ${firstLine}`);
  }
  const parsed: unknown = doc.toJS({ maxAliasCount: 100 });
  if (parsed === null || parsed === undefined) return validateNodeConfig(deepClone(DEFAULT_CONFIG));
  if (!isPlainObject(parsed)) throw new ConfigError('invalid config.yaml file: the top level must be a mapping');
  const user = substituteEnvInValue(parsed, env) as PlainObject;
  return validateNodeConfig(mergeConfig(DEFAULT_CONFIG as unknown as PlainObject, user));
}

/**
 * Loads the node configuration. Without a path only the built-in defaults apply and `dir` is `<cwd>/conf`;
 * otherwise `path` is made absolute and `dir` is its folder (where apisix.yaml / apisix.json are looked up).
 */
export function loadNodeConfig(path?: string): { config: NodeConfig; path: string | undefined; dir: string } {
  if (path === undefined) {
    return { config: validateNodeConfig(deepClone(DEFAULT_CONFIG)), path: undefined, dir: join(process.cwd(), 'conf') };
  }
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`failed to read config file ${file}: ${reason}`);
  }
  return { config: parseNodeConfig(text), path: file, dir: dirname(file) };
}
