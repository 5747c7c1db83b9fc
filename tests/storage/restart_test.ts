/**
 * What a clean restart keeps with the SQLite store, and how the server refuses a database it
 * cannot use: a real server process, stopped with SIGTERM and started again on the same file.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { ApiClient } from "../_server.ts";
import { runUntilSigterm as run, ServerProcess, startFailure } from "./_process.ts";

interface WireEvent {
  id: number;
  type: string;
  nick: string;
  text?: string;
}

/** Runs `fn` with a fresh temp dir, removed afterwards. */
async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley-restart-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `type:nick` of each event, for compact comparisons. */
function kinds(events: WireEvent[]): string[] {
  return events.map((e) => `${e.type}:${e.nick}`);
}

/** Checks a failed start: non-zero exit and exactly one `parley: ...` line, no stack trace. */
function assertOneClearLine(
  failure: { code: number; lines: string[]; stderr: string },
  pattern: RegExp,
): void {
  assert.notEqual(failure.code, 0, "exits non-zero");
  assert.equal(failure.lines.length, 1, `exactly one line on stderr:\n${failure.stderr}`);
  assert.match(failure.lines[0]!, /^parley: Cannot (open|read) database /);
  assert.match(failure.lines[0]!, pattern);
  assert.doesNotMatch(failure.stderr, /\bat |Uncaught|error:|listening/, "no stack trace");
}

Deno.test("clean restart keeps sessions, memberships, cursors and client ids", async () => {
  await withTempDir(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    let alice = { token: "", cursor: "" };
    let bob = { token: "", cursor: "" };
    let carol = { token: "", cursor: "" };
    let original: WireEvent | undefined;
    let bobCursor = "";
    await run(store, [], async (client) => {
      alice = await client.session("alice");
      bob = await client.session("Bob");
      assert.equal((await client.join(alice.token, "lobby")).status, 200);
      assert.equal((await client.join(bob.token, "lobby")).status, 200);
      assert.equal((await client.join(alice.token, "side")).status, 200);
      const sent = await client.send(alice.token, "lobby", "before the restart", "cid-1");
      assert.equal(sent.status, 201);
      original = sent.body.event;
      // Bob reads everything so far; his cursor is the one to resume from.
      const polled = await client.poll(bob.token, bob.cursor, 0);
      assert.deepEqual(kinds(polled.body.events), ["join:Bob", "message:alice"]);
      bobCursor = polled.body.cursor;
    });

    await run(store, [], async (client) => {
      // The nicks are still taken (case-insensitively): the sessions were loaded.
      const taken = await client.call("POST", "/api/session", { body: { nick: "ALICE" } });
      assert.equal(taken.status, 409);
      assert.equal(taken.body.error.code, "nick_taken");

      // Memberships survived: a newcomer's join lists both old members, with the history.
      carol = await client.session("carol");
      const joined = await client.join(carol.token, "lobby");
      assert.equal(joined.status, 200);
      assert.deepEqual(joined.body.members, ["Bob", "alice", "carol"]);
      assert.deepEqual(kinds(joined.body.history), ["join:alice", "join:Bob", "message:alice"]);
      assert.deepEqual(joined.body.history[2], original);
      const rooms = await client.call("GET", "/api/rooms");
      assert.deepEqual(rooms.body.rooms, [
        { name: "lobby", members: 3 },
        { name: "side", members: 1 },
      ]);
      assert.equal(await client.metric("parley_events_total"), 1, "carol's join");
      // The old token works and is still a member: joining again adds no join event.
      const rejoin = await client.join(alice.token, "lobby");
      assert.equal(rejoin.status, 200);
      assert.deepEqual(rejoin.body.members, ["Bob", "alice", "carol"]);
      assert.equal(await client.metric("parley_events_total"), 1, "no second join");

      // The client id is remembered: the same send answers 200 with the original event and
      // stores nothing.
      const again = await client.send(alice.token, "lobby", "before the restart", "cid-1");
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.deepEqual(again.body.event, original);
      assert.equal(await client.metric("parley_events_total"), 1, "the repeat stored nothing");

      // Bob's cursor resumes: only what came after it (carol's join), no gap, nothing twice.
      const polled = await client.poll(bob.token, bobCursor, 0);
      assert.equal(polled.status, 200);
      assert.equal(polled.body.gap, undefined);
      assert.deepEqual(kinds(polled.body.events), ["join:carol"]);
      // A long poll from the new cursor wakes for the next message, whose id continues.
      const waiting = client.poll(bob.token, polled.body.cursor, 10);
      const fresh = await client.send(alice.token, "lobby", "after the restart");
      assert.equal(fresh.status, 201);
      assert.ok(fresh.body.event.id > original!.id);
      assert.deepEqual((await waiting).body.events, [fresh.body.event]);

      assert.equal((await client.send(alice.token, "side", "still a member")).status, 201);
      // Carol ends her session: her leave and the deletion must last too.
      const deleted = await client.call("DELETE", "/api/session", { token: carol.token });
      assert.equal(deleted.status, 204);
    });

    await run(store, [], async (client) => {
      assert.equal((await client.poll(carol.token, null, 0)).status, 401, "carol's token is gone");
      const joined = await client.join(alice.token, "lobby");
      assert.deepEqual(joined.body.members, ["Bob", "alice"]);
      assert.deepEqual(kinds(joined.body.history).slice(-3), [
        "join:carol",
        "message:alice",
        "leave:carol",
      ]);
      const again = await client.call("POST", "/api/session", { body: { nick: "carol" } });
      assert.equal(again.status, 201, "the nick is free again");
    });
  });
});

Deno.test("after a restart, a poll from before a leave still reads up to it though the session joined again", async () => {
  await withTempDir(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    let alice = { token: "", cursor: "" };
    let cursor = "";
    await run(store, [], async (client) => {
      alice = await client.session("alice");
      const bob = await client.session("bob");
      assert.equal((await client.join(bob.token, "rj")).status, 200);
      assert.equal((await client.join(alice.token, "rj")).status, 200);
      cursor = (await client.poll(alice.token, null, 0)).body.cursor;
      assert.equal((await client.send(bob.token, "rj", "while alice is in")).status, 201);
      assert.equal(
        (await client.call("POST", "/api/rooms/rj/leave", { token: alice.token })).status,
        204,
      );
      assert.equal((await client.send(bob.token, "rj", "while alice is out")).status, 201);
      assert.equal((await client.join(alice.token, "rj")).status, 200);
      assert.equal((await client.send(bob.token, "rj", "alice is back")).status, 201);
    });
    await run(store, [], async (client) => {
      const polled = await client.poll(alice.token, cursor, 0);
      assert.equal(polled.status, 200);
      assert.equal(polled.body.gap, undefined);
      assert.deepEqual(
        polled.body.events.map((e: WireEvent) => `${e.type}:${e.nick}:${e.text ?? ""}`),
        [
          "message:bob:while alice is in",
          "leave:alice:",
          "join:alice:",
          "message:bob:alice is back",
        ],
      );
    });
  });
});

Deno.test("after a restart, a poll from before what it can no longer read answers a gap: a private room gone, a stretch dropped by retention", async () => {
  await withTempDir(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    let carol = { token: "", cursor: "" };
    let ivy = { token: "", cursor: "" };
    await run(store, ["--history", "5"], async (client) => {
      carol = await client.session("carol");
      const dave = await client.session("dave");
      const dm = await client.call("POST", "/api/dm", {
        token: carol.token,
        body: { nick: "dave" },
      });
      assert.equal(dm.status, 200);
      assert.equal((await client.send(dave.token, dm.body.room, "gone with the room")).status, 201);
      assert.equal(
        (await client.call("DELETE", "/api/session", { token: dave.token })).status,
        204,
      );
      assert.equal((await client.poll(carol.token, carol.cursor, 0)).body.gap, true);

      ivy = await client.session("ivy");
      const jack = await client.session("jack");
      assert.equal((await client.join(jack.token, "r")).status, 200);
      assert.equal((await client.join(ivy.token, "r")).status, 200);
      assert.equal((await client.send(jack.token, "r", "ivy saw this")).status, 201);
      assert.equal(
        (await client.call("POST", "/api/rooms/r/leave", { token: ivy.token })).status,
        204,
      );
      assert.equal((await client.join(ivy.token, "r")).status, 200);
      // Retention drops ivy's first stretch from the room.
      for (let i = 0; i < 5; i++) {
        assert.equal((await client.send(jack.token, "r", `${i}`)).status, 201);
      }
    });
    await run(store, ["--history", "5"], async (client) => {
      const polled = await client.poll(carol.token, carol.cursor, 0);
      assert.equal(polled.body.gap, true, "the private room's history went with it");
      const again = await client.poll(carol.token, polled.body.cursor, 0);
      assert.equal(again.body.gap, undefined, "once");
      const rejoined = await client.poll(ivy.token, ivy.cursor, 0);
      assert.equal(rejoined.body.gap, true, "ivy's first stretch was dropped");
    });
  });
});

Deno.test("after a restart, the ids of a private room deleted with its history are never given again", async () => {
  await withTempDir(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    let carol = { token: "", cursor: "" };
    let latest = "";
    await run(store, [], async (client) => {
      carol = await client.session("carol");
      const dave = await client.session("dave");
      const dm = await client.call("POST", "/api/dm", {
        token: carol.token,
        body: { nick: "dave" },
      });
      assert.equal((await client.send(dave.token, dm.body.room, "one")).status, 201);
      assert.equal((await client.send(dave.token, dm.body.room, "two")).status, 201);
      assert.equal(
        (await client.call("DELETE", "/api/session", { token: dave.token })).status,
        204,
      );
      // The room's events were the newest: no other room holds an id as high.
      latest = (await client.poll(carol.token, carol.cursor, 0)).body.cursor;
    });
    await run(store, [], async (client) => {
      const before = await client.poll(carol.token, latest, 0);
      assert.equal(before.status, 200, JSON.stringify(before.body));
      assert.equal((await client.join(carol.token, "after")).status, 200);
      const next = await client.poll(carol.token, latest, 0);
      assert.deepEqual(next.body.events.map((e: WireEvent) => e.type), ["join"]);
      assert.ok(Number(next.body.events[0].id) > Number(latest), "an id given again");
    });
  });
});

Deno.test("--history 5 is kept in the database; an old cursor reports a gap after restart", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/parley.db`;
    const store = `sqlite:${path}`;
    let alice = { token: "", cursor: "" };
    let bob = { token: "", cursor: "" };
    let oldCursor = "";
    let lastFive: WireEvent[] = [];
    await run(store, ["--history", "5"], async (client) => {
      alice = await client.session("alice");
      bob = await client.session("bob");
      assert.equal((await client.join(alice.token, "lobby")).status, 200);
      assert.equal((await client.join(bob.token, "lobby")).status, 200);
      const polled = await client.poll(bob.token, bob.cursor, 0);
      assert.deepEqual(kinds(polled.body.events), ["join:bob"]);
      oldCursor = polled.body.cursor; // 2: both joins
      for (let i = 1; i <= 8; i++) {
        assert.equal((await client.send(alice.token, "lobby", `m${i}`)).status, 201);
      }
      const history = await client.call("GET", "/api/rooms/lobby/history?limit=200", {
        token: bob.token,
      });
      lastFive = history.body.events;
      assert.deepEqual(lastFive.map((e) => e.text), ["m4", "m5", "m6", "m7", "m8"]);
    });

    // Retention is in the file itself, not only in the server's memory.
    {
      const db = new DatabaseSync(path, { readOnly: true });
      try {
        const rows = db.prepare("SELECT id, text FROM events ORDER BY id").all();
        assert.deepEqual(rows.map((r) => r.text), ["m4", "m5", "m6", "m7", "m8"]);
        const room = db.prepare("SELECT dropped_through FROM rooms WHERE name = 'lobby'").get();
        assert.equal(room?.dropped_through, lastFive[0]!.id - 1);
      } finally {
        db.close();
      }
    }

    await run(store, ["--history", "5"], async (client) => {
      const history = await client.call("GET", "/api/rooms/lobby/history?limit=200", {
        token: bob.token,
      });
      assert.equal(history.status, 200);
      assert.deepEqual(history.body.events, lastFive);
      // Bob's old cursor is from before what retention dropped: the answer says so.
      const polled = await client.poll(bob.token, oldCursor, 0);
      assert.equal(polled.status, 200);
      assert.equal(polled.body.gap, true);
      assert.deepEqual(polled.body.events, lastFive);
      const current = await client.poll(bob.token, polled.body.cursor, 0);
      assert.deepEqual([current.body.events, current.body.gap], [[], undefined]);
    });

    // A lower --history applies at open: 3 kept, and the gap starts exactly at what was dropped.
    await run(store, ["--history", "3"], async (client) => {
      const history = await client.call("GET", "/api/rooms/lobby/history", { token: bob.token });
      assert.deepEqual(history.body.events, lastFive.slice(2));
      const atEdge = await client.poll(bob.token, String(lastFive[1]!.id), 0);
      assert.deepEqual([atEdge.body.gap, atEdge.body.events], [undefined, lastFive.slice(2)]);
      const beforeEdge = await client.poll(bob.token, String(lastFive[0]!.id), 0);
      assert.deepEqual([beforeEdge.body.gap, beforeEdge.body.events], [true, lastFive.slice(2)]);
    });
  });
});

Deno.test("the last 1,000 client ids of a session survive a restart whatever their rooms", async () => {
  await withTempDir(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    let alice = { token: "", cursor: "" };
    const first = new Map<string, number>();
    await run(store, [], async (client) => {
      alice = await client.session("alice");
      await client.join(alice.token, "a");
      await client.join(alice.token, "b");
      // 600 in room b (ids b-…), then 600 in room a: the last 1,000 sends are b-200…b-599, a-*.
      for (const [room, n] of [["b", 600], ["a", 600]] as const) {
        for (let i = 0; i < n; i++) {
          const sent = await client.send(alice.token, room, `${room}${i}`, `${room}-${i}`);
          assert.equal(sent.status, 201);
          first.set(`${room}-${i}`, sent.body.event.id);
        }
      }
      const retry = await client.send(alice.token, "a", "a0", "a-0");
      assert.equal(retry.status, 200, "deduplicated before the restart");
    });
    await run(store, [], async (client) => {
      for (const id of ["a-0", "a-599", "b-200", "b-599"]) {
        const room = id[0]!;
        const retry = await client.send(alice.token, room, id.replace("-", ""), id);
        assert.equal(retry.status, 200, `${id} is still remembered after the restart`);
        assert.equal(retry.body.event.id, first.get(id));
      }
      const forgotten = await client.send(alice.token, "b", "b0", "b-0");
      assert.equal(forgotten.status, 201, "b-0 is beyond the last 1,000 sends");
    });
  });
});

Deno.test("client ids survive a restart even when retention dropped their events", async () => {
  await withTempDir(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    let alice = { token: "", cursor: "" };
    let original = 0;
    await run(store, ["--history", "5"], async (client) => {
      alice = await client.session("alice");
      await client.join(alice.token, "r");
      const sent = await client.send(alice.token, "r", "keep me once", "cid-1");
      original = sent.body.event.id;
      for (let i = 0; i < 10; i++) await client.send(alice.token, "r", `filler ${i}`);
      const retry = await client.send(alice.token, "r", "keep me once", "cid-1");
      assert.equal(retry.status, 200);
      assert.equal(retry.body.event.id, original);
    });
    await run(store, ["--history", "5"], async (client) => {
      const retry = await client.send(alice.token, "r", "keep me once", "cid-1");
      assert.equal(retry.status, 200, "the retry is deduplicated after the restart too");
      assert.equal(retry.body.event.id, original);
      assert.equal(retry.body.event.text, "keep me once");
    });
  });
});

Deno.test("two stored sessions whose nicks are one nick by case folding: the later one is ended, with a warning", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/parley.db`;
    const store = `sqlite:${path}`;
    let first = { token: "", cursor: "" };
    let second = { token: "", cursor: "" };
    await run(store, [], async (client) => {
      first = await client.session("ΟΔΟΣ");
      second = await client.session("carol");
      await client.join(first.token, "lobby");
      await client.join(second.token, "lobby");
    });
    // A file from before full case folding: rename carol to a spelling that folds onto ΟΔΟΣ.
    const db = new DatabaseSync(path);
    db.prepare("UPDATE sessions SET nick = 'οδοσ' WHERE nick = 'carol'").run();
    db.close();
    const server = await ServerProcess.start(store, []);
    try {
      const client = new ApiClient(await server.url());
      const kept = await client.poll(first.token, null, 0);
      assert.equal(kept.status, 200, "the earlier session keeps its nick");
      const ended = await client.poll(second.token, null, 0);
      assert.equal(ended.status, 401, "the later one is ended");
      const taken = await client.call("POST", "/api/session", { body: { nick: "Οδοσ" } });
      assert.equal(taken.status, 409, "the nick index holds the kept session");
      const { status, stderr } = await server.stop("SIGTERM");
      assert.equal(status.code, 0);
      assert.match(stderr, /WARN .*nick/i, stderr);
    } finally {
      await server.stop("SIGKILL");
    }
  });
});

Deno.test("a database that is not one, is damaged or cannot be opened: one clear line, exit non-zero", async () => {
  await withTempDir(async (dir) => {
    // Not a database at all.
    const garbage = `${dir}/garbage.db`;
    await Deno.writeTextFile(garbage, "this is a text file, not SQLite\n".repeat(200));
    assertOneClearLine(await startFailure(`sqlite:${garbage}`), /file is not a database/);
    assert.equal(
      await Deno.readTextFile(garbage),
      "this is a text file, not SQLite\n".repeat(200),
      "the file was left alone",
    );

    // A real Parley database with a page overwritten.
    const damaged = `${dir}/damaged.db`;
    await run(`sqlite:${damaged}`, [], async (client) => {
      const { token } = await client.session("alice");
      await client.join(token, "lobby");
      for (let i = 0; i < 20; i++) await client.send(token, "lobby", `message ${i} `.repeat(20));
    });
    const bytes = await Deno.readFile(damaged);
    assert.ok(bytes.length >= 3 * 4096, "the database has several pages");
    bytes.fill(0xab, 4096, 8192); // page 2: the events table's root
    await Deno.writeFile(damaged, bytes);
    assertOneClearLine(await startFailure(`sqlite:${damaged}`), /corrupt|malformed/);

    // A sound file with a value this server cannot read (as a hand edit might leave it).
    const edited = `${dir}/edited.db`;
    await run(`sqlite:${edited}`, [], async (client) => void await client.session("alice"));
    const db = new DatabaseSync(edited);
    db.exec("UPDATE sessions SET created_at = 'yesterday'");
    db.close();
    assertOneClearLine(
      await startFailure(`sqlite:${edited}`),
      /^parley: Cannot read database .*expected a number/,
    );

    // A path that cannot hold a database file.
    assertOneClearLine(await startFailure(`sqlite:${dir}`), /path is a directory/);
    assertOneClearLine(
      await startFailure(`sqlite:${dir}/missing/parley.db`),
      /unable to create the file/,
    );
  });
});

Deno.test({
  name: "an unreadable or read-only database file: one clear line, exit non-zero",
  // Root reads and writes whatever the mode bits say.
  ignore: Deno.uid() === 0,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = `${dir}/parley.db`;
      await run(`sqlite:${path}`, [], async () => {});
      await Deno.chmod(path, 0o000);
      assertOneClearLine(await startFailure(`sqlite:${path}`), /unable to open .*no permission/);
      await Deno.chmod(path, 0o444);
      assertOneClearLine(await startFailure(`sqlite:${path}`), /read-only \(permission denied\)/);
    });
  },
});

Deno.test("two servers on one file: the second exits non-zero with a 'locked' line, the first goes on", async () => {
  await withTempDir(async (dir) => {
    const store = `sqlite:${dir}/parley.db`;
    let token = "";
    await run(store, [], async (client) => {
      ({ token } = await client.session("alice"));
      assert.equal((await client.join(token, "lobby")).status, 200);

      const second = await startFailure(store);
      assertOneClearLine(second, /locked/);
      assert.match(second.lines[0]!, /another (process|server)/);

      // The failed opener did not take the first server's lock or data away.
      const sent = await client.send(token, "lobby", "still here");
      assert.equal(sent.status, 201);
      assertOneClearLine(await startFailure(store), /locked/);
    });
    // Once the first stopped, the file opens again with everything in it.
    await run(store, [], async (client) => {
      const joined = await client.join(token, "lobby");
      assert.equal(joined.status, 200);
      assert.deepEqual(joined.body.history.map((e: WireEvent) => e.text), [
        undefined,
        "still here",
      ]);
    });
  });
});

Deno.test("SIGTERM right after the listening line is a clean stop (exit 0)", async () => {
  await withTempDir(async (dir) => {
    // Whoever waits for the line (a test, a supervisor) may stop the server at once; the signal
    // handler must already be in place, or the default action kills it (exit 143).
    for (let i = 0; i < 5; i++) {
      const server = await ServerProcess.start(`sqlite:${dir}/parley.db`);
      const { status, stderr } = await server.stop("SIGTERM");
      assert.equal(status.code, 0, `run ${i}:\n${stderr}`);
      assert.match(stderr, /stopped/);
    }
  });
});
