// Active health checks: one checker per upstream for the whole gateway, run by the main thread (not
// one per worker: the probes and the state they lead to are the same for every worker). It probes
// its healthy targets every `healthy.interval` and its unhealthy ones every `unhealthy.interval`
// (the first round one interval after the start, as lua-resty-healthcheck), at most `concurrency`
// at a time, and counts the results in the node-wide health table.
//
// A probe (lua-resty-healthcheck's `run_single_check`): connect (TLS for `https`, checking the
// certificate unless `https_verify_certificate: false`); for `tcp` a connection is a success. For
// `http`/`https`: `<method> <http_path> HTTP/1.1`, `Connection: close`, `req_headers`, `Host`, and
// `http_req_body` with its Content-Length; the status line decides. A refused or broken connection
// or a failed handshake counts as a TCP failure, a quiet socket for `timeout` seconds as a timeout, a
// status line that cannot be read as an HTTP failure.
import net from 'node:net';
import tls from 'node:tls';
import { HTTP_FAILURE, STATE_NAMES, SUCCESS, TCP_FAILURE, TIMEOUT_FAILURE, isUp, type HealthTable, type SlotRef, type TargetStatus } from '../../shm/health.ts';
import { log } from '../../util/log.ts';
import { classifyStatus, STATUS_HEALTHY, STATUS_UNHEALTHY, targetKey, type ActiveSettings, type HealthSettings, type HealthTarget } from './config.ts';

/** What one probe came to: a connection (tcp checks), an HTTP status (0: unreadable), a failed connection, a timeout. */
export type ProbeOutcome = 'connected' | number | 'tcp' | 'timeout';

export interface CheckerOptions {
  /** CA certificates (PEM) for `https` probes (apisix.ssl.ssl_trusted_certificate); Node's store when undefined. */
  ca?: string;
  /** A target changed state. */
  onChange?: (name: string, target: HealthTarget, state: string, why: string) => void;
}

/** One node of `/v1/healthcheck` (lua-resty-healthcheck's `get_target_list`). */
export interface TargetReport {
  ip: string;
  port: number;
  hostname: string;
  hostheader?: string;
  status: TargetStatus['state'];
  counter: { success: number; http_failure: number; tcp_failure: number; timeout_failure: number };
}

interface Tracked {
  target: HealthTarget;
  ref: SlotRef;
}

const COUNTER_NAMES = ['success', 'http_failure', 'tcp_failure', 'timeout_failure'];

export class ActiveChecker {
  readonly name: string;
  #settings: HealthSettings;
  #targets: Tracked[] = [];
  readonly #table: HealthTable;
  readonly #options: CheckerOptions;
  #timers: NodeJS.Timeout[] = [];
  readonly #running = { healthy: false, unhealthy: false };
  readonly #sockets = new Set<net.Socket>();
  #stopped = false;

  constructor(name: string, settings: HealthSettings, targets: readonly HealthTarget[], table: HealthTable, options: CheckerOptions = {}) {
    this.name = name;
    this.#settings = settings;
    this.#table = table;
    this.#options = options;
    this.#setTargets(targets);
    this.#schedule();
  }

  get settings(): HealthSettings {
    return this.#settings;
  }

  /**
   * New settings or nodes for the same upstream: targets still present keep their state and
   * counters, removed ones are dropped, new ones start healthy.
   */
  update(settings: HealthSettings, targets: readonly HealthTarget[]): void {
    this.#settings = settings;
    this.#setTargets(targets);
    this.#schedule();
  }

  /** Stops probing and forgets the targets' state. */
  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    for (const socket of this.#sockets) socket.destroy();
    for (const t of this.#targets) this.#table.remove(t.ref);
    this.#targets = [];
  }

  /** The targets with their state and counters, in node order. */
  report(): TargetReport[] {
    const out: TargetReport[] = [];
    for (const { target, ref } of this.#targets) {
      const s = this.#table.status(ref);
      if (!s) continue;
      out.push({
        ip: target.ip,
        port: target.port,
        hostname: target.hostname,
        ...(target.hostheader ? { hostheader: target.hostheader } : {}),
        status: s.state,
        counter: { success: s.success, http_failure: s.http_failure, tcp_failure: s.tcp_failure, timeout_failure: s.timeout_failure },
      });
    }
    return out;
  }

  #setTargets(targets: readonly HealthTarget[]): void {
    const keep = new Map<string, Tracked>();
    for (const t of this.#targets) keep.set(t.target.id, t);
    const next: Tracked[] = [];
    for (const target of targets) {
      const old = keep.get(target.id);
      if (old) {
        keep.delete(target.id);
        next.push({ target, ref: old.ref });
        continue;
      }
      const ref = this.#table.add(targetKey(this.name, target));
      if (ref) next.push({ target, ref });
      else log('error', `[healthcheck] (${this.name}) no room in the health table for ${target.ip}:${target.port}; it is not checked and counts as healthy`);
    }
    for (const gone of keep.values()) this.#table.remove(gone.ref);
    this.#targets = next;
  }

  #schedule(): void {
    for (const timer of this.#timers) clearInterval(timer);
    const a = this.#settings.active;
    this.#timers = [
      setInterval(() => void this.#round('healthy'), a.healthyIntervalMs),
      setInterval(() => void this.#round('unhealthy'), a.unhealthyIntervalMs),
    ];
    for (const timer of this.#timers) timer.unref();
  }

  /** Probes the targets in `mode`'s states; a round still running when the next is due is not doubled. */
  async #round(mode: 'healthy' | 'unhealthy'): Promise<void> {
    if (this.#running[mode] || this.#stopped) return;
    const due = this.#targets.filter((t) => {
      const state = this.#table.state(t.ref);
      return state !== 0 && isUp(state) === (mode === 'healthy');
    });
    if (due.length === 0) return;
    this.#running[mode] = true;
    try {
      const settings = this.#settings.active;
      let next = 0;
      const worker = async () => {
        while (next < due.length && !this.#stopped) {
          const t = due[next++];
          const outcome = await probe(t.target, settings, this.#options.ca, this.#sockets);
          if (!this.#stopped) this.#count(t, outcome, settings);
        }
      };
      await Promise.all(Array.from({ length: Math.min(settings.concurrency, due.length) }, worker));
    } finally {
      this.#running[mode] = false;
    }
  }

  #count(t: Tracked, outcome: ProbeOutcome, a: ActiveSettings): void {
    let counter: number;
    let limit: number;
    if (outcome === 'connected') [counter, limit] = [SUCCESS, a.successes];
    else if (outcome === 'tcp') [counter, limit] = [TCP_FAILURE, a.tcpFailures];
    else if (outcome === 'timeout') [counter, limit] = [TIMEOUT_FAILURE, a.timeouts];
    else {
      const kind = classifyStatus(a.statuses, outcome);
      if (kind === STATUS_HEALTHY) [counter, limit] = [SUCCESS, a.successes];
      else if (kind === STATUS_UNHEALTHY) [counter, limit] = [HTTP_FAILURE, a.httpFailures];
      else return;
    }
    const changed = this.#table.report(t.ref, counter, limit);
    if (changed) this.#options.onChange?.(this.name, t.target, STATE_NAMES[changed], `active check: ${COUNTER_NAMES[counter]}${typeof outcome === 'number' ? ` (status ${outcome})` : ''}`);
  }
}

function bracket(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** One probe of `target`; never rejects. */
export function probe(target: HealthTarget, a: ActiveSettings, ca: string | undefined, sockets?: Set<net.Socket>): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let done = false;
    let socket: net.Socket;
    const finish = (outcome: ProbeOutcome) => {
      if (done) return;
      done = true;
      sockets?.delete(socket);
      socket.destroy();
      resolve(outcome);
    };
    const host = target.hostheader ?? target.hostname;
    if (a.type === 'https') {
      const servername = net.isIP(host) ? undefined : host;
      socket = tls.connect({ host: target.ip, port: target.port, servername, rejectUnauthorized: a.httpsVerifyCertificate, ca, ALPNProtocols: ['http/1.1'] });
    } else {
      socket = net.connect({ host: target.ip, port: target.port });
    }
    sockets?.add(socket);
    socket.setTimeout(a.timeoutMs, () => finish('timeout'));
    socket.on('error', () => finish('tcp'));
    socket.on('close', () => finish('tcp'));
    socket.once(a.type === 'https' ? 'secureConnect' : 'connect', () => {
      if (a.type === 'tcp') {
        finish('connected');
        return;
      }
      let head = `${a.httpMethod} ${a.httpPath} HTTP/1.1\r\nConnection: close\r\n${a.reqHeaders}Host: ${bracket(host)}\r\n`;
      if (a.httpReqBody.length > 0) head += `Content-Length: ${Buffer.byteLength(a.httpReqBody)}\r\n`;
      socket.write(head + '\r\n' + a.httpReqBody);
      let received = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        received += chunk;
        const eol = received.indexOf('\r\n');
        if (eol === -1 && received.length < 8192) return;
        const match = /^HTTP\/\d+\.\d+\s+(\d+)/i.exec(eol === -1 ? received : received.slice(0, eol));
        finish(match ? Number(match[1]) : 0);
      });
    });
  });
}
