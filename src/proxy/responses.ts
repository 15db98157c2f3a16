// Responses the gateway writes itself, byte-compatible with APISIX where clients may depend on them.
import { STATUS_CODES, type ServerResponse } from 'node:http';

export const SERVER_TOKEN = 'Causeway';

/** nginx's own wording in its stock error pages, where it differs from the usual reason phrase. */
const NGINX_TITLES: Record<number, string> = {
  302: 'Found',
  401: 'Authorization Required',
  405: 'Not Allowed',
  408: 'Request Time-out',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Large',
  416: 'Requested Range Not Satisfiable',
  494: 'Request Header Too Large',
  503: 'Service Temporarily Unavailable',
  504: 'Gateway Time-out',
};

/** nginx-style HTML error page that APISIX serves for gateway-generated 4xx/5xx. */
export function htmlErrorPage(status: number): string {
  const title = `${status} ${NGINX_TITLES[status] ?? STATUS_CODES[status] ?? 'Error'}`;
  return `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n<hr><center>${SERVER_TOKEN}</center>\r\n</body>\r\n</html>\r\n`;
}

/** nginx writes its stock HTML page for redirects and errors that have no body of their own. */
export function hasStockPage(status: number): boolean {
  return status >= 400 || status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/**
 * The body and type of a response the gateway makes itself, as APISIX's `core.response.exit` makes
 * them: no body gives nginx's stock page (redirects and errors), a string is sent as is, and any
 * other value is JSON with a trailing newline, under nginx's default type (text/plain).
 */
export function gatewayBody(status: number, body: string | Buffer | object | undefined): { bytes: Buffer; type: string } {
  if (body === undefined) return { bytes: Buffer.from(hasStockPage(status) ? htmlErrorPage(status) : ''), type: 'text/html; charset=utf-8' };
  if (typeof body === 'string') return { bytes: Buffer.from(body), type: 'text/plain; charset=utf-8' };
  if (Buffer.isBuffer(body)) return { bytes: body, type: 'text/plain; charset=utf-8' };
  return { bytes: Buffer.from(JSON.stringify(body) + '\n'), type: 'text/plain; charset=utf-8' };
}

/** Ends a response with a status and body (see gatewayBody), when no plugin runs for the request. */
export function sendStatus(res: ServerResponse, status: number, body?: string | object, headers?: Record<string, string>, server?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { bytes, type } = gatewayBody(status, body);
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', bytes.length);
  if (server) res.setHeader('Server', server);
  if (headers) for (const k in headers) res.setHeader(k, headers[k]);
  res.end(res.req.method === 'HEAD' ? undefined : bytes);
}

export const ROUTE_NOT_FOUND = { error_msg: '404 Route Not Found' };
