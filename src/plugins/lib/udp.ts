// A UDP destination for log plugins: one socket per configured instance, opened on first use and
// unreferenced (it never keeps a worker alive), reopened after an error, closed with the instance.
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';

export class UdpDestination {
  readonly host: string;
  readonly port: number;
  #socket: dgram.Socket | undefined;

  constructor(host: string, port: number) {
    this.host = host;
    this.port = port;
  }

  /** Sends one datagram; rejects with the socket's error. */
  send(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#open().send(data, this.port, this.host, (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
  }

  #open(): dgram.Socket {
    if (this.#socket) return this.#socket;
    const socket = dgram.createSocket(isIPv6(this.host) ? 'udp6' : 'udp4');
    socket.on('error', () => {
      if (this.#socket === socket) this.#socket = undefined;
      try {
        socket.close();
      } catch {
        // already closed
      }
    });
    socket.unref();
    return (this.#socket = socket);
  }
}
