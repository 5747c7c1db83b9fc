/** The SharedState contract against `LocalState`, on the memory log and on SQLite in a temp dir. */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import {
  type Change,
  type EventLog,
  type NewEvent,
  type Snapshot,
  StorageError,
  type StoredEvent,
  type StoredSession,
} from "../../lib/storage/event_log.ts";
import { LocalState } from "../../lib/storage/local_state.ts";
import { MemoryEventLog } from "../../lib/storage/memory_event_log.ts";
import { Refusal } from "../../lib/storage/shared_state.ts";
import { MIGRATIONS } from "../../lib/storage/sqlite_db.ts";
import { SqliteEventLog } from "../../lib/storage/sqlite_event_log.ts";
import { VolatileEventLog } from "../../lib/storage/volatile_event_log.ts";
import { runSharedStateContract } from "./shared_state_contract.ts";

const OFF = { tokens: 0, periodMs: 1000 };

/** A log whose commits fail while `failing` is set, as a full disk would make them. */
class FailingLog implements EventLog {
  readonly kind: string;
  failing = false;
  #inner: EventLog;

  constructor(inner: EventLog) {
    this.#inner = inner;
    this.kind = inner.kind;
  }

  load(): Promise<Snapshot> {
    return this.#inner.load();
  }

  commit(change: Change): Promise<StoredEvent[]> {
    if (this.failing) return Promise.reject(new StorageError("Cannot write: injected failure"));
    return this.#inner.commit(change);
  }

  append(events: NewEvent[]): Promise<StoredEvent[]> {
    return this.commit({ events });
  }

  async putSession(session: StoredSession): Promise<void> {
    await this.commit({ putSessions: [session] });
  }

  async deleteSession(id: string): Promise<void> {
    await this.commit({ deleteSessions: [id] });
  }

  check(): Promise<string | null> {
    return this.#inner.check?.() ?? Promise.resolve(null);
  }

  close(deadlineMs?: number): Promise<number> {
    return this.#inner.close(deadlineMs);
  }
}

/** Breaks `log`'s writes until the answer is called. */
function breaker(log: FailingLog): () => () => void {
  return () => {
    log.failing = true;
    return () => log.failing = false;
  };
}

runSharedStateContract("local state on memory", async (history, now) => {
  const log = new FailingLog(new MemoryEventLog({ history }));
  return {
    state: await LocalState.open(log, { history, now: () => now }),
    failWrites: breaker(log),
  };
}, { durable: false, failures: true });

runSharedStateContract(
  "local state on the volatile log (--store memory)",
  async (history, now) => ({
    state: await LocalState.open(new VolatileEventLog(), { history, now: () => now }),
  }),
  { durable: false, failures: false },
);

runSharedStateContract("local state on sqlite", async (history, now) => {
  const dir = await Deno.makeTempDir({ prefix: "parley_state_" });
  const path = `${dir}/parley.db`;
  let log = new FailingLog(await SqliteEventLog.open(path, { history }));
  let state = await LocalState.open(log, { history, now: () => now });
  return {
    state,
    restart: async (at) => {
      await state.close();
      log = new FailingLog(await SqliteEventLog.open(path, { history }));
      state = await LocalState.open(log, { history, now: () => at });
      return state;
    },
    failWrites: () => breaker(log)(),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}, { durable: true, failures: true });

Deno.test("local state opens a version 1 SQLite file: tokens, nicks, gaps, client ids, edits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "parley_state_" });
  const path = `${dir}/parley.db`;
  try {
    const db = new DatabaseSync(path);
    db.exec(MIGRATIONS[0]!);
    db.exec("PRAGMA user_version = 1");
    db.exec(`INSERT INTO rooms (name, dropped_through) VALUES ('lobby', 3), ('side', 0);
      INSERT INTO sessions VALUES ('s1', '${"a".repeat(32)}', 'alice', 5);
      INSERT INTO sessions VALUES ('s2', '${"b".repeat(32)}', 'Bob', 6);
      INSERT INTO memberships VALUES ('s1', 'lobby', 4), ('s2', 'lobby', 5);
      INSERT INTO events VALUES
        (4, 'lobby', 'join', 'alice', NULL, 10, NULL, 's1'),
        (5, 'lobby', 'join', 'Bob', NULL, 11, NULL, 's2'),
        (6, 'side', 'join', 'alice', NULL, 12, NULL, 's1'),
        (7, 'side', 'leave', 'alice', NULL, 13, NULL, 's1'),
        (8, 'lobby', 'message', 'alice', 'tpyo', 14, 'c-1', 's1'),
        (9, 'lobby', 'message', 'alice', 'oops', 15, 'c-2', 's1');
      UPDATE meta SET value = 9 WHERE key = 'last_id';`);
    db.close();
    const open = async () => {
      const log = await SqliteEventLog.open(path, { history: 100 });
      return await LocalState.open(log, { history: 100, now: () => 100 });
    };
    let state = await open();
    try {
      const alice = await state.authenticate("a".repeat(32), 100);
      assert.equal(alice?.id, "s1");
      await assert.rejects(
        state.createSession({ nick: "BOB", key: "bob", address: "", moderator: false }, 100),
        (e) => e instanceof Refusal && e.code === "nick_taken",
      );
      assert.deepEqual(state.rooms(), [{ name: "lobby", members: 2 }, {
        name: "side",
        members: 0,
      }]);
      assert.deepEqual(state.read([{ room: "lobby", from: 0, to: Infinity }], 10).gap, true);
      const repeat = await state.send("s1", "lobby", "again", "c-1", 100, OFF);
      assert.deepEqual([repeat.created, repeat.event.id, repeat.event.text], [false, 8, "tpyo"]);
      await state.edit("s1", "lobby", 8, "typo", 20, 15 * 60_000);
      await state.remove("s1", "lobby", 9, 20);
      assert.equal(state.lastId(), 11);
    } finally {
      await state.close();
    }
    state = await open();
    try {
      const history = state.history("s2", "lobby", Infinity, 50);
      assert.deepEqual(history.map((e) => [e.id, e.type, e.text ?? null]), [
        [4, "join", null],
        [5, "join", null],
        [8, "message", "typo"],
        [9, "message", null],
        [10, "edit", "typo"],
        [11, "delete", null],
      ]);
      assert.equal((await state.send("s1", "lobby", "?", "c-2", 100, OFF)).event.deleted, true);
    } finally {
      await state.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
