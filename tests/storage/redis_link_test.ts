import assert from "node:assert/strict";
import {
  backoffDelay,
  describeError,
  redisAddress,
  RedisReplyError,
  RedisTimeoutError,
  RedisUnavailableError,
} from "../../lib/storage/redis_link.ts";

Deno.test("reconnect delays double per attempt up to the cap, jittered within their upper half", () => {
  const low = (attempt: number) => backoffDelay(attempt, 50, 2000, () => 0);
  const high = (attempt: number) => backoffDelay(attempt, 50, 2000, () => 0.999999);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map(low), [25, 50, 100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual(
    [0, 1, 2, 5, 6, 100, 10_000].map((a) => Math.round(high(a))),
    [50, 100, 200, 1600, 2000, 2000, 2000],
  );
  for (let attempt = 0; attempt < 40; attempt++) {
    const delay = backoffDelay(attempt, 50, 2000);
    assert.ok(delay >= low(attempt) && delay <= high(attempt), `attempt ${attempt}: ${delay}`);
  }
});

Deno.test("addresses put IPv6 in brackets", () => {
  assert.equal(redisAddress("127.0.0.1", 6379), "127.0.0.1:6379");
  assert.equal(redisAddress("::1", 6380), "[::1]:6380");
  assert.equal(redisAddress("cache.example", 1), "cache.example:1");
});

Deno.test("errors say why in one line; reply errors carry their code", () => {
  assert.equal(
    describeError(new Error("Connection refused (os error 111)\nmore")),
    "Connection refused (os error 111)",
  );
  assert.equal(describeError(new RedisTimeoutError("h:1", 150)), "no reply within 150 ms");
  assert.equal(
    new RedisTimeoutError("h:1", 150).message,
    "Redis at h:1 did not answer within 150 ms",
  );
  assert.ok(new RedisTimeoutError("h:1", 150) instanceof RedisUnavailableError);
  assert.equal(new RedisReplyError("NOSCRIPT No matching script.").code, "NOSCRIPT");
  assert.equal(new RedisReplyError("LOADING").code, "LOADING");
});
