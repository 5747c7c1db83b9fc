import {
  type EventLog,
  type EventLogOptions,
  type NewEvent,
  type Snapshot,
  StorageError,
  type StoredEvent,
  storedEvent,
  type StoredSession,
} from "./event_log.ts";

/** One room's retained events as a queue: `events[head..]` are live, older slots are garbage. */
interface MemoryRoom {
  events: StoredEvent[];
  head: number;
  droppedThrough: number;
}

/**
 * An `EventLog` that keeps everything in this process: nothing survives a restart. For tests and
 * `--store memory`; a second `load()` on the same instance returns what was written since.
 */
export class MemoryEventLog implements EventLog {
  /** Short name for logs and metrics. */
  readonly kind = "memory";
  #history: number;
  #lastId = 0;
  #rooms = new Map<string, MemoryRoom>();
  #sessions = new Map<string, StoredSession>();
  #closed = false;

  constructor(options: EventLogOptions) {
    if (!Number.isSafeInteger(options.history) || options.history < 0) {
      throw new RangeError(`history must be a non-negative integer, got ${options.history}`);
    }
    this.#history = options.history;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Returns a copy of the current state, so callers cannot change the log through it. */
  load(): Promise<Snapshot> {
    if (this.#closed) return closedError("load");
    const rooms = [...this.#rooms.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, room]) => ({
        name,
        events: room.events.slice(room.head).map((e) => ({ ...e })),
        droppedThrough: room.droppedThrough,
      }));
    const sessions = [...this.#sessions.values()].map(copySession);
    return Promise.resolve({ lastId: this.#lastId, rooms, sessions });
  }

  /**
   * Ids are assigned at call time, so promises resolve in call order without any queue; a join or
   * leave updates its known author's rooms at once, as one step with the event.
   */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    if (this.#closed) return closedError("append");
    const stored: StoredEvent[] = [];
    for (const event of events) {
      const e = storedEvent(++this.#lastId, event);
      stored.push(e);
      this.#retain(e);
      // Membership moves with its event (see `EventLog.append`); unknown sessions get none.
      const author = e.type === "message" ? undefined : this.#sessions.get(e.session);
      if (author !== undefined) {
        if (e.type === "join") author.rooms[e.room] = e.id;
        else delete author.rooms[e.room];
      }
    }
    return Promise.resolve(stored.map((e) => ({ ...e })));
  }

  /** Creates or replaces a session. */
  putSession(session: StoredSession): Promise<void> {
    if (this.#closed) return closedError("putSession");
    this.#sessions.set(session.id, copySession(session));
    return Promise.resolve();
  }

  /** Deletes a session; a missing one is no error. */
  deleteSession(id: string): Promise<void> {
    if (this.#closed) return closedError("deleteSession");
    this.#sessions.delete(id);
    return Promise.resolve();
  }

  /** Marks the log closed; idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #retain(event: StoredEvent): void {
    let room = this.#rooms.get(event.room);
    if (room === undefined) {
      room = { events: [], head: 0, droppedThrough: 0 };
      this.#rooms.set(event.room, room);
    }
    room.events.push(event);
    while (room.events.length - room.head > this.#history) {
      room.droppedThrough = room.events[room.head]!.id;
      room.head++;
    }
    // Compact only once the garbage outweighs the live part: amortised O(1) per append, where
    // `shift()` or `splice(0, 1)` would copy up to `history` slots every time.
    if (room.head > 64 && room.head >= room.events.length - room.head) {
      room.events = room.events.slice(room.head);
      room.head = 0;
    }
  }
}

function copySession(s: StoredSession): StoredSession {
  return { id: s.id, token: s.token, nick: s.nick, createdAt: s.createdAt, rooms: { ...s.rooms } };
}

function closedError<T>(method: string): Promise<T> {
  return Promise.reject(new StorageError(`Cannot ${method}: the event log is closed`));
}
