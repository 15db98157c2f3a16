// The worker side of health checks: each upstream with `checks` (and more than one node) gets a
// HealthView over the node-wide health table and a HealthBalancer around its balancer.
//
// The balancer skips unhealthy nodes by handing them to the inner balancer as already tried, which
// every balancer type and the priority tiers honour: roundrobin leaves them out of the round, chash
// walks the ring past their points (the keys they would get go where a ring without them sends
// them), least_conn and ewma do not consider them, and a tier whose nodes are all unhealthy gives
// way to the next. When no node that can take traffic is healthy, every node is used, as APISIX's
// `fetch_health_nodes` does ("all upstream nodes is unhealthy, use default").
//
// The set of unhealthy nodes is recomputed only when the table's generation moved, so a pick costs
// one atomic read while nothing changes. Upstreams without `checks` have no view and pay nothing.
import { healthMemory, isUp, HTTP_FAILURE, STATE_NAMES, SUCCESS, TCP_FAILURE, TIMEOUT_FAILURE, type HealthTable, type SlotRef } from '../../shm/health.ts';
import { log } from '../../util/log.ts';
import type { Balancer, PickContext, UpstreamNode } from '../balancer/types.ts';
import { classifyStatus, healthTargets, STATUS_HEALTHY, STATUS_UNHEALTHY, targetKey, type HealthSettings, type HealthTarget } from './config.ts';

/** What one try on a node came to: the node's HTTP status, a failed connection, or a timeout. */
export type PassiveOutcome = number | 'tcp' | 'timeout';

let onFirstUse: ((name: string) => void) | undefined;

/**
 * Called (once per compiled upstream) when an upstream with checks serves its first request: the
 * main thread then starts its checker, as APISIX creates a checker only for upstreams in use.
 */
export function setHealthNotifier(fn: ((name: string) => void) | undefined): void {
  onFirstUse = fn;
}

export class HealthView {
  /** The checker's name: where the upstream lives (`upstreams/1`, `routes/1`, `services/1`). */
  readonly name: string;
  readonly settings: HealthSettings;
  readonly targets: readonly HealthTarget[];
  /** Whether this view has told the main thread that its upstream serves traffic. */
  used = false;
  readonly #table: HealthTable;
  readonly #nodes: readonly UpstreamNode[];
  /** node index → target index */
  readonly #byNode: readonly number[];
  readonly #nodeIndex = new Map<string, number>();
  readonly #keys: string[];
  readonly #refs: (SlotRef | undefined)[];
  #generation = -1;
  #skip: Set<string> | undefined;

  constructor(name: string, settings: HealthSettings, nodes: readonly UpstreamNode[], passHost: string | undefined, upstreamHost: string | undefined, table: HealthTable = healthMemory()) {
    this.name = name;
    this.settings = settings;
    this.#table = table;
    this.#nodes = nodes;
    const { targets, byNode } = healthTargets(nodes, settings, passHost, upstreamHost);
    this.targets = targets;
    this.#byNode = byNode;
    for (let i = 0; i < nodes.length; i++) if (!this.#nodeIndex.has(nodes[i].key)) this.#nodeIndex.set(nodes[i].key, i);
    this.#keys = targets.map((t) => targetKey(name, t));
    this.#refs = targets.map(() => undefined);
  }

  /** Node keys to skip now, or undefined when every node may be picked. */
  unhealthy(): ReadonlySet<string> | undefined {
    const generation = this.#table.generation;
    if (generation !== this.#generation) this.#refresh(generation);
    return this.#skip;
  }

  #refresh(generation: number): void {
    this.#generation = generation;
    const table = this.#table;
    const up = this.#targets(table).map((ref) => ref === undefined || isUp(table.state(ref)));
    let skip: Set<string> | undefined;
    let usableUp = 0;
    const nodes = this.#nodes;
    for (let i = 0; i < nodes.length; i++) {
      if (up[this.#byNode[i]]) {
        if (nodes[i].weight > 0) usableUp++;
      } else {
        (skip ??= new Set()).add(nodes[i].key);
      }
    }
    // APISIX: when every node is unhealthy, all of them are used.
    this.#skip = usableUp === 0 ? undefined : skip;
  }

  /** Slot refs of the targets (undefined for a target the checker has not added). */
  #targets(table: HealthTable): (SlotRef | undefined)[] {
    const refs = this.#refs;
    for (let t = 0; t < refs.length; t++) {
      const ref = refs[t];
      if (ref === undefined || !table.holds(ref)) refs[t] = table.find(this.#keys[t]);
    }
    return refs;
  }

  /** Whether the node may be picked now (for tests). */
  nodeUp(key: string): boolean {
    return !(this.unhealthy()?.has(key) ?? false);
  }

  /** Counts what a try on `nodeKey` saw (passive checks). No checker yet: nothing is counted. */
  report(nodeKey: string, outcome: PassiveOutcome): void {
    const i = this.#nodeIndex.get(nodeKey);
    if (i === undefined) return;
    const t = this.#byNode[i];
    let ref = this.#refs[t];
    if (ref === undefined || !this.#table.holds(ref)) {
      ref = this.#refs[t] = this.#table.find(this.#keys[t]);
      if (ref === undefined) return;
    }
    const passive = this.settings.passive;
    let changed = 0;
    if (outcome === 'tcp') changed = this.#table.report(ref, TCP_FAILURE, passive.tcpFailures);
    else if (outcome === 'timeout') changed = this.#table.report(ref, TIMEOUT_FAILURE, passive.timeouts);
    else if (passive.configured) {
      const kind = classifyStatus(passive.statuses, outcome);
      if (kind === STATUS_HEALTHY) changed = this.#table.report(ref, SUCCESS, passive.successes);
      else if (kind === STATUS_UNHEALTHY) changed = this.#table.report(ref, HTTP_FAILURE, passive.httpFailures);
    }
    if (changed !== 0) {
      const target = this.targets[t];
      const why = typeof outcome === 'number' ? `status ${outcome}` : outcome === 'tcp' ? 'tcp_failure' : 'timeout_failure';
      log('warn', `[healthcheck] (${this.name}) ${target.hostname}(${target.ip}:${target.port}) is ${STATE_NAMES[changed]} after passive check: ${why}`);
    }
  }

  /** Tells the main thread, once, that this upstream serves traffic. */
  markUsed(): void {
    this.used = true;
    onFirstUse?.(this.name);
  }
}

/** A balancer that leaves out the nodes its view reports unhealthy. */
export class HealthBalancer implements Balancer {
  readonly inner: Balancer;
  readonly view: HealthView;
  readonly started?: (node: UpstreamNode) => void;
  readonly finished?: (node: UpstreamNode, latencyMs: number, failed: boolean) => void;

  constructor(inner: Balancer, view: HealthView) {
    this.inner = inner;
    this.view = view;
    // Only balancers that count (least_conn, ewma) have these; the proxy times tries only for them.
    if (inner.started) this.started = inner.started.bind(inner);
    if (inner.finished) this.finished = inner.finished.bind(inner);
  }

  pick(ctx: PickContext, tried?: ReadonlySet<string>): UpstreamNode | undefined {
    const view = this.view;
    if (!view.used) view.markUsed();
    const skip = view.unhealthy();
    if (skip === undefined) return this.inner.pick(ctx, tried);
    if (tried === undefined || tried.size === 0) return this.inner.pick(ctx, skip);
    const both = new Set(skip);
    for (const key of tried) both.add(key);
    return this.inner.pick(ctx, both);
  }
}

/**
 * Passive health checks: what a try on `node` came to. For the proxy's exchanges (HTTP/1.1 here,
 * others alike): call it with the node's response status, or 'tcp' when the connection failed before
 * a response, or 'timeout'. A no-op for upstreams without checks.
 */
export function reportPassive(upstream: { readonly health?: HealthView | undefined }, node: UpstreamNode, outcome: PassiveOutcome): void {
  upstream.health?.report(node.key, outcome);
}
