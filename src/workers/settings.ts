// Node config → the settings a worker's request path reads. Recomputed on start and on SIGHUP.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDurationSeconds, parseSizeBytes, type NodeConfig } from '../conf/index.ts';
import type { AccessLogSettings } from '../observability/access-log.ts';
import type { HandlerOptions } from '../proxy/handler.ts';
import { compileRealIp } from '../proxy/real-ip.ts';
import type { PoolDefaults } from '../snapshot/upstream.ts';
import type { ServerLimits, TlsSettings } from '../proxy/server.ts';
import { SERVER_TOKEN } from '../proxy/responses.ts';
import { compileIpMatcher } from '../util/ip.ts';
import { log } from '../util/log.ts';
import { VERSION } from '../util/version.ts';

export function handlerOptions(config: NodeConfig): HandlerOptions {
  const a = config.apisix;
  return {
    deleteUriTailSlash: a.delete_uri_tail_slash,
    matchUriEncodedSlash: a.match_uri_encoded_slash,
    realIp: compileRealIp(config.nginx_config.http.real_ip_header, config.nginx_config.http.real_ip_from, config.nginx_config.http.real_ip_recursive),
    trustedAddresses: a.trusted_addresses?.length ? compileIpMatcher(a.trusted_addresses) : undefined,
    serverHeader: a.enable_server_tokens ? `${SERVER_TOKEN}/${VERSION}` : SERVER_TOKEN,
    showUpstreamStatus: a.show_upstream_status_in_response_header,
    fallbackSni: a.ssl?.fallback_sni || undefined,
    maxBodyBytes: parseSizeBytes(config.nginx_config.http.client_max_body_size),
    clientBodyTimeoutMs: parseDurationSeconds(config.nginx_config.http.client_body_timeout) * 1000,
    sendTimeoutMs: parseDurationSeconds(config.nginx_config.http.send_timeout) * 1000,
    log,
  };
}

/** nginx_config.http's access log; undefined when it is off. Relative paths start at `prefix`. */
export function accessLogSettings(config: NodeConfig, prefix: string): AccessLogSettings | undefined {
  const http = config.nginx_config.http;
  if (!http.enable_access_log) return undefined;
  return {
    path: path.resolve(prefix, http.access_log),
    format: http.access_log_format,
    escape: http.access_log_format_escape,
    bufferBytes: http.access_log_buffer,
    flushMs: 1000,
  };
}

/** apisix.ssl as the TLS listeners apply it. */
export function tlsSettings(config: NodeConfig): TlsSettings {
  const ssl = config.apisix.ssl;
  const order = ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
  const listed = order.filter((v) => (ssl?.ssl_protocols ?? 'TLSv1.2 TLSv1.3').split(/\s+/).includes(v));
  const versions = listed.length ? listed : (['TLSv1.2', 'TLSv1.3'] as const);
  return {
    minVersion: versions[0],
    maxVersion: versions[versions.length - 1],
    ciphers: ssl?.ssl_ciphers || undefined,
    sessionTickets: ssl?.ssl_session_tickets ?? false,
    fallbackSni: ssl?.fallback_sni || undefined,
  };
}

export function serverLimits(config: NodeConfig): ServerLimits {
  const http = config.nginx_config.http;
  return {
    keepAliveTimeoutMs: parseDurationSeconds(http.keepalive_timeout) * 1000,
    headerTimeoutMs: parseDurationSeconds(http.client_header_timeout) * 1000,
    // nginx: large_client_header_buffers 4 8k (request line and headers together fit 32 KiB)
    maxHeaderBytes: 32 * 1024,
    http2: config.apisix.enable_http2,
  };
}

export function shutdownGraceMs(config: NodeConfig): number {
  return parseDurationSeconds(config.nginx_config.worker_shutdown_timeout) * 1000;
}

export function poolDefaults(config: NodeConfig): PoolDefaults {
  const up = config.nginx_config.http.upstream;
  return { size: up.keepalive, idle_timeout: parseDurationSeconds(up.keepalive_timeout), requests: up.keepalive_requests, trustedCa: trustedCa(config) };
}

/** apisix.ssl.ssl_trusted_certificate: `system` (Node's store) or a PEM file of CA certificates. */
function trustedCa(config: NodeConfig): string | undefined {
  const path = config.apisix.ssl?.ssl_trusted_certificate;
  if (!path || path === 'system') return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    log('error', `apisix.ssl.ssl_trusted_certificate: cannot read ${path}: ${(err as Error).message}; upstream certificates are checked against the system store`);
    return undefined;
  }
}
