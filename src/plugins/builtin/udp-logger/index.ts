// udp-logger: sends log entries in batches to a UDP server as JSON, as APISIX's udp-logger
// (apache/apisix: apisix/plugins/udp-logger.lua): one datagram per batch, holding one JSON object
// when `batch_max_size` is 1, else an array. `timeout` (seconds) bounds each send.
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { defineBatchLogger, jsonBatch, type LoggerConf } from '../../lib/logger.ts';

interface UdpLoggerConf extends LoggerConf {
  host: string;
  port: number;
  timeout: number;
}

export default defineBatchLogger<UdpLoggerConf>({
  name: 'udp-logger',
  version: 0.1,
  priority: 400,
  loggerName: 'udp logger',
  properties: {
    host: { type: 'string' },
    port: { type: 'integer', minimum: 0 },
    timeout: { type: 'integer', minimum: 1, default: 3 },
  },
  required: ['host', 'port'],
  sink(conf) {
    // One socket per configured instance, opened on first use and unreferenced (it never keeps a
    // worker alive); closed when the instance is dropped.
    let socket: dgram.Socket | undefined;
    const open = (): dgram.Socket => {
      if (socket) return socket;
      const s = dgram.createSocket(isIPv6(conf.host) ? 'udp6' : 'udp4');
      s.on('error', () => {
        if (socket === s) socket = undefined;
        try {
          s.close();
        } catch {
          // already closed
        }
      });
      s.unref();
      return (socket = s);
    };
    const where = `host[${conf.host}] port[${conf.port}]`;
    return {
      send(entries, batchMaxSize) {
        const data = Buffer.from(jsonBatch(entries, batchMaxSize));
        return new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`failed to send data to UDP server: ${where} err: timeout`)), conf.timeout * 1000);
          timer.unref();
          open().send(data, conf.port, conf.host, (err) => {
            clearTimeout(timer);
            if (err) reject(new Error(`failed to send data to UDP server: ${where} err: ${err.message}`));
            else resolve();
          });
        });
      },
      close() {
        socket?.close();
        socket = undefined;
      },
    };
  },
});
