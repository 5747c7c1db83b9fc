/** The heap trimmer (lib/heap_trim.ts): when it collects, and when it leaves the heap alone. */
import assert from "node:assert/strict";
import {
  exposedCollection,
  GARBAGE_SHARE,
  type HeapTrim,
  HeapTrimmer,
  MAX_LIVE,
  MIN_GARBAGE,
  QUIET_BYTES,
} from "../lib/heap_trim.ts";

const MIB = 1024 * 1024;

/** A heap and a clock the test moves; `collect` drops the heap to `live`. */
function fakeHeap(start: number, quietMs = 1000) {
  const heap = { used: start, live: start, at: 0, collections: 0 };
  const trims: HeapTrim[] = [];
  const trimmer = new HeapTrimmer({
    quietMs,
    heapUsed: () => heap.used,
    now: () => heap.at,
    collect: () => {
      heap.collections++;
      heap.used = heap.live;
      heap.at += 5;
    },
    onTrim: (trim) => trims.push(trim),
  });
  /** Moves time by `ms`, the heap by `grew` bytes, and takes one look. */
  const step = (ms: number, grew = 0) => {
    heap.at += ms;
    heap.used += grew;
    return trimmer.sample();
  };
  return { heap, trims, trimmer, step };
}

Deno.test("heap trimmer collects once allocation stayed low for the quiet time after a burst left garbage", () => {
  const { heap, trims, trimmer, step } = fakeHeap(10 * MIB);
  // A burst: the heap grows fast, then the live part is what was there plus 2 MiB.
  for (let i = 0; i < 8; i++) assert.equal(step(250, 8 * MIB), false, `burst look ${i}`);
  heap.live = 12 * MIB;
  // Quiet from here: the first quiet look starts the clock, a second after it the trim comes.
  assert.equal(step(250, 1000), false);
  for (let i = 0; i < 3; i++) assert.equal(step(250), false, `quiet look ${i}`);
  assert.equal(step(250), true, "a second of quiet");
  assert.equal(heap.collections, 1);
  assert.equal(trimmer.trims, 1);
  assert.deepEqual(trims, [{ before: 10 * MIB + 64 * MIB + 1000, after: 12 * MIB, ms: 5 }]);
  // Nothing new to take: quiet goes on without another collection.
  for (let i = 0; i < 20; i++) assert.equal(step(250, 1000), false, `after the trim ${i}`);
  assert.equal(heap.collections, 1);
});

Deno.test("heap trimmer never collects while allocation goes on, however much garbage there is", () => {
  const { heap, step } = fakeHeap(10 * MIB);
  for (let i = 0; i < 40; i++) {
    // Growing by the quiet bound each look, or dropping (a young collection ran): both are busy.
    assert.equal(step(250, i % 5 === 4 ? -2 * MIB : QUIET_BYTES), false, `look ${i}`);
  }
  assert.equal(heap.collections, 0);
});

Deno.test("heap trimmer leaves a heap alone whose growth since the last collection is not worth a pause", () => {
  const { heap, step } = fakeHeap(100 * MIB);
  // 16 MiB is the least worth it, and a quarter of the floor (25 MiB here) above that.
  const below = Math.max(MIN_GARBAGE, 100 * MIB * GARBAGE_SHARE) - MIB;
  assert.ok(below > MIN_GARBAGE);
  step(250, below);
  for (let i = 0; i < 20; i++) assert.equal(step(250), false, `quiet look ${i}`);
  assert.equal(heap.collections, 0);
  // One more MiB and it is.
  step(250, MIB);
  for (let i = 0; i < 4; i++) step(250);
  assert.equal(step(250), true);
  assert.equal(heap.collections, 1);
});

Deno.test("heap trimmer takes a collection of V8's own as the new floor", () => {
  const { heap, step } = fakeHeap(40 * MIB);
  step(250, 30 * MIB);
  // V8 collected by itself and found 20 MiB live: now 20 MiB above that is not enough garbage.
  step(250, -50 * MIB);
  step(250, 15 * MIB);
  for (let i = 0; i < 20; i++) assert.equal(step(250), false, `quiet look ${i}`);
  assert.equal(heap.collections, 0);
});

Deno.test("heap trimmer leaves a heap alone whose live part is so large the pause would pass half a second, until it shrinks", () => {
  const { heap, step } = fakeHeap(MAX_LIVE + MIB);
  step(250, MAX_LIVE);
  for (let i = 0; i < 20; i++) assert.equal(step(250), false, `quiet look ${i}`);
  assert.equal(heap.collections, 0);
  // V8 collected by itself, and what is live is small enough again.
  heap.used = heap.live = 64 * MIB;
  step(250);
  step(250, 40 * MIB);
  for (let i = 0; i < 4; i++) step(250);
  assert.equal(step(250), true);
  assert.equal(heap.collections, 1);
});

Deno.test("heap trimmer with a zero quiet time collects at the first quiet look", () => {
  const { heap, step } = fakeHeap(10 * MIB, 0);
  step(250, 30 * MIB);
  assert.equal(step(250), true);
  assert.equal(heap.collections, 1);
});

Deno.test("heap trimmer refuses a negative quiet time", () => {
  assert.throws(
    () => new HeapTrimmer({ quietMs: -1, collect: () => {} }),
    /quietMs must be >= 0, got -1/,
  );
});

Deno.test("heap trimmer looks at the heap on its own once started, and stops looking when stopped", async () => {
  let used = 10 * MIB;
  let trimmed!: () => void;
  const done = new Promise<void>((resolve) => trimmed = resolve);
  const trimmer = new HeapTrimmer({
    quietMs: 0,
    sampleMs: 1,
    heapUsed: () => used,
    collect: () => used = 10 * MIB,
    onTrim: () => trimmed(),
  });
  // The trimmer's timer keeps no process alive; this one keeps the test's alive meanwhile.
  const alive = setTimeout(() => {}, 10_000);
  trimmer.start();
  trimmer.start();
  used += 20 * MIB;
  await done;
  clearTimeout(alive);
  trimmer.stop();
  trimmer.stop();
  assert.equal(trimmer.trims, 1);
});

Deno.test("exposedCollection is V8's memory-reducing full collection, and null without gc exposed", () => {
  const global = globalThis as { gc?: unknown };
  const before = global.gc;
  try {
    delete global.gc;
    assert.equal(exposedCollection(), null);
    const calls: unknown[] = [];
    global.gc = (options: unknown) => calls.push(options);
    exposedCollection()!();
    assert.deepEqual(calls, [{ type: "major", flavor: "last-resort" }]);
  } finally {
    if (before === undefined) delete global.gc;
    else global.gc = before;
  }
});
