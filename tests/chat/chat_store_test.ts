/** ChatStore on the memory backend, without HTTP: races, restarts, failures and shared answers. */
import assert from "node:assert/strict";
import { HttpError } from "../../lib/http/errors.ts";
import { ChatStore, type ChatStoreOptions, type PollAnswer } from "../../lib/chat/chat_store.ts";
import {
  type Change,
  type ChatEvent,
  type EventLog,
  StorageError,
  type StoredEvent,
} from "../../lib/storage/event_log.ts";
import { LocalState } from "../../lib/storage/local_state.ts";
import { MemoryEventLog } from "../../lib/storage/memory_event_log.ts";
import type { SessionInfo } from "../../lib/storage/shared_state.ts";
import { FakeClock } from "../_server.ts";
import { createApi } from "../../lib/chat/api.ts";
import type { MetricValues } from "../../lib/chat/metrics.ts";
import { StaticFiles } from "../../lib/http/static_files.ts";
import type { HttpRequest } from "../../lib/http/types.ts";

const OFF = { tokens: 0, periodMs: 1000 };

interface StoreOptions extends ChatStoreOptions {
  history: number;
}

function options(overrides: Partial<StoreOptions> = {}): StoreOptions {
  return {
    history: 100,
    maxMessage: 2000,
    presenceGrace: 60,
    sessionRate: OFF,
    sendRate: OFF,
    editWindow: 15,
    adminSecret: null,
    storeTimeout: 5,
    now: new FakeClock().now,
    ...overrides,
  };
}

async function openStore(
  overrides: Partial<StoreOptions> = {},
  log: EventLog = new MemoryEventLog({ history: overrides.history ?? 100 }),
): Promise<ChatStore> {
  const all = options(overrides);
  const state = await LocalState.open(log, { history: all.history, now: all.now! });
  return new ChatStore(state, all);
}

async function session(store: ChatStore, nick: string): Promise<SessionInfo> {
  return (await store.createSession({ nick }, "127.0.0.1")).session;
}

/** The session of a token, answered without a promise (the memory backend). */
function auth(store: ChatStore, token: string): SessionInfo | null {
  const found = store.authenticate(token);
  assert.ok(!(found instanceof Promise));
  return found;
}

/** A poll that must answer at once. */
function pollNow(store: ChatStore, s: SessionInfo, cursor: string | null): PollAnswer {
  const answer = store.poll(s, cursor, 0, new AbortController().signal);
  assert.ok(!(answer instanceof Promise), "a poll with wait 0 answered later");
  return answer;
}

function body(answer: PollAnswer): { events: ChatEvent[]; cursor: string; gap?: true } {
  return JSON.parse(new TextDecoder().decode(answer.body));
}

function summary(events: ChatEvent[]): string[] {
  return events.map((e) =>
    `${e.type} ${e.room} ${e.nick}${e.text === undefined ? "" : ` ${e.text}`}`
  );
}

async function rejectsWith(promise: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    return true;
  });
}

async function sessionCount(store: ChatStore): Promise<number> {
  return (await store.gauges()).sessions;
}

Deno.test("concurrent leaves of one room store one leave event", async () => {
  const store = await openStore();
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  await store.join(alice, "lobby");
  await store.join(bob, "lobby");
  const cursor = body(pollNow(store, bob, null)).cursor;
  const results = await Promise.allSettled([
    store.leave(alice, "lobby"),
    store.leave(alice, "lobby"),
  ]);
  assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected"]);
  const rejected = results[1] as PromiseRejectedResult;
  assert.equal((rejected.reason as HttpError).code, "not_member");
  assert.deepEqual(summary(body(pollNow(store, bob, cursor)).events), ["leave lobby alice"]);
});

Deno.test("a send racing a leave is refused, so no message follows the leave event", async () => {
  const store = await openStore();
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  await store.join(alice, "lobby");
  await store.join(bob, "lobby");
  const cursor = body(pollNow(store, bob, null)).cursor;
  const leaving = store.leave(alice, "lobby");
  await rejectsWith(store.send(alice, "lobby", "too late", undefined), 403, "not_member");
  await leaving;
  assert.deepEqual(summary(body(pollNow(store, bob, cursor)).events), ["leave lobby alice"]);
});

Deno.test("a session ending while it joins a room leaves that room too", async () => {
  const log = new MemoryEventLog({ history: 100 });
  const store = await openStore({}, log);
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  await store.join(alice, "lobby");
  await store.join(bob, "dev");
  const cursor = body(pollNow(store, bob, null)).cursor;
  await Promise.all([store.join(alice, "dev"), store.deleteSession(alice)]);
  assert.deepEqual(store.rooms(), [{ name: "dev", members: 1 }, { name: "lobby", members: 0 }]);
  assert.deepEqual(summary(body(pollNow(store, bob, cursor)).events), [
    "join dev alice",
    "leave dev alice",
  ]);
  // Nothing of alice survives in the log either.
  const snapshot = await log.load();
  assert.deepEqual(snapshot.sessions.map((s) => s.nick), ["bob"]);
});

Deno.test("a join waits for a leave of the same room that is still committing", async () => {
  const store = await openStore();
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  await store.join(alice, "lobby");
  await store.join(bob, "lobby");
  const cursor = body(pollNow(store, bob, null)).cursor;
  const [, view] = await Promise.all([store.leave(alice, "lobby"), store.join(alice, "lobby")]);
  assert.deepEqual(view.members, ["alice", "bob"]);
  assert.equal(
    alice.rooms.get("lobby")?.leftId,
    undefined,
    "alice answered 200 to her join but is not in the room",
  );
  assert.deepEqual(summary(body(pollNow(store, bob, cursor)).events), [
    "leave lobby alice",
    "join lobby alice",
  ]);
});

Deno.test("concurrent joins of one room store one join event", async () => {
  const store = await openStore();
  const alice = await session(store, "alice");
  const views = await Promise.all([1, 2, 3].map(() => store.join(alice, "lobby")));
  for (const view of views) assert.deepEqual(view.members, ["alice"]);
  assert.deepEqual(summary(body(pollNow(store, alice, "0")).events), ["join lobby alice"]);
});

Deno.test("concurrent sessions with one nick: exactly one gets it", async () => {
  const store = await openStore();
  const results = await Promise.allSettled(
    ["zoe", "Zoe", "ZOE"].map((nick) => session(store, nick)),
  );
  assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected", "rejected"]);
  for (const r of results) {
    if (r.status === "rejected") assert.equal((r.reason as HttpError).code, "nick_taken");
  }
  assert.equal(await sessionCount(store), 1);
});

Deno.test("a store reopened on the same log restores sessions, rooms, nicks and client ids", async () => {
  const log = new MemoryEventLog({ history: 100 });
  const first = await openStore({}, log);
  const alice = await session(first, "alice");
  const bob = await session(first, "bob");
  await first.join(alice, "lobby");
  await first.join(bob, "lobby");
  const sent = await first.send(alice, "lobby", "before the restart", "c-1");
  const cursor = body(pollNow(first, bob, null)).cursor;

  const second = await openStore({}, log);
  const alice2 = auth(second, alice.token);
  const bob2 = auth(second, bob.token);
  assert.ok(alice2 && bob2, "tokens survive a restart");
  assert.deepEqual(second.rooms(), [{ name: "lobby", members: 2 }]);
  await rejectsWith(second.createSession({ nick: "ALICE" }, "127.0.0.1"), 409, "nick_taken");
  const repeat = await second.send(alice2, "lobby", "before the restart", "c-1");
  assert.equal(repeat.created, false);
  assert.deepEqual(repeat.event, sent.event);
  const after = await second.send(alice2, "lobby", "after the restart", undefined);
  assert.ok(after.event.id > sent.event.id, "ids keep increasing across restarts");
  assert.deepEqual(summary(body(pollNow(second, bob2, cursor)).events), [
    "message lobby alice after the restart",
  ]);
  const view = await second.join(bob2, "lobby");
  assert.deepEqual(view.history.map((e) => e.text ?? e.type), [
    "join",
    "join",
    "before the restart",
    "after the restart",
  ]);
});

Deno.test("a log holding more than --history reports the events cut at load as a gap", async () => {
  const log = new MemoryEventLog({ history: 10 });
  const first = await openStore({ history: 10 }, log);
  const alice = await session(first, "alice");
  await first.join(alice, "lobby");
  for (let i = 1; i <= 8; i++) await first.send(alice, "lobby", `m${i}`, undefined);

  const second = await openStore({ history: 5 }, log);
  const alice2 = auth(second, alice.token)!;
  const answer = body(pollNow(second, alice2, "1"));
  assert.equal(answer.gap, true);
  assert.deepEqual(answer.events.map((e) => e.text), ["m4", "m5", "m6", "m7", "m8"]);
  assert.equal(body(pollNow(second, alice2, "3")).gap, true);
  assert.equal(body(pollNow(second, alice2, "4")).gap, undefined, "m3 (id 4) was seen");
});

/** A memory log whose writes fail while `failing` is set, as a full disk or lost connection would. */
class FlakyLog extends MemoryEventLog {
  failing = false;
  override commit(change: Change): Promise<StoredEvent[]> {
    return this.failing ? Promise.reject(new StorageError("disk full")) : super.commit(change);
  }
}

Deno.test("a failing log answers 503 store_unavailable and changes nothing", async () => {
  const log = new FlakyLog({ history: 100 });
  const store = await openStore({}, log);
  const alice = await session(store, "alice");
  await store.join(alice, "lobby");
  const cursor = body(pollNow(store, alice, null)).cursor;
  log.failing = true;
  await rejectsWith(store.createSession({ nick: "bob" }, "127.0.0.1"), 503, "store_unavailable");
  await rejectsWith(store.send(alice, "lobby", "lost?", "c-1"), 503, "store_unavailable");
  await rejectsWith(store.join(alice, "dev"), 503, "store_unavailable");
  assert.equal(await sessionCount(store), 1);
  assert.deepEqual(store.rooms(), [{ name: "lobby", members: 1 }]);
  assert.deepEqual(body(pollNow(store, alice, cursor)).events, []);

  log.failing = false;
  assert.ok(await session(store, "bob"), "the nick of a failed session is free");
  const retried = await store.send(alice, "lobby", "lost?", "c-1");
  assert.equal(retried.created, true, "a failed send is no send: its retry stores the message");
  assert.deepEqual(summary(body(pollNow(store, alice, cursor)).events), [
    "message lobby alice lost?",
  ]);
});

Deno.test("an aborted poll is forgotten at once and answers no events", async () => {
  const store = await openStore();
  const alice = await session(store, "alice");
  await store.join(alice, "lobby");
  const abort = new AbortController();
  const waiting = store.poll(alice, null, 30, abort.signal);
  assert.ok(waiting instanceof Promise);
  assert.equal((await store.gauges()).waitingPolls, 1);
  abort.abort();
  assert.equal((await store.gauges()).waitingPolls, 0);
  assert.deepEqual(body(await waiting).events, []);
  // A poll whose signal is already aborted does not wait at all.
  const late = store.poll(alice, null, 30, AbortSignal.abort());
  assert.ok(!(late instanceof Promise));
  assert.equal((await store.gauges()).waitingPolls, 0);
});

Deno.test("waiting polls with the same rooms and cursor share one encoded answer", async () => {
  const store = await openStore();
  const sessions = await Promise.all(["a", "b", "c"].map((nick) => session(store, nick)));
  for (const s of sessions) await store.join(s, "lobby");
  const cursor = body(pollNow(store, sessions[0]!, null)).cursor;
  const signal = new AbortController().signal;
  const polls = sessions.map((s) => store.poll(s, cursor, 30, signal) as Promise<PollAnswer>);
  await store.send(sessions[0]!, "lobby", "hi all", undefined);
  const answers = await Promise.all(polls);
  assert.equal(answers[1]!.body, answers[0]!.body);
  assert.equal(answers[2]!.body, answers[0]!.body);
  assert.deepEqual(summary(body(answers[0]!).events), ["message lobby a hi all"]);
  assert.equal(store.counters.delivered, 3);
});

/**
 * A poll's request reads the session (a copy, from `openSnapshotStore`), then its join lands: the
 * copy without the room, and the `since` the request took before reading it.
 */
async function readThenJoin(
  store: ChatStore,
  s: SessionInfo,
  room: string,
): Promise<{ since: number; read: SessionInfo }> {
  const since = store.eventsHeard;
  const read = auth(store, s.token)!;
  await store.join(s, room);
  return { since, read };
}

/** alice and carol in "side", bob in "lobby", and alice's cursor now. */
async function aliceInSideBobInLobby(store: ChatStore) {
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  const carol = await session(store, "carol");
  await store.join(alice, "side");
  await store.join(carol, "side");
  await store.join(bob, "lobby");
  return { alice, bob, carol, cursor: body(pollNow(store, alice, null)).cursor };
}

/** Runs `act`, lets the store's callbacks run, and asserts that `poll` answered by then. */
async function answeredBy<T>(poll: Promise<T>, act: () => unknown): Promise<T> {
  let answered = false;
  poll.then(() => answered = true);
  await act();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(answered, "the poll still waits on the rooms alice had before her join");
  return await poll;
}

/**
 * A store whose backend answers sessions as copies read at the time of the call, as Redis does
 * (the memory backend answers its live objects), so a session read before a join stays without
 * the room: what a poll gets when another instance commits the join while the read is on its way.
 */
async function openSnapshotStore(
  /** Each authentication's answer (read at the call) is held until this settles. */
  held?: () => Promise<void>,
  /** The same for each read of a session again. */
  heldRefresh?: () => Promise<void>,
): Promise<ChatStore> {
  const all = options();
  const state = await LocalState.open(new MemoryEventLog({ history: 100 }), {
    history: all.history,
    now: all.now!,
  });
  const copy = (s: SessionInfo | null): SessionInfo | null =>
    s && { ...s, rooms: new Map([...s.rooms].map(([room, m]) => [room, { ...m }])) };
  const snapshots = new Proxy(state, {
    get(target, prop) {
      if (prop === "authenticate") {
        return (token: string, now: number) => {
          const read = copy(target.authenticate(token, now));
          return held ? held().then(() => read) : read;
        };
      }
      if (prop === "refresh") {
        return (s: SessionInfo) => {
          const read = copy(target.refresh(s));
          return heldRefresh ? heldRefresh().then(() => read) : read;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return new ChatStore(snapshots, all);
}

Deno.test("a poll whose session joined a room after it was read waits on that room too", async () => {
  const store = await openSnapshotStore();
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  // The poll's request reads alice's session; her join (on another instance) lands meanwhile.
  const { since, read } = await readThenJoin(store, alice, "lobby");
  const cursor = body(pollNow(store, bob, null)).cursor;
  const poll = store.poll(read, cursor, 30, new AbortController().signal, since);
  assert.ok(poll instanceof Promise);
  assert.equal((await store.gauges()).waitingPolls, 1);
  const answer = await answeredBy(poll, () => store.join(bob, "lobby"));
  assert.deepEqual(summary(body(answer).events), ["join lobby bob"]);
});

Deno.test("a poll whose session joined a room after it was read answers that room's events too", async () => {
  const store = await openSnapshotStore();
  const { alice, bob, carol, cursor } = await aliceInSideBobInLobby(store);
  const { since, read } = await readThenJoin(store, alice, "lobby");
  await store.send(bob, "lobby", "welcome", undefined);
  await store.send(carol, "side", "elsewhere", undefined);
  // Answered from "side" alone, its cursor would pass "welcome", which alice's join answer lacks.
  const answer = await store.poll(read, cursor, 30, new AbortController().signal, since);
  assert.deepEqual(summary(body(answer).events), [
    "join lobby alice",
    "message lobby bob welcome",
    "message side carol elsewhere",
  ]);
});

Deno.test("a waiting poll whose session joined a room answers nothing from its old rooms until the session is read again", async () => {
  let release = () => {};
  let gate: Promise<void> | null = null;
  const store = await openSnapshotStore(undefined, () => gate ?? Promise.resolve());
  const { alice, bob, carol, cursor } = await aliceInSideBobInLobby(store);
  const poll = store.poll(auth(store, alice.token)!, cursor, 30, new AbortController().signal);
  assert.ok(poll instanceof Promise);
  // Her join is heard; the read of her session again is slow (a remote store).
  gate = new Promise((resolve) => release = resolve);
  await store.join(alice, "lobby");
  await store.send(bob, "lobby", "welcome", undefined);
  await store.send(carol, "side", "elsewhere", undefined);
  // Answered from "side" alone, its cursor would pass "welcome", which alice's join answer lacks.
  release();
  assert.deepEqual(summary(body(await poll).events), [
    "join lobby alice",
    "message lobby bob welcome",
    "message side carol elsewhere",
  ]);
});

Deno.test("a waiting poll whose session cannot be read again after a join answers no events at its cursor", async () => {
  let fail = false;
  const store = await openSnapshotStore(
    undefined,
    () => fail ? Promise.reject(new StorageError("the store is away")) : Promise.resolve(),
  );
  const alice = await session(store, "alice");
  const carol = await session(store, "carol");
  await store.join(alice, "side");
  await store.join(carol, "side");
  const cursor = body(pollNow(store, alice, null)).cursor;
  const poll = store.poll(auth(store, alice.token)!, cursor, 30, new AbortController().signal);
  fail = true;
  await store.join(alice, "lobby");
  await store.send(carol, "side", "elsewhere", undefined);
  const answer = body(await poll);
  assert.deepEqual(answer.events, []);
  assert.equal(answer.cursor, cursor);
});

Deno.test("a poll whose session's join was pushed out of those remembered still reads it again", async () => {
  const store = await openSnapshotStore();
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  const { since, read } = await readThenJoin(store, alice, "lobby");
  // More sessions move after her than are remembered (4,096): hers is forgotten.
  for (let i = 0; i < 4100; i++) await store.join(await session(store, `n${i}`), "crowd");
  const cursor = body(pollNow(store, bob, null)).cursor;
  const poll = store.poll(read, cursor, 30, new AbortController().signal, since);
  assert.ok(poll instanceof Promise);
  const answer = await answeredBy(poll, () => store.join(bob, "lobby"));
  assert.deepEqual(summary(body(answer).events), ["join lobby bob"]);
});

Deno.test("GET /api/events: a join heard while the poll's session is read is not missed", async () => {
  let release = () => {};
  let gate: Promise<void> | null = null;
  const store = await openSnapshotStore(() => gate ?? Promise.resolve());
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  await store.join(bob, "lobby");
  const cursor = body(pollNow(store, bob, null)).cursor;
  const api = createApi({
    store,
    static: await StaticFiles.create([]),
    metrics: () => ({}) as MetricValues,
    draining: () => false,
  });
  const request = (target: string, token: string): HttpRequest => {
    const [path, query = ""] = target.split("?");
    return {
      method: "GET",
      target,
      path: path!,
      query: new URLSearchParams(query),
      version: "HTTP/1.1",
      headers: new Map([["authorization", `Bearer ${token}`]]),
      body: new Uint8Array(),
      remoteAddr: "127.0.0.1",
      signal: new AbortController().signal,
      abortable: new AbortController().signal,
    };
  };
  // Alice's session is read before her join (on another instance) and answered after it.
  gate = new Promise((resolve) => release = resolve);
  const poll = api.handle(request(`/api/events?cursor=${cursor}&wait=30`, alice.token));
  gate = null;
  await store.join(alice, "lobby");
  // Her own join is after the cursor: answered at once, from the session read again.
  const answered = await answeredBy(Promise.resolve(poll), release);
  const events = JSON.parse(new TextDecoder().decode(answered.body as Uint8Array)).events;
  assert.deepEqual(summary(events), ["join lobby alice"]);
});

/** Bob and then alice in room x, and alice's cursor after her join. */
async function bothInX() {
  const store = await openStore();
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  await store.join(bob, "x");
  await store.join(alice, "x");
  return { store, alice, bob, cursor: body(pollNow(store, alice, null)).cursor };
}

Deno.test("a poll from before a leave reads up to it after the session joined the room again", async () => {
  const { store, alice, bob, cursor } = await bothInX();
  await store.send(bob, "x", "while alice is in", undefined);
  await store.leave(alice, "x");
  await store.send(bob, "x", "while alice is out", undefined);
  await store.join(alice, "x");
  await store.send(bob, "x", "alice is back", undefined);
  assert.deepEqual(summary(body(pollNow(store, auth(store, alice.token)!, cursor)).events), [
    "message x bob while alice is in",
    "leave x alice",
    "join x alice",
    "message x bob alice is back",
  ]);
});

Deno.test("a poll from before more re-joins than are kept answers what is kept, with a gap", async () => {
  const { store, alice, bob, cursor } = await bothInX();
  for (let i = 0; i < 6; i++) {
    await store.send(bob, "x", `in ${i}`, undefined);
    await store.leave(alice, "x");
    await store.send(bob, "x", `out ${i}`, undefined);
    await store.join(alice, "x");
  }
  const answer = body(pollNow(store, auth(store, alice.token)!, cursor));
  // The first two stretches are forgotten: the gap tells the page to reload history.
  assert.equal(answer.gap, true);
  assert.deepEqual(
    summary(answer.events).filter((line: string) => line.startsWith("message")),
    ["message x bob in 2", "message x bob in 3", "message x bob in 4", "message x bob in 5"],
  );
  // From its cursor on, nothing is missing: no gap again.
  await store.send(bob, "x", "later", undefined);
  const next = body(pollNow(store, auth(store, alice.token)!, answer.cursor));
  assert.equal(next.gap, undefined);
  assert.deepEqual(summary(next.events), ["message x bob later"]);
});

Deno.test("a poll from before a private room's messages answers a gap once the room is gone", async () => {
  const store = await openStore();
  const alice = await session(store, "alice");
  const bob = await session(store, "bob");
  const dm = await store.direct(alice, "bob");
  const cursor = body(pollNow(store, alice, null)).cursor;
  await store.send(bob, dm.room, "before bob ends", undefined);
  await store.deleteSession(bob);
  // Its history went with it: the poll cannot answer it, and says so.
  const answer = body(pollNow(store, auth(store, alice.token)!, cursor));
  assert.equal(answer.gap, true);
  assert.deepEqual(answer.events, []);
  const next = body(pollNow(store, auth(store, alice.token)!, answer.cursor));
  assert.equal(next.gap, undefined);
});

Deno.test("shutdown answers waiting polls with close, and later polls do not wait", async () => {
  const store = await openStore();
  const alice = await session(store, "alice");
  await store.join(alice, "lobby");
  const waiting = store.poll(alice, null, 30, new AbortController().signal);
  assert.ok(waiting instanceof Promise);
  store.shutdown();
  assert.equal(store.draining, true);
  const answer = await waiting;
  assert.equal(answer.close, true);
  assert.equal(answer.count, 0);
  const later = store.poll(alice, null, 30, new AbortController().signal);
  assert.ok(!(later instanceof Promise), "a poll during shutdown waited");
  assert.equal(later.close, true);
});

Deno.test("sweep expires sessions absent for the grace, not those with an open poll", async () => {
  const clock = new FakeClock();
  const store = await openStore({ now: clock.now, presenceGrace: 10 });
  const idle = await session(store, "idle");
  const polling = await session(store, "polling");
  const busy = await session(store, "busy");
  for (const s of [idle, polling, busy]) await store.join(s, "lobby");
  const abort = new AbortController();
  const waiting = store.poll(polling, null, 30, abort.signal);
  clock.advance(9_000);
  assert.ok(auth(store, busy.token));
  clock.advance(1_000);
  await store.sweep();
  assert.equal(auth(store, idle.token), null);
  assert.ok(auth(store, polling.token));
  assert.ok(auth(store, busy.token));
  abort.abort();
  await waiting;
});

Deno.test("sweep ends nobody for absence until a grace after the store came back: other instances could not mark theirs", async () => {
  const clock = new FakeClock();
  const state = await LocalState.open(new MemoryEventLog({ history: 100 }), {
    history: 100,
    now: clock.now,
  });
  let down = false;
  const fail = () => {
    throw new StorageError("the store is out");
  };
  const touch = state.touch.bind(state);
  const expire = state.expire.bind(state);
  state.touch = (seen) => down ? fail() : touch(seen);
  state.expire = (now, grace) => down ? fail() : expire(now, grace);
  const lastId = state.lastId.bind(state);
  state.lastId = () => down ? fail() : lastId();
  const store = new ChatStore(state, options({ now: clock.now, presenceGrace: 10 }));
  // Bob polls on another instance, which marks him present through the shared store.
  const bob = await session(store, "bob");
  const carol = await session(store, "carol");
  await store.join(bob, "lobby");
  await store.join(carol, "lobby");
  const elsewhere = () => state.touch(new Map([[bob.id, clock.now()]]));
  // Read without marking present, as authenticating would.
  const live = (s: SessionInfo) => state.refresh(s) !== null;
  await elsewhere();
  down = true;
  for (let s = 0; s < 15; s++) {
    clock.advance(1000);
    await store.sweep();
  }
  down = false;
  // This instance sweeps first after the outage; the other marks bob a second later.
  clock.advance(1000);
  await store.sweep();
  assert.ok(live(bob), "bob was ended while his instance could not say he polls");
  clock.advance(1000);
  await elsewhere();
  // Back at 16 s: nobody is ended for absence before 26 s.
  for (let s = 0; s < 8; s++) {
    clock.advance(1000);
    await store.sweep();
  }
  assert.ok(live(bob));
  assert.ok(live(carol), "not before a grace after the store came back");
  clock.advance(1000);
  await store.sweep();
  assert.equal(live(carol), false, "then the absent are ended as ever");
  assert.ok(live(bob));
});

Deno.test("sweep makes no store call while the last sweep's are on their way", async () => {
  const clock = new FakeClock();
  const state = await LocalState.open(new MemoryEventLog({ history: 100 }), {
    history: 100,
    now: clock.now,
  });
  let release = () => {};
  const held = new Promise<void>((resolve) => release = resolve);
  const expiredAt: number[] = [];
  const expire = state.expire.bind(state);
  state.expire = async (now, grace) => {
    expiredAt.push(now);
    await held;
    return expire(now, grace);
  };
  const store = new ChatStore(state, options({ now: clock.now, presenceGrace: 10 }));
  const first = store.sweep();
  for (let s = 0; s < 5; s++) {
    clock.advance(1000);
    await store.sweep();
  }
  assert.equal(expiredAt.length, 1, "expiries queued behind a stalled one");
  release();
  await first;
  // That one outlived --store-timeout, so the store counts as out until then: expiries go on a
  // grace after it came back.
  for (let s = 0; s < 11; s++) {
    clock.advance(1000);
    await store.sweep();
  }
  assert.equal(expiredAt.length, 2);
});

Deno.test("sweep marks sessions with a poll open present once per quarter grace (at most every 15 s), not every second", async () => {
  for (const [grace, every] of [[60, 15], [8, 2]] as const) {
    const clock = new FakeClock();
    const state = await LocalState.open(new MemoryEventLog({ history: 100 }), {
      history: 100,
      now: clock.now,
    });
    const touchedAt: number[] = [];
    const touch = state.touch.bind(state);
    state.touch = (seen) => {
      if (seen.size > 0) touchedAt.push(clock.now());
      return touch(seen);
    };
    const store = new ChatStore(state, options({ now: clock.now, presenceGrace: grace }));
    const polling = await session(store, "polling");
    await store.join(polling, "lobby");
    const start = clock.now();
    const abort = new AbortController();
    const waiting = store.poll(polling, null, 30, abort.signal);
    for (let s = 1; s <= 29; s++) {
      clock.advance(1000);
      await store.sweep();
    }
    assert.deepEqual(
      touchedAt.map((at) => (at - start) / 1000),
      Array.from({ length: Math.ceil(29 / every) }, (_, i) => 1 + i * every),
      `grace ${grace} s`,
    );
    // However long the poll stays open, the session stays: 29 s is past the 8 s grace.
    assert.ok(auth(store, polling.token), `grace ${grace} s: the polling session expired`);
    abort.abort();
    await waiting;
  }
});
