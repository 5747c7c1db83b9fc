/**
 * What every instance must see alike (DESIGN.md, "What is local and what is shared"): the order of
 * events, rooms and their retained history, sessions and nicks, memberships, presence, client ids,
 * bans and rate-limit buckets. The chat store keeps only what is local to its process (waiting
 * polls, their timers, fan-out) and asks this for everything else.
 *
 * Every operation decides and acts in one step, so no other call (on this instance or another)
 * can slip between its check and its write: `LocalState` (memory, SQLite) decides synchronously
 * and commits through its `EventLog`; the Redis backend runs each as one Lua script. Nothing is
 * answered before it is durable in the backend, and listeners hear of committed events in order.
 */
import type { Rate } from "../chat/rate_limiter.ts";
import type { Membership, StoredBan, StoredEvent } from "./event_log.ts";

/** A value, or a promise of it: the one-process backends answer hot paths without a promise. */
export type MaybePromise<T> = T | Promise<T>;

/** Applies `fn` to a value now, or to a promise's value when it comes. */
export function maybeThen<T, R>(
  value: MaybePromise<T>,
  fn: (value: T) => MaybePromise<R>,
): MaybePromise<R> {
  return value instanceof Promise ? value.then(fn) : fn(value);
}

/** A session as an instance sees it. The one-process backends hand out their live object. */
export interface SessionInfo {
  readonly id: string;
  readonly token: string;
  /** NFC, as chosen. */
  readonly nick: string;
  readonly createdAt: number;
  /** The client address it was created from. */
  readonly address: string;
  readonly moderator: boolean;
  /** Rooms joined now (no `leftId`) and left recently: room → membership. */
  readonly rooms: ReadonlyMap<string, Membership>;
  /**
   * The last event it could read of a room it no longer keeps a membership of (one of the oldest
   * it left, or a private room deleted with its history), or 0: a poll from a cursor before it
   * answers `gap`, so nothing it could have read goes missing unsaid.
   */
  readonly forgot: number;
}

/** What a new session needs: the nick normalised and its key (`nameKey`). */
export interface NewSession {
  nick: string;
  key: string;
  address: string;
  moderator: boolean;
}

/** What joining a room answers. */
export interface JoinResult {
  room: string;
  /** The first `JOIN_MEMBERS` nicks in nick order. */
  members: string[];
  memberCount: number;
  /** Up to `JOIN_HISTORY` events: before the session's own join, or the latest on a join again. */
  history: StoredEvent[];
  topic?: string;
}

/** What opening a direct message answers. */
export interface DirectResult {
  room: string;
  /** The other session's nick. */
  with: string;
  history: StoredEvent[];
}

/** A page of a room's members in nick order; `next` is the `after` of the following page. */
export interface MembersPage {
  members: string[];
  next?: string;
}

/** A room as `GET /api/rooms` lists it (private rooms are never listed). */
export interface RoomSummary {
  name: string;
  members: number;
}

/** Part of a room a poll reads: events with `from < id <= to`. */
export interface RoomRange {
  room: string;
  from: number;
  to: number;
}

/** What a poll reads: events in id order, and whether retention dropped some it should have had. */
export interface ReadResult {
  events: StoredEvent[];
  gap: boolean;
}

/** An ephemeral notice (never stored) for the waiting polls of a room's members. */
export interface Notice {
  type: "typing";
  room: string;
  nick: string;
  ts: number;
  /** The session it came from: its own polls do not get it. */
  session: string;
}

/** A ban request of a moderator. */
export interface NewBan {
  nick?: string;
  key?: string;
  address?: string;
  until: number;
  reason?: string;
}

/** How the backend is doing, besides failed calls: a dropped connection, a replaced file. */
export interface BackendHealth {
  ok: boolean;
  /** Why not, when not ok. */
  reason?: string;
}

/** Who hears of changes: the instance's chat store. */
export interface StateListener {
  /** Committed events in id order (from this instance or, with Redis, from any). */
  events(events: readonly StoredEvent[]): void;
  /** An ephemeral notice, at most once per instance. */
  notice(notice: Notice): void;
  /** Events may have been missed (a subscription dropped and came back): re-read every poll. */
  resync(): void;
  /** The backend's own health changed. */
  health(health: BackendHealth): void;
}

/** Codes of the refusals backends answer with; the chat store turns them into HTTP errors. */
export type RefusalCode =
  | "unauthorized"
  | "nick_taken"
  | "banned"
  | "not_member"
  | "private_room"
  | "rate_limited"
  | "not_found"
  | "not_author"
  | "edit_window_passed"
  | "no_such_nick"
  | "own_nick"
  | "forbidden";

/** An operation the rules refuse (not a failure of the backend). */
export class Refusal extends Error {
  readonly code: RefusalCode;
  /** For `rate_limited`: milliseconds until a retry can succeed. */
  readonly retryMs: number;
  /** For `banned`: the ban. */
  readonly ban: StoredBan | undefined;

  constructor(code: RefusalCode, detail: { retryMs?: number; ban?: StoredBan } = {}) {
    super(code);
    this.name = "Refusal";
    this.code = code;
    this.retryMs = detail.retryMs ?? 0;
    this.ban = detail.ban;
  }
}

/** Nicks a join answers at most; the rest come from `members()` (DESIGN.md). */
export const JOIN_MEMBERS = 100;
/** Events of history a join and a direct message answer with. */
export const JOIN_HISTORY = 50;
/** Typing notices are passed on at most this often per session and room… */
export const TYPING_INTERVAL_MS = 3000;
/** …and not at all in rooms with more members than this. */
export const TYPING_MAX_MEMBERS = 100;

/**
 * The shared state. Operations on a session take its id and refuse with `unauthorized` once it
 * ended; those on a room the session must be in refuse with `not_member`. Errors of the backend
 * itself are `StorageError`s.
 */
export interface SharedState {
  /** Short name for logs: `memory`, `sqlite`, `redis`. */
  readonly kind: string;
  /** Registers the one listener (the chat store); events committed from now on reach it. */
  listen(listener: StateListener): void;
  /**
   * Highest event id assigned so far: the cursor of "now". With `atLeast` (a poll's cursor, 0 for
   * none) a backend may answer what it last heard, a little behind other instances, but never
   * less than `atLeast` when the true value is at least that: a cursor another instance gave is
   * never taken for one from the future.
   */
  lastId(atLeast?: number): MaybePromise<number>;
  /** Sessions and public rooms, for the gauges. */
  counts(): MaybePromise<{ sessions: number; rooms: number }>;

  /** Takes a token from the bucket `purpose:key`; 0 when there was one, else ms to wait. */
  takeRate(purpose: string, key: string, rate: Rate, now: number): MaybePromise<number>;
  /** Creates a session; refuses `nick_taken`, or `banned` with the ban. */
  createSession(session: NewSession, now: number): Promise<SessionInfo>;
  /**
   * The session of a token, marked present; null for an unknown or ended one. With `fresh` false
   * a backend may answer from a short-lived cache (the caller then marks it present through
   * `touch`, and every operation still refuses an ended session): for requests that do not read
   * the session's memberships, unlike polls.
   */
  authenticate(token: string, now: number, fresh?: boolean): MaybePromise<SessionInfo | null>;
  /** The session as it is now (memberships included), or null once it ended. */
  refresh(session: SessionInfo): MaybePromise<SessionInfo | null>;
  /** Marks sessions present at the given times (those with a poll open or just ended here). */
  touch(seen: ReadonlyMap<string, number>): MaybePromise<void>;
  /**
   * Ends a session: a `leave` in every room it is in and its private rooms deleted, all in one
   * commit, so a failure changes nothing and a retry works.
   */
  endSession(id: string, now: number): Promise<void>;
  /** Ends every session absent for `graceMs` (each once, cluster-wide); answers how many. */
  expire(now: number, graceMs: number): Promise<number>;

  /** Joins (creating the room); joining again answers the latest history. */
  join(id: string, room: string, now: number): Promise<JoinResult>;
  /** Leaves a room with a `leave` event. */
  leave(id: string, room: string, now: number): Promise<void>;
  /** Members of a room the session is in. */
  members(id: string, room: string, after: string | null, limit: number): MaybePromise<MembersPage>;
  /** Public rooms by name. */
  rooms(): MaybePromise<RoomSummary[]>;
  /** Up to `limit` events with id < `before` of a room the session is in, oldest first. */
  history(id: string, room: string, before: number, limit: number): MaybePromise<StoredEvent[]>;
  /** Events of the ranges in id order, at most `limit`, for a poll. */
  read(ranges: readonly RoomRange[], limit: number): MaybePromise<ReadResult>;
  /**
   * Sends a message. A `clientId` the session sent before (one of its last 1,000 sends) answers
   * the first event with `created: false` and stores nothing; repeats take no rate token.
   */
  send(
    id: string,
    room: string,
    text: string,
    clientId: string | undefined,
    now: number,
    rate: Rate,
  ): Promise<{ event: StoredEvent; created: boolean }>;

  /**
   * Replaces the text of the session's own message within `windowMs` of it (0: never), in the room
   * or not since: the author's right, like a delete's, outlives their membership.
   */
  edit(
    id: string,
    room: string,
    ref: number,
    text: string,
    now: number,
    windowMs: number,
  ): Promise<StoredEvent>;
  /**
   * Deletes a message: its author's, or any as a moderator (the event then carries `by`); neither
   * need be in the room. Anyone else: `not_author`.
   */
  remove(id: string, room: string, ref: number, now: number): Promise<void>;
  /** A moderator sets (or with "" clears) a room's topic. */
  setTopic(id: string, room: string, topic: string, now: number): Promise<StoredEvent>;
  /** A moderator removes a member from a room: its `leave` carries `by` and `reason`. */
  kick(
    id: string,
    room: string,
    key: string,
    reason: string | undefined,
    now: number,
  ): Promise<void>;
  /** A moderator bans a nick or address; matching sessions end at once. */
  ban(id: string, ban: NewBan, now: number): Promise<StoredBan>;
  /** Bans in force. */
  bans(now: number): MaybePromise<StoredBan[]>;
  /** A moderator lifts a ban; refuses `not_found`. */
  unban(id: string, banId: string): Promise<void>;
  /** Opens (creating on first use) the private room of the session and the one with nick `key`. */
  direct(id: string, key: string, now: number): Promise<DirectResult>;
  /** A typing notice for the room's members' waiting polls (throttled, never stored). */
  typing(id: string, room: string, now: number): MaybePromise<void>;

  /** A small durable write with no other effect: proves writes work again after failures. */
  probe(now: number): Promise<void>;
  /** Checks what no failed call would show (a replaced database file, a lost connection). */
  checkHealth(): Promise<BackendHealth>;
  /**
   * Releases the backend. With `deadlineMs` it gives up waiting for pending writes after that
   * long and resolves with how many were not confirmed (0 when all were).
   */
  close(deadlineMs?: number): Promise<number>;
}
