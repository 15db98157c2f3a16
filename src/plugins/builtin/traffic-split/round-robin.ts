// The weighted round robin traffic-split picks its targets with: lua-resty-balancer's
// `resty.roundrobin`, the interleaved kind. A "current weight" starts at the largest weight and
// steps down by the weights' greatest common divisor; each pass picks, in order, every target whose
// weight reaches it. Over every window of (sum of weights / gcd) picks each target gets exactly its
// share, and a target of weight 0 is never picked unless it is the only one. Like the Lua library,
// the first pick starts after a random target, so workers do not all start on the same one.

export class WeightedRoundRobin<T> {
  readonly #targets: readonly T[];
  readonly #weights: readonly number[];
  readonly #gcd: number;
  readonly #maxWeight: number;
  #currentWeight: number;
  /** Index of the last target picked; the next pass continues after it. */
  #last: number;

  constructor(entries: ReadonlyArray<{ target: T; weight: number }>) {
    if (entries.length === 0) throw new Error('empty nodes');
    this.#targets = entries.map((e) => e.target);
    this.#weights = entries.map((e) => e.weight);
    let gcd = this.#weights[0];
    let max = this.#weights[0];
    for (const w of this.#weights.slice(1)) {
      gcd = greatestCommonDivisor(gcd, w);
      if (w > max) max = w;
    }
    this.#gcd = gcd;
    this.#maxWeight = max;
    this.#currentWeight = max;
    this.#last = Math.floor(Math.random() * entries.length);
  }

  pick(): T {
    const count = this.#targets.length;
    if (count === 1) return this.#targets[0];
    let current = this.#currentWeight;
    let index = this.#last;
    // Bounded: a full sweep at every weight level finds a target (the largest weight reaches the
    // top level, and with all weights 0 every target reaches level 0).
    for (;;) {
      for (index = index + 1; index < count; index++) {
        if (this.#weights[index] >= current) {
          this.#currentWeight = current;
          this.#last = index;
          return this.#targets[index];
        }
      }
      index = -1;
      current -= this.#gcd;
      if (current <= 0) current = this.#maxWeight;
    }
  }
}

function greatestCommonDivisor(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
