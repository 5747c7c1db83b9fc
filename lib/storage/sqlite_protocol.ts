/**
 * Messages between `SqliteEventLog` (main thread) and `sqlite_worker.ts` (the thread that owns the
 * SQLite connection). Plain data only, so structured cloning is cheap; the worker answers every
 * request with exactly one `Reply`, in the order the requests came.
 */
import type { Snapshot } from "./event_log.ts";

/** `PRAGMA synchronous` levels offered; see `SqliteEventLogOptions.synchronous`. */
export type SqliteSynchronous = "full" | "normal";

/** Op codes inside a batch. */
export const OP_APPEND = 1;
export const OP_PUT = 2;
export const OP_DELETE = 3;
export const OP_PAIR = 4;
export const OP_EDIT = 5;
export const OP_ERASE = 6;
export const OP_DELETE_ROOM = 7;
export const OP_PUT_BAN = 8;
export const OP_DELETE_BAN = 9;
export const OP_PROBE = 10;

/** Values per event after `OP_APPEND, n`. */
export const EVENT_FIELDS = 10;

/**
 * A group commit as one flat array of primitives, ops in call order:
 * - `OP_APPEND, n`, then per event `type, room, nick, text|null, ts, clientId|null, session,
 *   ref|null, by|null, reason|null` (`EVENT_FIELDS` values);
 * - `OP_PUT, id, token, nick, createdAt, address, moderator (0|1), m`, then per membership
 *   `room, joinId, leftId|null`;
 * - `OP_DELETE, id` (a session);
 * - `OP_PAIR, room, sessionA, sessionB` (a private room its events just created);
 * - `OP_EDIT, room, id, author, text` and `OP_ERASE, room, id, author` (a message);
 * - `OP_DELETE_ROOM, room`;
 * - `OP_PUT_BAN, id, nick|null, address|null, until, reason|null, by, createdAt`;
 * - `OP_DELETE_BAN, id`;
 * - `OP_PROBE, now` (a write to `meta` that proves writes work).
 *
 * One array, not an object per event: cloning it is one pass over primitives, and the main thread
 * builds it with `push` as calls arrive.
 */
export type BatchData = (string | number | null)[];

/** A request to the worker. */
export type Request =
  | { t: "open"; path: string; history: number; synchronous: SqliteSynchronous }
  | { t: "batch"; data: BatchData }
  | { t: "load" }
  | { t: "pageCount" }
  | { t: "setMaxPageCount"; pages: number }
  | { t: "close" };

/** What a committed batch reports: its events got ids `firstId …`, `appended` of them. */
export interface BatchResult {
  firstId: number;
  appended: number;
}

/** The value each request answers with. */
export interface ReplyValues {
  open: null;
  batch: BatchResult;
  load: Snapshot;
  pageCount: number;
  setMaxPageCount: number;
  close: null;
}

/** The worker's answer: a value, or a one-line `StorageError` message. */
export type Reply = { ok: true; value: unknown } | { ok: false; error: string };
