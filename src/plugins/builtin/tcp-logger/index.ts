// tcp-logger: sends log entries in batches to a TCP server as JSON, as APISIX's tcp-logger
// (apache/apisix: apisix/plugins/tcp-logger.lua). Each batch goes over its own connection, which is
// closed once the batch is written: one JSON object when `batch_max_size` is 1, else an array.
// `tls` wraps the connection in TLS without verifying the server's certificate, as APISIX does;
// `tls_options` is the server name sent in the handshake (the argument APISIX passes it as).
// `timeout` (milliseconds) bounds connecting, the handshake and the write.
import net from 'node:net';
import tls from 'node:tls';
import { defineBatchLogger, jsonBatch, type LoggerConf } from '../../lib/logger.ts';

interface TcpLoggerConf extends LoggerConf {
  host: string;
  port: number;
  tls: boolean;
  tls_options?: string;
  timeout: number;
}

/** Writes `data` over a new connection and closes it; rejects with APISIX's wording. */
function sendOverTcp(conf: { host: string; port: number; tls: boolean; servername?: string; timeoutMs: number }, data: string): Promise<void> {
  const where = `host[${conf.host}] port[${conf.port}]`;
  return new Promise<void>((resolve, reject) => {
    let stage: 'connect' | 'handshake' | 'send' = 'connect';
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        socket.destroy();
        const what = stage === 'connect' ? 'failed to connect to TCP server' : stage === 'handshake' ? 'failed to perform TLS handshake to TCP server' : 'failed to send data to TCP server';
        reject(new Error(`${what}: ${where} err: ${err.message}`));
      } else {
        resolve();
      }
    };
    const socket = net.connect({ host: conf.host, port: conf.port });
    const write = (out: net.Socket): void => {
      stage = 'send';
      // Resolved once the data is handed to the kernel; the connection then closes on its own.
      out.end(data, () => finish());
    };
    socket.once('connect', () => {
      if (!conf.tls) {
        write(socket);
        return;
      }
      stage = 'handshake';
      const servername = conf.servername ?? (net.isIP(conf.host) ? undefined : conf.host);
      const secure = tls.connect({ socket, servername, rejectUnauthorized: false });
      secure.once('secureConnect', () => write(secure));
      secure.on('error', (err) => finish(err));
      secure.on('close', () => socket.destroy());
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new Error('connection closed')));
    const timer = setTimeout(() => finish(new Error('timeout')), conf.timeoutMs);
    timer.unref();
  });
}

export default defineBatchLogger<TcpLoggerConf>({
  name: 'tcp-logger',
  version: 0.1,
  priority: 405,
  loggerName: 'tcp logger',
  properties: {
    host: { type: 'string' },
    port: { type: 'integer', minimum: 0 },
    tls: { type: 'boolean', default: false },
    tls_options: { type: 'string' },
    timeout: { type: 'integer', minimum: 1, default: 1000 },
  },
  required: ['host', 'port'],
  sink(conf) {
    const target = { host: conf.host, port: conf.port, tls: conf.tls, servername: conf.tls_options, timeoutMs: conf.timeout };
    return { send: (entries, batchMaxSize) => sendOverTcp(target, jsonBatch(entries, batchMaxSize)) };
  },
});
