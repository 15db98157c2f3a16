// udp-logger: sends log entries in batches to a UDP server as JSON, as APISIX's udp-logger
// (apache/apisix: apisix/plugins/udp-logger.lua): one datagram per batch, holding one JSON object
// when `batch_max_size` is 1, else an array. `timeout` (seconds) bounds each send.
import { defineBatchLogger, jsonBatch, type LoggerConf } from '../../lib/logger.ts';
import { UdpDestination } from '../../lib/udp.ts';

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
    const destination = new UdpDestination(conf.host, conf.port);
    const where = `host[${conf.host}] port[${conf.port}]`;
    return {
      send(entries, batchMaxSize) {
        return new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`failed to send data to UDP server: ${where} err: timeout`)), conf.timeout * 1000);
          timer.unref();
          destination.send(Buffer.from(jsonBatch(entries, batchMaxSize))).then(
            () => {
              clearTimeout(timer);
              resolve();
            },
            (err: Error) => {
              clearTimeout(timer);
              reject(new Error(`failed to send data to UDP server: ${where} err: ${err.message}`));
            },
          );
        });
      },
      close: () => destination.close(),
    };
  },
});
