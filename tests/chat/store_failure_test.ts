/**
 * What the API does when the store fails under it (SQLite with its disk full): the failed call
 * answers 503 store_unavailable and changes nothing, so a retry works once the store does.
 */
import assert from "node:assert/strict";
import { SqliteEventLog } from "../../lib/storage/sqlite_event_log.ts";
import { withServer } from "../_server.ts";

/** A SQLite log in a fresh temp dir, removed after `fn`. */
async function withSqlite(fn: (log: SqliteEventLog, path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley-store-failure-" });
  const path = `${dir}/parley.db`;
  const log = await SqliteEventLog.open(path, { history: 1000 });
  try {
    await fn(log, path);
  } finally {
    await log.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ending a session the store cannot write changes nothing, and a retry ends it", async () => {
  await withSqlite(async (log) => {
    await withServer({ eventLog: log }, async (_app, client) => {
      const { alice, bob } = await client.aliceAndBob(["lobby", "side"]);
      // Fill the database to its cap: every write from here on fails.
      await log._setMaxPageCount(await log._pageCount());
      // Large messages first, then ever smaller ones, until not even one character fits.
      let sends = 0;
      for (const size of [1500, 300, 60, 10, 1]) {
        while ((await client.send(alice.token, "lobby", "x".repeat(size))).status === 201) {
          assert.ok(++sends < 10_000, "the capped database never filled");
        }
      }
      const failed = await client.call("DELETE", "/api/session", { token: alice.token });
      assert.equal(failed.status, 503);
      assert.equal(failed.body.error.code, "store_unavailable");
      assert.ok(failed.headers.get("retry-after"));

      // Nothing of it happened: the token works, the rooms keep her, the nick stays hers.
      assert.equal((await client.poll(alice.token, null, 0)).status, 200, "the token still works");
      const rooms = await client.call("GET", "/api/rooms");
      assert.deepEqual(rooms.body.rooms, [{ name: "lobby", members: 2 }, {
        name: "side",
        members: 2,
      }]);
      const taken = await client.call("POST", "/api/session", { body: { nick: "ALICE" } });
      assert.equal(taken.status, 409, "the nick is still taken");

      // Once the store can write again, the retry ends the session completely.
      await log._setMaxPageCount(1_000_000);
      const ended = await client.call("DELETE", "/api/session", { token: alice.token });
      assert.equal(ended.status, 204);
      assert.equal((await client.poll(alice.token, null, 0)).status, 401);
      const after = await client.call("GET", "/api/rooms");
      assert.deepEqual(after.body.rooms, [{ name: "lobby", members: 1 }, {
        name: "side",
        members: 1,
      }]);
      const history = await client.call("GET", "/api/rooms/lobby/history?limit=3", {
        token: bob.token,
      });
      assert.deepEqual(
        history.body.events.map((e: { type: string; nick: string }) => `${e.type}:${e.nick}`).slice(
          -1,
        ),
        ["leave:alice"],
      );
      assert.equal(
        (await client.call("POST", "/api/session", { body: { nick: "ALICE" } })).status,
        201,
      );
    });
  });
});
