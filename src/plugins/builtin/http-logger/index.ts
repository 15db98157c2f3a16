// http-logger: sends log entries in batches to an HTTP(S) server as JSON, as APISIX's http-logger
// (apache/apisix: apisix/plugins/http-logger.lua). Each batch is one POST on its own connection:
// `concat_method: json` sends one object (`batch_max_size: 1`) or an array, `new_line` one JSON
// object per line. A status of 400 or more, a connection error or `timeout` seconds without an
// answer fail the batch (the batch processor retries or drops it).
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { defineBatchLogger, jsonBatch, type LoggerConf } from '../../lib/logger.ts';

interface HttpLoggerConf extends LoggerConf {
  uri: string;
  auth_header?: string;
  timeout: number;
  concat_method: 'json' | 'new_line';
  ssl_verify: boolean;
}

/** Most of an error answer kept for the error log. */
const MAX_ERROR_BODY = 4096;

export default defineBatchLogger<HttpLoggerConf>({
  name: 'http-logger',
  version: 0.1,
  priority: 410,
  loggerName: 'http logger',
  properties: {
    // core.schema.uri_def
    uri: { type: 'string', pattern: '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?' },
    auth_header: { type: 'string' },
    timeout: { type: 'integer', minimum: 1, default: 3 },
    concat_method: { type: 'string', default: 'json', enum: ['json', 'new_line'] },
    ssl_verify: { type: 'boolean', default: false },
  },
  required: ['uri'],
  encode(entry) {
    if (entry.route_id === undefined) entry.route_id = 'no-matched';
    return entry;
  },
  sink(conf) {
    const url = new URL(conf.uri);
    const tls = url.protocol === 'https:';
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port ? Number(url.port) : tls ? 443 : 80;
    const path = (url.pathname || '/') + url.search;
    const where = `host[${host}] port[${port}]`;
    const contentType = conf.concat_method === 'json' ? 'application/json' : 'text/plain';
    return {
      send(entries, batchMaxSize) {
        const body = conf.concat_method === 'new_line' && batchMaxSize !== 1 ? entries.map((e) => JSON.stringify(e)).join('\n') : jsonBatch(entries, batchMaxSize);
        const headers: http.OutgoingHttpHeaders = { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) };
        if (conf.auth_header) headers.Authorization = conf.auth_header;
        return new Promise<void>((resolve, reject) => {
          let done = false;
          const finish = (err?: Error): void => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            if (err) {
              req.destroy();
              reject(err);
            } else {
              resolve();
            }
          };
          const options: https.RequestOptions = { host, port, path, method: 'POST', headers, agent: false };
          if (tls) {
            options.rejectUnauthorized = conf.ssl_verify;
            if (!isIP(host)) options.servername = host;
          }
          const req = (tls ? https : http).request(options, (res) => {
            const status = res.statusCode ?? 0;
            const chunks: Buffer[] = [];
            let size = 0;
            res.on('data', (c: Buffer) => {
              if (size < MAX_ERROR_BODY) chunks.push(c);
              size += c.length;
            });
            res.on('end', () => {
              if (status >= 400) finish(new Error(`server returned status code[${status}] ${where} body[${Buffer.concat(chunks).toString('utf8', 0, MAX_ERROR_BODY)}]`));
              else finish();
            });
            res.on('error', (err) => finish(new Error(`error while sending data to [${host}] port[${port}] ${err.message}`)));
          });
          let connected = false;
          req.on('socket', (socket) => socket.once(tls ? 'secureConnect' : 'connect', () => (connected = true)));
          req.on('error', (err) => {
            finish(new Error(connected ? `error while sending data to [${host}] port[${port}] ${err.message}` : `failed to connect to ${where} ${err.message}`));
          });
          // `timeout` bounds the whole exchange: a sink that accepts and never answers fails the batch.
          const timer = setTimeout(() => finish(new Error(`error while sending data to [${host}] port[${port}] timeout`)), conf.timeout * 1000);
          timer.unref();
          req.end(body);
        });
      },
    };
  },
});
