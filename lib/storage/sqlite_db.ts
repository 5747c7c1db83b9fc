/**
 * The synchronous SQLite side of `SqliteEventLog`: schema, open checks, group-commit writes,
 * retention and load. It runs inside `sqlite_worker.ts`, so its blocking calls (a commit waits for
 * an fsync) never stall the thread that serves HTTP.
 */
import {
  DatabaseSync,
  type SQLInputValue,
  type SQLOutputValue,
  type StatementSync,
} from "node:sqlite";
import {
  type EventType,
  type Snapshot,
  StorageError,
  type StoredEvent,
  type StoredRoom,
  type StoredSession,
} from "./event_log.ts";
import {
  type BatchData,
  type BatchResult,
  OP_APPEND,
  OP_DELETE,
  OP_PUT,
  type SqliteSynchronous,
} from "./sqlite_protocol.ts";

/**
 * Schema migrations, applied in order at open inside one transaction; `PRAGMA user_version` holds
 * how many have run. Append new steps, never edit old ones: files in the field ran them already.
 */
const MIGRATIONS: readonly string[] = [
  // 1: initial schema. `events(room)` also orders by id, since the rowid ends every index key;
  // retention and nothing else walks it. `meta.last_id` is a floor for the next id, written at
  // open (see `readLastId`): commits do not rewrite it, which would cost a page per commit.
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

/** Columns of an `events` row as `write` binds them. */
const EVENT_COLUMNS = 8;
/**
 * Events per multi-row INSERT. One statement per event costs a call into SQLite and a VM run
 * each; 16 rows at a time halves the insert cost per event (measured: 3.7 → 1.6 µs).
 */
const ROWS_PER_INSERT = 16;

interface Statements {
  begin: StatementSync;
  commit: StatementSync;
  rollback: StatementSync;
  insertEvent: StatementSync;
  insertEvents: StatementSync;
  insertRoom: StatementSync;
  nthOldest: StatementSync;
  deleteThrough: StatementSync;
  setDropped: StatementSync;
  setLastId: StatementSync;
  upsertSession: StatementSync;
  deleteMemberships: StatementSync;
  insertMembership: StatementSync;
  joinMembership: StatementSync;
  leaveMembership: StatementSync;
  deleteSession: StatementSync;
}

/**
 * One SQLite file in WAL mode, held exclusively: `locking_mode = EXCLUSIVE` makes the connection
 * keep its file lock until it closes, and open writes once (inside the migration transaction), so
 * the lock is taken at open and a second opener — in this process or another — fails right there
 * with "database is locked". It also spares WAL its shared-memory index, since no one else reads.
 */
export class SqliteDb {
  #path: string;
  #db: DatabaseSync;
  #history: number;
  #stmt: Statements;
  #lastId: number;
  /** Events currently kept per room, so retention only queries rooms that are over the limit. */
  #counts: Map<string, number>;

  /**
   * Opens (creating if needed) and checks the database at `path`: readable, a SQLite file, not
   * corrupt (quick_check), not newer than this code, writable and not held by another log. Throws
   * `StorageError` with a one-line reason, e.g. `Cannot open database parley.db: file is not a
   * database`.
   */
  static open(path: string, history: number, synchronous: SqliteSynchronous): SqliteDb {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { timeout: LOCK_WAIT_MS });
      configure(db, path, synchronous);
      quickCheck(db, path);
      return new SqliteDb(path, db, history);
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
      // Rewriting last_id makes every open write, even with nothing to migrate.
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

  /**
   * Writes a whole batch (see `BatchData`) in ONE transaction. On failure nothing of it is kept,
   * ids included, and it throws a one-line `StorageError`; the next batch starts afresh.
   */
  write(data: BatchData): BatchResult {
    const s = this.#stmt;
    const firstId = this.#lastId + 1;
    let lastId = this.#lastId;
    // Room counts as they will be after this batch; merged into #counts only after COMMIT.
    const counts = new Map<string, number>();
    try {
      s.begin.run();
      // Event rows wait here and go in ROWS_PER_INSERT at a time; membership and session
      // statements run in call order meanwhile (they never read `events`).
      const rows: SQLInputValue[] = [];
      let i = 0;
      while (i < data.length) {
        const op = data[i++];
        if (op === OP_APPEND) {
          const n = data[i++] as number;
          for (let k = 0; k < n; k++, i += 7) {
            const type = data[i] as string;
            const room = data[i + 1] as string;
            const session = data[i + 6] as string;
            const id = ++lastId;
            let count = counts.get(room) ?? this.#counts.get(room);
            if (count === undefined) {
              s.insertRoom.run(room);
              count = 0;
            }
            counts.set(room, count + 1);
            rows.push(
              id,
              room,
              type,
              data[i + 2] as string,
              data[i + 3] as string | null,
              data[i + 4] as number,
              data[i + 5] as string | null,
              session,
            );
            if (rows.length === ROWS_PER_INSERT * EVENT_COLUMNS) {
              s.insertEvents.run(...rows);
              rows.length = 0;
            }
            // Membership moves with its event, in the same transaction: a crash cannot keep one
            // without the other. A session the log does not know gets the event only.
            if (type === "join") s.joinMembership.run(session, room, id, session);
            else if (type === "leave") s.leaveMembership.run(session, room);
          }
        } else if (op === OP_PUT) {
          const id = data[i++] as string;
          s.upsertSession.run(id, data[i] as string, data[i + 1] as string, data[i + 2] as number);
          const m = data[i + 3] as number;
          i += 4;
          s.deleteMemberships.run(id);
          for (let k = 0; k < m; k++, i += 2) {
            s.insertMembership.run(id, data[i] as string, data[i + 1] as number);
          }
        } else if (op === OP_DELETE) {
          const id = data[i++] as string;
          s.deleteMemberships.run(id);
          s.deleteSession.run(id);
        } else {
          throw new Error(`malformed batch: op ${String(op)} at ${i - 1}`);
        }
      }
      for (let r = 0; r < rows.length; r += EVENT_COLUMNS) {
        s.insertEvent.run(...rows.slice(r, r + EVENT_COLUMNS));
      }
      // Once per room per batch, not per event: a batch of 1000 into one full room is one
      // index walk over the 1000 oldest and one range delete.
      for (const [room, n] of counts) {
        if (n > this.#history) counts.set(room, this.#trim(room, n));
      }
      s.commit.run();
    } catch (e) {
      // SQLite rolls back by itself on some errors (SQLITE_FULL, IOERR); only roll back if open.
      try {
        if (this.#db.isTransaction) s.rollback.run();
      } catch {
        // Nothing more to undo; the write error below is what callers need.
      }
      throw new StorageError(`Cannot write to database ${this.#path}: ${reason(e)}`, {
        cause: e,
      });
    }
    const appended = lastId - this.#lastId;
    this.#lastId = lastId;
    for (const [room, n] of counts) this.#counts.set(room, n);
    return { firstId, appended };
  }

  /** Reads everything persisted. */
  load(): Snapshot {
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
      return { lastId: this.#lastId, rooms: [...rooms.values()], sessions: [...sessions.values()] };
    } catch (e) {
      throw new StorageError(`Cannot read database ${this.#path}: ${reason(e)}`, { cause: e });
    }
  }

  /** The database size in pages (a test hook). */
  pageCount(): number {
    return int(this.#db.prepare("PRAGMA page_count").get()?.page_count);
  }

  /** Caps the database at `pages` pages (`max_page_count`), to simulate a full disk (a test hook). */
  setMaxPageCount(pages: number): number {
    return int(this.#db.prepare(`PRAGMA max_page_count = ${pages}`).get()?.max_page_count);
  }

  /** Closes the file, releasing its lock. */
  close(): void {
    try {
      this.#db.close();
    } catch (e) {
      throw new StorageError(`Cannot close database ${this.#path}: ${reason(e)}`, { cause: e });
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

/**
 * The highest id ever assigned: ids only leave `events` through retention, which records the
 * highest it dropped per room in `dropped_through`, so the larger of the two maxima is it even
 * when retention emptied every room. `meta.last_id` (written at open; by every commit in files
 * from before) is a floor on top.
 */
function readLastId(db: DatabaseSync): number {
  return int(
    db.prepare(
      `SELECT max(
         (SELECT value FROM meta WHERE key = 'last_id'),
         coalesce((SELECT max(id) FROM events), 0),
         coalesce((SELECT max(dropped_through) FROM rooms), 0)
       ) AS last_id`,
    ).get()?.last_id,
  );
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
    insertEvents: db.prepare(
      "INSERT INTO events (id, room, type, nick, text, ts, client_id, session) VALUES " +
        Array(ROWS_PER_INSERT).fill("(?, ?, ?, ?, ?, ?, ?, ?)").join(", "),
    ),
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
    // Only for a session the log knows; a join again replaces the join id.
    joinMembership: db.prepare(
      `INSERT OR REPLACE INTO memberships (session, room, join_id)
       SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?)`,
    ),
    leaveMembership: db.prepare("DELETE FROM memberships WHERE session = ? AND room = ?"),
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
