// The main thread's health checkers: one per upstream in use, for the whole node. A worker reports
// the first request an upstream with `checks` serves (APISIX creates a checker only then); the
// checker is named after where the upstream lives (`upstreams/1`, or `routes/1` and `services/1` for
// inline upstreams) and follows that resource: a change that leaves the upstream as it was (a
// route's plugins, say) changes nothing; a changed upstream updates its checker in place, and its
// nodes still present keep their state; a deleted resource, or one whose upstream lost its `checks`
// or is down to one node, stops its checker.
import type { ChangeEvent, ServedKind, Upstream } from '../model/index.ts';
import type { HealthTable } from '../shm/health.ts';
import { upstreamNodes } from '../snapshot/upstream.ts';
import { ActiveChecker, healthSettings, healthTargets, type TargetReport } from '../upstream/health/index.ts';
import { log } from '../util/log.ts';

export type HealthSourceKind = 'routes' | 'services' | 'upstreams';
const KINDS: ReadonlySet<string> = new Set<HealthSourceKind>(['routes', 'services', 'upstreams']);

export interface HealthCheckOptions {
  table: HealthTable;
  /** The resources this node serves now, by kind and id. */
  resources: (kind: ServedKind) => ReadonlyMap<string, object> | undefined;
  /** CA certificates for `https` probes (apisix.ssl.ssl_trusted_certificate). */
  ca?: string;
}

interface Running {
  checker: ActiveChecker;
  /** The upstream conf the checker was made from, serialised, to tell a real change. */
  conf: string;
}

/** The upstream a resource serves through its own `checks`: an upstream, or a route's or service's inline upstream (when no `upstream_id` replaces it). */
export function upstreamOf(kind: HealthSourceKind, value: object | undefined): Upstream | undefined {
  if (!value) return undefined;
  if (kind === 'upstreams') return value as Upstream;
  const holder = value as { upstream?: Upstream; upstream_id?: unknown };
  return holder.upstream_id === undefined ? holder.upstream : undefined;
}

export class HealthChecks {
  readonly #checkers = new Map<string, Running>();
  readonly #options: HealthCheckOptions;

  constructor(options: HealthCheckOptions) {
    this.#options = options;
  }

  /** A worker served a request through the upstream `name`: start its checker if it has none. */
  used(name: string): void {
    if (this.#checkers.has(name)) return;
    const slash = name.indexOf('/');
    const kind = name.slice(0, slash);
    if (!KINDS.has(kind)) return;
    const id = name.slice(slash + 1);
    const up = upstreamOf(kind as HealthSourceKind, this.#options.resources(kind as ServedKind)?.get(id));
    if (!eligible(up)) return;
    const settings = healthSettings(up.checks!);
    const { targets } = healthTargets(upstreamNodes(up), settings, up.pass_host, up.upstream_host);
    const checker = new ActiveChecker(name, settings, targets, this.#options.table, {
      ca: this.#options.ca,
      onChange: (checkerName, target, state, why) => log('warn', `[healthcheck] (${checkerName}) ${target.hostname}(${target.ip}:${target.port}) is ${state} after ${why}`),
    });
    this.#checkers.set(name, { checker, conf: JSON.stringify(up) });
    log('info', `[healthcheck] checker started for ${name} (${targets.length} targets)`);
  }

  /** Follows config changes for the resources that have a checker. */
  apply(events: readonly ChangeEvent[]): void {
    for (const ev of events) {
      if (!KINDS.has(ev.kind)) continue;
      const name = `${ev.kind}/${ev.id}`;
      const running = this.#checkers.get(name);
      if (!running) continue;
      const up = upstreamOf(ev.kind as HealthSourceKind, ev.value);
      if (!eligible(up)) {
        this.#stop(name, running);
        continue;
      }
      const conf = JSON.stringify(up);
      if (conf === running.conf) continue;
      const settings = healthSettings(up.checks!);
      running.checker.update(settings, healthTargets(upstreamNodes(up), settings, up.pass_host, up.upstream_host).targets);
      running.conf = conf;
    }
  }

  /** The checker's targets for the Control API; undefined when `kind/id` has no checker (yet). */
  nodes(kind: HealthSourceKind, id: string): TargetReport[] | undefined {
    return this.#checkers.get(`${kind}/${id}`)?.checker.report();
  }

  /** Every running checker's targets (prometheus' `upstream_status`). */
  reports(): Array<{ name: string; nodes: TargetReport[] }> {
    return [...this.#checkers].map(([name, running]) => ({ name, nodes: running.checker.report() }));
  }

  stop(): void {
    for (const [name, running] of this.#checkers) this.#stop(name, running);
  }

  #stop(name: string, running: Running): void {
    running.checker.stop();
    this.#checkers.delete(name);
    log('info', `[healthcheck] checker stopped for ${name}`);
  }
}

/** An upstream gets a checker with `checks` and more than one node (APISIX always uses a lone node). */
function eligible(up: Upstream | undefined): up is Upstream {
  return up !== undefined && up.checks !== undefined && upstreamNodes(up).length > 1;
}
