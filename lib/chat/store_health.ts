import type { Logger } from "../log.ts";
import type { BackendHealth } from "../storage/shared_state.ts";

/** How often a store that keeps failing is logged again (with the count since the last line). */
const REPEAT_MS = 60_000;

/**
 * Whether the store works, as an operator must see it: one warning when calls start failing or
 * stalling (with the reason), a reminder at most once a minute while they go on, one line when it
 * recovers; a counter and a gauge for `/metrics`, and the answer of `/healthz`.
 */
export class StoreHealth {
  #logger: Logger | undefined;
  #now: () => number;
  /** Calls that failed or stalled since start. */
  #errors = 0;
  /** Why calls fail, while they do. */
  #failing: string | null = null;
  #failingSince = 0;
  #lastLine = 0;
  #unlogged = 0;
  #backend: BackendHealth = { ok: true };

  constructor(now: () => number, logger?: Logger) {
    this.#now = now;
    this.#logger = logger;
  }

  /** Failed or stalled store calls since start (`parley_store_errors_total`). */
  get errors(): number {
    return this.#errors;
  }

  /** True while calls fail (or stall) and no write succeeded since. */
  get failing(): boolean {
    return this.#failing !== null;
  }

  /** True while calls succeed and the backend reports no problem. */
  get ok(): boolean {
    return this.#failing === null && this.#backend.ok;
  }

  /** Why the store is not ok, or null. */
  get reason(): string | null {
    return this.#failing ?? (this.#backend.ok ? null : this.#backend.reason ?? "unavailable");
  }

  /** A call failed (or did not finish in time) for `reason`. */
  failed(reason: string): void {
    this.#errors++;
    const now = this.#now();
    if (this.#failing === null) {
      this.#failing = reason;
      this.#failingSince = now;
      this.#lastLine = now;
      this.#unlogged = 0;
      this.#logger?.warn("store failing", { reason });
      return;
    }
    this.#failing = reason;
    this.#unlogged++;
    if (now - this.#lastLine >= REPEAT_MS) {
      this.#logger?.warn("store still failing", { reason, errors: this.#unlogged });
      this.#lastLine = now;
      this.#unlogged = 0;
    }
  }

  /** A call succeeded: the store works (again). */
  succeeded(): void {
    if (this.#failing === null) return;
    const seconds = Math.round((this.#now() - this.#failingSince) / 1000);
    this.#failing = null;
    this.#logger?.warn("store recovered", { seconds, errors: this.#unlogged });
  }

  /** What the backend says of itself (a replaced database file, a lost Redis connection). */
  backend(health: BackendHealth): void {
    if (health.ok === this.#backend.ok && health.reason === this.#backend.reason) return;
    const was = this.#backend;
    this.#backend = health;
    if (!health.ok) this.#logger?.error("store unavailable", { reason: health.reason });
    else if (!was.ok) this.#logger?.warn("store available again", {});
  }
}
