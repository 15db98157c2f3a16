// nginx's stub_status as APISIX's prometheus exporter reports it: connections accepted, handled and
// open, requests in flight, and the total request count, kept in the node's shared metrics memory
// by every worker. `waiting` (open, no request in flight) is worked out at scrape time.
import type { Socket } from 'node:net';
import type { Gauge, MetricsRegistry } from '../plugins/api.ts';

export const CONNECTIONS_HELP = 'Number of HTTP connections';

export class ConnectionMetrics {
  readonly #connections: Gauge;
  readonly #requests: Gauge;

  constructor(registry: MetricsRegistry, prefix: string) {
    this.#connections = registry.gauge(`${prefix}nginx_http_current_connections`, CONNECTIONS_HELP, ['state']);
    this.#requests = registry.gauge(`${prefix}http_requests_total`, 'The total number of client requests since APISIX started', []);
  }

  /** A client connection was accepted (counted once, before any TLS handshake). */
  accepted(socket: Socket): void {
    this.#connections.inc(1, ['accepted']);
    this.#connections.inc(1, ['handled']);
    this.#connections.inc(1, ['active']);
    socket.once('close', () => this.#connections.inc(-1, ['active']));
  }

  /** A request started; it is "writing" until its response is done. */
  request(response: { once(event: 'close', listener: () => void): unknown }): void {
    this.#requests.inc(1);
    this.#connections.inc(1, ['writing']);
    response.once('close', () => this.#connections.inc(-1, ['writing']));
  }
}
