// Helpers shared by the authentication plugins (key-auth, basic-auth, jwt-auth, hmac-auth): the
// consumer lookup built from consumers and credentials, reading a credential from a header, the
// query string or a cookie, removing it before the request goes upstream, and the 401 answers
// with their `WWW-Authenticate` challenge, worded as APISIX words them.
import { timingSafeEqual } from 'node:crypto';
import type { Consumer, ConsumerCredential, PhaseExit, PluginContext } from '../api.ts';

/** What an auth plugin's `indexConsumers` returns: its credentials by key, and every consumer that carries the plugin by name. */
export interface AuthIndex<V> {
  /** The value a credential's key (API key, username, key_id, ...) leads to. */
  byKey: Map<string, V>;
  /** Consumers by username, for `anonymous_consumer`. */
  consumers: Map<string, Consumer>;
}

/**
 * Indexes consumers and credentials by the field that identifies them. When two entries share a
 * key, the first one wins (APISIX leaves that case undefined; a stable choice is kinder).
 */
export function buildAuthIndex<C, V>(
  entries: readonly ConsumerCredential[],
  keyOf: (conf: C) => unknown,
  toValue: (entry: ConsumerCredential<C>) => V | undefined,
): AuthIndex<V> {
  const byKey = new Map<string, V>();
  const consumers = new Map<string, Consumer>();
  for (const entry of entries as readonly ConsumerCredential<C>[]) {
    if (!consumers.has(entry.consumer.username)) consumers.set(entry.consumer.username, entry.consumer);
    const key = keyOf(entry.conf);
    if (typeof key !== 'string' || byKey.has(key)) continue;
    const value = toValue(entry);
    if (value !== undefined) byKey.set(key, value);
  }
  return { byKey, consumers };
}

/** A request header by lower-case name; the first value when the client repeated it. An empty value counts as present. */
export function requestHeader(ctx: PluginContext, lowerName: string): string | undefined {
  const value = ctx.headers[lowerName];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : value;
}

/**
 * A query argument as a credential. A repeated argument comes back as an array: it is no single
 * credential, and callers treat it as one that matches nothing (APISIX looks the Lua table up).
 */
export function queryCredential(ctx: PluginContext, name: string): string | string[] | undefined {
  return ctx.args.get(name);
}

/** Decodes a query-string component as nginx's argument decoding does (`+` is a space). */
function decodeArgName(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/** `target` (path and query) without any `name=` argument; the other arguments keep their order and bytes. */
export function withoutQueryArg(target: string, name: string): string {
  const q = target.indexOf('?');
  if (q === -1) return target;
  const kept = target
    .slice(q + 1)
    .split('&')
    .filter((pair) => {
      if (pair === '') return false;
      const eq = pair.indexOf('=');
      return decodeArgName(eq === -1 ? pair : pair.slice(0, eq)) !== name;
    });
  return kept.length ? `${target.slice(0, q)}?${kept.join('&')}` : target.slice(0, q);
}

/** Removes the credential argument from the request sent upstream. */
export function hideQueryArg(ctx: PluginContext, name: string): void {
  ctx.upstreamUri = withoutQueryArg(ctx.upstreamUri, name);
}

/** A `Cookie` header value without the cookie `name`; undefined when nothing is left. */
export function withoutCookie(cookieHeader: string, name: string): string | undefined {
  const kept = cookieHeader
    .split(';')
    .map((part) => part.trim())
    .filter((part) => {
      if (part === '') return false;
      const eq = part.indexOf('=');
      return (eq === -1 ? part : part.slice(0, eq).trim()) !== name;
    });
  return kept.length ? kept.join('; ') : undefined;
}

/** Removes one cookie from the request sent upstream. */
export function hideCookie(ctx: PluginContext, name: string): void {
  const cookie = requestHeader(ctx, 'cookie');
  if (cookie !== undefined) ctx.setHeader('cookie', withoutCookie(cookie, name));
}

/** The value of a `WWW-Authenticate` challenge: `<scheme> realm="<realm>"`. */
export function challenge(scheme: string, realm: string): string {
  return `${scheme} realm="${realm}"`;
}

/** A 401 with APISIX's `{"message": ...}` body and, when given, the challenge header. */
export function unauthorized(message: string, challengeValue?: string): PhaseExit {
  return challengeValue === undefined
    ? { status: 401, body: { message } }
    : { status: 401, body: { message }, headers: { 'WWW-Authenticate': challengeValue } };
}

/** The options every auth plugin shares for its failure path. */
export interface AnonymousOptions {
  anonymous_consumer?: string;
}

/**
 * What an auth plugin does when the request did not authenticate: without `anonymous_consumer`,
 * 401 with `message`; with it, the anonymous consumer is attached and the request goes on
 * (undefined is returned), or, when that consumer does not exist, 401 `Invalid user authorization`.
 */
export function failOrAnonymous(
  ctx: PluginContext,
  pluginName: string,
  index: AuthIndex<unknown> | undefined,
  conf: AnonymousOptions,
  message: string,
  challengeValue?: string,
): PhaseExit | undefined {
  const name = conf.anonymous_consumer;
  if (name === undefined) return unauthorized(message, challengeValue);
  const consumer = ctx.findConsumer(name);
  if (!consumer) {
    ctx.log('error', `${pluginName} failed to authenticate the request, code: 401. error: failed to get anonymous consumer ${name}`);
    return unauthorized('Invalid user authorization', challengeValue);
  }
  // The anonymous consumer is attached as a consumer, never as one of its credentials.
  ctx.attachConsumer({ consumer, conf: {} });
  return undefined;
}

/**
 * Base64 decoding as nginx's `ngx.decode_base64` does it: the standard alphabet only, padding
 * optional, anything from the first `=` on ignored; undefined when the text is not base64.
 */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const end = text.indexOf('=');
  const body = end === -1 ? text : text.slice(0, end);
  if (body.length % 4 === 1 || !/^[A-Za-z0-9+/]*$/.test(body)) return undefined;
  return Buffer.from(body, 'base64');
}

/** Compares two secrets without leaking where they differ through timing. */
export function sameSecret(a: string | Buffer, b: string | Buffer): boolean {
  const x = typeof a === 'string' ? Buffer.from(a) : a;
  const y = typeof b === 'string' ? Buffer.from(b) : b;
  return x.length === y.length && timingSafeEqual(x, y);
}
