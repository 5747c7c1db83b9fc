/**
 * Store health as an operator sees it: a store call that does not finish within --store-timeout
 * is answered 503 store_unavailable with Retry-After, /healthz and the metrics tell the truth, one
 * line is logged when the store starts failing and one when it recovers, and shutdown keeps its
 * deadline whatever the store does.
 */
import assert from "node:assert/strict";
import { type Change, StorageError, type StoredEvent } from "../../lib/storage/event_log.ts";
import { MemoryEventLog } from "../../lib/storage/memory_event_log.ts";
import { SqliteEventLog } from "../../lib/storage/sqlite_event_log.ts";
import { eventually, FakeClock, withServer } from "../_server.ts";

/** A memory log whose commits (and close) hang while `stalled`, as on a frozen file system. */
class StallingLog extends MemoryEventLog {
  stalled = false;
  #held: (() => void)[] = [];
  #failers: (() => void)[] = [];

  /** Commits made while stalled and not yet released. */
  get held(): number {
    return this.#held.length;
  }

  override commit(change: Change): Promise<StoredEvent[]> {
    if (!this.stalled) return super.commit(change);
    return new Promise((resolve, reject) => {
      this.#held.push(() => super.commit(change).then(resolve, reject));
      this.#failers.push(() => reject(new StorageError("the connection was lost")));
    });
  }

  override close(deadlineMs?: number): Promise<number> {
    if (!this.stalled) return super.close();
    // A stalled close honours nothing: only the app's own deadline can end the wait.
    void deadlineMs;
    return new Promise(() => {});
  }

  /** Fails the held commits, as a lost connection would, and thaws. */
  drop(): void {
    this.stalled = false;
    for (const fail of this.#failers.splice(0)) fail();
    this.#held.length = 0;
  }

  /** Thaws: held commits complete in order. */
  release(): void {
    this.stalled = false;
    this.#failers.length = 0;
    for (const go of this.#held.splice(0)) go();
  }
}

Deno.test("a store call past --store-timeout answers 503, /healthz turns 503, and both recover", async () => {
  const clock = new FakeClock();
  const log = new StallingLog({ history: 100 });
  const lines: string[] = [];
  await withServer(
    { clock, eventLog: log, logLines: lines, flags: ["--store-timeout", "3"] },
    async (app, client) => {
      const alice = await client.session("alice");
      await client.join(alice.token, "lobby");
      assert.equal((await client.raw("/healthz")).status, 200);

      log.stalled = true;
      const sending = client.send(alice.token, "lobby", "into the void", "c-1");
      await eventually(() => log.held === 1, { what: () => "the send to reach the store" });
      clock.advance(2_000);
      await app.sweep();
      assert.equal(log.held, 1, "within the deadline the call still waits");
      clock.advance(1_000);
      await app.sweep();
      const answer = await sending;
      assert.equal(answer.status, 503);
      assert.equal(answer.body.error.code, "store_unavailable");
      assert.equal(answer.headers.get("retry-after"), "1");

      const health = await client.raw("/healthz");
      assert.equal(health.status, 503);
      assert.match(JSON.parse(health.text).error.message, /did not finish within 3 s/);
      assert.equal(await client.metric("parley_store_healthy"), 0);
      assert.equal(await client.metric("parley_store_errors_total"), 1);
      assert.equal(lines.filter((l) => l.includes("store failing")).length, 1, lines.join("\n"));

      // The disk thaws: the stalled send commits after all, and the retry finds it.
      log.release();
      const retry = await client.send(alice.token, "lobby", "into the void", "c-1");
      assert.equal(retry.status, 200, "the retry gets the send that committed late");
      assert.equal((await client.raw("/healthz")).status, 200);
      assert.equal(await client.metric("parley_store_healthy"), 1);
      assert.equal(lines.filter((l) => l.includes("store recovered")).length, 1, lines.join("\n"));
    },
  );
});

Deno.test("shutdown keeps its deadline while the store never answers, and says what was lost", async () => {
  const log = new StallingLog({ history: 100 });
  const lines: string[] = [];
  await withServer(
    { eventLog: log, logLines: lines, sweepInterval: 50, flags: ["--store-timeout", "0.3"] },
    async (app, client) => {
      const alice = await client.session("alice");
      await client.join(alice.token, "lobby");
      log.stalled = true;
      const sending = client.send(alice.token, "lobby", "stuck");
      await eventually(() => log.held === 1, { what: () => "the send to reach the store" });
      const started = performance.now();
      await app.shutdown(1_000);
      const took = performance.now() - started;
      assert.ok(took < 2_000, `shutdown took ${Math.round(took)} ms with a 1 s deadline`);
      assert.equal((await sending).status, 503);
      assert.ok(
        lines.some((l) => l.includes("store did not close before the shutdown deadline")),
        lines.join("\n"),
      );
      log.release();
    },
  );
});

Deno.test("a full disk is logged once with its reason, and its recovery once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "parley-health-" });
  const log = await SqliteEventLog.open(`${dir}/parley.db`, { history: 1000 });
  const lines: string[] = [];
  try {
    // An injected clock: no background sweep probes the store while the test looks at it.
    const clock = new FakeClock();
    await withServer({ clock, eventLog: log, logLines: lines }, async (_app, client) => {
      const alice = await client.session("alice");
      await client.join(alice.token, "lobby");
      await log._setMaxPageCount(await log._pageCount());
      let failed = 0;
      for (let i = 0; i < 200 && failed < 5; i++) {
        const answer = await client.send(alice.token, "lobby", "x".repeat(1000));
        if (answer.status === 503) failed++;
      }
      assert.equal(failed, 5, "the capped database filled up");
      const failing = lines.filter((l) => l.includes("store failing"));
      assert.equal(failing.length, 1, lines.join("\n"));
      assert.match(failing[0]!, /database or disk is full/);
      assert.equal(await client.metric("parley_store_errors_total"), 5);
      assert.equal((await client.raw("/healthz")).status, 503);
      await log._setMaxPageCount(1_000_000);
      assert.equal((await client.send(alice.token, "lobby", "room again")).status, 201);
      assert.equal((await client.raw("/healthz")).status, 200);
      assert.equal(lines.filter((l) => l.includes("store recovered")).length, 1, lines.join("\n"));
    });
  } finally {
    await log.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a database file deleted while running turns /healthz 503 with an error line, and writes fail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "parley-health-" });
  const path = `${dir}/parley.db`;
  const log = await SqliteEventLog.open(path, { history: 1000 });
  const lines: string[] = [];
  const clock = new FakeClock();
  try {
    await withServer({ clock, eventLog: log, logLines: lines }, async (app, client) => {
      const alice = await client.session("alice");
      await client.join(alice.token, "lobby");
      assert.equal((await client.send(alice.token, "lobby", "kept")).status, 201);
      await Deno.remove(path);
      await app.sweep();
      const health = await client.raw("/healthz");
      assert.equal(health.status, 503);
      assert.match(JSON.parse(health.text).error.message, /was deleted/);
      assert.ok(
        lines.some((l) => /ERROR .*store unavailable.*was deleted/.test(l)),
        lines.join("\n"),
      );
      assert.equal(await client.metric("parley_store_healthy"), 0);
      const send = await client.send(alice.token, "lobby", "lost after a restart?");
      assert.equal(send.status, 503, "nothing is acknowledged into a file nobody can reopen");
    });
  } finally {
    await log.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with no traffic, the store's own probe write turns /healthz back to 200", async () => {
  const clock = new FakeClock();
  const log = new StallingLog({ history: 100 });
  await withServer(
    { clock, eventLog: log, flags: ["--store-timeout", "1"] },
    async (app, client) => {
      const alice = await client.session("alice");
      await client.join(alice.token, "lobby");
      log.stalled = true;
      const sending = client.send(alice.token, "lobby", "stuck");
      await eventually(() => log.held === 1, { what: () => "the send to reach the store" });
      clock.advance(1_000);
      await app.sweep();
      assert.equal((await sending).status, 503);
      // The stalled write is dropped rather than completed (a restart of the backend, say): nothing
      // succeeds by itself, so only a probe can tell that writes work again.
      log.stalled = false;
      log.drop();
      assert.equal((await client.raw("/healthz")).status, 503);
      await app.sweep();
      assert.equal((await client.raw("/healthz")).status, 200, "the probe write succeeded");
    },
  );
});
