// nginx's stub_status as APISIX's prometheus exporter reports it: connections accepted, handled and
// open, requests in flight, and the total request count, kept in the node's shared metrics memory
// by every worker. `waiting` (open, no request in flight) is worked out at scrape time.
import type { Socket } from 'node:net';
import type { Gauge, MetricsRegistry } from '../plugins/api.ts';

export const CONNECTIONS_HELP = 'Number of HTTP connections';

type Series = ReturnType<Gauge['labels']>;

export class ConnectionMetrics {
  readonly #accepted: Series;
  readonly #handled: Series;
  readonly #active: Series;
  readonly #writing: Series;
  readonly #requests: Series;
  /** Shared listeners: registering them allocates nothing per connection or request. */
  readonly #connectionClosed = (): void => this.#active.inc(-1);
  readonly #responseClosed = (): void => this.#writing.inc(-1);

  constructor(registry: MetricsRegistry, prefix: string) {
    const connections = registry.gauge(`${prefix}nginx_http_current_connections`, CONNECTIONS_HELP, ['state']);
    this.#accepted = connections.labels(['accepted']);
    this.#handled = connections.labels(['handled']);
    this.#active = connections.labels(['active']);
    this.#writing = connections.labels(['writing']);
    this.#requests = registry.gauge(`${prefix}http_requests_total`, 'The total number of client requests since APISIX started', []).labels([]);
  }

  /** A client connection was accepted (counted once, before any TLS handshake). */
  accepted(socket: Socket): void {
    this.#accepted.inc(1);
    this.#handled.inc(1);
    this.#active.inc(1);
    socket.on('close', this.#connectionClosed);
  }

  /** A request started; it is "writing" until its response is done. */
  request(response: { on(event: 'close', listener: () => void): unknown }): void {
    this.#requests.inc(1);
    this.#writing.inc(1);
    response.on('close', this.#responseClosed);
  }
}
