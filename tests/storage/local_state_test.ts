/** The SharedState contract against `LocalState`, on the memory log and on SQLite in a temp dir. */
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
import { SqliteEventLog } from "../../lib/storage/sqlite_event_log.ts";
import { runSharedStateContract } from "./shared_state_contract.ts";

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
