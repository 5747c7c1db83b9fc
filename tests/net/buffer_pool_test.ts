import assert from "node:assert/strict";
import { BufferPool } from "../../lib/net/buffer_pool.ts";

Deno.test("buffer pool hands out distinct buffers of its size, cut from shared slabs", () => {
  const pool = new BufferPool(1024);
  const a = pool.take();
  const b = pool.take();
  assert.equal(a.byteLength, 1024);
  assert.equal(b.byteLength, 1024);
  assert.equal(a.buffer, b.buffer);
  a.fill(1);
  b.fill(2);
  assert.ok(a.every((x) => x === 1), "writing one buffer leaves the other alone");
  assert.equal(pool.slabs, 1);
  assert.equal(pool.inUse, 2);
});

Deno.test("buffer pool reuses a given-back buffer before cutting new ones", () => {
  const pool = new BufferPool(512);
  const a = pool.take();
  pool.give(a);
  assert.equal(pool.take(), a);
  assert.equal(pool.inUse, 1);
});

Deno.test("buffer pool frees emptied slabs once clients leave, keeping one spare", () => {
  const pool = new BufferPool(1024);
  const taken = Array.from({ length: 64 * 10 }, () => pool.take());
  assert.equal(pool.slabs, 10);
  for (const slot of taken) pool.give(slot);
  assert.equal(pool.inUse, 0);
  assert.ok(pool.slabs <= 2, `${pool.slabs} slabs kept with nothing in use`);
  // What is left still works.
  const again = Array.from({ length: 100 }, () => pool.take());
  assert.equal(new Set(again).size, 100);
  assert.equal(pool.inUse, 100);
});

Deno.test("buffer pool refuses a buffer it did not hand out", () => {
  const pool = new BufferPool(64);
  assert.throws(() => pool.give(new Uint8Array(64)), TypeError);
  assert.throws(() => new BufferPool(0), RangeError);
});
