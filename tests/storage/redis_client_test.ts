/**
 * `RedisClient` against a real `redis-server` (see `../_redis.ts`), plus the failures that need no
 * server at all: nothing listening, and a peer that is not Redis.
 */
import assert from "node:assert/strict";
import { StorageError } from "../../lib/storage/event_log.ts";
import {
  RedisClient,
  RedisConnectError,
  RedisReplyError,
  RedisTimeoutError,
  RedisUnavailableError,
  sha1Hex,
} from "../../lib/storage/redis_client.ts";
import type { RedisOptions } from "../../lib/storage/redis_link.ts";
import { freePort, type RedisServer, redisTest, within } from "../_redis.ts";

/** A connected client for `server`; the caller closes it (`await using`). */
async function connect(server: RedisServer, overrides: Partial<RedisOptions> = {}) {
  const client = new RedisClient(server.clientOptions(overrides));
  await client.connect();
  return client;
}

/** Resolves at the client's next `event`. */
function next(client: RedisClient, event: "up" | "down"): Promise<unknown> {
  return new Promise((resolve) => {
    const off = client.on(event, (...args: unknown[]) => {
      off();
      resolve(args[0]);
    });
  });
}

/** A field of `INFO` (e.g. `total_reads_processed`), read with redis-cli. */
async function info(server: RedisServer, field: string): Promise<string> {
  const text = await server.cli("INFO", "all");
  const line = text.split("\n").find((l) => l.startsWith(`${field}:`));
  return line?.slice(field.length + 1).trim() ?? "";
}

redisTest(
  "10,000 concurrent INCRs are pipelined and each gets its own reply, in order",
  async (server) => {
    await using client = await connect(server);
    const readsBefore = Number(await info(server, "total_reads_processed"));
    const replies = await Promise.all(
      Array.from({ length: 10_000 }, () => client.command("INCR", "counter")),
    );
    assert.deepEqual(replies, Array.from({ length: 10_000 }, (_, i) => i + 1));
    // One command per round trip would take 10,000 reads; pipelined they arrive in a few batches.
    const reads = Number(await info(server, "total_reads_processed")) - readsBefore;
    assert.ok(reads < 1000, `Redis needed ${reads} reads for 10,000 pipelined commands`);
    assert.equal(client.pending, 0);
  },
);

redisTest("interleaved commands of many callers get their own replies", async (server) => {
  await using client = await connect(server);
  const work = Array.from({ length: 500 }, async (_, i) => {
    assert.equal(await client.command("SET", `k${i}`, `value ${i} é😀`), "OK");
    assert.equal(await client.command("GET", `k${i}`), `value ${i} é😀`);
    assert.equal(await client.command("APPEND", `k${i}`, "!"), `value ${i} é😀!`.length + 3);
    return await client.command("STRLEN", `k${i}`);
  });
  const lengths = await Promise.all(work);
  assert.ok(lengths.every((n, i) => n === new TextEncoder().encode(`value ${i} é😀!`).length));
});

redisTest("replies of every type come back as values", async (server) => {
  await using client = await connect(server);
  assert.equal(await client.command("PING"), "PONG");
  assert.equal(await client.command("GET", "missing"), null);
  await client.command("RPUSH", "list", "a", "", "c");
  assert.deepEqual(await client.command("LRANGE", "list", 0, -1), ["a", "", "c"]);
  assert.deepEqual(await client.command("LRANGE", "missing", 0, -1), []);
  assert.equal(await client.command("INCRBY", "big", Number.MAX_SAFE_INTEGER), 2 ** 53 - 1);
  assert.equal(await client.command("INCRBY", "big", 1), 2n ** 53n, "beyond 2^53 as bigint");
  assert.equal(await client.command("SET", "bytes", Uint8Array.of(0, 255)), "OK");
  assert.equal(await client.command("STRLEN", "bytes"), 2);
  await client.command("XADD", "stream", "1-1", "f", "v");
  assert.deepEqual(await client.command("XRANGE", "stream", "-", "+"), [["1-1", ["f", "v"]]]);
});

redisTest(
  "an error reply rejects its own command only, with RedisReplyError and its code",
  async (server) => {
    await using client = await connect(server);
    await client.command("SET", "text", "abc");
    const [before, notNumber, wrongType, unknown, after] = await Promise.allSettled([
      client.command("INCR", "n"),
      client.command("INCR", "text"),
      client.command("LPUSH", "text", "x"),
      client.command("NO-SUCH-COMMAND"),
      client.command("INCR", "n"),
    ]);
    assert.deepEqual(before, { status: "fulfilled", value: 1 });
    assert.deepEqual(after, { status: "fulfilled", value: 2 });
    const reason = (r: PromiseSettledResult<unknown>) => (r as PromiseRejectedResult).reason;
    for (
      const [result, code] of [[notNumber, "ERR"], [wrongType, "WRONGTYPE"], [
        unknown,
        "ERR",
      ]] as const
    ) {
      assert.ok(reason(result) instanceof RedisReplyError);
      assert.ok(reason(result) instanceof StorageError);
      assert.equal(reason(result).code, code);
    }
    assert.match(reason(notNumber).message, /^ERR value is not an integer/);
    // A transaction's reply holds the failed step as a value, the others as replies.
    await client.command("MULTI");
    await client.command("INCR", "n");
    await client.command("INCR", "text");
    const exec = await client.command("EXEC") as unknown[];
    assert.equal(exec[0], 3);
    assert.match((exec[1] as { message: string }).message, /^ERR value is not an integer/);
  },
);

redisTest("a bad argument rejects with TypeError and the connection goes on", async (server) => {
  await using client = await connect(server);
  await assert.rejects(client.command("SET", "k", NaN), TypeError);
  await assert.rejects(client.command("SET", "k", {} as unknown as string), TypeError);
  assert.equal(await client.command("SET", "k", "v"), "OK");
  assert.equal(await client.command("GET", "k"), "v");
});

redisTest("AUTH and SELECT run at connect: the client writes into its database", async (server) => {
  await using client = await connect(server, { db: 3 });
  assert.equal(await client.command("SET", "where", "db3"), "OK");
  assert.equal(await server.cli("-n", "3", "GET", "where"), "db3");
  assert.equal(await server.cli("-n", "0", "EXISTS", "where"), "0");
  await using named = await connect(server, { username: "default", db: 3 });
  assert.equal(await named.command("GET", "where"), "db3");
  // Both connections dropped by the server: the new ones log in and select again.
  const ups = [next(client, "up"), next(named, "up")];
  assert.equal(await server.cli("CLIENT", "KILL", "TYPE", "normal"), "2");
  await within(3000, "both up again", Promise.all(ups));
  assert.equal(await client.command("GET", "where"), "db3");
  assert.equal(await named.command("GET", "where"), "db3");
}, { password: "s3cret pass" });

redisTest("a wrong or missing password fails connect with one readable line", async (server) => {
  const wrong = new RedisClient(server.clientOptions({ password: "wrong" }));
  await assert.rejects(wrong.connect(), (error: Error) => {
    assert.ok(error instanceof RedisConnectError);
    assert.match(error.message, /^Cannot connect to Redis 127\.0\.0\.1:\d+: WRONGPASS /);
    assert.ok(!error.message.includes("\n"));
    return true;
  });
  assert.equal(wrong.closed, true);
  const client = new RedisClient({ ...server.clientOptions(), password: undefined });
  await assert.rejects(client.connect(), /^RedisConnectError: Cannot connect to Redis .*: NOAUTH /);
  await assert.rejects(client.command("PING"), RedisUnavailableError);
  await client.close();
}, { password: "right" });

redisTest("SELECT of a database the server does not have fails connect", async (server) => {
  const client = new RedisClient(server.clientOptions({ db: 99 }));
  await assert.rejects(
    client.connect(),
    /Cannot connect to Redis .*: ERR DB index is out of range/,
  );
});

redisTest(
  "a late reply fails the commands in flight, and the client reconnects by itself",
  async (server) => {
    await using client = await connect(server, { commandTimeoutMs: 150 });
    const down = next(client, "down");
    const up = next(client, "up");
    await server.cli("CLIENT", "PAUSE", "1500", "ALL");
    const inFlight = await within(
      1000,
      "timeouts",
      Promise.allSettled([
        client.command("INCR", "n"),
        client.command("INCR", "n"),
        client.command("GET", "n"),
      ]),
    );
    for (const result of inFlight) {
      assert.equal(result.status, "rejected");
      const error = (result as PromiseRejectedResult).reason;
      assert.ok(error instanceof RedisTimeoutError);
      assert.ok(error instanceof RedisUnavailableError, "a timeout is a 503 like any outage");
      assert.match(error.message, /^Redis at 127\.0\.0\.1:\d+ did not answer within 150 ms$/);
    }
    assert.ok(await within(1000, "down event", down) instanceof RedisTimeoutError);
    assert.equal(client.connected, false);
    // While the new connection waits for its login, commands fail at once rather than queue.
    await assert.rejects(client.command("PING"), /unreachable: no reply within 150 ms/);
    await within(5000, "up event", up);
    assert.equal(client.connected, true);
    assert.equal(client.lastError, undefined);
    assert.equal(await client.command("PING"), "PONG");
  },
);

redisTest(
  "a Redis restart fails the commands in flight; later ones succeed on the same client",
  async (server) => {
    await using client = await connect(server);
    assert.equal(await client.command("SET", "kept", "acknowledged"), "OK");
    const down = next(client, "down");
    // BLPOP waits in Redis for a push that never comes: it is in flight when Redis goes away.
    const blocked = client.command("BLPOP", "never", 0);
    const blockedResult = blocked.then(() => "resolved", (error) => error);
    await server.stop();
    const error = await within(2000, "in-flight rejection", blockedResult);
    assert.ok(error instanceof RedisUnavailableError, String(error));
    assert.match(error.message, /^Redis at 127\.0\.0\.1:\d+ is unreachable: /);
    assert.ok(await within(1000, "down event", down) instanceof RedisUnavailableError);
    assert.equal(client.connected, false);
    assert.equal(client.state, "down");
    // While it is away, calls fail at once with the reason.
    await assert.rejects(client.command("GET", "kept"), (e: Error) => {
      assert.ok(e instanceof RedisUnavailableError);
      assert.match(e.message, /^Redis at 127\.0\.0\.1:\d+ is unreachable: .+/);
      return true;
    });
    assert.ok(client.lastError, "the health view says why");
    const up = next(client, "up");
    await server.restart();
    await within(3000, "up event", up);
    assert.equal(await client.command("GET", "kept"), "acknowledged", "appendonly kept the write");
    assert.equal(await client.command("INCR", "after"), 1);
  },
);

redisTest("commands over the pending bound fail at once; the others go through", async (server) => {
  await using client = await connect(server, { maxPending: 100 });
  const results = await Promise.allSettled(
    Array.from({ length: 150 }, () => client.command("INCR", "n")),
  );
  const fulfilled = results.filter((r) => r.status === "fulfilled");
  const rejected = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
  assert.equal(fulfilled.length, 100);
  assert.equal(rejected.length, 50);
  assert.ok(rejected.every((r) => r.reason instanceof RedisUnavailableError));
  assert.match(rejected[0]!.reason.message, /100 commands already wait for replies/);
  assert.equal(await client.command("GET", "n"), "100");
});

redisTest(
  "evalScript uses EVALSHA and falls back to EVAL when Redis lost the script",
  async (server) => {
    await using client = await connect(server);
    const script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    const calls = async () => ({
      evalsha: /calls=(\d+)/.exec(await info(server, "cmdstat_evalsha"))?.[1] ?? "0",
      eval: /calls=(\d+)/.exec(await info(server, "cmdstat_eval"))?.[1] ?? "0",
    });
    assert.equal(await client.evalScript(script, ["n"], [5]), 5);
    assert.deepEqual(await calls(), { evalsha: "1", eval: "1" }, "NOSCRIPT, then EVAL");
    assert.equal(await client.evalScript(script, ["n"], [5]), 10);
    assert.deepEqual(await calls(), { evalsha: "2", eval: "1" }, "loaded by the EVAL");
    assert.equal(await server.cli("SCRIPT", "LOAD", script), await sha1Hex(script));
    await server.cli("SCRIPT", "FLUSH");
    assert.equal(await client.evalScript(script, ["n"], [1]), 11);
    assert.deepEqual(await calls(), { evalsha: "3", eval: "2" });
    await assert.rejects(
      client.evalScript("return redis.call('NO-SUCH')", [], []),
      (e: Error) => e instanceof RedisReplyError && e.code !== "NOSCRIPT",
    );
  },
);

Deno.test("sha1Hex names scripts as Redis does", async () => {
  assert.equal(await sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assert.equal(await sha1Hex("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
});

redisTest(
  "TLS with the test CA: rediss:// connects, and an unknown CA is refused",
  async (server) => {
    await using client = await connect(server, { tls: true, caFile: server.caFile! });
    assert.equal(await client.command("SET", "secure", "yes"), "OK");
    assert.equal(await server.cli("GET", "secure"), "yes");
    const untrusting = new RedisClient({
      ...server.clientOptions({ tls: true }),
      caFile: undefined,
    });
    await assert.rejects(
      untrusting.connect(),
      /^RedisConnectError: Cannot connect to Redis 127\.0\.0\.1:\d+: .*certificate/i,
    );
  },
  { tls: true },
);

redisTest(
  "close() fails what is in flight, is idempotent, and later calls fail",
  async (server) => {
    const client = await connect(server);
    const blocked = client.command("BLPOP", "never", 0);
    const closing = [client.close(), client.close()];
    await assert.rejects(blocked, /Redis link to 127\.0\.0\.1:\d+ is closed/);
    await Promise.all(closing);
    await client.close();
    assert.equal(client.closed, true);
    await assert.rejects(client.command("PING"), RedisUnavailableError);
    await assert.rejects(client.connect(), /the link is closed/);
  },
);

Deno.test("an unreachable Redis at start is one line naming the address and the reason", async () => {
  const port = freePort();
  const client = new RedisClient({ hostname: "127.0.0.1", port });
  await assert.rejects(client.connect(), (error: Error) => {
    assert.ok(error instanceof RedisConnectError);
    assert.ok(error instanceof StorageError);
    assert.equal(
      error.message,
      `Cannot connect to Redis 127.0.0.1:${port}: Connection refused (os error 111)`,
    );
    return true;
  });
  assert.equal(client.closed, true);
  await assert.rejects(client.command("PING"), RedisUnavailableError);
  await client.close();
});

Deno.test("commands before connect() fail, and connect() cannot run twice", async () => {
  const client = new RedisClient({ hostname: "127.0.0.1", port: freePort() });
  await assert.rejects(client.command("PING"), /is not connected yet/);
  await assert.rejects(client.connect(), RedisConnectError);
  await assert.rejects(client.connect(), /the link is closed/);
});

Deno.test("a peer that is not Redis fails connect with the protocol error", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
    await conn.read(new Uint8Array(1024)).catch(() => null);
    conn.close();
  })();
  const client = new RedisClient({ hostname: "127.0.0.1", port: listener.addr.port });
  await assert.rejects(
    client.connect(),
    /^RedisConnectError: Cannot connect to Redis 127\.0\.0\.1:\d+: Cannot decode Redis reply: unexpected type byte 0x48$/,
  );
  await serving;
});

Deno.test("a peer that never answers fails connect at the command deadline", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(1024));
    // Holds the connection open without a word until the client gives up.
    while ((await conn.read(new Uint8Array(1024)).catch(() => null)) !== null);
    conn.close();
  })();
  const client = new RedisClient({
    hostname: "127.0.0.1",
    port: listener.addr.port,
    commandTimeoutMs: 100,
  });
  await assert.rejects(
    within(1000, "connect", client.connect()),
    /^RedisConnectError: Cannot connect to Redis 127\.0\.0\.1:\d+: no reply within 100 ms$/,
  );
  await serving;
});

redisTest("a down listener may close the client", async (server) => {
  const client = await connect(server);
  const closed = new Promise<void>((resolve) => {
    client.on("down", () => client.close().then(resolve));
  });
  await server.stop();
  await within(2000, "closed by the listener", closed);
  assert.equal(client.state, "closed");
  await assert.rejects(client.command("PING"), /is closed/);
});
