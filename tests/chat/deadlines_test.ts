import assert from "node:assert/strict";
import { Deadlines, type DeadlineTimers, TICK_MS } from "../../lib/chat/deadlines.ts";

/** Timers on a hand-moved clock: `advance` fires what is due, in order. */
class ManualTimers implements DeadlineTimers {
  #now = 1_000;
  #next = 1;
  #pending = new Map<number, { at: number; fn: () => void }>();
  now = () => this.#now;
  set = (fn: () => void, ms: number) => {
    const id = this.#next++;
    this.#pending.set(id, { at: this.#now + ms, fn });
    return id;
  };
  clear = (handle: unknown) => {
    this.#pending.delete(handle as number);
  };
  /** Timers armed now. */
  get armed(): number {
    return this.#pending.size;
  }
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const due = [...this.#pending].filter(([, t]) =>
        t.at <= until
      ).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#pending.delete(due[0]);
      this.#now = Math.max(this.#now, due[1].at);
      due[1].fn();
    }
    this.#now = until;
  }
}

Deno.test("deadlines expire each item once its time passed, with one timer for all", () => {
  const timers = new ManualTimers();
  const expired: string[] = [];
  const deadlines = new Deadlines<string>((item) => expired.push(item), timers);
  deadlines.add("slow", 25_000);
  deadlines.add("fast", 1_000);
  deadlines.add("fast too", 1_010);
  assert.equal(timers.armed, 1, "one timer, for the earliest tick");
  timers.advance(999);
  assert.deepEqual(expired, []);
  timers.advance(TICK_MS + 20);
  assert.deepEqual(expired.sort(), ["fast", "fast too"]);
  assert.equal(deadlines.size, 1);
  assert.equal(timers.armed, 1, "re-armed for the next item");
  timers.advance(25_000);
  assert.deepEqual(expired.sort(), ["fast", "fast too", "slow"]);
  assert.equal(timers.armed, 0, "nothing left, nothing armed");
});

Deno.test("a removed item never expires, and removing the last one disarms the timer", () => {
  const timers = new ManualTimers();
  const expired: number[] = [];
  const deadlines = new Deadlines<number>((item) => expired.push(item), timers);
  for (let i = 0; i < 1000; i++) deadlines.add(i, 500 + i);
  for (let i = 0; i < 1000; i += 2) assert.equal(deadlines.remove(i), true);
  assert.equal(deadlines.remove(0), false, "already gone");
  timers.advance(2_000);
  assert.deepEqual(expired, Array.from({ length: 500 }, (_, i) => 2 * i + 1));
  deadlines.add(7, 100);
  deadlines.remove(7);
  assert.equal(timers.armed, 0);
});

Deno.test("an item added from an expiry callback, or earlier than the armed tick, is kept", () => {
  const timers = new ManualTimers();
  const expired: string[] = [];
  const deadlines = new Deadlines<string>((item) => {
    expired.push(item);
    if (item === "first") deadlines.add("added while expiring", 100);
  }, timers);
  deadlines.add("late", 10_000);
  deadlines.add("first", 200);
  timers.advance(250);
  assert.deepEqual(expired, ["first"]);
  timers.advance(100);
  assert.deepEqual(expired, ["first", "added while expiring"]);
  timers.advance(10_000);
  assert.deepEqual(expired, ["first", "added while expiring", "late"]);
});
