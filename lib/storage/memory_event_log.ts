import {
  type Change,
  editedEvent,
  erasedEvent,
  type EventLog,
  type EventLogOptions,
  LEFT_KEPT,
  type NewEvent,
  SENDS_KEPT,
  type Snapshot,
  StorageError,
  type StoredBan,
  type StoredEvent,
  storedEvent,
  type StoredSend,
  type StoredSession,
} from "./event_log.ts";

/** One room's retained events as a queue: `events[head..]` are live, older slots are garbage. */
interface MemoryRoom {
  events: StoredEvent[];
  head: number;
  droppedThrough: number;
  topic?: string;
  pair?: [string, string];
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
  #sends = new Map<string, Map<string, StoredEvent>>();
  #bans = new Map<string, StoredBan>();
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
        ...(room.topic !== undefined ? { topic: room.topic } : {}),
        ...(room.pair ? { pair: [...room.pair] as [string, string] } : {}),
      }));
    const sessions = [...this.#sessions.values()].map(copySession);
    const sends: Record<string, StoredSend[]> = {};
    for (const [session, kept] of this.#sends) {
      sends[session] = [...kept].map(([clientId, event]) => ({ clientId, event: { ...event } }));
    }
    const bans = [...this.#bans.values()].map((ban) => ({ ...ban }));
    return Promise.resolve({ lastId: this.#lastId, rooms, sessions, sends, bans });
  }

  /**
   * Applies the change at once (so promises resolve in call order without any queue); every part
   * of it in one step, as `EventLog.commit` asks.
   */
  commit(change: Change): Promise<StoredEvent[]> {
    if (this.#closed) return closedError("commit");
    for (const session of change.putSessions ?? []) {
      this.#sessions.set(session.id, copySession(session));
    }
    const stored: StoredEvent[] = [];
    for (const event of change.events ?? []) {
      const e = storedEvent(++this.#lastId, event);
      stored.push(e);
      this.#retain(e, change.pairs?.[e.room]);
      this.#sideEffects(e);
    }
    for (const { room, id, author, text } of change.edits ?? []) {
      this.#rewrite(room, author, id, (e) => e.id === id ? editedEvent(e, text) : e);
    }
    for (const { room, id, author } of change.erase ?? []) {
      this.#rewrite(room, author, id, (e) => e.id === id || e.ref === id ? erasedEvent(e) : e);
    }
    for (const name of change.deleteRooms ?? []) {
      const pair = this.#rooms.get(name)?.pair;
      this.#rooms.delete(name);
      for (const session of this.#sessions.values()) delete session.rooms[name];
      // Sends of the room go too; only its two sessions can have sent in a private room.
      const senders = pair ? pair.map((id) => this.#sends.get(id)) : this.#sends.values();
      for (const kept of senders) {
        for (const [clientId, event] of kept ?? []) if (event.room === name) kept!.delete(clientId);
      }
    }
    for (const id of change.deleteSessions ?? []) {
      this.#sessions.delete(id);
      this.#sends.delete(id);
    }
    for (const ban of change.putBans ?? []) this.#bans.set(ban.id, { ...ban });
    for (const id of change.deleteBans ?? []) this.#bans.delete(id);
    return Promise.resolve(stored.map((e) => ({ ...e })));
  }

  /** `commit({events})`. */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    return this.commit({ events });
  }

  /** Creates or replaces a session. */
  async putSession(session: StoredSession): Promise<void> {
    await this.commit({ putSessions: [session] });
  }

  /** Deletes a session; a missing one is no error. */
  async deleteSession(id: string): Promise<void> {
    await this.commit({ deleteSessions: [id] });
  }

  /** Marks the log closed; idempotent. Nothing is ever pending. */
  close(): Promise<number> {
    this.#closed = true;
    return Promise.resolve(0);
  }

  /** Memberships, sends and topics move with their events (see `Change.events`). */
  #sideEffects(e: StoredEvent): void {
    if (e.type === "topic") {
      const room = this.#rooms.get(e.room)!;
      if (e.text) room.topic = e.text;
      else delete room.topic;
      return;
    }
    const author = this.#sessions.get(e.session);
    if (author === undefined) return;
    if (e.type === "join") {
      delete author.rooms[e.room];
      author.rooms[e.room] = { joinId: e.id };
    } else if (e.type === "leave") {
      const m = author.rooms[e.room];
      if (m !== undefined) author.rooms[e.room] = { joinId: m.joinId, leftId: e.id };
      const left = Object.entries(author.rooms).filter(([, m]) => m.leftId !== undefined)
        .sort(([, a], [, b]) => a.leftId! - b.leftId!);
      for (const [room] of left.slice(0, Math.max(0, left.length - LEFT_KEPT))) {
        delete author.rooms[room];
      }
    } else if (e.type === "message" && e.clientId !== undefined) {
      let kept = this.#sends.get(e.session);
      if (!kept) this.#sends.set(e.session, kept = new Map());
      kept.set(e.clientId, { ...e });
      if (kept.size > SENDS_KEPT) kept.delete(kept.keys().next().value!);
    }
  }

  /** Rewrites kept events of a room from message `id` on, and the author's remembered send. */
  #rewrite(
    name: string,
    author: string,
    id: number,
    change: (event: StoredEvent) => StoredEvent,
  ): void {
    const room = this.#rooms.get(name);
    if (room) {
      for (let i = room.head; i < room.events.length; i++) {
        if (room.events[i]!.id >= id) room.events[i] = change(room.events[i]!);
      }
    }
    const kept = this.#sends.get(author);
    if (!kept) return;
    for (const [clientId, event] of kept) if (event.id === id) kept.set(clientId, change(event));
  }

  #retain(event: StoredEvent, pair: [string, string] | undefined): void {
    let room = this.#rooms.get(event.room);
    if (room === undefined) {
      room = { events: [], head: 0, droppedThrough: 0 };
      if (pair) room.pair = [...pair];
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
  const rooms: StoredSession["rooms"] = {};
  for (const [room, m] of Object.entries(s.rooms)) rooms[room] = { ...m };
  return { ...s, rooms };
}

function closedError<T>(method: string): Promise<T> {
  return Promise.reject(new StorageError(`Cannot ${method}: the event log is closed`));
}
