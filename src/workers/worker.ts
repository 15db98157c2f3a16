// A worker thread: its own listeners (SO_REUSEPORT), its own snapshot, fed change events by the
// main thread. Applying a batch is synchronous, so a request sees the config before or after it.
import { parentPort, workerData } from 'node:worker_threads';
import { ProxyServer } from '../proxy/server.ts';
import { RequestHandler } from '../proxy/handler.ts';
import { Snapshot } from '../snapshot/index.ts';
import { closeAllIdle } from '../upstream/pool.ts';
import { log, setLogLevel } from '../util/log.ts';
import type { MainToWorker, WorkerInit, WorkerToMain } from './protocol.ts';
import { handlerOptions, poolDefaults, serverLimits } from './settings.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (msg: WorkerToMain) => port.postMessage(msg);

setLogLevel(init.config.nginx_config.error_log_level);

function newSnapshot(config: WorkerInit['config']): Snapshot {
  return new Snapshot({
    routerMode: config.apisix.router.http,
    poolDefaults: poolDefaults(config),
    onError: (kind, id, message) => log('error', `failed to apply ${kind} ${id}: ${message}`),
  });
}

const handler = new RequestHandler(newSnapshot(init.config), handlerOptions(init.config));
const server = new ProxyServer(handler, serverLimits(init.config));

port.on('message', (msg: MainToWorker) => {
  switch (msg.type) {
    case 'apply':
      handler.snapshot.apply(msg.events, msg.version);
      post({ type: 'applied', version: msg.version });
      break;
    case 'settings':
      setLogLevel(msg.config.nginx_config.error_log_level);
      Object.assign(handler.options, handlerOptions(msg.config));
      break;
    case 'shutdown':
      server.close(msg.graceMs).then(() => {
        closeAllIdle();
        post({ type: 'stopped' });
        port.close();
      });
      break;
  }
});

// A broken client or upstream must never take the worker down: log and keep serving.
process.on('uncaughtException', (err) => log('error', `uncaught exception in worker ${init.index}: ${err.stack ?? err}`));

server.listen(init.listeners, init.reusePort).then(
  () => post({ type: 'listening', ports: server.ports }),
  (err: Error) => post({ type: 'fatal', message: `failed to listen: ${err.message}` }),
);
