import assert from "node:assert/strict";
import {
  type EventLog,
  LEFT_KEPT,
  type Membership,
  type NewEvent,
  SENDS_KEPT,
  type Snapshot,
  StorageError,
  type StoredBan,
  type StoredEvent,
  type StoredSession,
} from "../../lib/storage/event_log.ts";

/** A log under test, and how to get "the same log after a restart". */
export interface EventLogFixture {
  log: EventLog;
  /**
   * Closes the current log and opens the same store again (durable backends), or returns the same
   * instance unclosed (memory). The suite closes whatever log it holds last.
   */
  reopen: () => Promise<EventLog>;
  /** Removes what the fixture made (temp files), after the last log is closed. */
  cleanup?: () => Promise<void>;
}

/** Makes a fresh, empty log keeping `history` events per room. */
export type MakeEventLog = (history: number) => Promise<EventLogFixture> | EventLogFixture;

/** Registers the behaviour every `EventLog` backend must have as `Deno.test` cases named `name: …`. */
export function runEventLogContract(name: string, make: MakeEventLog): void {
  /** Runs `fn` against a fresh log, closing whichever instance is current at the end. */
  function test(title: string, history: number, fn: (t: Harness) => Promise<void>): void {
    Deno.test(`${name}: ${title}`, async () => {
      const fixture = await make(history);
      let current = fixture.log;
      const harness: Harness = {
        get log() {
          return current;
        },
        reopen: async () => {
          current = await fixture.reopen();
          return current;
        },
      };
      try {
        await fn(harness);
      } finally {
        await current.close();
        await fixture.cleanup?.();
      }
    });
  }

  test("a new log loads empty", 10, async ({ log }) => {
    assert.deepEqual(await log.load(), { lastId: 0, rooms: [], sessions: [], sends: {}, bans: [] });
  });

  test("ids are consecutive and increase across calls", 10, async ({ log }) => {
    await log.load();
    const first = await log.append([
      message("lobby", "hi", { clientId: "c-1" }),
      join("lobby"),
      message("other", "yo"),
    ]);
    assert.deepEqual(first.map((e) => e.id), [1, 2, 3]);
    // The stored form is the input plus an id: optional fields present only when given.
    assert.deepEqual(first[0], { id: 1, ...message("lobby", "hi", { clientId: "c-1" }) });
    assert.deepEqual(first[1], { id: 2, ...join("lobby") });
    assert.ok(!("text" in first[1]!) && !("clientId" in first[1]!));
    const second = await log.append([message("lobby", "again")]);
    assert.deepEqual(second.map((e) => e.id), [4]);
  });

  test("an empty append resolves with no events and takes no id", 10, async ({ log }) => {
    await log.load();
    assert.deepEqual(await log.append([]), []);
    assert.deepEqual((await log.append([join("lobby")])).map((e) => e.id), [1]);
  });

  test("concurrent appends resolve in call order with increasing ids", 50, async ({ log }) => {
    await log.load();
    const order: number[] = [];
    const calls: Promise<StoredEvent[]>[] = [];
    for (let i = 0; i < 1000; i++) {
      // Every tenth call carries two events, so batches mix sizes.
      const events = i % 10 === 0
        ? [message(`room-${i % 7}`, `${i}a`), message(`room-${i % 7}`, `${i}b`)]
        : [message(`room-${i % 7}`, `${i}`)];
      calls.push(
        log.append(events).then((stored) => {
          order.push(i);
          return stored;
        }),
      );
    }
    const results = await Promise.all(calls);
    assert.deepEqual(order, [...Array(1000).keys()]);
    const ids = results.flat().map((e) => e.id);
    assert.deepEqual(ids, [...Array(1100).keys()].map((i) => i + 1));
    assert.equal(results[10]![1]!.text, "10b");
  });

  test("retention keeps the last N events per room and records droppedThrough", 3, async (t) => {
    await t.log.load();
    const ids: Record<string, number[]> = { a: [], b: [] };
    for (const room of ["a", "a", "b", "a", "a", "b", "a"]) {
      const [e] = await t.log.append([message(room, `${room}${ids[room]!.length}`)]);
      ids[room]!.push(e!.id);
    }
    // Some in one call too: retention applies within a call, not only between calls.
    const batch = await t.log.append([message("c", "0"), message("c", "1"), message("c", "2")]);
    const batch2 = await t.log.append([message("c", "3"), message("c", "4")]);
    const expect = (snapshot: Snapshot) => {
      const rooms = roomsByName(snapshot);
      assert.deepEqual(rooms.get("a")?.events.map((e) => e.id), ids.a!.slice(-3));
      assert.equal(rooms.get("a")?.droppedThrough, ids.a![1]);
      assert.deepEqual(rooms.get("b")?.events.map((e) => e.id), ids.b);
      assert.equal(rooms.get("b")?.droppedThrough, 0);
      assert.deepEqual(
        rooms.get("c")?.events.map((e) => e.text),
        ["2", "3", "4"],
      );
      assert.equal(rooms.get("c")?.droppedThrough, batch2[0]!.id - 2);
      assert.equal(rooms.get("c")?.droppedThrough, batch[1]!.id);
      assert.equal(snapshot.lastId, batch2[1]!.id);
    };
    expect(await t.log.load());
    expect(await (await t.reopen()).load());
  });

  test("events reload oldest first with their fields", 10, async (t) => {
    await t.log.load();
    const stored = [
      ...await t.log.append([join("lobby"), message("lobby", "hello", { clientId: "x" })]),
      ...await t.log.append([message("lobby", "ünïcødé ✓ \u{1F600}"), leave("lobby")]),
    ];
    const snapshot = await (await t.reopen()).load();
    assert.deepEqual(snapshot.rooms, [{ name: "lobby", events: stored, droppedThrough: 0 }]);
  });

  test("sessions put, replace and delete round-trip through load", 10, async (t) => {
    await t.log.load();
    await t.log.putSession(session("s1", { lobby: 1 }));
    await t.log.putSession(session("s2", { lobby: 2, dev: 3 }));
    await t.log.putSession(session("s3", {}));
    const replaced = { ...session("s1", { dev: 7, ops: 9 }), nick: "alice2", token: "t-new" };
    await t.log.putSession(replaced);
    await t.log.deleteSession("s2");
    await t.log.deleteSession("no-such-session");
    const expected = [replaced, session("s3", {})];
    assert.deepEqual(sortSessions((await t.log.load()).sessions), expected);
    assert.deepEqual(sortSessions((await (await t.reopen()).load()).sessions), expected);
  });

  test("a stored session is a copy of what was passed", 10, async (t) => {
    await t.log.load();
    const s = session("s1", { lobby: 1 });
    await t.log.putSession(s);
    s.rooms.dev = { joinId: 2 };
    s.nick = "changed";
    assert.deepEqual((await (await t.reopen()).load()).sessions, [session("s1", { lobby: 1 })]);
  });

  test("appends and session writes keep their call order", 10, async (t) => {
    await t.log.load();
    const writes = [
      t.log.putSession(session("s1", { lobby: 1 })),
      t.log.append([join("lobby")]),
      t.log.deleteSession("s1"),
      t.log.putSession(session("s1", { dev: 2 })),
      t.log.deleteSession("s2"),
      t.log.putSession(session("s2", {})),
      t.log.deleteSession("s2"),
    ];
    await Promise.all(writes);
    const snapshot = await (await t.reopen()).load();
    assert.deepEqual(snapshot.sessions, [session("s1", { dev: 2 })]);
    assert.equal(snapshot.lastId, 1);
  });

  test("reopen keeps lastId after retention dropped every event", 0, async (t) => {
    await t.log.load();
    const stored = await t.log.append([join("lobby"), message("lobby", "a"), message("dev", "b")]);
    assert.deepEqual(stored.map((e) => e.id), [1, 2, 3]);
    const expected: Snapshot = {
      lastId: 3,
      rooms: [
        { name: "dev", events: [], droppedThrough: 3 },
        { name: "lobby", events: [], droppedThrough: 2 },
      ],
      sessions: [],
      sends: {},
      bans: [],
    };
    assert.deepEqual(sortRooms(await t.log.load()), expected);
    const reopened = await t.reopen();
    assert.deepEqual(sortRooms(await reopened.load()), expected);
    assert.deepEqual((await reopened.append([message("lobby", "c")])).map((e) => e.id), [4]);
  });

  test("the next id continues after reopen", 10, async (t) => {
    await t.log.load();
    await t.log.append([join("lobby"), message("lobby", "1"), message("lobby", "2")]);
    const reopened = await t.reopen();
    assert.equal((await reopened.load()).lastId, 3);
    assert.deepEqual((await reopened.append([message("lobby", "3")])).map((e) => e.id), [4]);
    const again = await t.reopen();
    const snapshot = await again.load();
    assert.equal(snapshot.lastId, 4);
    assert.deepEqual(snapshot.rooms[0]?.events.map((e) => e.id), [1, 2, 3, 4]);
  });

  test("join and leave events move the author's membership with them", 10, async (t) => {
    await t.log.load();
    await t.log.putSession(session(SESSION, {}));
    await t.log.putSession(session("s2", { lobby: 100 }));
    const [lobby, dev] = await t.log.append([join("lobby"), join("dev")]);
    assert.deepEqual(roomsOf(await t.log.load()), {
      [SESSION]: { lobby: lobby!.id, dev: dev!.id },
      s2: { lobby: 100 },
    });
    // A message changes nothing; a leave marks just its room left; a join again records its new id.
    await t.log.append([message("dev", "hi"), leave("lobby")]);
    const [again] = await t.log.append([join("lobby")]);
    // Not awaited one by one: they may share a transaction and must still apply in call order.
    await Promise.all([
      t.log.append([join("ops"), join("ops", "s2")]),
      t.log.append([leave("ops"), leave("lobby", "s2"), leave("nowhere")]),
    ]);
    const expected = {
      [SESSION]: { dev: dev!.id, lobby: again!.id, ops: `${again!.id + 1}-${again!.id + 3}` },
      s2: { lobby: `100-${again!.id + 4}`, ops: again!.id + 2 },
    };
    assert.deepEqual(roomsOf(await t.log.load()), expected);
    assert.deepEqual(roomsOf(await (await t.reopen()).load()), expected);
  });

  test(
    "a join or leave of a session the log does not know stores just the event",
    10,
    async (t) => {
      await t.log.load();
      const writes = [
        t.log.append([join("lobby", "ghost")]),
        // In call order: a join before its session is put is overwritten by the put's rooms;
        // one after the put counts; after a delete, the session and its rooms are gone.
        t.log.append([join("early", "s1")]),
        t.log.putSession(session("s1", {})),
        t.log.append([join("lobby", "s1"), leave("dev", "s1")]),
        t.log.putSession(session("s2", {})),
        t.log.append([join("lobby", "s2")]),
        t.log.deleteSession("s2"),
        t.log.append([join("dev", "s2"), leave("lobby", "ghost")]),
      ];
      await Promise.all(writes);
      const check = (snapshot: Snapshot) => {
        assert.deepEqual(roomsOf(snapshot), { s1: { lobby: 3 } });
        assert.equal(snapshot.lastId, 7);
        assert.deepEqual(
          roomsByName(snapshot).get("lobby")?.events.map((e) => `${e.type}:${e.session}`),
          ["join:ghost", "join:s1", "join:s2", "leave:ghost"],
        );
      };
      check(await t.log.load());
      check(await (await t.reopen()).load());
      // A session put again after its delete starts with no rooms.
      await t.reopen();
      await t.log.putSession(session("s2", {}));
      assert.deepEqual(roomsOf(await t.log.load()), { s1: { lobby: 3 }, s2: {} });
    },
  );

  test(
    "a session remembers its last sends with a client id, whatever retention keeps",
    2,
    async (t) => {
      await t.log.load();
      await t.log.putSession(session(SESSION, {}));
      const first = await t.log.append([message("a", "one", { clientId: "c-1" })]);
      await t.log.append([message("a", "two"), message("b", "three", { clientId: "c-3" })]);
      await t.log.append([message("a", "four"), message("a", "five")]);
      // A message of an unknown session is not remembered.
      await t.log.append([{ ...message("a", "ghost", { clientId: "g" }), session: "ghost" }]);
      const check = (snapshot: Snapshot) => {
        assert.deepEqual(
          snapshot.sends[SESSION]?.map((s) => [s.clientId, s.event.text, s.event.room]),
          [["c-1", "one", "a"], ["c-3", "three", "b"]],
        );
        assert.deepEqual(snapshot.sends[SESSION]?.[0]?.event, first[0]);
        assert.equal(snapshot.sends.ghost, undefined);
        assert.ok(!roomsByName(snapshot).get("a")!.events.some((e) => e.text === "one"), "dropped");
      };
      check(await t.log.load());
      check(await (await t.reopen()).load());
      await t.log.deleteSession(SESSION);
      assert.deepEqual((await t.log.load()).sends, {}, "deleted with the session");
    },
  );

  test(`a session remembers at most ${SENDS_KEPT} sends, the newest`, 10, async (t) => {
    await t.log.load();
    await t.log.putSession(session(SESSION, {}));
    const calls = [];
    for (let i = 0; i < SENDS_KEPT + 5; i++) {
      calls.push(t.log.append([message(`r${i % 3}`, `m${i}`, { clientId: `c-${i}` })]));
    }
    await Promise.all(calls);
    const sends = (await (await t.reopen()).load()).sends[SESSION]!;
    assert.equal(sends.length, SENDS_KEPT);
    assert.equal(sends[0]!.clientId, "c-5");
    assert.equal(sends.at(-1)!.clientId, `c-${SENDS_KEPT + 4}`);
  });

  test(`a session forgets the oldest rooms it left beyond ${LEFT_KEPT}`, 10, async (t) => {
    await t.log.load();
    await t.log.putSession(session(SESSION, {}));
    for (let i = 0; i < LEFT_KEPT + 2; i++) await t.log.append([join(`r${i}`), leave(`r${i}`)]);
    await t.log.append([join("stay")]);
    const rooms = (await (await t.reopen()).load()).sessions[0]!.rooms;
    assert.equal(Object.keys(rooms).length, LEFT_KEPT + 1);
    assert.equal(rooms.r0, undefined);
    assert.equal(rooms.r1, undefined);
    assert.deepEqual(rooms.r2, { joinId: 5, leftId: 6 });
    assert.equal(rooms.stay?.leftId, undefined);
  });

  test("edits replace a message's text; erasing removes it with its edits' text", 10, async (t) => {
    await t.log.load();
    await t.log.putSession(session(SESSION, {}));
    const [kept, gone] = await t.log.append([
      message("lobby", "typo", { clientId: "c-1" }),
      message("lobby", "secret", { clientId: "c-2" }),
    ]);
    const ref = (e: StoredEvent) => ({ room: "lobby", id: e.id, author: SESSION });
    const edit = (e: StoredEvent, text: string): NewEvent => ({
      type: "edit",
      room: "lobby",
      nick: "alice",
      text,
      ts: 1_700_000_000_005,
      ref: e.id,
      session: SESSION,
    });
    await t.log.commit({
      events: [edit(kept!, "fixed")],
      edits: [{ ...ref(kept!), text: "fixed" }],
    });
    await t.log.commit({
      events: [edit(gone!, "more secret")],
      edits: [{ ...ref(gone!), text: "more secret" }],
    });
    await t.log.commit({
      events: [{
        type: "delete",
        room: "lobby",
        nick: "alice",
        ts: 1,
        ref: gone!.id,
        session: SESSION,
      }],
      erase: [ref(gone!)],
    });
    const check = (snapshot: Snapshot) => {
      const events = roomsByName(snapshot).get("lobby")!.events;
      assert.deepEqual(events[0], { ...kept!, text: "fixed", edited: true });
      const { text: _, ...erased } = gone!;
      assert.deepEqual(events[1], { ...erased, deleted: true });
      assert.ok(!JSON.stringify(snapshot).includes("secret"), "no trace of the erased text");
      assert.deepEqual(events.map((e) => e.type), ["message", "message", "edit", "edit", "delete"]);
      assert.equal(events[2]!.text, "fixed");
      const sends = snapshot.sends[SESSION]!;
      assert.equal(sends[0]!.event.text, "fixed");
      assert.equal(sends[0]!.event.edited, true);
      assert.equal(sends[1]!.event.text, undefined);
      assert.equal(sends[1]!.event.deleted, true);
    };
    check(await t.log.load());
    check(await (await t.reopen()).load());
  });

  test("topics, private rooms and room deletes round-trip", 10, async (t) => {
    await t.log.load();
    await t.log.putSession(session("a", {}));
    await t.log.putSession(session("b", {}));
    const topic = (text: string): NewEvent => ({
      type: "topic",
      room: "lobby",
      nick: "mod",
      text,
      ts: 1,
      session: "a",
    });
    await t.log.append([topic("first"), topic("second")]);
    await t.log.commit({
      events: [join("@0123456789abcdef", "a"), join("@0123456789abcdef", "b")],
      pairs: { "@0123456789abcdef": ["a", "b"] },
    });
    await t.log.append([
      { ...message("@0123456789abcdef", "psst", { clientId: "dm-1" }), session: "a" },
    ]);
    let snapshot = await (await t.reopen()).load();
    assert.equal(roomsByName(snapshot).get("lobby")?.topic, "second");
    assert.deepEqual(roomsByName(snapshot).get("@0123456789abcdef")?.pair, ["a", "b"]);
    assert.deepEqual(roomsOf(snapshot), {
      a: { "@0123456789abcdef": 3 },
      b: { "@0123456789abcdef": 4 },
    });
    await t.log.append([topic("")]);
    await t.log.commit({ deleteRooms: ["@0123456789abcdef"] });
    snapshot = await (await t.reopen()).load();
    assert.equal(roomsByName(snapshot).get("lobby")?.topic, undefined, "an empty topic clears it");
    assert.equal(roomsByName(snapshot).get("@0123456789abcdef"), undefined);
    assert.deepEqual(roomsOf(snapshot), { a: {}, b: {} });
    assert.ok(!JSON.stringify(snapshot).includes("psst"), "its history is gone, sends too");
  });

  test("bans are put and deleted", 10, async (t) => {
    await t.log.load();
    const ban = (id: string, extra: Partial<StoredBan>): StoredBan => ({
      id,
      until: 2_000_000_000_000,
      by: "mod",
      createdAt: 1_700_000_000_000,
      ...extra,
    });
    await t.log.commit({ putBans: [ban("b1", { nick: "Spammer", reason: "spam" })] });
    await t.log.commit({ putBans: [ban("b2", { address: "10.0.0.1" }), ban("b3", { nick: "x" })] });
    await t.log.commit({ deleteBans: ["b3", "none"] });
    const expected = [
      ban("b1", { nick: "Spammer", reason: "spam" }),
      ban("b2", { address: "10.0.0.1" }),
    ];
    const byId = (bans: StoredBan[]) => [...bans].sort((a, b) => a.id.localeCompare(b.id));
    assert.deepEqual(byId((await t.log.load()).bans), expected);
    assert.deepEqual(byId((await (await t.reopen()).load()).bans), expected);
  });

  test("one commit applies all its parts or, on a closed log, none", 10, async (t) => {
    await t.log.load();
    await t.log.putSession(session(SESSION, {}));
    await t.log.append([join("lobby")]);
    const [left] = await t.log.commit({ events: [leave("lobby")], deleteSessions: [SESSION] });
    assert.equal(left!.id, 2);
    const snapshot = await (await t.reopen()).load();
    assert.deepEqual(snapshot.sessions, []);
    assert.deepEqual(roomsByName(snapshot).get("lobby")?.events.map((e) => e.type), [
      "join",
      "leave",
    ]);
  });

  test("close settles writes still queued", 10, async ({ log }) => {
    await log.load();
    const pending = log.append([join("lobby")]);
    const session_ = log.putSession(session("s1", { lobby: 1 }));
    await log.close();
    assert.deepEqual((await pending).map((e) => e.id), [1]);
    await session_;
  });

  test("close is idempotent and later calls reject with StorageError", 10, async ({ log }) => {
    await log.load();
    await log.close();
    await log.close();
    await assert.rejects(log.append([join("lobby")]), StorageError);
    await assert.rejects(log.load(), StorageError);
    await assert.rejects(log.putSession(session("s1", {})), StorageError);
    await assert.rejects(log.deleteSession("s1"), StorageError);
  });
}

interface Harness {
  /** The current instance: changes after `reopen()`. */
  readonly log: EventLog;
  reopen(): Promise<EventLog>;
}

const SESSION = "sess-1";

function message(room: string, text: string, extra: { clientId?: string } = {}): NewEvent {
  return {
    type: "message",
    room,
    nick: "alice",
    text,
    ts: 1_700_000_000_000,
    session: SESSION,
    ...extra,
  };
}

function join(room: string, by = SESSION): NewEvent {
  return { type: "join", room, nick: "alice", ts: 1_700_000_000_001, session: by };
}

function leave(room: string, by = SESSION): NewEvent {
  return { type: "leave", room, nick: "alice", ts: 1_700_000_000_002, session: by };
}

/** A session; rooms as join ids (member) or memberships. */
function session(id: string, rooms: Record<string, number | Membership>): StoredSession {
  const memberships: Record<string, Membership> = {};
  for (const [room, m] of Object.entries(rooms)) {
    memberships[room] = typeof m === "number" ? { joinId: m } : m;
  }
  return {
    id,
    token: `token-${id}`,
    nick: `nick-${id}`,
    createdAt: 1_700_000_000_000,
    address: "127.0.0.1",
    moderator: false,
    rooms: memberships,
  };
}

function roomsByName(snapshot: Snapshot) {
  return new Map(snapshot.rooms.map((r) => [r.name, r]));
}

function sortRooms(snapshot: Snapshot): Snapshot {
  return { ...snapshot, rooms: [...snapshot.rooms].sort((a, b) => a.name.localeCompare(b.name)) };
}

/** Each session's rooms, by session id: the join id, or `joinId-leftId` once left. */
function roomsOf(snapshot: Snapshot): Record<string, Record<string, number | string>> {
  return Object.fromEntries(
    snapshot.sessions.map((s) => [
      s.id,
      Object.fromEntries(
        Object.entries(s.rooms).map((
          [room, m],
        ) => [room, m.leftId === undefined ? m.joinId : `${m.joinId}-${m.leftId}`]),
      ),
    ]),
  );
}

function sortSessions(sessions: StoredSession[]): StoredSession[] {
  return [...sessions].sort((a, b) => a.id.localeCompare(b.id));
}
