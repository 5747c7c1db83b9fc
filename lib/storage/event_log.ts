/** The kinds of chat event. */
export type EventType = "message" | "join" | "leave" | "edit" | "delete" | "topic";

/** Every event type, for checks of stored data. */
export const EVENT_TYPES: ReadonlySet<string> = new Set<EventType>([
  "message",
  "join",
  "leave",
  "edit",
  "delete",
  "topic",
]);

/** An event as clients see it. */
export interface ChatEvent {
  /** Position in the one total order of this server (or of the Redis cluster); starts at 1. */
  id: number;
  type: EventType;
  room: string;
  nick: string;
  /** On `message`, `edit` and `topic`; erased from a deleted message. */
  text?: string;
  /** Milliseconds since the epoch. */
  ts: number;
  /** Only on `message`, when the client sent one. */
  clientId?: string;
  /** On `edit` and `delete`: the id of the message they change. */
  ref?: number;
  /** On a `leave` that a moderator caused (kick, ban) and a `delete` a moderator made: their nick. */
  by?: string;
  /** On a kick or ban `leave`, when the moderator gave one. */
  reason?: string;
  /** On a `message` whose text an edit replaced. */
  edited?: true;
  /** On a `message` that was deleted: its text is gone. */
  deleted?: true;
}

/** An event as stored: with the id of the session that caused it (never sent to clients). */
export interface StoredEvent extends ChatEvent {
  session: string;
}

/** An event before the log has given it an id. */
export type NewEvent = Omit<StoredEvent, "id">;

/**
 * The stored form of `event` with `id`; optional fields present only when set, as loads read them,
 * and always in this order (so equal events encode alike).
 */
export function storedEvent(id: number, event: NewEvent): StoredEvent {
  const out = { id, type: event.type, room: event.room, nick: event.nick } as StoredEvent;
  if (event.text !== undefined) out.text = event.text;
  out.ts = event.ts;
  if (event.clientId !== undefined) out.clientId = event.clientId;
  if (event.ref !== undefined) out.ref = event.ref;
  if (event.by !== undefined) out.by = event.by;
  if (event.reason !== undefined) out.reason = event.reason;
  if (event.edited !== undefined) out.edited = event.edited;
  if (event.deleted !== undefined) out.deleted = event.deleted;
  out.session = event.session;
  return out;
}

/** A message with its text replaced by an edit (a new object: events are never mutated). */
export function editedEvent(event: StoredEvent, text: string): StoredEvent {
  return { ...event, text, edited: true };
}

/** A message (or an edit of one) with its text erased by a delete. */
export function erasedEvent(event: StoredEvent): StoredEvent {
  const { text: _, edited: __, ...rest } = event;
  return event.type === "message" ? { ...rest, deleted: true } : rest;
}

/** A session's membership of a room, as long as it is a member and for a while after it left. */
export interface Membership {
  /** Id of the session's own `join` event there: it sees the room's events from this one on. */
  joinId: number;
  /** Id of its `leave` event, once it left: it still sees the events up to this one. */
  leftId?: number;
  /**
   * Its earlier stretches in the room, `[joinId, leftId]` oldest first (at most `EARLIER_KEPT`): a
   * poll from a cursor before a leave still reads up to it after the session joined again. A
   * local store rebuilds them from the events it kept when it starts.
   */
  earlier?: readonly (readonly [number, number])[];
  /**
   * The leave of the newest stretch no longer kept in `earlier`: a poll from a cursor before it
   * cannot read all it saw, and answers `gap` (the client reloads history).
   */
  forgot?: number;
}

/** Earlier stretches of membership remembered per room (see `Membership.earlier`). */
export const EARLIER_KEPT = 4;

/** A membership that begins at `joinId`, after `previous` (the session's last one there, if any). */
export function rejoined(joinId: number, previous: Membership | undefined): Membership {
  if (previous?.leftId === undefined) return { joinId };
  return withEarlier(
    joinId,
    [...(previous.earlier ?? []), [previous.joinId, previous.leftId]],
    previous.forgot,
  );
}

/**
 * A membership from `joinId` with the last `EARLIER_KEPT` of `stretches` (oldest first), the
 * others forgotten (see `Membership.forgot`).
 */
export function withEarlier(
  joinId: number,
  stretches: readonly (readonly [number, number])[],
  forgot = 0,
): Membership {
  const m: Membership = { joinId };
  const cut = Math.max(0, stretches.length - EARLIER_KEPT);
  for (let i = 0; i < cut; i++) forgot = Math.max(forgot, stretches[i]![1]);
  if (stretches.length > cut) m.earlier = stretches.slice(cut);
  if (forgot > 0) m.forgot = forgot;
  return m;
}

/** A session as stored; presence (last seen) is not stored: a restart starts the grace anew. */
export interface StoredSession {
  /** Internal id, also written into `StoredEvent.session`. */
  id: string;
  /** The bearer token (128-bit random, hex). */
  token: string;
  /** NFC, as chosen. */
  nick: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** The client address it was created from (bans by address match it). */
  address: string;
  moderator: boolean;
  /** Rooms joined, and left recently: room name → membership. */
  rooms: Record<string, Membership>;
  /** See `SessionInfo.forgot`: kept for private rooms deleted with their history. */
  forgot?: number;
}

/** A remembered send: the event a repeated `clientId` answers with. */
export interface StoredSend {
  clientId: string;
  event: StoredEvent;
}

/** A ban: sessions whose nick (by `nameKey`) or address matches are refused until `until`. */
export interface StoredBan {
  id: string;
  /** The nick as given (NFC); matched by its key. */
  nick?: string;
  address?: string;
  /** Milliseconds since the epoch. */
  until: number;
  reason?: string;
  /** Nick of the moderator who banned. */
  by: string;
  createdAt: number;
}

/** One room's retained state. */
export interface StoredRoom {
  name: string;
  /** The last `history` events of the room, oldest first. */
  events: StoredEvent[];
  /** Highest event id dropped from this room by retention; 0 when none was. */
  droppedThrough: number;
  /** The text of its latest `topic` event, when that was not empty. */
  topic?: string;
  /** A private (direct message) room: the ids of its two sessions. */
  pair?: [string, string];
}

/** Everything persisted, read once at start. */
export interface Snapshot {
  /** Highest event id ever assigned (0 for a new log); the next one is larger. */
  lastId: number;
  rooms: StoredRoom[];
  sessions: StoredSession[];
  /** Per session id: its last sends with a client id (at most `SENDS_KEPT`), oldest first. */
  sends: Record<string, StoredSend[]>;
  bans: StoredBan[];
}

/** Client ids remembered per session for idempotent sends, across restarts too. */
export const SENDS_KEPT = 1000;
/** Rooms a session has left that it is still remembered in (for polls from before the leave). */
export const LEFT_KEPT = 100;

/** A message an edit or delete changes: its room, id and author session. */
export interface MessageRef {
  room: string;
  id: number;
  author: string;
}

/**
 * One atomic change: everything in it is committed in one transaction or not at all. The parts
 * apply in this order: sessions put, events appended, edits, erasures, rooms deleted, sessions
 * deleted, bans put and deleted.
 */
export interface Change {
  putSessions?: StoredSession[];
  /**
   * Events get consecutive ids after every id assigned before. Side effects, in the same
   * transaction: a `join` records its author's membership (`joinId`), a `leave` sets its `leftId`
   * (the oldest left memberships beyond `LEFT_KEPT` per session are forgotten); a `message` with a
   * `clientId` is remembered as a send of its session (the last `SENDS_KEPT`); a `topic` sets the
   * room's topic; the first event of a room creates it, private with `pairs[room]` when given. A
   * join or leave of a session the log does not know (never put, or deleted) just stores the event.
   */
  events?: NewEvent[];
  /** Private rooms created by this change's events: room → its two session ids. */
  pairs?: Record<string, [string, string]>;
  /** Messages whose stored text is replaced (and marked edited), in kept events and sends. */
  edits?: (MessageRef & { text: string })[];
  /** Messages whose text is erased (and marked deleted), with the text of their edits. */
  erase?: MessageRef[];
  /** Rooms deleted with all their events and memberships. */
  deleteRooms?: string[];
  /** Sessions deleted with their memberships and remembered sends; a missing one is no error. */
  deleteSessions?: string[];
  putBans?: StoredBan[];
  deleteBans?: string[];
  /** A small durable write with no other effect (the time), to prove writes work again. */
  probe?: number;
}

/**
 * Where the one-process stores (memory, SQLite) persist events, rooms, sessions and bans. The
 * shared state (`LocalState`) keeps all of it hot in memory and writes every change through here
 * before it applies it; `load` reads it back at start.
 */
export interface EventLog {
  /** Short name for logs and metrics, e.g. `memory`, `sqlite`. */
  readonly kind: string;
  /** Reads everything persisted; called once, before any write. */
  load(): Promise<Snapshot>;
  /**
   * Durably commits `change` (see {@linkcode Change}) and resolves with its events, ids set.
   * Calls resolve in the order they were made; concurrent calls may share one transaction, and
   * when that fails they all reject with `StorageError`. Retention keeps the last `history`
   * events of each room.
   */
  commit(change: Change): Promise<StoredEvent[]>;
  /** `commit({events})`. */
  append(events: NewEvent[]): Promise<StoredEvent[]>;
  /** `commit({putSessions: [session]})`: creates or replaces a session, memberships included. */
  putSession(session: StoredSession): Promise<void>;
  /** `commit({deleteSessions: [id]})`. */
  deleteSession(id: string): Promise<void>;
  /**
   * A problem with where the data lives that no failed write would show (the database file was
   * deleted or replaced), or null; checked every few seconds. Once it reports one, writes fail.
   */
  check?(): Promise<string | null>;
  /**
   * Flushes pending writes and releases the backend; idempotent. With `deadlineMs`, gives up
   * waiting after that long, releases anyway and resolves with the number of writes that were
   * not confirmed (0 when all were).
   */
  close(deadlineMs?: number): Promise<number>;
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
