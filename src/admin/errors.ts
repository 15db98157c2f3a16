// Admin API replies and errors. Every handler returns an AdminReply; code deep in a handler may
// throw an AdminError instead (store failures, refused input), which the dispatcher turns into
// the same reply. Bodies mirror APISIX byte for byte where clients may depend on them.
import { StoreConflictError, StoreUnavailableError } from '../store/types.ts';

export interface AdminReply {
  status: number;
  /** An object is sent as JSON; a string as is (APISIX sends a few plain-text bodies); undefined = empty. */
  body?: unknown;
  headers?: Record<string, string>;
}

export class AdminError extends Error {
  override name = 'AdminError';
  readonly reply: AdminReply;
  constructor(reply: AdminReply) {
    super(typeof reply.body === 'object' && reply.body !== null ? JSON.stringify(reply.body) : String(reply.body));
    this.reply = reply;
  }
}

export function reply(status: number, body?: unknown): AdminReply {
  return { status, body };
}

/** `{"error_msg": msg}` with a status. */
export function errorReply(status: number, msg: string): AdminReply {
  return { status, body: { error_msg: msg } };
}

/** 400 `{"error_msg": msg}`, the usual answer to a refused write. */
export function badRequest(msg: string): AdminReply {
  return errorReply(400, msg);
}

/** APISIX's (etcd's) answer for a missing key: note `message`, not `error_msg`. */
export const KEY_NOT_FOUND: AdminReply = { status: 404, body: { message: 'Key not found' } };

export function fail(status: number, msg: string): never {
  throw new AdminError(errorReply(status, msg));
}

/** Maps an error thrown by the config store to APISIX's 503 `{"error_msg": ...}`. */
export function storeFailure(err: unknown): AdminError {
  if (err instanceof AdminError) return err;
  if (err instanceof StoreConflictError) return new AdminError(errorReply(503, 'value changed before overwritten'));
  if (err instanceof StoreUnavailableError) return new AdminError(errorReply(503, err.message || 'store unavailable'));
  return new AdminError(errorReply(503, err instanceof Error ? err.message : String(err)));
}
