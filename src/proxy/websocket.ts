// WebSocket proxying for routes with `enable_websocket` (APISIX sets nginx's `Upgrade` and
// `Connection: upgrade` for them): the upgrade request goes to a node on a connection of its own,
// and from then on bytes flow both ways untouched until either side closes. The node's answer
// (`101 Switching Protocols`, or a refusal) reaches the client as the node sent it.
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { CompiledUpstream, TimeoutsMs } from '../snapshot/types.ts';
import type { RequestContext } from './context.ts';
import type { ForwardSettings } from './forward.ts';
import { upstreamRequestHeaders } from './headers.ts';

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
  const servername = upstream.upstreamHost ?? (net.isIP(node.host) ? undefined : node.host);
  const socket: Socket = upstream.tls
    ? tls.connect({ host: node.host, port: node.port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
    : net.connect({ host: node.host, port: node.port });
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
    socket.write(requestHead(ctx, upstream, node.host, node.port, settings));
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

/** The upgrade request as the node gets it: the proxy's usual headers, plus the upgrade itself. */
function requestHead(ctx: RequestContext, upstream: CompiledUpstream, nodeHost: string, nodePort: number, settings: ForwardSettings): string {
  const req = ctx.req;
  const nodeAuthority = nodeHost.includes(':') ? `[${nodeHost}]:${nodePort}` : `${nodeHost}:${nodePort}`;
  const host =
    upstream.passHost === 'pass' ? (ctx.upstreamHost ?? (ctx.hostHeader || nodeAuthority)) : upstream.passHost === 'node' ? nodeAuthority : upstream.upstreamHost!;
  let head = `${ctx.upstreamMethod} ${ctx.upstreamUri} HTTP/1.1\r\n`;
  head += upstreamRequestHeaders(req.rawHeaders, req.headers, host, {
    remoteAddr: ctx.remoteAddr,
    scheme: ctx.listener.scheme,
    host: ctx.host || nodeHost,
    port: ctx.listener.port,
    trusted: settings.trustedAddresses,
  }, ctx.headerEdits);
  return `${head}Upgrade: ${req.headers.upgrade}\r\nConnection: upgrade\r\n\r\n`;
}
