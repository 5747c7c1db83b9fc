/**
 * The behaviour every `SharedState` backend must have (memory and SQLite through `LocalState`,
 * and Redis), as one suite each backend runs: `runSharedStateContract(name, make, options)`.
 *
 * Time is a number passed to every call (`now`), never a sleep. Listeners may hear of events after
 * the call that committed them resolved (Redis hears them through pub/sub), so the suite waits for
 * what it expects to hear, and checks that something was NOT heard only after a later marker was.
 */
import assert from "node:assert/strict";
import type { Rate } from "../../lib/chat/rate_limiter.ts";
import { nameKey } from "../../lib/chat/validation.ts";
import { LEFT_KEPT, type StoredEvent } from "../../lib/storage/event_log.ts";
import {
  type BackendHealth,
  JOIN_HISTORY,
  JOIN_MEMBERS,
  type NewSession,
  type Notice,
  Refusal,
  type RefusalCode,
  type SharedState,
  type StateListener,
  TYPING_INTERVAL_MS,
  TYPING_MAX_MEMBERS,
} from "../../lib/storage/shared_state.ts";

/** A state under test, and how to restart or break it. */
export interface SharedStateFixture {
  state: SharedState;
  /**
   * Durable backends: closes the state and opens the same store again, as a restarted server
   * would at `now`. Not called when the contract options say the backend is not durable.
   */
  restart?: (now: number) => Promise<SharedState>;
  /**
   * Makes every write of the backend fail (as a full disk or a lost connection would) until the
   * returned function is called. Only called when the contract options say it can.
   */
  failWrites?: () => () => void;
  /** Removes what the fixture made (temp files), after the last state is closed. */
  cleanup?: () => Promise<void>;
}

/** Makes a fresh, empty state keeping `history` events per room, opened at `now`. */
export type MakeSharedState = (history: number, now: number) => Promise<SharedStateFixture>;

/** What a backend can do beyond the contract's core. */
export interface SharedStateContractOptions {
  /** It keeps its state across a restart (`fixture.restart`). */
  durable: boolean;
  /** Its writes can be made to fail (`fixture.failWrites`). */
  failures: boolean;
  /**
   * Why the backend cannot run here (a server missing): every case reports itself ignored with
   * it, except in CI (`CI` set), where every case fails.
   */
  unavailable?: string;
}

/** The start of the suite's clock. */
export const T0 = Date.UTC(2026, 0, 1);
/** No rate limit. */
const OFF: Rate = { tokens: 0, periodMs: 1000 };
/** The edit window the suite uses unless a case says otherwise: 15 minutes. */
const WINDOW = 15 * 60_000;
/** A DM room name as DESIGN.md spells it. */
const PRIVATE_NAME = /^@[0-9a-f]{16}$/;

/** Registers the `SharedState` contract as `Deno.test` cases named `name: …`. */
export function runSharedStateContract(
  name: string,
  make: MakeSharedState,
  options: SharedStateContractOptions,
): void {
  interface CaseOptions {
    history?: number;
    durable?: boolean;
    failures?: boolean;
  }
  function test(title: string, how: CaseOptions, fn: (t: Harness) => Promise<void>): void {
    const unavailable = options.unavailable;
    const inCi = Boolean(Deno.env.get("CI"));
    const ignore = (how.durable === true && !options.durable) ||
      (how.failures === true && !options.failures) || (unavailable !== undefined && !inCi);
    const inapplicable = how.durable === true && !options.durable
      ? "not applicable: this backend keeps nothing across a restart"
      : how.failures === true && !options.failures
      ? "not applicable: this test cannot make this backend's writes fail"
      : null;
    Deno.test({
      name: unavailable !== undefined
        ? `${name}: ${title} (${inCi ? "fails" : "ignored"}: ${unavailable})`
        : inapplicable !== null
        ? `${name}: ${title} (${inapplicable})`
        : `${name}: ${title}`,
      ignore,
      fn: async () => {
        if (unavailable !== undefined) throw new Error(unavailable);
        const fixture = await make(how.history ?? 100, T0);
        const harness = new Harness(fixture);
        try {
          await fn(harness);
        } finally {
          await harness.state.close();
          await fixture.cleanup?.();
        }
      },
    });
  }

  // ---- order, lastId, listener ----

  test("a new state has no events, sessions or rooms", {}, async ({ state }) => {
    assert.equal(await state.lastId(), 0);
    assert.deepEqual(await state.counts(), { sessions: 0, rooms: 0 });
    assert.deepEqual(await state.rooms(), []);
    assert.deepEqual(await state.bans(T0), []);
    assert.deepEqual(await state.checkHealth(), { ok: true });
    assert.deepEqual(await state.read([{ room: "lobby", from: 0, to: Infinity }], 10), {
      events: [],
      gap: false,
    });
  });

  test(
    "lastId(atLeast) may lag behind, but never below a cursor the order reached",
    {},
    async (t) => {
      const alice = await t.session("alice");
      await t.state.join(alice.id, "lobby", T0);
      for (let i = 0; i < 5; i++) {
        await t.state.send(
          alice.id,
          "lobby",
          `m${i}`,
          undefined,
          T0,
          OFF,
        );
      }
      const last = await t.state.lastId();
      assert.equal(last, 6);
      assert.equal(await t.state.lastId(last), last, "a cursor at the last event is never refused");
      const heard = await t.state.lastId(0);
      assert.ok(heard >= 0 && heard <= last, `lastId(0) = ${heard}`);
    },
  );

  test(
    "events of every room and session get one total order, heard once each and in order",
    {},
    async (t) => {
      const sessions = await Promise.all(["a", "b", "c", "d"].map((n) => t.session(n)));
      const rooms = ["r1", "r2", "r3"];
      await Promise.all(sessions.flatMap((s) => rooms.map((r) => t.state.join(s.id, r, T0))));
      const sends: Promise<{ event: StoredEvent }>[] = [];
      for (let i = 0; i < 60; i++) {
        const s = sessions[i % sessions.length]!;
        sends.push(t.state.send(s.id, rooms[i % rooms.length]!, `m${i}`, `c${i}`, T0 + i, OFF));
      }
      const sent = (await Promise.all(sends)).map((r) => r.event);
      const total = sessions.length * rooms.length + sent.length;
      assert.equal(await t.state.lastId(), total);
      const heard = await t.heard(total);
      assert.deepEqual(heard.map((e) => e.id), range(1, total), "ids 1..N, each heard once");
      // What each send answered is what was heard under its id.
      const byId = new Map(heard.map((e) => [e.id, e]));
      for (const event of sent) assert.deepEqual(byId.get(event.id), event);
      // A read of every room answers the same order.
      const read = await t.state.read(rooms.map((room) => ({ room, from: 0, to: Infinity })), 1000);
      assert.deepEqual(read.events.map((e) => e.id), range(1, total));
      assert.equal(read.gap, false);
    },
  );

  test("counts() counts live sessions and public rooms", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    await t.state.join(alice.id, "lobby", T0);
    await t.state.join(bob.id, "dev", T0);
    await t.state.direct(alice.id, nameKey("bob"), T0);
    assert.deepEqual(await t.state.counts(), { sessions: 2, rooms: 2 }, "the DM room is private");
    await t.state.endSession(bob.id, T0);
    assert.deepEqual(await t.state.counts(), { sessions: 1, rooms: 2 });
  });

  // ---- rate buckets ----

  test("takeRate answers 0 while the bucket has tokens, then the wait in ms", {}, async (t) => {
    const rate: Rate = { tokens: 2, periodMs: 1000 };
    assert.equal(await t.state.takeRate("session", "10.0.0.1", rate, T0), 0);
    assert.equal(await t.state.takeRate("session", "10.0.0.1", rate, T0), 0);
    assertWait(await t.state.takeRate("session", "10.0.0.1", rate, T0), 500);
    assertWait(await t.state.takeRate("session", "10.0.0.1", rate, T0 + 100), 400);
    // Other keys and other purposes have buckets of their own.
    assert.equal(await t.state.takeRate("session", "10.0.0.2", rate, T0), 0);
    assert.equal(await t.state.takeRate("typing", "10.0.0.1", rate, T0), 0);
    assert.equal(await t.state.takeRate("session", "10.0.0.1", rate, T0 + 500), 0, "refilled");
    assert.equal(await t.state.takeRate("session", "x", OFF, T0), 0);
  });

  // ---- sessions ----

  test("createSession answers the session; authenticate and refresh find it", {}, async (t) => {
    const alice = await t.state.createSession(
      { nick: "Alice", key: nameKey("Alice"), address: "10.0.0.7", moderator: true },
      T0,
    );
    assert.equal(alice.nick, "Alice");
    assert.equal(alice.address, "10.0.0.7");
    assert.equal(alice.moderator, true);
    assert.equal(alice.createdAt, T0);
    assert.match(alice.token, /^[0-9a-f]{32}$/);
    assert.equal(alice.rooms.size, 0);
    const found = await t.state.authenticate(alice.token, T0 + 1);
    assert.equal(found?.id, alice.id);
    assert.equal(found?.nick, "Alice");
    assert.equal((await t.state.refresh(alice))?.id, alice.id);
    assert.equal(await t.state.authenticate("0".repeat(32), T0), null);
    const bob = await t.session("bob");
    assert.notEqual(bob.id, alice.id);
    assert.notEqual(bob.token, alice.token);
    assert.equal(bob.moderator, false);
  });

  test("a nick is taken by its key, whatever its case", {}, async (t) => {
    await t.session("Straße");
    await t.refused(() => t.session("STRASSE"), "nick_taken");
    await t.refused(() => t.session("straße"), "nick_taken");
    await t.session("strasse2");
  });

  test("concurrent sessions with one nick: exactly one is created", {}, async (t) => {
    const results = await Promise.allSettled(
      ["zoe", "Zoe", "ZOE", "zoE", "ZoE"].map((nick) => t.session(nick)),
    );
    const created = results.filter((r) => r.status === "fulfilled");
    assert.equal(created.length, 1);
    for (const r of results) {
      if (r.status === "rejected") assertRefusal(r.reason, "nick_taken");
    }
    assert.equal((await t.state.counts()).sessions, 1);
  });

  test("an ended session does not authenticate or refresh, and its nick is free", {}, async (t) => {
    const alice = await t.session("alice");
    await t.state.endSession(alice.id, T0);
    assert.equal(await t.state.authenticate(alice.token, T0), null);
    assert.equal(await t.state.refresh(alice), null);
    await t.refused(() => t.state.join(alice.id, "lobby", T0), "unauthorized");
    await t.refused(() => t.state.endSession(alice.id, T0), "unauthorized");
    const again = await t.session("ALICE");
    assert.notEqual(again.token, alice.token);
  });

  test("endSession leaves every room, deletes its private rooms, all at once", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    for (const room of ["lobby", "dev"]) {
      await t.state.join(alice.id, room, T0);
      await t.state.join(bob.id, room, T0);
    }
    await t.state.join(alice.id, "side", T0);
    await t.state.leave(alice.id, "side", T0);
    const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
    await t.state.send(alice.id, dm.room, "psst", "dm-1", T0, OFF);
    const before = await t.state.lastId();
    await t.state.endSession(alice.id, T0 + 5);
    const heard = (await t.heard(before + 3)).slice(before);
    assert.deepEqual(heard.map((e) => e.id), range(before + 1, before + 3), "consecutive");
    assert.deepEqual(
      heard.map((e) => `${e.type} ${e.room} ${e.nick}`).sort(),
      ["leave dev alice", "leave lobby alice", `leave ${dm.room} alice`].sort(),
      "a leave in every room it was in, none in the room it had left",
    );
    for (const e of heard) assert.equal(e.ts, T0 + 5);
    assert.deepEqual(await t.state.rooms(), [
      { name: "dev", members: 1 },
      { name: "lobby", members: 1 },
      { name: "side", members: 0 },
    ]);
    const bobNow = await t.state.refresh(bob);
    assert.equal(bobNow?.rooms.has(dm.room), false, "the DM room is gone from bob's rooms");
    await t.refused(() => t.state.join(bob.id, dm.room, T0), "private_room");
    await t.refused(() => t.state.history(bob.id, dm.room, Infinity, 50), "not_member");
  });

  test("concurrent ends of one session store its leaves once", {}, async (t) => {
    const alice = await t.session("alice");
    await t.state.join(alice.id, "lobby", T0);
    const results = await Promise.allSettled([
      t.state.endSession(alice.id, T0),
      t.state.endSession(alice.id, T0),
    ]);
    assert.equal(results[0]!.status, "fulfilled");
    // The second either waits for the first or finds the session ended.
    if (results[1]!.status === "rejected") assertRefusal(results[1].reason, "unauthorized");
    await t.heard(2);
    await t.marker();
    assert.deepEqual(t.summary(t.events), ["join lobby alice", "leave lobby alice"]);
  });

  test("touch and authenticate keep a session present; expire ends the absent", {}, async (t) => {
    const grace = 60_000;
    const idle = await t.session("idle");
    const polling = await t.session("polling");
    const asking = await t.session("asking");
    for (const s of [idle, polling, asking]) await t.state.join(s.id, "lobby", T0);
    assert.equal(await t.state.expire(T0 + grace - 1, grace), 0, "creation counts as seen");
    await t.state.touch(new Map([[polling.id, T0 + 30_000]]));
    // An older time does not move presence back.
    await t.state.touch(new Map([[polling.id, T0 + 10_000]]));
    await t.state.authenticate(asking.token, T0 + 20_000);
    assert.equal(await t.state.expire(T0 + grace, grace), 1);
    assert.equal(await t.state.authenticate(idle.token, T0 + grace), null);
    assert.ok(await t.state.refresh(polling));
    assert.equal(await t.state.expire(T0 + 20_000 + grace, grace), 1, "asking lapsed");
    assert.ok(await t.state.refresh(polling));
    assert.equal(await t.state.expire(T0 + 30_000 + grace, grace), 1, "polling lapsed");
    await t.heard(6);
    await t.marker();
    assert.deepEqual(t.summary(t.events).slice(3), [
      "leave lobby idle",
      "leave lobby asking",
      "leave lobby polling",
    ]);
    await t.session("idle"); // the nick is free again
  });

  test("concurrent expiries end each absent session once", {}, async (t) => {
    const sessions = await Promise.all(["a", "b", "c"].map((n) => t.session(n)));
    for (const s of sessions) await t.state.join(s.id, "lobby", T0);
    const counts = await Promise.all([
      t.state.expire(T0 + 10_000, 5_000),
      t.state.expire(T0 + 10_000, 5_000),
    ]);
    assert.equal(counts[0]! + counts[1]!, 3);
    await t.heard(6);
    await t.marker();
    assert.deepEqual(t.summary(t.events).filter((s) => s.startsWith("leave")).sort(), [
      "leave lobby a",
      "leave lobby b",
      "leave lobby c",
    ]);
  });

  // ---- join, leave, members, rooms ----

  test(
    "join creates the room and answers members, count and the history before it",
    {},
    async (t) => {
      const alice = await t.session("alice");
      const bob = await t.session("bob");
      const first = await t.state.join(alice.id, "lobby", T0);
      assert.deepEqual(first, { room: "lobby", members: ["alice"], memberCount: 1, history: [] });
      assert.deepEqual(await t.state.rooms(), [{ name: "lobby", members: 1 }]);
      await t.state.send(alice.id, "lobby", "hello", undefined, T0, OFF);
      const second = await t.state.join(bob.id, "lobby", T0 + 1);
      assert.deepEqual(second.members, ["alice", "bob"]);
      assert.equal(second.memberCount, 2);
      assert.deepEqual(t.summary(second.history), [
        "join lobby alice",
        "message lobby alice hello",
      ]);
      assert.equal(second.topic, undefined);
      const bobNow = await t.state.refresh(bob);
      assert.deepEqual(bobNow?.rooms.get("lobby"), { joinId: 3 });
      const heard = await t.heard(3);
      assert.deepEqual(heard[2], {
        id: 3,
        type: "join",
        room: "lobby",
        nick: "bob",
        ts: T0 + 1,
        session: bob.id,
      });
    },
  );

  test("joining again stores nothing and answers the latest history", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    await t.state.join(alice.id, "lobby", T0);
    await t.state.join(bob.id, "lobby", T0);
    await t.state.send(bob.id, "lobby", "hi", undefined, T0, OFF);
    const again = await t.state.join(alice.id, "lobby", T0);
    assert.deepEqual(t.summary(again.history), [
      "join lobby alice",
      "join lobby bob",
      "message lobby bob hi",
    ]);
    assert.equal(await t.state.lastId(), 3);
  });

  test(`join answers at most ${JOIN_HISTORY} events of history`, {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    await t.state.join(alice.id, "lobby", T0);
    for (let i = 0; i < JOIN_HISTORY + 5; i++) {
      await t.state.send(alice.id, "lobby", `m${i}`, undefined, T0, OFF);
    }
    const view = await t.state.join(bob.id, "lobby", T0);
    assert.equal(view.history.length, JOIN_HISTORY);
    assert.equal(view.history[0]!.text, "m5");
    assert.equal(view.history.at(-1)!.text, `m${JOIN_HISTORY + 4}`);
  });

  test(
    `join answers the first ${JOIN_MEMBERS} members in nick order and the count`,
    {},
    async (t) => {
      const nicks = range(0, JOIN_MEMBERS + 4).map((i) => `n${String(i).padStart(3, "0")}`);
      const sessions = await Promise.all(nicks.map((n) => t.session(n)));
      await Promise.all(sessions.slice(1).map((s) => t.state.join(s.id, "big", T0)));
      const view = await t.state.join(sessions[0]!.id, "big", T0);
      assert.equal(view.memberCount, JOIN_MEMBERS + 5);
      assert.deepEqual(view.members, nicks.slice(0, JOIN_MEMBERS));
    },
  );

  test("members are sorted by code point and paged with after, limit and next", {}, async (t) => {
    // Code point order (UTF-8 byte order, as Redis sorts) differs from UTF-16 code unit order
    // for letters above U+FFFF against letters from U+E000 to U+FFFF.
    const nicks = ["zed", "Ｆull", "𝒜stral", "Bob", "alice", "ébène"];
    const sessions = await Promise.all(nicks.map((n) => t.session(n)));
    for (const s of sessions) await t.state.join(s.id, "lobby", T0);
    const id = sessions[0]!.id;
    const sorted = ["Bob", "alice", "zed", "ébène", "Ｆull", "𝒜stral"];
    assert.deepEqual(await t.state.members(id, "lobby", null, 100), { members: sorted });
    assert.deepEqual(await t.state.members(id, "lobby", null, 2), {
      members: ["Bob", "alice"],
      next: "alice",
    });
    assert.deepEqual(await t.state.members(id, "lobby", "alice", 2), {
      members: ["zed", "ébène"],
      next: "ébène",
    });
    assert.deepEqual(await t.state.members(id, "lobby", "ébène", 2), {
      members: ["Ｆull", "𝒜stral"],
    });
    // `after` need not be a member: the page starts after where it would sort.
    assert.deepEqual(await t.state.members(id, "lobby", "b", 1), { members: ["zed"], next: "zed" });
    assert.deepEqual(await t.state.members(id, "lobby", "𝒜stral", 5), { members: [] });
    const view = await t.state.join(id, "lobby", T0);
    assert.deepEqual(view.members, sorted);
  });

  test("rooms() lists public rooms by code point with member counts", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    for (const room of ["zoo", "Ａrena", "𝒜tlas", "apple", "Zed"]) {
      await t.state.join(alice.id, room, T0);
    }
    await t.state.join(bob.id, "apple", T0);
    await t.state.direct(alice.id, nameKey("bob"), T0);
    await t.state.leave(alice.id, "zoo", T0);
    assert.deepEqual(await t.state.rooms(), [
      { name: "Zed", members: 1 },
      { name: "apple", members: 2 },
      { name: "zoo", members: 0 },
      { name: "Ａrena", members: 1 },
      { name: "𝒜tlas", members: 1 },
    ]);
  });

  test("concurrent joins of one room store one join", {}, async (t) => {
    const alice = await t.session("alice");
    const views = await Promise.all([1, 2, 3].map(() => t.state.join(alice.id, "lobby", T0)));
    for (const view of views) {
      assert.deepEqual(view.members, ["alice"]);
      assert.equal(view.memberCount, 1);
    }
    assert.equal(await t.state.lastId(), 1);
    await t.heard(1);
    await t.marker();
    assert.deepEqual(t.summary(t.events), ["join lobby alice"]);
  });

  test(
    "leave stores a leave; leaving again or a room never joined is not_member",
    {},
    async (t) => {
      const alice = await t.session("alice");
      await t.state.join(alice.id, "lobby", T0);
      await t.state.leave(alice.id, "lobby", T0 + 1);
      const heard = await t.heard(2);
      assert.deepEqual(heard[1], {
        id: 2,
        type: "leave",
        room: "lobby",
        nick: "alice",
        ts: T0 + 1,
        session: alice.id,
      });
      await t.refused(() => t.state.leave(alice.id, "lobby", T0), "not_member");
      await t.refused(() => t.state.leave(alice.id, "nowhere", T0), "not_member");
      assert.deepEqual(await t.state.rooms(), [{ name: "lobby", members: 0 }]);
    },
  );

  test("concurrent leaves store one leave; the others are not_member", {}, async (t) => {
    const alice = await t.session("alice");
    await t.state.join(alice.id, "lobby", T0);
    const results = await Promise.allSettled(
      [1, 2, 3].map(() => t.state.leave(alice.id, "lobby", T0)),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) if (r.status === "rejected") assertRefusal(r.reason, "not_member");
    await t.heard(2);
    await t.marker();
    assert.deepEqual(t.summary(t.events), ["join lobby alice", "leave lobby alice"]);
  });

  test("a session reads a room it left up to its leave, and no further", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    await t.state.join(bob.id, "lobby", T0);
    await t.state.send(bob.id, "lobby", "before alice", undefined, T0, OFF);
    await t.state.join(alice.id, "lobby", T0);
    await t.state.send(bob.id, "lobby", "while alice is in", undefined, T0, OFF);
    await t.state.leave(alice.id, "lobby", T0);
    await t.state.send(bob.id, "lobby", "after alice", undefined, T0, OFF);
    const m = (await t.state.refresh(alice))?.rooms.get("lobby");
    assert.deepEqual(m, { joinId: 3, leftId: 5 });
    const read = await t.state.read([{ room: "lobby", from: m!.joinId - 1, to: m!.leftId! }], 100);
    assert.deepEqual(t.summary(read.events), [
      "join lobby alice",
      "message lobby bob while alice is in",
      "leave lobby alice",
    ]);
    // Left, it is no member: history, members, sends and typing refuse.
    await t.refused(() => t.state.history(alice.id, "lobby", Infinity, 50), "not_member");
    await t.refused(() => t.state.members(alice.id, "lobby", null, 10), "not_member");
    await t.refused(() => t.state.send(alice.id, "lobby", "x", undefined, T0, OFF), "not_member");
    await t.refused(() => t.state.typing(alice.id, "lobby", T0), "not_member");
    // Joining again gives a new membership, and keeps the earlier one for polls from before it.
    await t.state.join(alice.id, "lobby", T0);
    assert.deepEqual((await t.state.refresh(alice))?.rooms.get("lobby"), {
      joinId: 7,
      earlier: [[3, 5]],
    });
    // Leaving keeps them too; at most the last four are kept, and the newest leave of those
    // forgotten is remembered (polls from before it answer a gap).
    await t.state.leave(alice.id, "lobby", T0);
    assert.deepEqual((await t.state.refresh(alice))?.rooms.get("lobby"), {
      joinId: 7,
      leftId: 8,
      earlier: [[3, 5]],
    });
    for (let i = 0; i < 4; i++) {
      await t.state.join(alice.id, "lobby", T0);
      await t.state.leave(alice.id, "lobby", T0);
    }
    await t.state.join(alice.id, "lobby", T0);
    assert.deepEqual((await t.state.refresh(alice))?.rooms.get("lobby"), {
      joinId: 17,
      earlier: [[9, 10], [11, 12], [13, 14], [15, 16]],
      forgot: 8,
    });
    await t.state.leave(alice.id, "lobby", T0);
    await t.state.join(alice.id, "lobby", T0);
    assert.deepEqual((await t.state.refresh(alice))?.rooms.get("lobby"), {
      joinId: 19,
      earlier: [[11, 12], [13, 14], [15, 16], [17, 18]],
      forgot: 10,
    });
  });

  test("history and members refuse sessions that are not members", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    await t.state.join(alice.id, "lobby", T0);
    await t.refused(() => t.state.history(bob.id, "lobby", Infinity, 50), "not_member");
    await t.refused(() => t.state.members(bob.id, "lobby", null, 10), "not_member");
    await t.refused(() => t.state.history(bob.id, "nowhere", Infinity, 50), "not_member");
    await t.refused(() => t.state.members(bob.id, "nowhere", null, 10), "not_member");
  });

  test("history answers up to limit events before an id, oldest first", {}, async (t) => {
    const alice = await t.session("alice");
    await t.state.join(alice.id, "lobby", T0);
    for (let i = 1; i <= 6; i++) await t.state.send(alice.id, "lobby", `m${i}`, undefined, T0, OFF);
    const all = await t.state.history(alice.id, "lobby", Infinity, 50);
    assert.deepEqual(all.map((e) => e.id), [1, 2, 3, 4, 5, 6, 7]);
    const page = await t.state.history(alice.id, "lobby", 6, 2);
    assert.deepEqual(page.map((e) => e.text), ["m3", "m4"]);
    assert.deepEqual(await t.state.history(alice.id, "lobby", 1, 10), []);
  });

  // ---- read ----

  test("read merges several ranges in id order, bounded by to and limit", {}, async (t) => {
    const alice = await t.session("alice");
    for (const room of ["a", "b", "c"]) await t.state.join(alice.id, room, T0); // 1, 2, 3
    for (let i = 0; i < 9; i++) {
      await t.state.send(alice.id, ["a", "b", "c"][i % 3]!, `m${i}`, undefined, T0, OFF); // 4..12
    }
    const ranges = [
      { room: "c", from: 0, to: Infinity },
      { room: "a", from: 4, to: Infinity },
      { room: "b", from: 0, to: 8 },
    ];
    const read = await t.state.read(ranges, 100);
    assert.deepEqual(read.events.map((e) => e.id), [2, 3, 5, 6, 7, 8, 9, 10, 12]);
    const limited = await t.state.read(ranges, 4);
    assert.deepEqual(limited.events.map((e) => e.id), [2, 3, 5, 6]);
    assert.deepEqual((await t.state.read([{ room: "nowhere", from: 0, to: 100 }], 10)).events, []);
  });

  test("read reports a gap when retention dropped events after from", { history: 3 }, async (t) => {
    const alice = await t.session("alice");
    await t.state.join(alice.id, "lobby", T0); // 1
    await t.state.join(alice.id, "quiet", T0); // 2
    for (let i = 1; i <= 5; i++) await t.state.send(alice.id, "lobby", `m${i}`, undefined, T0, OFF);
    // lobby keeps 5, 6, 7 (m3..m5); 1, 3, 4 were dropped.
    const lobby = (from: number) => t.state.read([{ room: "lobby", from, to: Infinity }], 100);
    assert.deepEqual(await lobby(0), { events: (await lobby(4)).events, gap: true });
    assert.deepEqual((await lobby(0)).events.map((e) => e.text), ["m3", "m4", "m5"]);
    assert.equal((await lobby(3)).gap, true);
    assert.equal((await lobby(4)).gap, false);
    assert.equal((await lobby(6)).gap, false);
    const both = await t.state.read([
      { room: "lobby", from: 4, to: Infinity },
      { room: "quiet", from: 1, to: Infinity },
    ], 100);
    assert.deepEqual(both.events.map((e) => e.id), [2, 5, 6, 7]);
    assert.equal(both.gap, false);
  });

  // ---- send ----

  test("send stores a message and answers it; non-members are refused", {}, async (t) => {
    const alice = await t.session("alice");
    await t.state.join(alice.id, "lobby", T0);
    const sent = await t.state.send(alice.id, "lobby", "hello ✓", "c-1", T0 + 5, OFF);
    assert.deepEqual(sent, {
      created: true,
      event: {
        id: 2,
        type: "message",
        room: "lobby",
        nick: "alice",
        text: "hello ✓",
        ts: T0 + 5,
        clientId: "c-1",
        session: alice.id,
      },
    });
    const plain = await t.state.send(alice.id, "lobby", "no id", undefined, T0, OFF);
    assert.equal("clientId" in plain.event, false);
    await t.refused(() => t.state.send(alice.id, "dev", "x", undefined, T0, OFF), "not_member");
  });

  test(
    "a repeated clientId answers the first event, stores nothing, takes no token",
    {},
    async (t) => {
      const rate: Rate = { tokens: 1, periodMs: 1000 };
      const alice = await t.session("alice");
      const bob = await t.session("bob");
      await t.state.join(alice.id, "lobby", T0);
      await t.state.join(bob.id, "lobby", T0);
      const first = await t.state.send(alice.id, "lobby", "once", "c-1", T0, rate);
      const again = await t.state.send(alice.id, "lobby", "changed", "c-1", T0 + 1, rate);
      assert.deepEqual(again, { event: first.event, created: false });
      // Another session's client ids are its own.
      const bobs = await t.state.send(bob.id, "lobby", "mine", "c-1", T0, rate);
      assert.equal(bobs.created, true);
      assert.equal(await t.state.lastId(), 4);
      const refusal = await t.refused(
        () => t.state.send(alice.id, "lobby", "new", "c-2", T0 + 1, rate),
        "rate_limited",
      );
      assertWait(refusal.retryMs, 999);
      assert.equal(
        (await t.state.send(alice.id, "lobby", "new", "c-2", T0 + 1000, rate)).created,
        true,
      );
    },
  );

  test("concurrent sends with one clientId store one message", {}, async (t) => {
    const alice = await t.session("alice");
    await t.state.join(alice.id, "lobby", T0);
    const results = await Promise.all(
      [1, 2, 3, 4].map(() => t.state.send(alice.id, "lobby", "once", "c-1", T0, OFF)),
    );
    assert.deepEqual(results.map((r) => r.created).sort(), [false, false, false, true]);
    for (const r of results) assert.deepEqual(r.event, results[0]!.event);
    assert.equal(await t.state.lastId(), 2);
    await t.heard(2);
    await t.marker();
    assert.deepEqual(t.summary(t.events), ["join lobby alice", "message lobby alice once"]);
  });

  test("sends over the rate are rate_limited with the wait", {}, async (t) => {
    const rate: Rate = { tokens: 2, periodMs: 1000 };
    const alice = await t.session("alice");
    await t.state.join(alice.id, "lobby", T0);
    await t.state.send(alice.id, "lobby", "1", undefined, T0, rate);
    await t.state.send(alice.id, "lobby", "2", undefined, T0, rate);
    const refusal = await t.refused(
      () => t.state.send(alice.id, "lobby", "3", undefined, T0 + 100, rate),
      "rate_limited",
    );
    assertWait(refusal.retryMs, 400);
    await t.state.send(alice.id, "lobby", "3", undefined, T0 + 500, rate);
    assert.equal(await t.state.lastId(), 4);
  });

  // ---- edits ----

  test("an author edits within the window: an edit event, and the text replaced", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    await t.state.join(alice.id, "lobby", T0);
    await t.state.join(bob.id, "lobby", T0);
    const { event: sent } = await t.state.send(alice.id, "lobby", "tpyo", "c-1", T0, OFF);
    const edit = await t.state.edit(alice.id, "lobby", sent.id, "typo", T0 + 60_000, WINDOW);
    assert.deepEqual(edit, {
      id: sent.id + 1,
      type: "edit",
      room: "lobby",
      nick: "alice",
      text: "typo",
      ts: T0 + 60_000,
      ref: sent.id,
      session: alice.id,
    });
    assert.deepEqual((await t.heard(edit.id)).at(-1), edit);
    const edited = { ...sent, text: "typo", edited: true };
    const history = await t.state.history(bob.id, "lobby", Infinity, 50);
    assert.deepEqual(history.find((e) => e.id === sent.id), edited);
    assert.deepEqual((await t.state.join(bob.id, "lobby", T0)).history[2], edited);
    const read = await t.state.read([{ room: "lobby", from: 0, to: Infinity }], 10);
    assert.deepEqual(read.events[2], edited);
    // The remembered send answers the current text.
    const again = await t.state.send(alice.id, "lobby", "tpyo", "c-1", T0, OFF);
    assert.deepEqual(again, { event: edited, created: false });
    // Edited again, exactly at the end of the window.
    await t.state.edit(alice.id, "lobby", sent.id, "typo!", T0 + WINDOW, WINDOW);
    const twice = await t.state.send(alice.id, "lobby", "tpyo", "c-1", T0, OFF);
    assert.equal(twice.event.text, "typo!");
  });

  test(
    "edits are refused: not_author, edit_window_passed, not_found",
    {},
    async (t) => {
      const alice = await t.session("alice");
      const bob = await t.session("bob");
      await t.state.join(alice.id, "lobby", T0);
      await t.state.join(bob.id, "lobby", T0);
      await t.state.join(alice.id, "dev", T0);
      const { event } = await t.state.send(alice.id, "lobby", "mine", undefined, T0, OFF);
      await t.refused(() => t.state.edit(bob.id, "lobby", event.id, "x", T0, WINDOW), "not_author");
      await t.refused(
        () => t.state.edit(alice.id, "lobby", event.id, "x", T0 + WINDOW + 1, WINDOW),
        "edit_window_passed",
      );
      await t.refused(
        () => t.state.edit(alice.id, "lobby", event.id, "x", T0, 0),
        "edit_window_passed",
      );
      await t.refused(() => t.state.edit(alice.id, "lobby", 999, "x", T0, WINDOW), "not_found");
      await t.refused(
        () => t.state.edit(alice.id, "lobby", 1, "x", T0, WINDOW),
        "not_found",
        "a join",
      );
      await t.refused(() => t.state.edit(alice.id, "dev", event.id, "x", T0, WINDOW), "not_found");
      await t.refused(
        () => t.state.edit(alice.id, "other", event.id, "x", T0, WINDOW),
        "not_found",
        "a room never joined",
      );
      const history = await t.state.history(bob.id, "lobby", Infinity, 50);
      assert.equal(history.find((e) => e.id === event.id)?.text, "mine", "nothing changed");
    },
  );

  // ---- deletes ----

  test(
    "an author deletes a message: its text is gone from history, edits and sends",
    {},
    async (t) => {
      const alice = await t.session("alice");
      const bob = await t.session("bob");
      await t.state.join(alice.id, "lobby", T0);
      await t.state.join(bob.id, "lobby", T0);
      const { event: sent } = await t.state.send(alice.id, "lobby", "secret", "c-1", T0, OFF);
      const edit = await t.state.edit(alice.id, "lobby", sent.id, "more secret", T0, WINDOW);
      await t.state.remove(alice.id, "lobby", sent.id, T0 + 7);
      const heard = await t.heard(edit.id + 1);
      assert.deepEqual(heard.at(-1), {
        id: edit.id + 1,
        type: "delete",
        room: "lobby",
        nick: "alice",
        ts: T0 + 7,
        ref: sent.id,
        session: alice.id,
      });
      const { text: _, ...erased } = sent;
      const history = await t.state.history(bob.id, "lobby", Infinity, 50);
      assert.deepEqual(history.find((e) => e.id === sent.id), { ...erased, deleted: true });
      const { text: __, ...erasedEdit } = edit;
      assert.deepEqual(history.find((e) => e.id === edit.id), erasedEdit);
      assert.ok(!JSON.stringify(history).includes("secret"));
      const read = await t.state.read([{ room: "lobby", from: 0, to: Infinity }], 10);
      assert.ok(!JSON.stringify(read).includes("secret"));
      const again = await t.state.send(alice.id, "lobby", "secret", "c-1", T0, OFF);
      assert.deepEqual(again, { event: { ...erased, deleted: true }, created: false });
      await t.refused(
        () => t.state.remove(alice.id, "lobby", sent.id, T0),
        "not_found",
        "deleted twice",
      );
      await t.refused(() => t.state.edit(alice.id, "lobby", sent.id, "x", T0, WINDOW), "not_found");
    },
  );

  test("a moderator deletes anyone's message, and the delete names them in by", {}, async (t) => {
    const mod = await t.session("mod", { moderator: true });
    const bob = await t.session("bob");
    await t.state.join(bob.id, "lobby", T0);
    const { event } = await t.state.send(bob.id, "lobby", "spam", undefined, T0, OFF);
    // Decision: a moderator need not be in the room.
    await t.state.remove(mod.id, "lobby", event.id, T0 + 1);
    const heard = await t.heard(3);
    assert.deepEqual(heard[2], {
      id: 3,
      type: "delete",
      room: "lobby",
      nick: "bob",
      ts: T0 + 1,
      ref: event.id,
      by: "mod",
      session: mod.id,
    });
    // A moderator deleting their own message is an author: no `by`.
    await t.state.join(mod.id, "lobby", T0);
    const own = await t.state.send(mod.id, "lobby", "mine", undefined, T0, OFF);
    await t.state.remove(mod.id, "lobby", own.event.id, T0);
    assert.equal((await t.heard(own.event.id + 1)).at(-1)!.by, undefined);
  });

  test("deletes are refused: not_author, not_found", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    const carol = await t.session("carol");
    await t.state.join(alice.id, "lobby", T0);
    await t.state.join(bob.id, "lobby", T0);
    const { event } = await t.state.send(alice.id, "lobby", "mine", undefined, T0, OFF);
    await t.refused(() => t.state.remove(bob.id, "lobby", event.id, T0), "not_author");
    await t.refused(() => t.state.remove(alice.id, "lobby", 999, T0), "not_found");
    await t.refused(() => t.state.remove(alice.id, "lobby", 1, T0), "not_found", "a join");
    // Not in the room is no reason of its own: carol is refused as any other non-author.
    await t.refused(() => t.state.remove(carol.id, "lobby", event.id, T0), "not_author");
    await t.refused(() => t.state.remove(carol.id, "lobby", 999, T0), "not_found", "by carol");
    await t.refused(() => t.state.remove(carol.id, "other", event.id, T0), "not_found");
    const history = await t.state.history(bob.id, "lobby", Infinity, 50);
    assert.equal(history.find((e) => e.id === event.id)?.text, "mine", "nothing changed");
  });

  test(
    "an author edits (within the window) and deletes their own messages after leaving the room",
    {},
    async (t) => {
      const alice = await t.session("alice");
      const bob = await t.session("bob");
      await t.state.join(alice.id, "lobby", T0);
      await t.state.join(bob.id, "lobby", T0);
      const { event: kept } = await t.state.send(alice.id, "lobby", "kept", undefined, T0, OFF);
      const { event: gone } = await t.state.send(alice.id, "lobby", "gone", undefined, T0, OFF);
      await t.state.leave(alice.id, "lobby", T0);
      // DESIGN.md: authors delete their own messages at any time; leaving the room is no end.
      const edit = await t.state.edit(alice.id, "lobby", kept.id, "edited", T0 + 1, WINDOW);
      assert.deepEqual([edit.type, edit.ref, edit.nick], ["edit", kept.id, "alice"]);
      await t.state.remove(alice.id, "lobby", gone.id, T0 + 2);
      const heard = await t.heard(edit.id + 1);
      assert.deepEqual(heard.slice(-2).map((e) => [e.type, e.ref, e.by]), [
        ["edit", kept.id, undefined],
        ["delete", gone.id, undefined],
      ]);
      const history = await t.state.history(bob.id, "lobby", Infinity, 50);
      assert.equal(history.find((e) => e.id === kept.id)?.text, "edited");
      assert.equal(history.find((e) => e.id === gone.id)?.deleted, true);
      // The window still holds.
      await t.refused(
        () => t.state.edit(alice.id, "lobby", kept.id, "late", T0 + WINDOW + 1, WINDOW),
        "edit_window_passed",
      );
    },
  );

  test("an edit racing a delete never brings the text back", {}, async (t) => {
    const alice = await t.session("alice");
    await t.state.join(alice.id, "lobby", T0);
    for (const editFirst of [true, false]) {
      const { event } = await t.state.send(alice.id, "lobby", "secret", undefined, T0, OFF);
      const edit = () => t.state.edit(alice.id, "lobby", event.id, "new secret", T0, WINDOW);
      const remove = () => t.state.remove(alice.id, "lobby", event.id, T0);
      const results = await Promise.allSettled(editFirst ? [edit(), remove()] : [remove(), edit()]);
      const [first, second] = results;
      assert.equal(first!.status, "fulfilled");
      if (second!.status === "rejected") assertRefusal(second.reason, "not_found");
      const history = await t.state.history(alice.id, "lobby", Infinity, 50);
      const message = history.find((e) => e.id === event.id)!;
      assert.deepEqual([message.deleted, message.text], [true, undefined]);
      assert.ok(!JSON.stringify(history).includes("secret"), `edit first: ${editFirst}`);
    }
  });

  // ---- topics ----

  test("a moderator sets a topic; joins show it; an empty one clears it", {}, async (t) => {
    const mod = await t.session("mod", { moderator: true });
    const bob = await t.session("bob");
    await t.state.join(bob.id, "lobby", T0);
    await t.refused(() => t.state.setTopic(bob.id, "lobby", "mine now", T0), "forbidden");
    const event = await t.state.setTopic(mod.id, "lobby", "Welcome!", T0 + 3);
    assert.deepEqual(event, {
      id: 2,
      type: "topic",
      room: "lobby",
      nick: "mod",
      text: "Welcome!",
      ts: T0 + 3,
      session: mod.id,
    });
    assert.deepEqual((await t.heard(2))[1], event);
    assert.equal((await t.state.join(bob.id, "lobby", T0)).topic, "Welcome!");
    assert.equal((await t.state.join(mod.id, "lobby", T0)).topic, "Welcome!");
    await t.state.setTopic(mod.id, "lobby", "", T0);
    assert.equal((await t.state.join(bob.id, "lobby", T0)).topic, undefined);
    assert.equal("topic" in await t.state.join(bob.id, "lobby", T0), false);
    const dm = await t.state.direct(mod.id, nameKey("bob"), T0);
    await t.refused(() => t.state.setTopic(mod.id, dm.room, "ours", T0), "private_room");
  });

  // ---- kicks ----

  test("a moderator kicks a member: a leave with by and reason", {}, async (t) => {
    const mod = await t.session("mod", { moderator: true });
    const bob = await t.session("Bob");
    const carol = await t.session("carol");
    await t.state.join(bob.id, "lobby", T0);
    await t.state.join(carol.id, "lobby", T0);
    await t.refused(
      () => t.state.kick(carol.id, "lobby", nameKey("bob"), undefined, T0),
      "forbidden",
    );
    await t.state.kick(mod.id, "lobby", nameKey("BOB"), "be nice", T0 + 2);
    assert.deepEqual((await t.heard(3))[2], {
      id: 3,
      type: "leave",
      room: "lobby",
      nick: "Bob",
      ts: T0 + 2,
      by: "mod",
      reason: "be nice",
      session: bob.id,
    });
    await t.refused(() => t.state.send(bob.id, "lobby", "x", undefined, T0, OFF), "not_member");
    await t.refused(
      () => t.state.kick(mod.id, "lobby", nameKey("bob"), undefined, T0),
      "not_member",
    );
    await t.refused(
      () => t.state.kick(mod.id, "lobby", nameKey("nobody"), undefined, T0),
      "not_member",
    );
    await t.refused(
      () => t.state.kick(mod.id, "dev", nameKey("carol"), undefined, T0),
      "not_member",
    );
    await t.state.kick(mod.id, "lobby", nameKey("carol"), undefined, T0);
    const leave = (await t.heard(4))[3]!;
    assert.equal(leave.by, "mod");
    assert.equal("reason" in leave, false);
    // Decision: a kick is no ban; the kicked may join again.
    await t.state.join(bob.id, "lobby", T0);
  });

  test("a kick racing a leave stores one leave", {}, async (t) => {
    const mod = await t.session("mod", { moderator: true });
    const bob = await t.session("bob");
    await t.state.join(bob.id, "lobby", T0);
    const results = await Promise.allSettled([
      t.state.kick(mod.id, "lobby", nameKey("bob"), "bye", T0),
      t.state.leave(bob.id, "lobby", T0),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) if (r.status === "rejected") assertRefusal(r.reason, "not_member");
    await t.heard(2);
    await t.marker();
    assert.deepEqual(t.summary(t.events), ["join lobby bob", "leave lobby bob"]);
  });

  // ---- bans ----

  test("bans need a moderator", {}, async (t) => {
    const bob = await t.session("bob");
    await t.refused(
      () => t.state.ban(bob.id, { nick: "x", key: "x", until: T0 + 1 }, T0),
      "forbidden",
    );
    const mod = await t.session("mod", { moderator: true });
    const ban = await t.state.ban(mod.id, { nick: "x", key: "x", until: T0 + 1000 }, T0);
    await t.refused(() => t.state.unban(bob.id, ban.id), "forbidden");
  });

  test("a ban by nick ends the matching session and refuses new ones by key", {}, async (t) => {
    const mod = await t.session("mod", { moderator: true });
    const spammer = await t.session("Spammer", { address: "10.0.0.5" });
    const other = await t.session("other", { address: "10.0.0.5" });
    await t.state.join(spammer.id, "lobby", T0);
    await t.state.join(spammer.id, "dev", T0);
    await t.state.join(other.id, "lobby", T0);
    const ban = await t.state.ban(mod.id, {
      nick: "SPAMMER",
      key: nameKey("SPAMMER"),
      until: T0 + 60_000,
      reason: "spam",
    }, T0 + 1);
    assert.equal(ban.nick, "SPAMMER");
    assert.equal(ban.until, T0 + 60_000);
    assert.equal(ban.reason, "spam");
    assert.equal(ban.by, "mod");
    assert.equal(ban.createdAt, T0 + 1);
    assert.equal(ban.address, undefined);
    const heard = (await t.heard(5)).slice(3);
    assert.deepEqual(heard.map((e) => [e.type, e.room, e.nick, e.by, e.reason]).sort(), [
      ["leave", "dev", "Spammer", "mod", "spam"],
      ["leave", "lobby", "Spammer", "mod", "spam"],
    ]);
    assert.equal(await t.state.authenticate(spammer.token, T0 + 1), null);
    assert.ok(await t.state.refresh(other), "a session of the same address is not a nick match");
    const refusal = await t.refused(() => t.session("spammer", { address: "10.0.0.9" }), "banned");
    assert.deepEqual(refusal.ban, ban);
    assert.deepEqual(await t.state.bans(T0 + 1), [ban]);
    // Expiry: at `until` the ban is over.
    await t.refused(() => t.state.createSession(newSession("spammer"), T0 + 59_999), "banned");
    assert.deepEqual(await t.state.bans(T0 + 60_000), []);
    await t.state.createSession(newSession("spammer"), T0 + 60_000);
  });

  test("a ban by address ends every session from it and refuses new ones", {}, async (t) => {
    const mod = await t.session("mod", { moderator: true, address: "10.0.0.1" });
    const a = await t.session("a", { address: "10.6.6.6" });
    const b = await t.session("b", { address: "10.6.6.6" });
    const c = await t.session("c", { address: "10.6.6.7" });
    for (const s of [a, b, c]) await t.state.join(s.id, "lobby", T0);
    const ban = await t.state.ban(mod.id, { address: "10.6.6.6", until: T0 + 60_000 }, T0);
    assert.equal("reason" in ban, false);
    assert.equal("nick" in ban, false);
    const leaves = (await t.heard(5)).slice(3);
    assert.deepEqual(leaves.map((e) => `${e.type} ${e.nick} ${e.by}`).sort(), [
      "leave a mod",
      "leave b mod",
    ]);
    for (const e of leaves) assert.equal("reason" in e, false);
    assert.equal(await t.state.refresh(a), null);
    assert.equal(await t.state.refresh(b), null);
    assert.ok(await t.state.refresh(c));
    const refusal = await t.refused(() => t.session("fresh", { address: "10.6.6.6" }), "banned");
    assert.equal(refusal.ban?.id, ban.id);
    await t.session("fresh", { address: "10.6.6.8" });
  });

  test("bans() lists bans in force; unban lifts one; an unknown id is not_found", {}, async (t) => {
    const mod = await t.session("mod", { moderator: true });
    const short = await t.state.ban(mod.id, { nick: "a", key: "a", until: T0 + 1000 }, T0);
    const long = await t.state.ban(mod.id, { address: "10.1.1.1", until: T0 + 9000 }, T0 + 1);
    const third = await t.state.ban(mod.id, { nick: "c", key: "c", until: T0 + 9000 }, T0 + 2);
    assert.deepEqual(await t.state.bans(T0 + 2), [short, long, third]);
    assert.deepEqual(await t.state.bans(T0 + 1000), [long, third]);
    await t.state.unban(mod.id, third.id);
    assert.deepEqual(await t.state.bans(T0 + 2), [short, long]);
    await t.state.createSession(newSession("c"), T0 + 3);
    await t.refused(() => t.state.unban(mod.id, third.id), "not_found");
    await t.refused(() => t.state.unban(mod.id, "no-such-ban"), "not_found");
    // expire() may forget lapsed bans; those in force stay.
    await t.state.expire(T0 + 1000, 3_600_000);
    assert.deepEqual(await t.state.bans(T0 + 1000), [long]);
  });

  test("sessions created while a ban of their address commits do not escape it", {}, async (t) => {
    const mod = await t.session("mod", { moderator: true, address: "10.0.0.1" });
    const old = await t.session("old", { address: "10.6.6.6" });
    await t.state.join(old.id, "lobby", T0);
    // Asked for before the ban, and after it: neither may outlive the ban's answer.
    const [before, banned, after] = await Promise.allSettled([
      t.session("early", { address: "10.6.6.6" }),
      t.state.ban(mod.id, { address: "10.6.6.6", until: T0 + 60_000 }, T0),
      t.session("late", { address: "10.6.6.6" }),
    ]);
    assert.equal(banned!.status, "fulfilled");
    for (const created of [before!, after!]) {
      if (created.status === "rejected") {
        assertRefusal(created.reason, "banned");
      } else {
        assert.equal(
          await t.state.refresh(created.value),
          null,
          `${created.value.nick}, of a banned address, is alive after the ban answered`,
        );
      }
    }
    assert.equal(await t.state.refresh(old), null);
  });

  // ---- direct messages ----

  test("direct opens one private room of two sessions, both members at once", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("Bob");
    await t.refused(() => t.state.direct(alice.id, nameKey("nobody"), T0), "no_such_nick");
    await t.refused(() => t.state.direct(alice.id, nameKey("ALICE"), T0), "own_nick");
    const dm = await t.state.direct(alice.id, nameKey("bob"), T0 + 4);
    assert.match(dm.room, PRIVATE_NAME);
    assert.equal(dm.with, "Bob");
    assert.deepEqual(t.summary(dm.history).sort(), [
      `join ${dm.room} Bob`,
      `join ${dm.room} alice`,
    ]);
    for (const e of dm.history) assert.equal(e.ts, T0 + 4);
    assert.deepEqual((await t.heard(2)).map((e) => e.id), [1, 2]);
    for (const s of [alice, bob]) {
      assert.equal((await t.state.refresh(s))?.rooms.get(dm.room)?.leftId, undefined);
      assert.equal((await t.state.refresh(s))?.rooms.has(dm.room), true);
    }
    await t.state.send(alice.id, dm.room, "psst", undefined, T0, OFF);
    // Opened again from either side: the same room, nothing stored.
    const back = await t.state.direct(bob.id, nameKey("alice"), T0);
    assert.equal(back.room, dm.room);
    assert.equal(back.with, "alice");
    assert.deepEqual(t.summary(back.history).at(-1), `message ${dm.room} alice psst`);
    assert.equal(await t.state.lastId(), 3);
    assert.deepEqual(await t.state.members(bob.id, dm.room, null, 10), {
      members: ["Bob", "alice"],
    });
  });

  test("nobody else joins, reads or lists a private room", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    const carol = await t.session("carol", { moderator: true });
    const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
    await t.refused(() => t.state.join(carol.id, dm.room, T0), "private_room");
    await t.refused(() => t.state.join(carol.id, "@0123456789abcdef", T0), "private_room");
    await t.refused(() => t.state.history(carol.id, dm.room, Infinity, 10), "not_member");
    await t.refused(() => t.state.members(carol.id, dm.room, null, 10), "not_member");
    await t.refused(() => t.state.send(carol.id, dm.room, "hi", undefined, T0, OFF), "not_member");
    assert.deepEqual(await t.state.rooms(), []);
    // A member that left may come back, through join or direct.
    await t.state.leave(bob.id, dm.room, T0);
    await t.state.join(bob.id, dm.room, T0);
    await t.state.leave(bob.id, dm.room, T0);
    assert.equal((await t.state.direct(alice.id, nameKey("bob"), T0)).room, dm.room);
    assert.equal((await t.state.refresh(bob))?.rooms.get(dm.room)?.leftId, undefined);
  });

  test("concurrent directs from both sides store one join each", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    const [a, b] = await Promise.all([
      t.state.direct(alice.id, nameKey("bob"), T0),
      t.state.direct(bob.id, nameKey("alice"), T0),
    ]);
    assert.equal(a.room, b.room);
    assert.equal(await t.state.lastId(), 2);
  });

  test("a private room is gone with its history when either session ends", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    await t.session("carol");
    const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
    const secret = await t.state.send(bob.id, dm.room, "secret", undefined, T0, OFF);
    // Alice's DM with carol is not bob's: it stays.
    const other = await t.state.direct(alice.id, nameKey("carol"), T0);
    assert.equal((await t.state.refresh(alice))?.forgot, 0);
    await t.state.endSession(bob.id, T0);
    assert.equal((await t.state.refresh(alice))?.rooms.has(dm.room), false);
    // What she could read there is gone: polls from before its last event answer a gap.
    assert.ok((await t.state.refresh(alice))!.forgot > secret.event.id);
    assert.equal((await t.state.refresh(alice))?.rooms.has(other.room), true);
    await t.refused(() => t.state.join(alice.id, dm.room, T0), "private_room");
    await t.refused(() => t.state.history(alice.id, dm.room, Infinity, 10), "not_member");
    const read = await t.state.read([{ room: dm.room, from: 0, to: Infinity }], 10);
    assert.deepEqual(read.events, [], "its events are gone");
    // A new bob and alice get a new room, with no trace of the old one.
    const bob2 = await t.session("bob");
    const again = await t.state.direct(alice.id, nameKey("bob"), T0);
    assert.notEqual(again.room, dm.room);
    assert.ok(!JSON.stringify(again.history).includes("secret"));
    assert.equal(again.with, bob2.nick);
  });

  test(
    `a session forgets the oldest of over ${LEFT_KEPT} rooms it left, and says up to where`,
    {},
    async (t) => {
      const alice = await t.session("alice");
      const leaves: number[] = [];
      for (let i = 0; i <= LEFT_KEPT; i++) {
        await t.state.join(alice.id, `r${i}`, T0);
        await t.state.leave(alice.id, `r${i}`, T0);
        leaves.push(Number((await t.state.refresh(alice))!.rooms.get(`r${i}`)!.leftId));
      }
      const fresh = (await t.state.refresh(alice))!;
      assert.equal(fresh.rooms.size, LEFT_KEPT);
      assert.equal(fresh.rooms.has("r0"), false);
      assert.equal(fresh.forgot, leaves[0]);
    },
  );

  test("a private room's remembered sends go with it", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    await t.state.join(bob.id, "lobby", T0);
    const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
    await t.state.send(bob.id, dm.room, "secret", "c-dm", T0, OFF);
    await t.state.endSession(alice.id, T0);
    // The client id is no longer remembered: it names no stored message any more.
    const fresh = await t.state.send(bob.id, "lobby", "new", "c-dm", T0, OFF);
    assert.equal(fresh.created, true);
    assert.equal(fresh.event.text, "new");
  });

  test("a private room is gone when a session that left it ends", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
    await t.state.send(bob.id, dm.room, "secret", undefined, T0, OFF);
    await t.state.leave(alice.id, dm.room, T0);
    await t.state.endSession(alice.id, T0);
    assert.equal((await t.state.refresh(bob))?.rooms.has(dm.room), false);
    await t.refused(() => t.state.history(bob.id, dm.room, Infinity, 10), "not_member");
    const read = await t.state.read([{ room: dm.room, from: 0, to: Infinity }], 10);
    assert.deepEqual(read.events, [], "its events are gone");
  });

  // ---- typing ----

  test("typing is heard as a notice, at most once per session and room each 3 s", {}, async (t) => {
    const alice = await t.session("alice");
    const bob = await t.session("bob");
    const carol = await t.session("carol");
    for (const s of [alice, bob]) {
      await t.state.join(s.id, "lobby", T0);
      await t.state.join(s.id, "dev", T0);
    }
    await t.refused(() => t.state.typing(carol.id, "lobby", T0), "not_member");
    await t.state.typing(alice.id, "lobby", T0);
    assert.deepEqual(await t.noticed(1), [
      { type: "typing", room: "lobby", nick: "alice", ts: T0, session: alice.id },
    ]);
    await t.state.typing(alice.id, "lobby", T0 + 1); // dropped
    await t.state.typing(alice.id, "dev", T0 + 2); // another room
    await t.state.typing(bob.id, "lobby", T0 + 3); // another session
    await t.state.typing(alice.id, "lobby", T0 + TYPING_INTERVAL_MS - 1); // dropped
    await t.state.typing(alice.id, "lobby", T0 + TYPING_INTERVAL_MS);
    const notices = await t.noticed(4);
    assert.deepEqual(notices.map((n) => `${n.nick} ${n.room} ${n.ts - T0}`), [
      "alice lobby 0",
      "alice dev 2",
      "bob lobby 3",
      `alice lobby ${TYPING_INTERVAL_MS}`,
    ]);
    assert.equal(await t.state.lastId(), 4, "typing stores no event");
    await t.marker();
    assert.equal(t.events.length, 4, "typing stores no event");
  });

  test(`typing is not passed on in rooms over ${TYPING_MAX_MEMBERS} members`, {}, async (t) => {
    const nicks = range(0, TYPING_MAX_MEMBERS + 1).map((i) => `n${i}`);
    const sessions = await Promise.all(nicks.map((n) => t.session(n)));
    await Promise.all(
      sessions.slice(0, TYPING_MAX_MEMBERS).map((s) => t.state.join(s.id, "big", T0)),
    );
    await t.state.typing(sessions[0]!.id, "big", T0);
    assert.equal((await t.noticed(1))[0]!.nick, "n0", `${TYPING_MAX_MEMBERS} members: passed on`);
    await t.state.join(sessions.at(-1)!.id, "big", T0);
    await t.state.typing(sessions[1]!.id, "big", T0);
    await t.state.join(sessions[1]!.id, "small", T0);
    await t.state.typing(sessions[1]!.id, "small", T0);
    await t.noticed(2);
    assert.deepEqual(t.notices.map((n) => `${n.nick} ${n.room}`), ["n0 big", "n1 small"]);
  });

  // ---- failures ----

  test(
    "a failed end of a session changes nothing, and a retry ends it",
    { failures: true },
    async (t) => {
      const alice = await t.session("alice");
      const bob = await t.session("bob");
      await t.state.join(alice.id, "lobby", T0);
      await t.state.join(bob.id, "lobby", T0);
      const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
      await t.state.send(alice.id, dm.room, "kept", undefined, T0, OFF);
      const lastId = await t.state.lastId();
      await t.heard(lastId);
      const heal = t.fixture.failWrites!();
      await assert.rejects(Promise.resolve().then(() => t.state.endSession(alice.id, T0)));
      heal();
      assert.equal(await t.state.lastId(), lastId);
      assert.equal((await t.state.authenticate(alice.token, T0))?.id, alice.id, "the token works");
      assert.equal((await t.state.refresh(alice))?.rooms.get("lobby")?.leftId, undefined);
      await t.refused(() => t.session("ALICE"), "nick_taken");
      assert.deepEqual(await t.state.rooms(), [{ name: "lobby", members: 2 }]);
      const again = await t.state.direct(bob.id, nameKey("alice"), T0);
      assert.equal(again.room, dm.room);
      assert.equal(again.history.at(-1)?.text, "kept");
      await t.state.send(alice.id, "lobby", "still here", undefined, T0, OFF);
      await t.state.endSession(alice.id, T0);
      assert.equal(await t.state.authenticate(alice.token, T0), null);
      assert.deepEqual(await t.state.rooms(), [{ name: "lobby", members: 1 }]);
      await t.heard(lastId + 3);
      await t.marker();
      assert.deepEqual(
        t.summary(t.events.slice(lastId)).sort(),
        [
          "leave lobby alice",
          `leave ${dm.room} alice`,
          "message lobby alice still here",
        ].sort(),
      );
    },
  );

  test(
    "failed writes change nothing: sessions, joins, sends, bans, DMs",
    { failures: true },
    async (t) => {
      const mod = await t.session("mod", { moderator: true });
      const alice = await t.session("alice");
      await t.session("bob");
      await t.state.join(alice.id, "lobby", T0);
      const heal = t.fixture.failWrites!();
      const fails = (p: Promise<unknown>) => assert.rejects(p.then(() => {}));
      await fails(t.session("carol"));
      await fails(t.state.join(alice.id, "dev", T0));
      await fails(t.state.send(alice.id, "lobby", "lost", "c-1", T0, OFF));
      await fails(t.state.ban(mod.id, { nick: "alice", key: "alice", until: T0 + 9000 }, T0));
      await fails(t.state.direct(alice.id, nameKey("bob"), T0));
      heal();
      assert.equal(await t.state.lastId(), 1);
      assert.deepEqual(await t.state.bans(T0), []);
      assert.ok(await t.state.refresh(alice), "the ban that failed ended nobody");
      assert.deepEqual(await t.state.rooms(), [{ name: "lobby", members: 1 }]);
      await t.session("carol");
      assert.equal((await t.state.send(alice.id, "lobby", "lost", "c-1", T0, OFF)).created, true);
      const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
      assert.equal(dm.history.length, 2);
    },
  );

  // ---- restart ----

  test(
    "a restart keeps sessions, memberships, sends, edits, deletes, bans, topics and DMs",
    { durable: true },
    async (t) => {
      const mod = await t.session("mod", { moderator: true, address: "10.0.0.1" });
      const alice = await t.session("Alice", { address: "10.0.0.2" });
      const bob = await t.session("bob");
      await t.session("spammer");
      for (const s of [mod, alice, bob]) await t.state.join(s.id, "lobby", T0);
      await t.state.join(bob.id, "side", T0);
      await t.state.send(bob.id, "side", "unseen", undefined, T0, OFF);
      await t.state.join(alice.id, "side", T0);
      await t.state.send(bob.id, "side", "seen", undefined, T0, OFF);
      await t.state.leave(alice.id, "side", T0);
      await t.state.setTopic(mod.id, "lobby", "Be kind", T0);
      const kept = await t.state.send(alice.id, "lobby", "tpyo", "c-1", T0, OFF);
      await t.state.edit(alice.id, "lobby", kept.event.id, "typo", T0, WINDOW);
      const gone = await t.state.send(alice.id, "lobby", "secret", "c-2", T0, OFF);
      await t.state.remove(alice.id, "lobby", gone.event.id, T0);
      const ban = await t.state.ban(mod.id, {
        nick: "spammer",
        key: "spammer",
        until: T0 + 3_600_000,
        reason: "spam",
      }, T0);
      const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
      await t.state.send(alice.id, dm.room, "psst", undefined, T0, OFF);
      const lastId = await t.state.lastId();
      const before = {
        alice: Object.fromEntries((await t.state.refresh(alice))!.rooms),
        rooms: await t.state.rooms(),
        lobby: await t.state.history(bob.id, "lobby", Infinity, 50),
        dm: await t.state.history(bob.id, dm.room, Infinity, 50),
      };

      await t.restart(T0 + 1000);
      const s = t.state;
      assert.equal(await s.lastId(), lastId);
      const alice2 = await s.authenticate(alice.token, T0 + 1000);
      assert.ok(alice2, "the token works after the restart");
      assert.equal(alice2.id, alice.id);
      assert.equal(alice2.nick, "Alice");
      assert.equal(alice2.address, "10.0.0.2");
      assert.equal(alice2.createdAt, T0);
      assert.equal((await s.authenticate(mod.token, T0 + 1000))?.moderator, true);
      assert.deepEqual(Object.fromEntries(alice2.rooms), before.alice);
      const side = alice2.rooms.get("side")!;
      assert.ok(side.leftId !== undefined, "the left membership is kept");
      const read = await s.read([{ room: "side", from: side.joinId - 1, to: side.leftId! }], 10);
      assert.deepEqual(t.summary(read.events), [
        "join side Alice",
        "message side bob seen",
        "leave side Alice",
      ]);
      await t.refused(() => t.session("alice"), "nick_taken");
      assert.deepEqual(await s.rooms(), before.rooms);
      assert.deepEqual(await s.history(bob.id, "lobby", Infinity, 50), before.lobby);
      assert.ok(!JSON.stringify(before.lobby).includes("secret"));
      const view = await s.join(bob.id, "lobby", T0);
      assert.equal(view.topic, "Be kind");
      assert.deepEqual(await s.send(alice.id, "lobby", "tpyo", "c-1", T0, OFF), {
        event: { ...kept.event, text: "typo", edited: true },
        created: false,
      });
      const { text: _, ...erased } = gone.event;
      assert.deepEqual(await s.send(alice.id, "lobby", "secret", "c-2", T0, OFF), {
        event: { ...erased, deleted: true },
        created: false,
      });
      assert.deepEqual(await s.bans(T0 + 1000), [ban]);
      const refusal = await t.refused(() => t.session("SPAMMER"), "banned");
      assert.deepEqual(refusal.ban, ban);
      // The DM room is still private and still theirs.
      const carol = await t.session("carol");
      await t.refused(() => s.join(carol.id, dm.room, T0), "private_room");
      assert.deepEqual(await s.history(bob.id, dm.room, Infinity, 50), before.dm);
      assert.equal((await s.direct(bob.id, nameKey("alice"), T0)).room, dm.room);
      assert.equal(await s.lastId(), lastId, "nothing since the restart stored an event");
    },
  );

  test(
    "after a restart, ids continue, edits and deletes reach remembered sends, DMs end",
    { durable: true },
    async (t) => {
      const alice = await t.session("alice");
      const bob = await t.session("bob");
      await t.state.join(alice.id, "lobby", T0);
      const one = await t.state.send(alice.id, "lobby", "first draft", "c-1", T0, OFF);
      const two = await t.state.send(alice.id, "lobby", "private", "c-2", T0, OFF);
      const dm = await t.state.direct(alice.id, nameKey("bob"), T0);
      await t.restart(T0 + 10);
      const s = t.state;
      await s.edit(alice.id, "lobby", one.event.id, "final", T0 + 20, WINDOW);
      await s.remove(alice.id, "lobby", two.event.id, T0 + 20);
      assert.equal((await s.send(alice.id, "lobby", "?", "c-1", T0, OFF)).event.text, "final");
      const repeat = await s.send(alice.id, "lobby", "?", "c-2", T0, OFF);
      assert.equal(repeat.event.text, undefined, "a deleted text answered from a remembered send");
      assert.equal(repeat.event.deleted, true);
      const next = await s.send(alice.id, "lobby", "new", undefined, T0, OFF);
      assert.equal(next.event.id, dm.history.at(-1)!.id + 3);
      await s.endSession(bob.id, T0);
      await t.refused(() => s.join(alice.id, dm.room, T0), "private_room");
      await t.restart(T0 + 30);
      await t.refused(() => t.state.join(alice.id, dm.room, T0), "private_room");
      assert.equal((await t.state.refresh(alice))?.rooms.has(dm.room), false);
      assert.equal(await t.state.authenticate(bob.token, T0), null);
    },
  );
}

/** A new session's request with defaults. */
function newSession(
  nick: string,
  extra: { moderator?: boolean; address?: string } = {},
): NewSession {
  return {
    nick,
    key: nameKey(nick),
    address: extra.address ?? "10.0.0.1",
    moderator: extra.moderator ?? false,
  };
}

/** Asserts `error` is a `Refusal` with `code`. */
function assertRefusal(error: unknown, code: RefusalCode, what?: string): Refusal {
  assert.ok(error instanceof Refusal, `expected Refusal ${code}, got ${String(error)}`);
  assert.equal(error.code, code, what);
  return error;
}

/** A wait in milliseconds, as a backend may round it: within 1 ms of `expected`. */
function assertWait(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) <= 1, `expected a wait of ${expected} ms, got ${actual}`);
}

/** The integers from `from` to `to`, both included. */
function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** What hears the state, recorded. */
class Recorder implements StateListener {
  heard: StoredEvent[] = [];
  notices: Notice[] = [];
  resyncs = 0;
  healths: BackendHealth[] = [];
  events(events: readonly StoredEvent[]): void {
    this.heard.push(...events);
  }
  notice(notice: Notice): void {
    this.notices.push(notice);
  }
  resync(): void {
    this.resyncs++;
  }
  health(health: BackendHealth): void {
    this.healths.push(health);
  }
}

/** Waits (in real time, up to 5 s) until `check` holds: for what a backend hears later. */
async function until(check: () => boolean, what: () => string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** The current state of a case, its listener and helpers. */
class Harness {
  readonly fixture: SharedStateFixture;
  #state: SharedState;
  #recorder = new Recorder();
  #markers = 0;

  constructor(fixture: SharedStateFixture) {
    this.fixture = fixture;
    this.#state = fixture.state;
    this.#state.listen(this.#recorder);
  }

  get state(): SharedState {
    return this.#state;
  }

  /** Every event heard so far (since the last restart). */
  get events(): StoredEvent[] {
    return this.#recorder.heard;
  }

  /** Every notice heard so far, markers left out. */
  get notices(): Notice[] {
    return this.#recorder.notices.filter((n) => !n.room.startsWith("marker"));
  }

  /** Closes and reopens the store at `now`; the listener listens to the new state. */
  async restart(now: number): Promise<void> {
    this.#state = await this.fixture.restart!(now);
    this.#recorder = new Recorder();
    this.#state.listen(this.#recorder);
  }

  /** A new session with the defaults of `newSession`. */
  session(nick: string, extra: { moderator?: boolean; address?: string } = {}) {
    return this.#state.createSession(newSession(nick, extra), T0);
  }

  /** Waits until `n` events were heard; answers all heard so far. */
  async heard(n: number): Promise<StoredEvent[]> {
    await until(() => this.#recorder.heard.length >= n, () => `${n} events`);
    return this.#recorder.heard;
  }

  /** Waits until `n` notices (markers left out) were heard; answers them. */
  async noticed(n: number): Promise<Notice[]> {
    await until(() => this.notices.length >= n, () => `${n} notices`);
    return this.notices;
  }

  /**
   * Makes a notice and an event of their own and waits for both, so everything sent before was
   * heard too: what was not heard by then never will be.
   */
  async marker(): Promise<void> {
    const room = `marker${++this.#markers}`;
    const s = await this.#state.createSession(newSession(`marker${this.#markers}`), T0);
    const before = this.#recorder.heard.length;
    await this.#state.join(s.id, room, T0);
    await this.#state.typing(s.id, room, T0);
    await until(
      () => this.#recorder.notices.some((n) => n.room === room),
      () => `the marker notice ${room}`,
    );
    await until(() => this.#recorder.heard.length > before, () => `the marker event ${room}`);
    // The marker's own join is no event of the case.
    this.#recorder.heard = this.#recorder.heard.filter((e) => e.room !== room);
  }

  /** `type room nick text` of each event. */
  summary(events: readonly StoredEvent[]): string[] {
    return events.map((e) =>
      `${e.type} ${e.room} ${e.nick}${e.text === undefined ? "" : ` ${e.text}`}`
    );
  }

  /** Asserts that `call` refuses with `code`, by throwing or by a promise that rejects. */
  async refused(call: () => unknown, code: RefusalCode, what?: string): Promise<Refusal> {
    let error: unknown;
    try {
      await call();
    } catch (e) {
      error = e;
    }
    assert.ok(error !== undefined, `expected Refusal ${code}${what ? ` (${what})` : ""}, got none`);
    return assertRefusal(error, code, what);
  }
}
