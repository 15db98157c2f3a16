// `${{NAME}}` / `${{NAME:=default}}` substitution (apache/apisix: apisix/cli/file.lua). The double braces keep
// nginx-style `$var` / `${var}` free for access-log formats and the like.
import { ConfigError } from './error.ts';
import { setOwn } from './object.ts';

const VAR_RE = /\$\{\{\s*([A-Za-z0-9_]+)\s*(?::=(.*?))?\s*\}\}/g;
// What Lua's tonumber() accepts in practice: decimal with optional fraction/exponent, or hex.
const NUMBER_RE = /^\s*[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)\s*$/;

function substitute(text: string, env: NodeJS.ProcessEnv): { text: string; used: boolean } {
  let used = false;
  const out = text.replace(VAR_RE, (_match, name: string, fallback: string | undefined) => {
    const value = env[name] ?? (fallback === undefined ? undefined : fallback.trim());
    if (value === undefined) {
      throw new ConfigError(`failed to handle configuration: can't find environment variable ${name}`);
    }
    used = true;
    return value;
  });
  return { text: out, used };
}

/**
 * Raw-text substitution, used on apisix.yaml before YAML parsing: quoting in the file decides the resulting type.
 * Throws ConfigError naming the first missing variable.
 */
export function substituteEnvInText(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return substitute(text, env).text;
}

function convert(text: string): string | number | boolean {
  if (NUMBER_RE.test(text)) {
    const trimmed = text.trim();
    const negativeHex = /^-0x/i.test(trimmed);
    const n = negativeHex ? -Number(trimmed.slice(1)) : Number(trimmed.replace(/^\+(?=0x)/i, ''));
    if (Number.isFinite(n)) return n;
  }
  if (text === 'true') return true;
  if (text === 'false') return false;
  return text;
}

/**
 * Post-parse substitution (config.yaml, apisix.json): replaces variables in every string value and object key,
 * returning a new tree. A string value that contained a variable and now looks like a number, `true` or `false`
 * becomes that type; keys always stay strings. Throws ConfigError naming the first missing variable.
 */
export function substituteEnvInValue(value: unknown, env: NodeJS.ProcessEnv = process.env): unknown {
  if (typeof value === 'string') {
    const { text, used } = substitute(value, env);
    return used ? convert(text) : text;
  }
  if (Array.isArray(value)) return value.map((item) => substituteEnvInValue(item, env));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) setOwn(out, substitute(key, env).text, substituteEnvInValue(item, env));
    return out;
  }
  return value;
}
