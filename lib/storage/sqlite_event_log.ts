import { DatabaseSync, type SQLOutputValue, type StatementSync } from "node:sqlite";
import { clearImmediate, setImmediate } from "node:timers";
import {
  type EventLog,
  type EventLogOptions,
  type EventType,
  type NewEvent,
  type Snapshot,
  StorageError,
  type StoredEvent,
  type StoredRoom,
  type StoredSession,
} from "./event_log.ts";

/**
 * Schema migrations, applied in order at open inside one transaction; `PRAGMA user_version` holds
 * how many have run. Append new steps, never edit old ones: files in the field ran them already.
 */
const MIGRATIONS: readonly string[] = [
  // 1: initial schema. `events(room)` also orders by id, since the rowid ends every index key;
  // retention and nothing else walks it. `meta.last_id` keeps ids from going backwards when
  // retention has deleted every event (max(id) alone would forget them).
  `CREATE TABLE events (
     id INTEGER PRIMARY KEY,
     room TEXT NOT NULL,
     type TEXT NOT NULL,
     nick TEXT NOT NULL,
     text TEXT,
     ts INTEGER NOT NULL,
     client_id TEXT,
     session TEXT NOT NULL
   );
   CREATE INDEX events_room ON events (room);
   CREATE TABLE rooms (
     name TEXT PRIMARY KEY,
     dropped_through INTEGER NOT NULL DEFAULT 0
   ) WITHOUT ROWID;
   CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     token TEXT NOT NULL,
     nick TEXT NOT NULL,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE memberships (
     session TEXT NOT NULL,
     room TEXT NOT NULL,
     join_id INTEGER NOT NULL,
     PRIMARY KEY (session, room)
   ) WITHOUT ROWID;
   CREATE TABLE meta (
     key TEXT PRIMARY KEY,
     value INTEGER NOT NULL
   ) WITHOUT ROWID;
   INSERT INTO meta (key, value) VALUES ('last_id', 0);`,
];

/** The schema version this code writes (`PRAGMA user_version` after open). */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * How long open waits for a lock held by someone else before failing. Short: the only other
 * holder we expect is a second server on the same file, which is an error to report, not await.
 */
const LOCK_WAIT_MS = 250;

/** Above this the WAL file is truncated after a checkpoint instead of kept at its peak size. */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;

/** `PRAGMA synchronous` levels offered; see `SqliteEventLogOptions.synchronous`. */
export type SqliteSynchronous = "full" | "normal";

/** Options of `SqliteEventLog.open`. */
export interface SqliteEventLogOptions extends EventLogOptions {
  /**
   * `full` (default) syncs the WAL on every commit, so an acknowledged event survives power loss;
   * `normal` syncs only at checkpoints, so a power cut may lose the last commits (never corrupts).
   * With group commit one sync covers a whole batch, and measured on `scripts/bench_store.ts`
   * `full` sustains well over the 20,000 appends/s target with 1000 appends in flight, so we pay
   * for durability by default; `normal` is there for disks with very slow fsync.
   */
  synchronous?: SqliteSynchronous;
}

/** Write counters, for tests and metrics. */
export interface SqliteEventLogStats {
  /** Write transactions committed (one per group commit). */
  transactions: number;
  /** Events committed. */
  appended: number;
}

type Reject = (error: Error) => void;

/** A queued write; the queue keeps appends and session writes in call order. */
type Op =
  | { kind: "append"; events: NewEvent[]; resolve: (events: StoredEvent[]) => void; reject: Reject }
  | { kind: "put"; session: StoredSession; resolve: () => void; reject: Reject }
  | { kind: "delete"; id: string; resolve: () => void; reject: Reject };

interface Statements {
  begin: StatementSync;
  commit: StatementSync;
  rollback: StatementSync;
  insertEvent: StatementSync;
  insertRoom: StatementSync;
  nthOldest: StatementSync;
  deleteThrough: StatementSync;
  setDropped: StatementSync;
  setLastId: StatementSync;
  upsertSession: StatementSync;
  deleteMemberships: StatementSync;
  insertMembership: StatementSync;
  deleteSession: StatementSync;
}

/**
 * An `EventLog` in one SQLite file (`node:sqlite`), in WAL mode, held exclusively by this process.
 *
 * Writes are group-committed: every `append`/`putSession`/`deleteSession` made before the next
 * macrotask joins one queue, and the whole queue is written in ONE transaction, so the cost of a
 * commit (an fsync) is shared by everything that arrived meanwhile. Promises settle in call order
 * only after COMMIT returned; if the transaction fails, all of its calls reject with
 * `StorageError`, nothing of it is kept (ids included), and the next batch starts afresh.
 *
 * Two servers on one file are refused: `locking_mode = EXCLUSIVE` makes the first connection keep
 * its file lock until it closes, and open writes once (inside the migration transaction), so the
 * lock is taken at open and a second opener — in this process or another — fails right there with
 * "database is locked". It also spares WAL its shared-memory index, since no one else may read.
 */
export class SqliteEventLog implements EventLog {
  /** Short name for logs and metrics. */
  readonly kind = "sqlite";
  #path: string;
  #db: DatabaseSync;
  #history: number;
  #stmt: Statements;
  #lastId: number;
  /** Events currently kept per room, so retention only queries rooms that are over the limit. */
  #counts: Map<string, number>;
  #queue: Op[] = [];
  #timer: ReturnType<typeof setImmediate> | undefined;
  #closed = false;
  #stats: SqliteEventLogStats = { transactions: 0, appended: 0 };

  /**
   * Opens (creating if needed) and checks the database at `path`: readable, a SQLite file, not
   * corrupt (quick_check), not newer than this code, writable and not held by another log. Throws
   * `StorageError` with a one-line reason, e.g. `Cannot open database parley.db: file is not a
   * database`.
   */
  static open(path: string, options: SqliteEventLogOptions): SqliteEventLog {
    checkHistory(options.history);
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { timeout: LOCK_WAIT_MS });
      configure(db, path, options.synchronous ?? "full");
      quickCheck(db, path);
      return new SqliteEventLog(path, db, options.history);
    } catch (e) {
      try {
        db?.close();
      } catch {
        // The open error is the one worth reporting.
      }
      if (e instanceof StorageError) throw e;
      throw new StorageError(`Cannot open database ${path}: ${explainOpenError(path, e)}`, {
        cause: e,
      });
    }
  }

  private constructor(path: string, db: DatabaseSync, history: number) {
    this.#path = path;
    this.#db = db;
    this.#history = history;
    // The migration transaction is also the write probe: it takes the exclusive lock and fails
    // now, not on the first chat message, if the file cannot be written.
    db.exec("BEGIN IMMEDIATE");
    try {
      migrate(db, path);
      this.#stmt = prepare(db);
      this.#lastId = readLastId(db);
      // Rewriting last_id unchanged makes every open write, even with nothing to migrate.
      this.#stmt.setLastId.run(this.#lastId);
      this.#counts = roomCounts(db);
      // Apply retention now, so a lowered --history takes effect before the first load().
      for (const [room, n] of this.#counts) {
        if (n > history) this.#counts.set(room, this.#trim(room, n));
      }
      db.exec("COMMIT");
    } catch (e) {
      try {
        if (db.isTransaction) db.exec("ROLLBACK");
      } catch {
        // open() closes the connection next, which discards the transaction anyway.
      }
      throw e;
    }
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Committed transactions and events since open (a copy). */
  get stats(): SqliteEventLogStats {
    return { ...this.#stats };
  }

  /** Reads everything persisted; writes still queued are committed first. */
  load(): Promise<Snapshot> {
    if (this.#closed) return closedError("load");
    this.#flushNow();
    try {
      const rooms = new Map<string, StoredRoom>();
      const roomRows = this.#db.prepare("SELECT name, dropped_through FROM rooms ORDER BY name")
        .all();
      for (const row of roomRows) {
        const name = str(row.name);
        rooms.set(name, { name, events: [], droppedThrough: int(row.dropped_through) });
      }
      const events = this.#db.prepare(
        "SELECT id, type, room, nick, text, ts, client_id, session FROM events ORDER BY id",
      );
      for (const row of events.iterate()) {
        const event = rowToEvent(row);
        let room = rooms.get(event.room);
        if (room === undefined) {
          // Only a hand-edited file has events without a room row; keep them rather than lose them.
          room = { name: event.room, events: [], droppedThrough: 0 };
          rooms.set(event.room, room);
        }
        room.events.push(event);
      }
      const sessions = new Map<string, StoredSession>();
      const sessionRows = this.#db.prepare(
        "SELECT id, token, nick, created_at FROM sessions ORDER BY created_at, id",
      ).all();
      for (const row of sessionRows) {
        const id = str(row.id);
        sessions.set(id, {
          id,
          token: str(row.token),
          nick: str(row.nick),
          createdAt: int(row.created_at),
          rooms: {},
        });
      }
      const memberships = this.#db.prepare(
        "SELECT session, room, join_id FROM memberships ORDER BY session, join_id",
      ).all();
      for (const row of memberships) {
        const session = sessions.get(str(row.session));
        if (session !== undefined) session.rooms[str(row.room)] = int(row.join_id);
      }
      return Promise.resolve({
        lastId: this.#lastId,
        rooms: [...rooms.values()],
        sessions: [...sessions.values()],
      });
    } catch (e) {
      return Promise.reject(
        new StorageError(`Cannot read database ${this.#path}: ${reason(e)}`, { cause: e }),
      );
    }
  }

  /** Queues events for the next group commit; resolves with their ids once committed. */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    if (this.#closed) return closedError("append");
    const copies: NewEvent[] = [];
    for (const event of events) {
      const problem = checkEvent(event);
      if (problem !== undefined) return Promise.reject(new TypeError(`Cannot append: ${problem}`));
      copies.push({ ...event });
    }
    return new Promise((resolve, reject) => {
      this.#enqueue({ kind: "append", events: copies, resolve, reject });
    });
  }

  /** Queues a session upsert (memberships replaced) for the next group commit. */
  putSession(session: StoredSession): Promise<void> {
    if (this.#closed) return closedError("putSession");
    const copy = { ...session, rooms: { ...session.rooms } };
    return new Promise((resolve, reject) => {
      this.#enqueue({ kind: "put", session: copy, resolve, reject });
    });
  }

  /** Queues a session delete for the next group commit; a missing one is no error. */
  deleteSession(id: string): Promise<void> {
    if (this.#closed) return closedError("deleteSession");
    return new Promise((resolve, reject) => {
      this.#enqueue({ kind: "delete", id, resolve, reject });
    });
  }

  /** Commits what is queued and closes the file (releasing its lock); idempotent. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#flushNow();
    this.#closed = true;
    try {
      this.#db.close();
    } catch (e) {
      return Promise.reject(
        new StorageError(`Cannot close database ${this.#path}: ${reason(e)}`, { cause: e }),
      );
    }
    return Promise.resolve();
  }

  /** Test hook: the database size in pages. */
  _pageCount(): number {
    return int(this.#db.prepare("PRAGMA page_count").get()?.page_count);
  }

  /** Test hook: caps the database at `pages` pages (`max_page_count`), to simulate a full disk. */
  _setMaxPageCount(pages: number): number {
    if (!Number.isSafeInteger(pages) || pages < 1) {
      throw new RangeError(`pages must be a positive integer, got ${pages}`);
    }
    return int(this.#db.prepare(`PRAGMA max_page_count = ${pages}`).get()?.max_page_count);
  }

  #enqueue(op: Op): void {
    this.#queue.push(op);
    // setImmediate, not setTimeout(0): timers set from timer callbacks get clamped to ~4 ms once
    // nested, which would cap one-at-a-time writers at ~250 commits/s. An immediate runs after the
    // current I/O phase, so every request that became ready in this loop turn joins the batch.
    this.#timer ??= setImmediate(() => {
      this.#timer = undefined;
      this.#flush();
    });
  }

  #flushNow(): void {
    if (this.#timer !== undefined) {
      clearImmediate(this.#timer);
      this.#timer = undefined;
    }
    this.#flush();
  }

  /** Writes the whole queue in one transaction, then settles its promises in call order. */
  #flush(): void {
    const ops = this.#queue;
    if (ops.length === 0) return;
    this.#queue = [];
    const s = this.#stmt;
    let lastId = this.#lastId;
    // Room counts as they will be after this batch; merged into #counts only after COMMIT.
    const counts = new Map<string, number>();
    const results: StoredEvent[][] = [];
    let appended = 0;
    try {
      s.begin.run();
      for (const op of ops) {
        if (op.kind === "append") {
          const stored: StoredEvent[] = [];
          for (const e of op.events) {
            const event = toStored(++lastId, e);
            let n = counts.get(e.room) ?? this.#counts.get(e.room);
            if (n === undefined) {
              s.insertRoom.run(e.room);
              n = 0;
            }
            counts.set(e.room, n + 1);
            s.insertEvent.run(
              event.id,
              e.room,
              e.type,
              e.nick,
              e.text ?? null,
              e.ts,
              e.clientId ?? null,
              e.session,
            );
            stored.push(event);
          }
          results.push(stored);
          appended += stored.length;
        } else if (op.kind === "put") {
          const { id, token, nick, createdAt, rooms } = op.session;
          s.upsertSession.run(id, token, nick, createdAt);
          s.deleteMemberships.run(id);
          for (const [room, joinId] of Object.entries(rooms)) {
            s.insertMembership.run(id, room, joinId);
          }
        } else {
          s.deleteMemberships.run(op.id);
          s.deleteSession.run(op.id);
        }
      }
      // Once per room per batch, not per event: a batch of 1000 into one full room is one
      // index walk over the 1000 oldest and one range delete.
      for (const [room, n] of counts) {
        if (n > this.#history) counts.set(room, this.#trim(room, n));
      }
      if (lastId !== this.#lastId) s.setLastId.run(lastId);
      s.commit.run();
    } catch (e) {
      // SQLite rolls back by itself on some errors (SQLITE_FULL, IOERR); only roll back if open.
      try {
        if (this.#db.isTransaction) s.rollback.run();
      } catch {
        // Nothing more to undo; the write error below is what callers need.
      }
      const error = new StorageError(`Cannot write to database ${this.#path}: ${reason(e)}`, {
        cause: e,
      });
      for (const op of ops) op.reject(error);
      return;
    }
    this.#lastId = lastId;
    for (const [room, n] of counts) this.#counts.set(room, n);
    this.#stats.transactions++;
    this.#stats.appended += appended;
    let next = 0;
    for (const op of ops) {
      if (op.kind === "append") op.resolve(results[next++]!);
      else op.resolve();
    }
  }

  /** Deletes the oldest events of `room` beyond `history`, given it holds `n`; returns the new count. */
  #trim(room: string, n: number): number {
    const row = this.#stmt.nthOldest.get(room, n - this.#history - 1);
    if (row === undefined) return Math.min(n, this.#history);
    const cutoff = int(row.id);
    this.#stmt.deleteThrough.run(room, cutoff);
    this.#stmt.setDropped.run(cutoff, room);
    return this.#history;
  }
}

/**
 * A sharper reason for an open failure, from the file system. Only stat and (for I/O errors) an
 * open+close: closing any descriptor of a file drops every POSIX lock this process holds on it,
 * SQLite's included, so it is only done when SQLite holds no lock here (it said I/O error, not
 * busy) — never as a pre-check, which would silently unlock a log already open on the same file.
 */
function explainOpenError(path: string, e: unknown): string {
  const code = errcode(e) & 0xff;
  const cantOpen = code === 14 || /unable to open/i.test(e instanceof Error ? e.message : "");
  if (path === ":memory:" || path.startsWith("file:") || (code !== 10 && !cantOpen)) {
    return reason(e);
  }
  try {
    if (Deno.statSync(path).isDirectory) return "path is a directory";
  } catch (statError) {
    if (statError instanceof Deno.errors.NotFound) {
      return "unable to create the file (does its directory exist and is it writable?)";
    }
  }
  if (code === 10) {
    // SQLite opens a file it may not write read-only, and the exclusive lock then fails as
    // SQLITE_IOERR_LOCK ("disk I/O error"), which hides the real cause.
    try {
      Deno.openSync(path, { read: true, write: true }).close();
    } catch (openError) {
      if (openError instanceof Deno.errors.PermissionDenied) {
        return "file is read-only (permission denied)";
      }
    }
  }
  return reason(e);
}

/** Connection settings; the first statement that reads the file also detects "not a database". */
function configure(db: DatabaseSync, path: string, synchronous: SqliteSynchronous): void {
  // Before journal_mode, so WAL never creates its shared-memory file and the lock is held.
  db.exec("PRAGMA locking_mode = EXCLUSIVE");
  const mode = db.prepare("PRAGMA journal_mode = WAL").get()?.journal_mode;
  if (mode !== "wal") {
    throw new StorageError(
      `Cannot open database ${path}: cannot switch to WAL mode (journal_mode is ${String(mode)})`,
    );
  }
  db.exec(`PRAGMA synchronous = ${synchronous === "normal" ? "NORMAL" : "FULL"}`);
  db.exec(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT}`);
}

/**
 * `quick_check` reads every page once (no index cross-checks): about the cost of the load() that
 * follows anyway, and it turns a damaged file into a clear error at start instead of mid-run.
 */
function quickCheck(db: DatabaseSync, path: string): void {
  const result = db.prepare("PRAGMA quick_check(1)").get()?.quick_check;
  if (result !== "ok") {
    // Keep the message on one line: quick_check prefixes "*** in database main ***\n".
    const detail = String(result).replace(/^\*\*\* in database \w+ \*\*\*\s*/, "")
      .replace(/\s+/g, " ");
    throw new StorageError(`Cannot open database ${path}: database is corrupt (${detail})`);
  }
}

/** Runs the migrations this file lacks; the caller holds the transaction. */
function migrate(db: DatabaseSync, path: string): void {
  const version = int(db.prepare("PRAGMA user_version").get()?.user_version);
  if (version > SCHEMA_VERSION) {
    throw new StorageError(
      `Cannot open database ${path}: schema version ${version} is newer than this server supports (${SCHEMA_VERSION})`,
    );
  }
  for (const sql of MIGRATIONS.slice(version)) db.exec(sql);
  if (version !== SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
}

function readLastId(db: DatabaseSync): number {
  return int(db.prepare("SELECT value FROM meta WHERE key = 'last_id'").get()?.value);
}

function roomCounts(db: DatabaseSync): Map<string, number> {
  const counts = new Map<string, number>();
  for (const row of db.prepare("SELECT name FROM rooms").all()) counts.set(str(row.name), 0);
  const rows = db.prepare("SELECT room, count(*) AS n FROM events GROUP BY room").all();
  for (const row of rows) counts.set(str(row.room), int(row.n));
  return counts;
}

function prepare(db: DatabaseSync): Statements {
  return {
    begin: db.prepare("BEGIN IMMEDIATE"),
    commit: db.prepare("COMMIT"),
    rollback: db.prepare("ROLLBACK"),
    insertEvent: db.prepare(
      "INSERT INTO events (id, room, type, nick, text, ts, client_id, session) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    insertRoom: db.prepare("INSERT OR IGNORE INTO rooms (name) VALUES (?)"),
    nthOldest: db.prepare("SELECT id FROM events WHERE room = ? ORDER BY id LIMIT 1 OFFSET ?"),
    deleteThrough: db.prepare("DELETE FROM events WHERE room = ? AND id <= ?"),
    setDropped: db.prepare(
      "UPDATE rooms SET dropped_through = max(dropped_through, ?) WHERE name = ?",
    ),
    setLastId: db.prepare("UPDATE meta SET value = ? WHERE key = 'last_id'"),
    upsertSession: db.prepare(
      `INSERT INTO sessions (id, token, nick, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET token = excluded.token, nick = excluded.nick,
         created_at = excluded.created_at`,
    ),
    deleteMemberships: db.prepare("DELETE FROM memberships WHERE session = ?"),
    insertMembership: db.prepare(
      "INSERT INTO memberships (session, room, join_id) VALUES (?, ?, ?)",
    ),
    deleteSession: db.prepare("DELETE FROM sessions WHERE id = ?"),
  };
}

/** A one-line reason from a `node:sqlite` error; errcode is not always set, so match text too. */
function reason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const extended = errcode(e);
  // SQLITE_IOERR_LOCK: typically a file opened read-only, whose handle cannot take a write lock.
  if (extended === 3850) return "cannot lock the file for writing (is it read-only?)";
  const code = extended & 0xff;
  if (code === 5 || code === 6 || /database (table )?is locked/i.test(message)) {
    return "database is locked by another process (is another server using this file?)";
  }
  if (code === 26 || /not a database/i.test(message)) return "file is not a database";
  if (code === 8 || /readonly|read-only/i.test(message)) return "database is read-only";
  if (code === 13 || /disk is full/i.test(message)) return "database or disk is full";
  if (code === 11 || /malformed/i.test(message)) {
    return "database is corrupt (disk image is malformed)";
  }
  if (code === 14 || /unable to open/i.test(message)) {
    return "unable to open database file (missing directory, a directory, or no permission)";
  }
  return message.split("\n", 1)[0]!;
}

/** SQLite's (extended) result code of a `node:sqlite` error, or -1 when it carries none. */
function errcode(e: unknown): number {
  return typeof e === "object" && e !== null && "errcode" in e && typeof e.errcode === "number"
    ? e.errcode
    : -1;
}

const EVENT_TYPES: ReadonlySet<string> = new Set<EventType>(["message", "join", "leave"]);

/** What is wrong with an event, if anything: one bad value must not fail the batch it joins. */
function checkEvent(e: NewEvent): string | undefined {
  if (!EVENT_TYPES.has(e.type)) return `unknown event type ${JSON.stringify(e.type)}`;
  if (typeof e.room !== "string" || typeof e.nick !== "string" || typeof e.session !== "string") {
    return "room, nick and session must be strings";
  }
  if (!Number.isFinite(e.ts)) return "ts must be a finite number";
  if (e.text !== undefined && typeof e.text !== "string") return "text must be a string";
  if (e.clientId !== undefined && typeof e.clientId !== "string") {
    return "clientId must be a string";
  }
  return undefined;
}

function checkHistory(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`history must be a non-negative integer, got ${n}`);
  }
}

/** Builds the stored form with optional fields present only when set, as load() reads them. */
function toStored(id: number, e: NewEvent): StoredEvent {
  return {
    id,
    type: e.type,
    room: e.room,
    nick: e.nick,
    ...(e.text !== undefined ? { text: e.text } : {}),
    ts: e.ts,
    ...(e.clientId !== undefined ? { clientId: e.clientId } : {}),
    session: e.session,
  };
}

function rowToEvent(row: Record<string, SQLOutputValue>): StoredEvent {
  return {
    id: int(row.id),
    type: str(row.type) as EventType,
    room: str(row.room),
    nick: str(row.nick),
    ...(row.text != null ? { text: str(row.text) } : {}),
    ts: Number(row.ts),
    ...(row.client_id != null ? { clientId: str(row.client_id) } : {}),
    session: str(row.session),
  };
}

function int(v: SQLOutputValue | undefined): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw new StorageError(`Unexpected value in database: expected a number, got ${typeof v}`);
}

function str(v: SQLOutputValue | undefined): string {
  if (typeof v === "string") return v;
  throw new StorageError(`Unexpected value in database: expected text, got ${typeof v}`);
}

function closedError<T>(method: string): Promise<T> {
  return Promise.reject(new StorageError(`Cannot ${method}: the event log is closed`));
}
