// syslog: sends log entries in batches to a syslog server, as APISIX's syslog plugin (apache/apisix:
// apisix/plugins/syslog.lua, syslog/init.lua and utils/rfc5424.lua). Each entry becomes one RFC 5424
// message, facility SYSLOG and severity INFO, the request's host as HOSTNAME, `apisix` as APP-NAME,
// the process id as PROCID, no MSGID or structured data, and the entry's JSON as MSG:
//
//   <46>1 2026-01-31T12:00:00.123Z example.com apisix 4242 - - {"route_id":"1",...}
//
// Over TCP (`sock_type: tcp`, the default, optionally `tls`) messages end with a newline (RFC 6587
// non-transparent framing) and share one connection per configured instance, kept open while in
// use; over UDP each message is its own datagram (RFC 5426). `timeout` (milliseconds) bounds
// connecting and each write. A message longer than `drop_limit` bytes is dropped.
import net from 'node:net';
import tls from 'node:tls';
import { defineBatchLogger, type LoggerConf, type LogSink } from '../../lib/logger.ts';
import { UdpDestination } from '../../lib/udp.ts';

interface SyslogConf extends LoggerConf {
  host: string;
  port: number;
  flush_limit: number;
  drop_limit: number;
  timeout: number;
  sock_type: 'tcp' | 'udp';
  pool_size: number;
  tls: boolean;
}

/** PRI of facility SYSLOG (5) and severity INFO (6). */
const PRI = 5 * 8 + 6;
/** An idle TCP connection to the server is closed after this long. */
const IDLE_CLOSE_MS = 60_000;

/** One RFC 5424 message (rfc5424.lua `encode`). */
function rfc5424(hostname: string, msg: string): string {
  return `<${PRI}>1 ${new Date().toISOString()} ${hostname || '-'} apisix ${process.pid} - - ${msg}\n`;
}

function udpSink(conf: SyslogConf): LogSink<string> {
  const destination = new UdpDestination(conf.host, conf.port);
  const sendOne = (message: string): Promise<void> => destination.send(Buffer.from(message));
  return {
    async send(messages) {
      const timer = new Promise<never>((_, reject) => {
        const t = setTimeout(() => reject(new Error('timeout')), conf.timeout);
        t.unref();
      });
      try {
        await Promise.race([Promise.all(messages.map(sendOne)), timer]);
      } catch (err) {
        throw new Error(`failed to log message: failed to send data to syslog server host[${conf.host}] port[${conf.port}]: ${(err as Error).message}`);
      }
    },
    close: () => destination.close(),
  };
}

function tcpSink(conf: SyslogConf): LogSink<string> {
  let socket: net.Socket | undefined;
  let connecting: Promise<net.Socket> | undefined;
  let idle: NodeJS.Timeout | undefined;
  const where = `host[${conf.host}] port[${conf.port}]`;

  const drop = (s: net.Socket): void => {
    if (socket === s) socket = undefined;
    s.destroy();
  };

  const connect = (): Promise<net.Socket> => {
    if (socket && !socket.destroyed) return Promise.resolve(socket);
    connecting ??= new Promise<net.Socket>((resolve, reject) => {
      const plain = net.connect({ host: conf.host, port: conf.port });
      const s: net.Socket = conf.tls ? tls.connect({ socket: plain, servername: net.isIP(conf.host) ? undefined : conf.host, rejectUnauthorized: false }) : plain;
      const timer = setTimeout(() => fail(new Error('timeout')), conf.timeout);
      timer.unref();
      const fail = (err: Error): void => {
        clearTimeout(timer);
        connecting = undefined;
        plain.destroy();
        s.destroy();
        reject(new Error(`failed to connect to syslog server ${where}: ${err.message}`));
      };
      s.once('error', fail);
      // The TCP socket under TLS reports its own errors (a refused connection).
      if (s !== plain) plain.on('error', (err) => (socket === s ? drop(s) : fail(err)));
      s.once(conf.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.off('error', fail);
        connecting = undefined;
        s.unref();
        s.setNoDelay(true);
        s.on('error', () => drop(s));
        s.on('close', () => drop(s));
        // The server has nothing to say; reading keeps a server's close from going unnoticed.
        s.resume();
        socket = s;
        resolve(s);
      });
    });
    return connecting;
  };

  const keepIdle = (): void => {
    if (idle) clearTimeout(idle);
    idle = setTimeout(() => {
      idle = undefined;
      if (socket) drop(socket);
    }, IDLE_CLOSE_MS);
    idle.unref();
  };

  return {
    async send(messages) {
      const s = await connect();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          drop(s);
          reject(new Error(`failed to log message: timeout writing to syslog server ${where}`));
        }, conf.timeout);
        timer.unref();
        s.write(messages.join(''), (err) => {
          clearTimeout(timer);
          if (err) {
            drop(s);
            reject(new Error(`failed to log message: ${err.message}`));
          } else {
            resolve();
          }
        });
      });
      keepIdle();
    },
    close() {
      if (idle) clearTimeout(idle);
      idle = undefined;
      if (socket) drop(socket);
    },
  };
}

let lastDropLog = -Infinity;

export default defineBatchLogger<SyslogConf, string>({
  name: 'syslog',
  version: 0.1,
  priority: 401,
  loggerName: 'sys logger',
  properties: {
    host: { type: 'string' },
    port: { type: 'integer' },
    flush_limit: { type: 'integer', minimum: 1, default: 4096 },
    drop_limit: { type: 'integer', default: 1048576 },
    timeout: { type: 'integer', minimum: 1, default: 3000 },
    sock_type: { type: 'string', default: 'tcp', enum: ['tcp', 'udp'] },
    pool_size: { type: 'integer', minimum: 5, default: 5 },
    tls: { type: 'boolean', default: false },
  },
  required: ['host', 'port'],
  encode(entry, ctx, conf) {
    const message = rfc5424(ctx.host, JSON.stringify(entry));
    if (Buffer.byteLength(message) > conf.drop_limit) {
      const now = performance.now();
      if (now - lastDropLog >= 1000) {
        lastDropLog = now;
        ctx.log('error', `syslog: a log message is larger than drop_limit (${conf.drop_limit} bytes): dropped`);
      }
      return undefined;
    }
    return message;
  },
  sink(conf) {
    return conf.sock_type === 'udp' ? udpSink(conf) : tcpSink(conf);
  },
});
