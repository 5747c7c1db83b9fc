/**
 * Gives memory back once a burst is over. V8 keeps the heap a burst grew (the young generation at
 * its largest, the old one holding whatever the burst promoted and then dropped) until its own
 * heuristics collect, and in Deno those can take many seconds, or never come while a server only
 * holds waiting polls: 10,000 of them measured 19 KiB of resident memory each a second after
 * they arrived, 9 KiB after one memory-reducing collection. So once allocation has stayed low for
 * a while and the heap holds enough garbage to be worth it, the trimmer runs that collection.
 * It stops everything for its length (about 20 ms per 1,000 waiting polls), hence only when quiet.
 */

/** What a trim did, for logs. */
export interface HeapTrim {
  /** Heap bytes in use before and after. */
  before: number;
  after: number;
  /** How long the collection stopped the server. */
  ms: number;
}

/** Settings and hooks of a {@linkcode HeapTrimmer}; tests inject the heap and the collection. */
export interface HeapTrimmerOptions {
  /** Milliseconds allocation must stay low before a trim. */
  quietMs: number;
  /** Milliseconds between looks at the heap (`start()`); default 250. */
  sampleMs?: number;
  /** Heap bytes in use now; default `Deno.memoryUsage().heapUsed`. */
  heapUsed?: () => number;
  /** Runs a full, memory-reducing collection: `exposedCollection()` outside tests. */
  collect: () => void;
  now?: () => number;
  onTrim?: (trim: HeapTrim) => void;
}

/** Allocation below this between two looks counts as quiet (4 MiB/s at the default 250 ms). */
export const QUIET_BYTES = 1024 * 1024;
/** Garbage below this is not worth stopping the server for... */
export const MIN_GARBAGE = 16 * 1024 * 1024;
/** ...nor below this share of what the last trim left. */
export const GARBAGE_SHARE = 0.25;
/**
 * No trim above this much live heap: the pause grows with it (about 3.6 ms per MiB measured, so
 * about half a second here), and V8's own incremental collections do better than such a stop.
 */
export const MAX_LIVE = 128 * 1024 * 1024;

type GcFunction = (options?: { type?: string; flavor?: string }) => void;

/**
 * V8's full collection that also shrinks the heap and returns its pages ("last resort", as on
 * memory pressure), or null when `gc` is not exposed (`--v8-flags=--expose-gc`, which
 * `deno task start` and the compiled binary pass).
 */
export function exposedCollection(): (() => void) | null {
  const gc = (globalThis as { gc?: GcFunction }).gc;
  if (typeof gc !== "function") return null;
  return () => gc({ type: "major", flavor: "last-resort" });
}

/** Watches the heap and collects once the server is quiet and the heap worth trimming. */
export class HeapTrimmer {
  readonly #quietMs: number;
  readonly #sampleMs: number;
  readonly #heapUsed: () => number;
  readonly #collect: () => void;
  readonly #now: () => number;
  readonly #onTrim: (trim: HeapTrim) => void;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Heap in use at the last look. */
  #last: number;
  /** Heap in use after the last collection seen: what is live, about. */
  #floor: number;
  /** Since when allocation has been low; null while it is not. */
  #quietSince: number | null = null;
  #trims = 0;

  constructor(options: HeapTrimmerOptions) {
    if (!(options.quietMs >= 0)) {
      throw new RangeError(
        `Cannot create heap trimmer: quietMs must be >= 0, got ${options.quietMs}`,
      );
    }
    this.#quietMs = options.quietMs;
    this.#sampleMs = options.sampleMs ?? 250;
    this.#heapUsed = options.heapUsed ?? (() => Deno.memoryUsage().heapUsed);
    this.#collect = options.collect;
    this.#now = options.now ?? (() => performance.now());
    this.#onTrim = options.onTrim ?? (() => {});
    this.#last = this.#floor = this.#heapUsed();
  }

  /** Collections run so far. */
  get trims(): number {
    return this.#trims;
  }

  /** Looks at the heap every `sampleMs` until `stop()`; the timer keeps no process alive. */
  start(): void {
    if (this.#timer !== undefined) return;
    const timer = setInterval(() => this.sample(), this.#sampleMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Stops looking; idempotent. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One look at the heap; collects when due. Answers whether it collected. */
  sample(): boolean {
    const used = this.#heapUsed();
    const grew = used - this.#last;
    this.#last = used;
    // A drop means a collection ran: V8's own (then its result is the new floor), and young
    // collections only run on allocation, so the server was not quiet.
    if (used < this.#floor) this.#floor = used;
    const now = this.#now();
    if (grew < 0 || grew >= QUIET_BYTES) {
      this.#quietSince = null;
      return false;
    }
    this.#quietSince ??= now;
    if (now - this.#quietSince < this.#quietMs) return false;
    if (used - this.#floor < Math.max(MIN_GARBAGE, this.#floor * GARBAGE_SHARE)) return false;
    if (this.#floor > MAX_LIVE) return false;
    this.#collect();
    const after = this.#heapUsed();
    this.#last = this.#floor = after;
    this.#quietSince = null;
    this.#trims++;
    this.#onTrim({ before: used, after, ms: this.#now() - now });
    return true;
  }
}
