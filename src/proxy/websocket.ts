// WebSocket proxying for routes with `enable_websocket` (APISIX sets nginx's `Upgrade` and
// `Connection: upgrade` for them): the upgrade request goes to a node on a connection of its own,
// and from then on bytes flow both ways untouched until either side closes. The node's answer
// (`101 Switching Protocols`, or a refusal) reaches the client as the node sent it.
import type { Socket } from 'node:net';
import type { CompiledUpstream, TimeoutsMs } from '../snapshot/types.ts';
import { connectToNode } from '../upstream/connection.ts';
import type { RequestContext } from './context.ts';
import { upstreamRequestHead, type ForwardSettings } from './forward.ts';

/** Opens the tunnel; `onFailed` answers the client when the node cannot be reached. */
export function openWebSocketTunnel(
  ctx: RequestContext,
  client: Socket,
  head: Buffer,
  upstream: CompiledUpstream,
  timeouts: TimeoutsMs,
  settings: ForwardSettings,
  onFailed: (status: number, reason: string) => void,
): void {
  const node = upstream.balancer.pick(ctx, undefined);
  if (!node) {
    onFailed(502, 'failed to find valid upstream server, no valid upstream node');
    return;
  }
  ctx.balancerIp = node.host;
  ctx.balancerPort = node.port;
  // The node pool's target: the same server name, client certificate and verification as requests get.
  const socket = connectToNode(upstream.pools.get(node.key)!.target);
  let connected = false;
  socket.setTimeout(timeouts.connect, () => {
    if (connected) return;
    socket.destroy();
    onFailed(504, 'upstream connect timed out');
  });
  socket.once('error', (err) => {
    if (connected) {
      client.destroy();
      return;
    }
    onFailed(502, `upstream error: ${err.message}`);
  });
  socket.once(upstream.tls ? 'secureConnect' : 'connect', () => {
    connected = true;
    socket.setNoDelay(true);
    socket.write(`${upstreamRequestHead(ctx, upstream, node, settings)}Upgrade: ${ctx.req.headers.upgrade}\r\nConnection: upgrade\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    // Idle both ways for the read timeout: closed, as nginx's proxy_read_timeout closes a quiet tunnel.
    const idle = (): void => {
      socket.destroy();
      client.destroy();
    };
    socket.setTimeout(timeouts.read, idle);
    client.setTimeout(timeouts.read, idle);
    socket.pipe(client);
    client.pipe(socket);
    socket.once('close', () => client.destroy());
    client.once('close', () => socket.destroy());
    client.once('error', () => socket.destroy());
  });
}
