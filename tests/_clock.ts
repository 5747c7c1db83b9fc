/** A clock tests move by hand, injected wherever the code takes `now()`. */
export class FakeClock {
  #now: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }
  /** The current fake time, in milliseconds. */
  now = (): number => this.#now;
  /** Moves time forward. */
  advance(ms: number): void {
    this.#now += ms;
  }
}
