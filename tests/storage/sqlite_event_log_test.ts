import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type NewEvent, SENDS_KEPT, StorageError } from "../../lib/storage/event_log.ts";
import { MIGRATIONS } from "../../lib/storage/sqlite_db.ts";
import { SCHEMA_VERSION, SqliteEventLog } from "../../lib/storage/sqlite_event_log.ts";
import { runEventLogContract } from "./event_log_contract.ts";

runEventLogContract("sqlite log", async (history) => {
  const dir = await Deno.makeTempDir({ prefix: "parley_sqlite_" });
  const path = `${dir}/parley.db`;
  let current = await SqliteEventLog.open(path, { history });
  return {
    log: current,
    reopen: async () => {
      await current.close();
      current = await SqliteEventLog.open(path, { history });
      return current;
    },
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
});

/** Runs `fn` with a path in a fresh temp dir, removed afterwards. */
async function withPath(
  fn: (path: string, dir: string) => void | Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley_sqlite_" });
  try {
    await fn(`${dir}/parley.db`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function message(room: string, text: string): NewEvent {
  return { type: "message", room, nick: "alice", text, ts: 1_700_000_000_000, session: "s" };
}

/** Asserts that `fn` rejects with a `StorageError` whose one-line message matches `pattern`. */
async function assertOpenFails(fn: () => Promise<unknown>, pattern: RegExp): Promise<StorageError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof StorageError, `expected StorageError, got ${caught}`);
  assert.match(caught.message, pattern);
  assert.ok(!caught.message.includes("\n"), `message is not one line: ${caught.message}`);
  return caught;
}

function userVersion(path: string): number {
  const db = new DatabaseSync(path);
  try {
    return Number(db.prepare("PRAGMA user_version").get()?.user_version);
  } finally {
    db.close();
  }
}

Deno.test("sqlite log applies migrations to a fresh file and not again on reopen", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 10 });
    await log.append([message("lobby", "kept")]);
    await log.close();
    assert.equal(userVersion(path), SCHEMA_VERSION);
    const db = new DatabaseSync(path);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all().map((r) => r.name);
    assert.deepEqual(tables, [
      "bans",
      "events",
      "memberships",
      "meta",
      "rooms",
      "sends",
      "sessions",
    ]);
    assert.equal(db.prepare("PRAGMA journal_mode").get()?.journal_mode, "wal");
    db.close();
    // A second open must find the schema current: re-running CREATE TABLE would throw.
    const again = await SqliteEventLog.open(path, { history: 10 });
    const snapshot = await again.load();
    assert.equal(snapshot.lastId, 1);
    assert.equal(snapshot.rooms[0]?.events[0]?.text, "kept");
    await again.close();
    assert.equal(userVersion(path), SCHEMA_VERSION);
  });
});

Deno.test("sqlite log migrates a version 1 file: sessions, memberships and client ids carry over", async () => {
  await withPath(async (path) => {
    // A file as version 1 wrote it: its schema and a session with a membership and a client id.
    const db = new DatabaseSync(path);
    db.exec(MIGRATIONS[0]!);
    db.exec("PRAGMA user_version = 1");
    db.exec(`INSERT INTO rooms (name) VALUES ('lobby');
      INSERT INTO sessions VALUES ('s1', 'tok', 'Alice', 5);
      INSERT INTO memberships VALUES ('s1', 'lobby', 1);
      INSERT INTO events VALUES (1, 'lobby', 'join', 'Alice', NULL, 10, NULL, 's1');
      INSERT INTO events VALUES (2, 'lobby', 'message', 'Alice', 'hi', 11, 'cid-1', 's1');
      UPDATE meta SET value = 2 WHERE key = 'last_id';`);
    db.close();
    const log = await SqliteEventLog.open(path, { history: 10 });
    try {
      const snapshot = await log.load();
      assert.deepEqual(snapshot.sessions, [{
        id: "s1",
        token: "tok",
        nick: "Alice",
        createdAt: 5,
        address: "",
        moderator: false,
        rooms: { lobby: { joinId: 1 } },
      }]);
      assert.deepEqual(snapshot.sends.s1, [{
        clientId: "cid-1",
        event: {
          id: 2,
          type: "message",
          room: "lobby",
          nick: "Alice",
          text: "hi",
          ts: 11,
          clientId: "cid-1",
          session: "s1",
        },
      }]);
      assert.equal(snapshot.lastId, 2);
    } finally {
      await log.close();
    }
    assert.equal(userVersion(path), SCHEMA_VERSION);
  });
});

Deno.test("sqlite log migrates a version 1 file with left rooms, dropped events and ended sessions", async () => {
  await withPath(async (path) => {
    // Version 1 deleted a membership on leave and kept no sends table; retention had dropped
    // lobby's first events; carol's session ended (its row gone) while her events stayed.
    const db = new DatabaseSync(path);
    db.exec(MIGRATIONS[0]!);
    db.exec("PRAGMA user_version = 1");
    db.exec(
      `INSERT INTO rooms (name, dropped_through) VALUES ('lobby', 3), ('side', 0), ('flood', 0);
      INSERT INTO sessions VALUES ('s1', 'tok1', 'alice', 5), ('s2', 'tok2', 'Bob', 6);
      INSERT INTO memberships VALUES ('s1', 'lobby', 4), ('s2', 'lobby', 5), ('s2', 'flood', 12);
      INSERT INTO events VALUES
        (4, 'lobby', 'join', 'alice', NULL, 10, NULL, 's1'),
        (5, 'lobby', 'join', 'Bob', NULL, 11, NULL, 's2'),
        (6, 'side', 'join', 'alice', NULL, 12, NULL, 's1'),
        (7, 'side', 'message', 'alice', 'aside', 13, 'c-side', 's1'),
        (8, 'side', 'leave', 'alice', NULL, 14, NULL, 's1'),
        (9, 'lobby', 'message', 'alice', 'hi', 15, 'c-1', 's1'),
        (10, 'lobby', 'message', 'carol', 'bye', 16, 'g-1', 's3'),
        (11, 'lobby', 'leave', 'carol', NULL, 17, NULL, 's3'),
        (12, 'flood', 'join', 'Bob', NULL, 18, NULL, 's2');
      UPDATE meta SET value = 12 WHERE key = 'last_id';`,
    );
    // Bob sent more messages with client ids than a session remembers.
    const insert = db.prepare(
      "INSERT INTO events VALUES (?, 'flood', 'message', 'Bob', ?, 20, ?, 's2')",
    );
    db.exec("BEGIN");
    for (let i = 0; i < SENDS_KEPT + 5; i++) insert.run(13 + i, `f${i}`, `f-${i}`);
    db.exec("COMMIT");
    db.exec(`UPDATE meta SET value = ${12 + SENDS_KEPT + 5} WHERE key = 'last_id'`);
    db.close();
    const log = await SqliteEventLog.open(path, { history: 10 });
    try {
      const snapshot = await log.load();
      assert.equal(snapshot.lastId, 12 + SENDS_KEPT + 5);
      assert.deepEqual(
        snapshot.sessions.map((s) => [s.id, s.address, s.moderator, s.rooms]),
        [
          ["s1", "", false, { lobby: { joinId: 4 } }],
          ["s2", "", false, { lobby: { joinId: 5 }, flood: { joinId: 12 } }],
        ],
      );
      const rooms = new Map(snapshot.rooms.map((r) => [r.name, r]));
      assert.equal(rooms.get("lobby")?.droppedThrough, 3);
      assert.deepEqual(rooms.get("lobby")?.events.map((e) => e.id), [4, 5, 9, 10, 11]);
      assert.deepEqual(rooms.get("side")?.events.map((e) => e.type), ["join", "message", "leave"]);
      assert.equal(rooms.get("flood")?.events.length, 10, "--history applies at open");
      for (const room of snapshot.rooms) {
        for (const e of room.events) {
          assert.equal(e.edited, undefined);
          assert.equal(e.deleted, undefined);
          assert.equal(e.ref, undefined);
        }
      }
      // Sends: alice's from both rooms; Bob's newest SENDS_KEPT, whatever retention dropped; none
      // of the ended session (sends go with their session).
      assert.deepEqual(snapshot.sends.s1?.map((s) => [s.clientId, s.event.id]), [
        ["c-side", 7],
        ["c-1", 9],
      ]);
      const bobs = snapshot.sends.s2!;
      assert.equal(bobs.length, SENDS_KEPT);
      assert.equal(bobs[0]!.clientId, "f-5");
      assert.equal(bobs.at(-1)!.event.text, `f${SENDS_KEPT + 4}`);
      assert.deepEqual(Object.keys(snapshot.sends).sort(), ["s1", "s2"]);
      assert.deepEqual(snapshot.bans, []);
    } finally {
      await log.close();
    }
  });
});

Deno.test("sqlite log refuses a database from a newer schema", async () => {
  await withPath(async (path) => {
    const db = new DatabaseSync(path);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await assertOpenFails(
      () => SqliteEventLog.open(path, { history: 10 }),
      new RegExp(`^Cannot open database .*: schema version ${SCHEMA_VERSION + 1} is newer`),
    );
  });
});

Deno.test("sqlite log refuses a file that is not a database", async () => {
  await withPath(async (path) => {
    await Deno.writeTextFile(path, "name,nick\nlobby,alice\n".repeat(100));
    const error = await assertOpenFails(() => SqliteEventLog.open(path, { history: 10 }), /./);
    assert.equal(error.message, `Cannot open database ${path}: file is not a database`);
    await Deno.writeFile(path, crypto.getRandomValues(new Uint8Array(16384)));
    await assertOpenFails(
      () => SqliteEventLog.open(path, { history: 10 }),
      /^Cannot open database .*: file is not a database$/,
    );
  });
});

Deno.test("sqlite log refuses a database with damaged pages", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 1000 });
    for (let i = 0; i < 50; i++) await log.append([message(`room-${i}`, "x".repeat(3000))]);
    await log.close();
    // Keep the header page (so it still looks like SQLite) and overwrite the ones after it.
    const bytes = await Deno.readFile(path);
    bytes.fill(0x41, 4096, 4096 * 8);
    await Deno.writeFile(path, bytes);
    await assertOpenFails(
      () => SqliteEventLog.open(path, { history: 1000 }),
      /^Cannot open database .*: database is corrupt/,
    );
  });
});

/**
 * Makes `path` unwritable for this process. Root ignores mode bits, so as root this uses the
 * immutable attribute (`chattr +i`, which binds root too) when the file system supports it.
 * Returns how, and an undo, or undefined when neither works.
 */
async function makeReadOnly(
  path: string,
): Promise<{ how: string; undo: () => Promise<void> } | undefined> {
  if (Deno.uid() !== 0) {
    await Deno.chmod(path, 0o444);
    return { how: "chmod 0444", undo: () => Deno.chmod(path, 0o644) };
  }
  try {
    const set = await new Deno.Command("chattr", { args: ["+i", path], stderr: "null" }).output();
    if (!set.success) return undefined;
  } catch {
    return undefined; // no chattr binary
  }
  return {
    how: "chattr +i",
    undo: async () => {
      await new Deno.Command("chattr", { args: ["-i", path] }).output();
    },
  };
}

Deno.test("sqlite log refuses a read-only database at open", async () => {
  await withPath(async (path) => {
    await (await SqliteEventLog.open(path, { history: 10 })).close();
    const readOnly = await makeReadOnly(path);
    if (readOnly === undefined) {
      // Root on a file system without chattr: ask SQLite itself for a read-only handle, which
      // is what it silently falls back to for a file it may not write.
      await assertOpenFails(
        () => SqliteEventLog.open(`file:${path}?mode=ro`, { history: 10 }),
        /^Cannot open database .*read-only/,
      );
      return;
    }
    try {
      await assertOpenFails(
        () => SqliteEventLog.open(path, { history: 10 }),
        /^Cannot open database .*: file is read-only/,
      );
    } finally {
      await readOnly.undo();
    }
    await (await SqliteEventLog.open(path, { history: 10 })).close();
  });
});

Deno.test("sqlite log refuses a read-only handle opened through a URI", async () => {
  await withPath(async (path) => {
    await (await SqliteEventLog.open(path, { history: 10 })).close();
    await assertOpenFails(
      () => SqliteEventLog.open(`file:${path}?mode=ro`, { history: 10 }),
      /^Cannot open database .*read-only/,
    );
  });
});

Deno.test("sqlite log refuses a missing directory and a directory path", async () => {
  await withPath(async (path, dir) => {
    await assertOpenFails(
      () => SqliteEventLog.open(`${dir}/missing/parley.db`, { history: 10 }),
      /^Cannot open database .*missing\/parley\.db: unable to create the file/,
    );
    await assertOpenFails(
      () => SqliteEventLog.open(dir, { history: 10 }),
      /^Cannot open database .*: path is a directory$/,
    );
    await Deno.stat(dir); // and nothing was created or removed
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  });
});

Deno.test("sqlite log refuses a file another log in this process holds", async () => {
  await withPath(async (path) => {
    const first = await SqliteEventLog.open(path, { history: 10 });
    await first.append([message("lobby", "one")]);
    await assertOpenFails(
      () => SqliteEventLog.open(path, { history: 10 }),
      /locked by another process/,
    );
    // The failed open must not have released the first log's lock.
    await first.append([message("lobby", "two")]);
    await assertOpenFails(() => SqliteEventLog.open(path, { history: 10 }), /locked/);
    await first.close();
    const second = await SqliteEventLog.open(path, { history: 10 });
    assert.equal((await second.load()).lastId, 2);
    await second.close();
  });
});

Deno.test("sqlite log refuses a file another process holds", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 10 });
    const module = new URL("../../lib/storage/sqlite_event_log.ts", import.meta.url).href;
    const child = `
      import { SqliteEventLog } from ${JSON.stringify(module)};
      try {
        await (await SqliteEventLog.open(${JSON.stringify(path)}, { history: 10 })).close();
        console.log("opened");
      } catch (e) {
        console.log(e.name + ": " + e.message);
      }`;
    const run = async () => {
      const out = await new Deno.Command(Deno.execPath(), { args: ["eval", child] }).output();
      return new TextDecoder().decode(out.stdout).trim();
    };
    assert.match(await run(), /^StorageError: Cannot open database .*: database is locked/);
    await log.close();
    assert.equal(await run(), "opened");
  });
});

Deno.test("sqlite log rejects a failed batch and keeps working after", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 100 });
    await log.append([message("lobby", "before")]);
    const before = log.stats;
    // Cap the file at its current size: the next write that needs a page hits SQLITE_FULL.
    await log._setMaxPageCount(await log._pageCount());
    const batch = [
      log.append([message("lobby", "small")]),
      log.putSession({
        id: "s1",
        token: "t",
        nick: "bob",
        createdAt: 1,
        address: "a",
        moderator: false,
        rooms: { lobby: { joinId: 1 } },
      }),
      log.append([message("lobby", "x".repeat(64 * 1024))]),
      log.append([message("dev", "new room")]),
    ];
    const results = await Promise.allSettled(batch);
    for (const result of results) {
      assert.equal(result.status, "rejected");
      assert.ok(result.reason instanceof StorageError);
      assert.match(
        result.reason.message,
        /^Cannot write to database .*: database or disk is full$/,
      );
    }
    assert.deepEqual(log.stats, before);
    await log._setMaxPageCount(1_000_000);
    // The failed batch consumed no ids and left nothing behind.
    const [after] = await log.append([message("lobby", "after")]);
    assert.equal(after?.id, 2);
    const check = (snapshot: Awaited<ReturnType<SqliteEventLog["load"]>>) => {
      assert.equal(snapshot.lastId, 2);
      assert.deepEqual(snapshot.rooms.map((r) => r.name), ["lobby"]);
      assert.deepEqual(snapshot.rooms[0]?.events.map((e) => e.text), ["before", "after"]);
      assert.deepEqual(snapshot.sessions, []);
    };
    check(await log.load());
    await log.close();
    const reopened = await SqliteEventLog.open(path, { history: 100 });
    check(await reopened.load());
    await reopened.close();
  });
});

Deno.test("sqlite log commits concurrent appends in one transaction", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 100 });
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++) calls.push(log.append([message(`room-${i % 5}`, `${i}`)]));
    calls.push(
      log.putSession({
        id: "s",
        token: "t",
        nick: "n",
        createdAt: 1,
        address: "a",
        moderator: false,
        rooms: {},
      }),
    );
    await Promise.all(calls);
    assert.deepEqual(log.stats, { transactions: 1, appended: 1000 });
    for (let i = 0; i < 5; i++) await log.append([message("lobby", `${i}`)]);
    assert.deepEqual(log.stats, { transactions: 6, appended: 1005 });
    await log.close();
  });
});

Deno.test("sqlite log pipelines: calls made while a batch commits form the next one", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 100 });
    const first = log.append([message("lobby", "first")]);
    // The batch holding `first` goes to the worker at the next immediate; these come after.
    await new Promise((resolve) => setImmediate(resolve));
    const order: number[] = [];
    const rest = [1, 2, 3].map((i) =>
      log.append([message("lobby", `${i}`)]).then((events) => (order.push(i), events))
    );
    rest.push(
      log.putSession({
        id: "s",
        token: "t",
        nick: "n",
        createdAt: 1,
        address: "a",
        moderator: false,
        rooms: {},
      }).then(
        () => (order.push(4), []),
      ),
    );
    assert.deepEqual((await first).map((e) => e.id), [1]);
    assert.deepEqual((await Promise.all(rest)).flat().map((e) => e.id), [2, 3, 4]);
    assert.deepEqual(order, [1, 2, 3, 4]);
    assert.deepEqual(log.stats, { transactions: 2, appended: 4 });
    await log.close();
  });
});

Deno.test("sqlite log lets the process exit once closed, and after a failed open", async () => {
  await withPath(async (path) => {
    const module = new URL("../../lib/storage/sqlite_event_log.ts", import.meta.url).href;
    const child = `
      import { SqliteEventLog } from ${JSON.stringify(module)};
      const log = await SqliteEventLog.open(${JSON.stringify(path)}, { history: 10 });
      await log.append([{ type: "message", room: "r", nick: "n", text: "x", ts: 1, session: "s" }]);
      await log.close();
      await SqliteEventLog.open(${JSON.stringify(path + "/not-a-dir/x.db")}, { history: 10 })
        .catch((e) => console.log(e.name));`;
    const process = new Deno.Command(Deno.execPath(), { args: ["eval", child], stdout: "piped" })
      .spawn();
    // A worker left running would keep the child alive: give it a generous bound, then kill.
    const timer = setTimeout(() => process.kill("SIGKILL"), 15_000);
    const out = await process.output();
    clearTimeout(timer);
    assert.equal(out.signal, null, "the child exited by itself");
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "StorageError");
    const reopened = await SqliteEventLog.open(path, { history: 10 });
    assert.equal((await reopened.load()).lastId, 1);
    await reopened.close();
  });
});

Deno.test("sqlite log makes writes queued at close durable", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 10 });
    const pending = log.append([message("lobby", "last words")]);
    await log.close();
    assert.equal(log.closed, true);
    assert.equal((await pending)[0]?.id, 1);
    const reopened = await SqliteEventLog.open(path, { history: 10 });
    assert.equal((await reopened.load()).rooms[0]?.events[0]?.text, "last words");
    await reopened.close();
  });
});

Deno.test("sqlite log continues ids after the highest kept, dropped or recorded one", async () => {
  await withPath(async (path) => {
    const nextId = async (history: number) => {
      const log = await SqliteEventLog.open(path, { history });
      const [event] = await log.append([message("lobby", "next")]);
      await log.close();
      return event?.id;
    };
    const setMeta = (value: number) => {
      const db = new DatabaseSync(path);
      db.exec(`UPDATE meta SET value = ${value} WHERE key = 'last_id'`);
      db.close();
    };
    // Commits do not rewrite meta.last_id: kept events give the next id...
    const log = await SqliteEventLog.open(path, { history: 100 });
    for (let i = 0; i < 5; i++) await log.append([message("lobby", `${i}`)]);
    await log.close();
    setMeta(0);
    assert.equal(await nextId(100), 6);
    // ...and so do dropped ones, with retention emptying the room...
    setMeta(0);
    assert.equal(await nextId(0), 7);
    // ...and meta.last_id, as files written by every commit have it, is a floor on top.
    setMeta(50);
    assert.equal(await nextId(100), 51);
  });
});

Deno.test("sqlite log applies a lowered history at open", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 5 });
    for (let i = 1; i <= 5; i++) await log.append([message("lobby", `${i}`)]);
    await log.close();
    const smaller = await SqliteEventLog.open(path, { history: 2 });
    const [room] = (await smaller.load()).rooms;
    assert.deepEqual(room?.events.map((e) => e.id), [4, 5]);
    assert.equal(room?.droppedThrough, 3);
    // Counts were rebuilt at open: the next append drops exactly one more.
    await smaller.append([message("lobby", "6")]);
    const [after] = (await smaller.load()).rooms;
    assert.deepEqual(after?.events.map((e) => e.id), [5, 6]);
    assert.equal(after?.droppedThrough, 4);
    await smaller.close();
  });
});

Deno.test("sqlite log rejects a malformed event without failing its batch", async () => {
  await withPath(async (path) => {
    const log = await SqliteEventLog.open(path, { history: 10 });
    const good = log.append([message("lobby", "a")]);
    const bad = log.append([{ ...message("lobby", "b"), type: "shout" as "message" }]);
    const alsoGood = log.append([message("lobby", "c")]);
    await assert.rejects(bad, TypeError);
    assert.equal((await good)[0]?.id, 1);
    assert.equal((await alsoGood)[0]?.id, 2);
    await log.close();
  });
});

Deno.test("sqlite log rejects a negative history", async () => {
  await assert.rejects(SqliteEventLog.open(":memory:", { history: -1 }), RangeError);
});
