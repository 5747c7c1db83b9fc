import assert from "node:assert/strict";
import { LazyMap } from "../../lib/storage/lazy_map.ts";

Deno.test("a lazy map answers like a Map: get, has, size, insertion order", () => {
  const map = new LazyMap<string, number>();
  assert.equal(map.size, 0);
  assert.equal(map.get("a"), undefined);
  assert.equal(map.has("a"), false);
  assert.deepEqual([...map], []);
  map.set("b", 2).set("a", 1).set("b", 3);
  assert.equal(map.size, 2);
  assert.equal(map.get("b"), 3);
  assert.equal(map.has("a"), true);
  assert.deepEqual([...map], [["b", 3], ["a", 1]]);
  assert.deepEqual([...map.keys()], ["b", "a"]);
  assert.deepEqual([...map.values()], [3, 1]);
  assert.equal(map.keys().next().value, "b", "the oldest key comes first");
});

Deno.test("a lazy map emptied by deletes starts again empty, and deleting while iterating is safe", () => {
  const map = new LazyMap<string, number>();
  assert.equal(map.delete("x"), false);
  map.set("a", 1).set("b", 2).set("c", 3);
  for (const [key, value] of map) if (value !== 2) map.delete(key);
  assert.deepEqual([...map], [["b", 2]]);
  assert.equal(map.delete("b"), true);
  assert.equal(map.size, 0);
  assert.deepEqual([...map.values()], []);
  map.set("d", 4);
  assert.deepEqual([...map], [["d", 4]]);
});
