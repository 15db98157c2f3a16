// Log sinks for the logger plugins' tests: real HTTP, TCP, UDP and syslog servers on loopback
// (port 0) that record what the gateway delivers.
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';

export interface HttpDelivery {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json: any;
}

export interface HttpSink {
  port: number;
  url: string;
  /** Every request the sink answered or is holding, in arrival order. */
  deliveries: HttpDelivery[];
  /** Requests that arrived (a hanging sink counts them without answering). */
  received: number;
  connections: number;
  /** How the next request is answered: a status, or 'hang' (never answer). Default 200. */
  respond: (index: number) => number | 'hang';
  close(): Promise<void>;
}

export async function startHttpSink(respond: HttpSink['respond'] = () => 200): Promise<HttpSink> {
  const sink: HttpSink = { port: 0, url: '', deliveries: [], received: 0, connections: 0, respond, close: async () => {} };
  const server = http.createServer((req, res) => {
    const index = sink.received++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const answer = sink.respond(index);
      if (answer === 'hang') return;
      sink.deliveries.push({ method: req.method!, url: req.url!, headers: req.headers, body, json });
      res.writeHead(answer, { 'Content-Type': 'text/plain' });
      res.end(answer >= 400 ? 'sink failure' : 'ok');
    });
  });
  server.on('connection', () => sink.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.port = (server.address() as AddressInfo).port;
  sink.url = `http://127.0.0.1:${sink.port}`;
  sink.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return sink;
}

export interface StreamSink {
  port: number;
  /** Everything each connection sent, once it closed. */
  messages: string[];
  /** Lines received so far over all connections (newline-framed protocols). */
  lines: string[];
  connections: number;
  /** TLS: the server name each connection asked for (SNI), '' for none. */
  servernames: string[];
  close(): Promise<void>;
}

/** A TCP server (TLS with `secure`) recording what each connection sent. */
export async function startTcpSink(secure?: { key: string; cert: string }): Promise<StreamSink> {
  const sink: StreamSink = { port: 0, messages: [], lines: [], connections: 0, servernames: [], close: async () => {} };
  const sockets = new Set<net.Socket>();
  const onSocket = (socket: net.Socket): void => {
    sink.connections++;
    sockets.add(socket);
    if (secure) sink.servernames.push(((socket as tls.TLSSocket).servername as string | false) || '');
    const chunks: Buffer[] = [];
    let pending = '';
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      pending += c.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        sink.lines.push(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    socket.on('end', () => {
      sink.messages.push(Buffer.concat(chunks).toString());
      socket.end();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  };
  const server = secure ? tls.createServer({ key: secure.key, cert: secure.cert }, onSocket) : net.createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.port = (server.address() as AddressInfo).port;
  sink.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return sink;
}

export interface UdpSink {
  port: number;
  datagrams: string[];
  close(): Promise<void>;
}

export async function startUdpSink(): Promise<UdpSink> {
  const socket = dgram.createSocket('udp4');
  const sink: UdpSink = { port: 0, datagrams: [], close: () => new Promise<void>((resolve) => socket.close(() => resolve())) };
  socket.on('message', (msg) => sink.datagrams.push(msg.toString()));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  sink.port = socket.address().port;
  return sink;
}

export interface SyslogMessage {
  pri: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  structuredData: string;
  msg: string;
}

/** Parses one RFC 5424 message (without its trailing newline); undefined when it is not one. */
export function parseRfc5424(line: string): SyslogMessage | undefined {
  const m = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)$/s.exec(line);
  if (!m) return undefined;
  return { pri: Number(m[1]), version: Number(m[2]), timestamp: m[3], hostname: m[4], appName: m[5], procId: m[6], msgId: m[7], structuredData: m[8], msg: m[9] };
}
