/** Milliseconds of one tick: deadlines are rounded up to the next tick. */
export const TICK_MS = 50;

/** The clock and timer a {@linkcode Deadlines} uses; tests inject their own. */
export interface DeadlineTimers {
  now(): number;
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMERS: DeadlineTimers = {
  now: () => performance.now(),
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as number | undefined),
};

/**
 * Deadlines of many waiting polls with one timer: each is filed under the tick its time ends in,
 * and the timer is armed for the earliest tick only. A poll costs a set entry, not a timer of its
 * own, and ending one early is a set delete. Times are real (`performance.now()`), as a timer's,
 * unless other timers are given.
 */
export class Deadlines<T> {
  #buckets = new Map<number, Set<T>>();
  #tickOf = new Map<T, number>();
  #onExpire: (item: T) => void;
  #timers: DeadlineTimers;
  #timer: unknown;
  #armedFor = Infinity;

  constructor(onExpire: (item: T) => void, timers: DeadlineTimers = REAL_TIMERS) {
    this.#onExpire = onExpire;
    this.#timers = timers;
  }

  /** Items waiting. */
  get size(): number {
    return this.#tickOf.size;
  }

  /** Calls `onExpire(item)` once `ms` have passed, unless `remove(item)` came first. */
  add(item: T, ms: number): void {
    const tick = Math.ceil((this.#timers.now() + ms) / TICK_MS);
    let bucket = this.#buckets.get(tick);
    if (!bucket) this.#buckets.set(tick, bucket = new Set());
    bucket.add(item);
    this.#tickOf.set(item, tick);
    if (tick < this.#armedFor) this.#arm(tick);
  }

  /** Forgets an item's deadline; false when it had none. */
  remove(item: T): boolean {
    const tick = this.#tickOf.get(item);
    if (tick === undefined) return false;
    this.#tickOf.delete(item);
    const bucket = this.#buckets.get(tick)!;
    bucket.delete(item);
    if (bucket.size === 0) this.#buckets.delete(tick);
    if (this.#tickOf.size === 0) this.#disarm();
    return true;
  }

  /** Stops the timer and forgets every deadline. */
  clear(): void {
    this.#buckets.clear();
    this.#tickOf.clear();
    this.#disarm();
  }

  #arm(tick: number): void {
    this.#timers.clear(this.#timer);
    this.#armedFor = tick;
    const ms = Math.max(0, tick * TICK_MS - this.#timers.now());
    this.#timer = this.#timers.set(() => this.#fire(), ms);
  }

  #disarm(): void {
    this.#timers.clear(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = Math.floor(this.#timers.now() / TICK_MS);
    let next = Infinity;
    for (const [tick, bucket] of this.#buckets) {
      if (tick > now) {
        if (tick < next) next = tick;
        continue;
      }
      this.#buckets.delete(tick);
      for (const item of bucket) {
        this.#tickOf.delete(item);
        this.#onExpire(item);
      }
    }
    // Expiring may have added deadlines (and armed for them) or removed the earliest one.
    for (const tick of this.#buckets.keys()) if (tick < next) next = tick;
    if (next !== Infinity && next < this.#armedFor) this.#arm(next);
  }
}
