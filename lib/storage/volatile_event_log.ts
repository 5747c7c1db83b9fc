import {
  type Change,
  type EventLog,
  type NewEvent,
  type Snapshot,
  StorageError,
  type StoredEvent,
  storedEvent,
  type StoredSession,
} from "./event_log.ts";

/**
 * The event log of `--store memory`: it gives events their ids and keeps nothing, since the shared
 * state in memory is all there is and nothing survives a restart anyway. (`MemoryEventLog` keeps a
 * copy of everything, so tests can "restart" on it; here that copy would only double the memory
 * and the work of every write.)
 */
export class VolatileEventLog implements EventLog {
  /** Short name for logs and metrics. */
  readonly kind = "memory";
  #lastId = 0;
  #closed = false;

  /** An empty snapshot: a new process starts with nothing. */
  load(): Promise<Snapshot> {
    if (this.#closed) return closedError("load");
    return Promise.resolve({ lastId: this.#lastId, rooms: [], sessions: [], sends: {}, bans: [] });
  }

  /** Ids for the change's events, in call order; nothing else is kept. */
  commit(change: Change): Promise<StoredEvent[]> {
    if (this.#closed) return closedError("commit");
    const events = change.events;
    if (!events || events.length === 0) return Promise.resolve([]);
    const stored = new Array<StoredEvent>(events.length);
    for (let i = 0; i < events.length; i++) stored[i] = storedEvent(++this.#lastId, events[i]!);
    return Promise.resolve(stored);
  }

  /** `commit({events})`. */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    return this.commit({ events });
  }

  /** Nothing to keep. */
  async putSession(_session: StoredSession): Promise<void> {
    await this.commit({});
  }

  /** Nothing to forget. */
  async deleteSession(_id: string): Promise<void> {
    await this.commit({});
  }

  /** Marks the log closed; idempotent. Nothing is ever pending. */
  close(): Promise<number> {
    this.#closed = true;
    return Promise.resolve(0);
  }
}

function closedError<T>(method: string): Promise<T> {
  return Promise.reject(new StorageError(`Cannot ${method}: the event log is closed`));
}
