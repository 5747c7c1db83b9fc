import assert from "node:assert/strict";
import { OutputArena, releaseOutput } from "../../lib/net/output_arena.ts";

Deno.test("output arena cuts small buffers from one chunk, each its own bytes", () => {
  const arena = new OutputArena();
  const a = arena.alloc(100);
  const b = arena.alloc(200);
  assert.equal(a.byteLength, 100);
  assert.equal(b.byteLength, 200);
  assert.equal(a.buffer, b.buffer);
  a.fill(1);
  b.fill(2);
  assert.ok(a.every((x) => x === 1));
});

Deno.test("output arena reuses a chunk only once every buffer cut from it was released", () => {
  const arena = new OutputArena();
  // 8 KiB views: a 64 KiB chunk holds eight.
  const first = Array.from({ length: 8 }, () => arena.alloc(8192));
  const next = arena.alloc(8192);
  assert.notEqual(next.buffer, first[0]!.buffer, "a full chunk is retired");
  for (const view of first.slice(1)) releaseOutput(view);
  assert.equal(arena.freeChunks, 0, "one view of the retired chunk is still being written");
  releaseOutput(first[0]!);
  assert.equal(arena.freeChunks, 1);
  // Fill the current chunk: the next one is the recycled chunk.
  for (let i = 0; i < 7; i++) arena.alloc(8192);
  assert.equal(arena.alloc(8192).buffer, first[0]!.buffer);
});

Deno.test("output arena gives large buffers their own memory, and releaseOutput ignores others", () => {
  const arena = new OutputArena();
  const big = arena.alloc(100_000);
  assert.equal(big.byteLength, 100_000);
  assert.equal(big.buffer.byteLength, 100_000);
  releaseOutput(big);
  releaseOutput(new Uint8Array(10));
  assert.equal(arena.freeChunks, 0);
});
