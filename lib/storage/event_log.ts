/** The kinds of chat event. */
export type EventType = "message" | "join" | "leave";

/** An event as clients see it. */
export interface ChatEvent {
  /** Position in the one total order of this server (or of the Redis cluster); starts at 1. */
  id: number;
  type: EventType;
  room: string;
  nick: string;
  /** Only on `message`. */
  text?: string;
  /** Milliseconds since the epoch. */
  ts: number;
  /** Only on `message`, when the client sent one. */
  clientId?: string;
}

/** An event as stored: with the id of the session that caused it (never sent to clients). */
export interface StoredEvent extends ChatEvent {
  session: string;
}

/** An event before the log has given it an id. */
export type NewEvent = Omit<StoredEvent, "id">;

/** The stored form of `event` with `id`; optional fields present only when set, as loads read them. */
export function storedEvent(id: number, event: NewEvent): StoredEvent {
  return {
    id,
    type: event.type,
    room: event.room,
    nick: event.nick,
    ...(event.text !== undefined ? { text: event.text } : {}),
    ts: event.ts,
    ...(event.clientId !== undefined ? { clientId: event.clientId } : {}),
    session: event.session,
  };
}

/** A session as stored; presence (last seen) is not stored: a restart starts the grace anew. */
export interface StoredSession {
  /** Internal id, also written into `StoredEvent.session`. */
  id: string;
  /** The bearer token (128-bit random, hex). */
  token: string;
  nick: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Joined rooms: room name → id of the session's own `join` event there. */
  rooms: Record<string, number>;
}

/** One room's retained state. */
export interface StoredRoom {
  name: string;
  /** The last `history` events of the room, oldest first. */
  events: StoredEvent[];
  /** Highest event id dropped from this room by retention; 0 when none was. */
  droppedThrough: number;
}

/** Everything persisted, read once at start. */
export interface Snapshot {
  /** Highest event id ever assigned (0 for a new log); the next one is larger. */
  lastId: number;
  rooms: StoredRoom[];
  sessions: StoredSession[];
}

/**
 * Where events, rooms and sessions persist. The chat store keeps the hot state in memory and
 * writes through this; backends: memory (tests), SQLite (default), Redis (several instances).
 */
export interface EventLog {
  /** Short name for logs and metrics, e.g. `memory`, `sqlite`. */
  readonly kind: string;
  /** Reads everything persisted; called once, before any write. */
  load(): Promise<Snapshot>;
  /**
   * Durably stores events, giving them consecutive ids after every id assigned before, and
   * resolves with them once committed. Calls resolve in the order they were made; concurrent
   * calls may share one transaction. Rooms are created by their first event. Retention keeps the
   * last `history` events of each room.
   *
   * Membership moves with its event, atomically (in the same transaction): a `join` event records
   * its author session's membership (`rooms[room]` = the event's id, replacing an earlier one),
   * and a `leave` event removes it, so a crash can never keep the event without the membership or
   * the other way round. A join or leave whose session the log does not know (never put, or
   * deleted) just stores the event.
   */
  append(events: NewEvent[]): Promise<StoredEvent[]>;
  /**
   * Creates or replaces a session, memberships included. The chat store calls it when a session is
   * created; joins and leaves keep memberships current through `append`.
   */
  putSession(session: StoredSession): Promise<void>;
  /** Deletes a session; a missing one is no error. */
  deleteSession(id: string): Promise<void>;
  /** Flushes pending writes and releases the backend; idempotent. */
  close(): Promise<void>;
}

/** Options every backend takes. */
export interface EventLogOptions {
  /** Events kept per room (`--history`). */
  history: number;
}

/** A write or read the backend could not do (disk full, I/O error, lost connection): 503 for that call. */
export class StorageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StorageError";
  }
}
