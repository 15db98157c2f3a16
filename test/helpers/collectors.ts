// Trace collectors for the tracing tests: an OTLP/HTTP receiver (protobuf decoded with protobufjs and
// the .proto fixture, or OTLP/JSON) and a Zipkin v2 receiver, each a plain HTTP server on loopback.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { REPO } from './gateway.ts';

type Attr = string | number | boolean;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  traceState: string;
  flags: number;
  name: string;
  kind: number;
  startNanos: bigint;
  endNanos: bigint;
  attributes: Record<string, Attr>;
  status: { code: number; message: string };
}

export interface OtlpExport {
  path: string;
  headers: http.IncomingHttpHeaders;
  resource: Record<string, Attr>;
  scope: { name: string; version: string };
  spans: ReceivedSpan[];
}

const root = protobuf.loadSync(join(REPO, 'test/fixtures/otlp/traces.proto'));
const ExportRequest = root.lookupType('otlp.test.ExportTraceServiceRequest');

const hex = (b: Uint8Array | undefined): string => (b ? Buffer.from(b).toString('hex') : '');

function attrValue(v: Record<string, unknown> | undefined): Attr {
  if (!v) return '';
  if (v.stringValue !== undefined) return v.stringValue as string;
  if (v.boolValue !== undefined) return v.boolValue as boolean;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue as number;
  return '';
}

function attrs(list: unknown): Record<string, Attr> {
  const out: Record<string, Attr> = {};
  for (const kv of (list as Array<{ key: string; value?: Record<string, unknown> }> | undefined) ?? []) out[kv.key] = attrValue(kv.value);
  return out;
}

/** Decodes an ExportTraceServiceRequest (protobuf bytes, or OTLP/JSON text) into one shape. */
export function decodeOtlp(body: Buffer, json: boolean): Omit<OtlpExport, 'path' | 'headers'> {
  let request: any;
  if (json) {
    request = JSON.parse(body.toString());
  } else {
    request = ExportRequest.toObject(ExportRequest.decode(body), { longs: String, defaults: false });
  }
  const rs = request.resourceSpans?.[0];
  const ss = rs?.scopeSpans?.[0];
  const id = (v: unknown): string => (json ? ((v as string | undefined) ?? '') : hex(v as Uint8Array | undefined));
  return {
    resource: attrs(rs?.resource?.attributes),
    scope: { name: ss?.scope?.name ?? '', version: ss?.scope?.version ?? '' },
    spans: (ss?.spans ?? []).map((s: any) => ({
      traceId: id(s.traceId),
      spanId: id(s.spanId),
      parentSpanId: id(s.parentSpanId),
      traceState: s.traceState ?? '',
      flags: s.flags ?? 0,
      name: s.name ?? '',
      kind: s.kind ?? 0,
      startNanos: BigInt(s.startTimeUnixNano ?? 0),
      endNanos: BigInt(s.endTimeUnixNano ?? 0),
      attributes: attrs(s.attributes),
      status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
    })),
  };
}

export interface OtlpCollector {
  port: number;
  address: string;
  exports: OtlpExport[];
  /** Every span received so far with this trace id. */
  spansOf(traceId: string): ReceivedSpan[];
  /** The export request that carried a span of this trace. */
  exportOf(traceId: string): OtlpExport | undefined;
  close(): Promise<void>;
}

export async function startOtlpCollector(): Promise<OtlpCollector> {
  const exports: OtlpExport[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const json = (req.headers['content-type'] ?? '').includes('json');
      try {
        exports.push({ path: req.url!, headers: req.headers, ...decodeOtlp(Buffer.concat(chunks), json) });
        res.writeHead(200, { 'Content-Type': json ? 'application/json' : 'application/x-protobuf' });
        res.end(json ? '{}' : undefined);
      } catch (err) {
        res.writeHead(400);
        res.end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    exports,
    spansOf: (traceId) => exports.flatMap((e) => e.spans.filter((s) => s.traceId === traceId)),
    exportOf: (traceId) => exports.find((e) => e.spans.some((s) => s.traceId === traceId)),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A Zipkin v2 span as received. */
export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  kind?: string;
  timestamp: number;
  duration: number;
  localEndpoint?: { serviceName?: string; ipv4?: string; ipv6?: string; port?: number };
  remoteEndpoint?: { ipv4?: string; ipv6?: string; port?: number } | null;
  tags?: Record<string, string>;
}

export interface ZipkinCollector {
  port: number;
  endpoint: string;
  posts: Array<{ path: string; headers: http.IncomingHttpHeaders; spans: ZipkinSpan[] }>;
  spansOf(traceId: string): ZipkinSpan[];
  close(): Promise<void>;
}

export async function startZipkinCollector(): Promise<ZipkinCollector> {
  const posts: ZipkinCollector['posts'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        posts.push({ path: req.url!, headers: req.headers, spans: JSON.parse(Buffer.concat(chunks).toString()) });
        res.writeHead(202);
      } catch {
        res.writeHead(400);
      }
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}/api/v2/spans`,
    posts,
    spansOf: (traceId) => posts.flatMap((p) => p.spans.filter((s) => s.traceId === traceId)),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
