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
  LEFT_KEPT,
  SENDS_KEPT,
  type Snapshot,
  StorageError,
  type StoredBan,
  type StoredEvent,
  storedEvent,
  type StoredRoom,
  type StoredSend,
  type StoredSession,
} from "./event_log.ts";
import {
  type BatchData,
  type BatchResult,
  EVENT_FIELDS,
  OP_APPEND,
  OP_DELETE,
  OP_DELETE_BAN,
  OP_DELETE_ROOM,
  OP_EDIT,
  OP_ERASE,
  OP_PAIR,
  OP_PROBE,
  OP_PUT,
  OP_PUT_BAN,
  type SqliteSynchronous,
} from "./sqlite_protocol.ts";

/**
 * Schema migrations, applied in order at open inside one transaction (exported for the migration
 * tests); `PRAGMA user_version` holds how many have run. Append new steps, never edit old ones:
 * files in the field ran them already.
 */
export const MIGRATIONS: readonly string[] = [
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
  // 2: moderation, edits and deletes, private rooms, left memberships, remembered sends. A send
  // keeps a copy of its event (JSON), so a retried client id is answered whatever retention did;
  // files from version 1 remember the client ids of the events they still keep, for the sessions
  // they still have (sends go with their session).
  `ALTER TABLE events ADD COLUMN ref INTEGER;
   ALTER TABLE events ADD COLUMN by_nick TEXT;
   ALTER TABLE events ADD COLUMN reason TEXT;
   ALTER TABLE events ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX events_ref ON events (ref) WHERE ref IS NOT NULL;
   ALTER TABLE rooms ADD COLUMN topic TEXT;
   ALTER TABLE rooms ADD COLUMN pair_a TEXT;
   ALTER TABLE rooms ADD COLUMN pair_b TEXT;
   ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
   ALTER TABLE sessions ADD COLUMN moderator INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE memberships ADD COLUMN left_id INTEGER;
   CREATE TABLE sends (
     session TEXT NOT NULL,
     client_id TEXT NOT NULL,
     event_id INTEGER NOT NULL,
     room TEXT NOT NULL,
     event TEXT NOT NULL,
     PRIMARY KEY (session, client_id)
   ) WITHOUT ROWID;
   CREATE INDEX sends_order ON sends (session, event_id);
   CREATE INDEX sends_event ON sends (event_id);
   CREATE INDEX sends_room ON sends (room);
   CREATE TABLE bans (
     id TEXT PRIMARY KEY,
     nick TEXT,
     address TEXT,
     until INTEGER NOT NULL,
     reason TEXT,
     by_nick TEXT NOT NULL,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   INSERT OR IGNORE INTO sends (session, client_id, event_id, room, event)
     SELECT session, client_id, id, room,
       json_object('id', id, 'type', type, 'room', room, 'nick', nick, 'text', text, 'ts', ts,
         'clientId', client_id, 'session', session)
     FROM (SELECT *, row_number() OVER (PARTITION BY session ORDER BY id DESC) AS n
           FROM events WHERE client_id IS NOT NULL AND type = 'message'
             AND session IN (SELECT id FROM sessions))
     WHERE n <= ${SENDS_KEPT};`,
  // 3: the last event a session could read of a private room deleted with its history (polls
  // from before it answer a gap after a restart too).
  `ALTER TABLE sessions ADD COLUMN forgot INTEGER NOT NULL DEFAULT 0;`,
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
const EVENT_COLUMNS = 11;
/** `events.flags` bits. */
const EDITED = 1;
const DELETED = 2;
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
  trimLeft: StatementSync;
  deleteSession: StatementSync;
  insertSend: StatementSync;
  trimSends: StatementSync;
  deleteSends: StatementSync;
  setTopic: StatementSync;
  setPair: StatementSync;
  editEvent: StatementSync;
  editSend: StatementSync;
  eraseEvent: StatementSync;
  eraseEdits: StatementSync;
  eraseSend: StatementSync;
  deleteRoomEvents: StatementSync;
  roomLastId: StatementSync;
  forgetRoom: StatementSync;
  keepLastId: StatementSync;
  deleteRoomMemberships: StatementSync;
  deleteRoomSends: StatementSync;
  deleteRoom: StatementSync;
  putBan: StatementSync;
  deleteBan: StatementSync;
  probe: StatementSync;
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
      // A WAL left by a crash may still hold text deleted before it: fold it in and empty it.
      checkpoint(db);
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
    const deletedRooms = new Set<string>();
    // Sessions that remembered or left something in this batch: trimmed once each, at the end.
    const sent = new Set<string>();
    const left = new Set<string>();
    // Whether text was erased (a delete, a DM room): it must leave the WAL too, not only the table.
    let erased = false;
    try {
      s.begin.run();
      // Event rows wait here and go in ROWS_PER_INSERT at a time; other statements run in call
      // order meanwhile. Those that read `events` (edit, erase, room delete) flush the rows first.
      const rows: SQLInputValue[] = [];
      const flushRows = () => {
        for (let r = 0; r < rows.length; r += EVENT_COLUMNS) {
          s.insertEvent.run(...rows.slice(r, r + EVENT_COLUMNS));
        }
        rows.length = 0;
      };
      let i = 0;
      while (i < data.length) {
        const op = data[i++];
        if (op === OP_APPEND) {
          const n = data[i++] as number;
          for (let k = 0; k < n; k++, i += EVENT_FIELDS) {
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
            const text = data[i + 3] as string | null;
            const clientId = data[i + 5] as string | null;
            rows.push(
              id,
              room,
              type,
              data[i + 2] as string,
              text,
              data[i + 4] as number,
              clientId,
              session,
              data[i + 7] as number | null,
              data[i + 8] as string | null,
              data[i + 9] as string | null,
            );
            if (rows.length === ROWS_PER_INSERT * EVENT_COLUMNS) {
              s.insertEvents.run(...rows);
              rows.length = 0;
            }
            // Side effects move with their event, in the same transaction: a crash cannot keep
            // one without the other. A session the log does not know gets the event only.
            if (type === "join") {
              s.joinMembership.run(session, room, id, session);
            } else if (type === "leave") {
              s.leaveMembership.run(id, session, room);
              left.add(session);
            } else if (type === "topic") {
              s.setTopic.run(text, room);
            } else if (type === "message" && clientId !== null) {
              const event = storedEvent(id, {
                type: "message",
                room,
                nick: data[i + 2] as string,
                ...(text !== null ? { text } : {}),
                ts: data[i + 4] as number,
                clientId,
                session,
              });
              s.insertSend.run(session, clientId, id, room, JSON.stringify(event), session);
              sent.add(session);
            }
          }
        } else if (op === OP_PUT) {
          const id = data[i++] as string;
          s.upsertSession.run(
            id,
            data[i] as string,
            data[i + 1] as string,
            data[i + 2] as number,
            data[i + 3] as string,
            data[i + 4] as number,
          );
          const m = data[i + 5] as number;
          i += 6;
          s.deleteMemberships.run(id);
          for (let k = 0; k < m; k++, i += 3) {
            s.insertMembership.run(
              id,
              data[i] as string,
              data[i + 1] as number,
              data[i + 2] as number | null,
            );
          }
        } else if (op === OP_DELETE) {
          const id = data[i++] as string;
          s.deleteMemberships.run(id);
          s.deleteSends.run(id);
          s.deleteSession.run(id);
        } else if (op === OP_PAIR) {
          s.setPair.run(data[i + 1] as string, data[i + 2] as string, data[i] as string);
          i += 3;
        } else if (op === OP_EDIT) {
          flushRows();
          const id = data[i + 1] as number;
          const text = data[i + 3] as string;
          s.editEvent.run(text, id);
          s.editSend.run(text, id);
          i += 4;
        } else if (op === OP_ERASE) {
          flushRows();
          erased = true;
          const id = data[i + 1] as number;
          s.eraseEvent.run(id);
          s.eraseEdits.run(id);
          s.eraseSend.run(id);
          i += 3;
        } else if (op === OP_DELETE_ROOM) {
          flushRows();
          erased = true;
          const room = data[i++] as string;
          const last = int(s.roomLastId.get(room)?.id);
          s.forgetRoom.run(last, room);
          // Its ids must never be given again: readLastId no longer sees them once deleted.
          s.keepLastId.run(last);
          s.deleteRoomEvents.run(room);
          s.deleteRoomMemberships.run(room);
          s.deleteRoomSends.run(room);
          s.deleteRoom.run(room);
          counts.delete(room);
          deletedRooms.add(room);
        } else if (op === OP_PUT_BAN) {
          s.putBan.run(
            data[i] as string,
            data[i + 1] as string | null,
            data[i + 2] as string | null,
            data[i + 3] as number,
            data[i + 4] as string | null,
            data[i + 5] as string,
            data[i + 6] as number,
          );
          i += 7;
        } else if (op === OP_DELETE_BAN) {
          s.deleteBan.run(data[i++] as string);
        } else if (op === OP_PROBE) {
          s.probe.run(data[i++] as number);
        } else {
          throw new Error(`malformed batch: op ${String(op)} at ${i - 1}`);
        }
      }
      flushRows();
      for (const session of sent) s.trimSends.run(session, session, SENDS_KEPT);
      for (const session of left) s.trimLeft.run(session, session, LEFT_KEPT);
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
    for (const room of deletedRooms) this.#counts.delete(room);
    for (const [room, n] of counts) this.#counts.set(room, n);
    if (erased) {
      try {
        checkpoint(this.#db);
      } catch {
        // Committed all the same; the next erase, open or close checkpoints again.
      }
    }
    return { firstId, appended };
  }

  /** Reads everything persisted. */
  load(): Snapshot {
    try {
      const rooms = new Map<string, StoredRoom>();
      const roomRows = this.#db.prepare(
        "SELECT name, dropped_through, topic, pair_a, pair_b FROM rooms ORDER BY name",
      ).all();
      for (const row of roomRows) {
        const name = str(row.name);
        const room: StoredRoom = { name, events: [], droppedThrough: int(row.dropped_through) };
        if (row.topic != null) room.topic = str(row.topic);
        if (row.pair_a != null && row.pair_b != null) {
          room.pair = [str(row.pair_a), str(row.pair_b)];
        }
        rooms.set(name, room);
      }
      const events = this.#db.prepare(
        `SELECT id, type, room, nick, text, ts, client_id, session, ref, by_nick, reason, flags
         FROM events ORDER BY id`,
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
        `SELECT id, token, nick, created_at, address, moderator, forgot FROM sessions
         ORDER BY created_at, id`,
      ).all();
      for (const row of sessionRows) {
        const id = str(row.id);
        sessions.set(id, {
          id,
          token: str(row.token),
          nick: str(row.nick),
          createdAt: int(row.created_at),
          address: str(row.address),
          moderator: int(row.moderator) !== 0,
          rooms: {},
          ...(int(row.forgot) > 0 ? { forgot: int(row.forgot) } : {}),
        });
      }
      const memberships = this.#db.prepare(
        "SELECT session, room, join_id, left_id FROM memberships ORDER BY session, join_id",
      ).all();
      for (const row of memberships) {
        const session = sessions.get(str(row.session));
        if (session === undefined) continue;
        session.rooms[str(row.room)] = row.left_id == null
          ? { joinId: int(row.join_id) }
          : { joinId: int(row.join_id), leftId: int(row.left_id) };
      }
      const sends: Record<string, StoredSend[]> = {};
      const sendRows = this.#db.prepare(
        "SELECT session, client_id, event FROM sends ORDER BY session, event_id",
      ).all();
      for (const row of sendRows) {
        const session = str(row.session);
        (sends[session] ??= []).push({
          clientId: str(row.client_id),
          event: jsonEvent(str(row.event)),
        });
      }
      const bans: StoredBan[] = [];
      const banRows = this.#db.prepare(
        "SELECT id, nick, address, until, reason, by_nick, created_at FROM bans ORDER BY created_at",
      ).all();
      for (const row of banRows) {
        bans.push({
          id: str(row.id),
          ...(row.nick != null ? { nick: str(row.nick) } : {}),
          ...(row.address != null ? { address: str(row.address) } : {}),
          until: int(row.until),
          ...(row.reason != null ? { reason: str(row.reason) } : {}),
          by: str(row.by_nick),
          createdAt: int(row.created_at),
        });
      }
      return {
        lastId: this.#lastId,
        rooms: [...rooms.values()],
        sessions: [...sessions.values()],
        sends,
        bans,
      };
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
  // A deleted message's text must be gone from the file, not left in a freed page.
  db.exec("PRAGMA secure_delete = ON");
}

/**
 * Copies the WAL into the database and truncates it to nothing: the WAL keeps every committed
 * page version (a message's text too, after it was deleted) until a checkpoint overwrites it.
 */
function checkpoint(db: DatabaseSync): void {
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
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
  const columns = "(id, room, type, nick, text, ts, client_id, session, ref, by_nick, reason)";
  const values = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  return {
    begin: db.prepare("BEGIN IMMEDIATE"),
    commit: db.prepare("COMMIT"),
    rollback: db.prepare("ROLLBACK"),
    insertEvents: db.prepare(
      `INSERT INTO events ${columns} VALUES ` + Array(ROWS_PER_INSERT).fill(values).join(", "),
    ),
    insertEvent: db.prepare(`INSERT INTO events ${columns} VALUES ${values}`),
    insertRoom: db.prepare("INSERT OR IGNORE INTO rooms (name) VALUES (?)"),
    nthOldest: db.prepare("SELECT id FROM events WHERE room = ? ORDER BY id LIMIT 1 OFFSET ?"),
    deleteThrough: db.prepare("DELETE FROM events WHERE room = ? AND id <= ?"),
    setDropped: db.prepare(
      "UPDATE rooms SET dropped_through = max(dropped_through, ?) WHERE name = ?",
    ),
    setLastId: db.prepare("UPDATE meta SET value = ? WHERE key = 'last_id'"),
    upsertSession: db.prepare(
      `INSERT INTO sessions (id, token, nick, created_at, address, moderator)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET token = excluded.token, nick = excluded.nick,
         created_at = excluded.created_at, address = excluded.address,
         moderator = excluded.moderator`,
    ),
    deleteMemberships: db.prepare("DELETE FROM memberships WHERE session = ?"),
    insertMembership: db.prepare(
      "INSERT INTO memberships (session, room, join_id, left_id) VALUES (?, ?, ?, ?)",
    ),
    // Only for a session the log knows; a join again replaces the join id and clears the leave.
    joinMembership: db.prepare(
      `INSERT OR REPLACE INTO memberships (session, room, join_id, left_id)
       SELECT ?, ?, ?, NULL WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?)`,
    ),
    leaveMembership: db.prepare(
      "UPDATE memberships SET left_id = ? WHERE session = ? AND room = ? AND left_id IS NULL",
    ),
    trimLeft: db.prepare(
      `DELETE FROM memberships WHERE session = ? AND left_id IS NOT NULL AND left_id <= (
         SELECT left_id FROM memberships WHERE session = ? AND left_id IS NOT NULL
         ORDER BY left_id DESC LIMIT 1 OFFSET ?)`,
    ),
    deleteSession: db.prepare("DELETE FROM sessions WHERE id = ?"),
    insertSend: db.prepare(
      `INSERT OR REPLACE INTO sends (session, client_id, event_id, room, event)
       SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?)`,
    ),
    trimSends: db.prepare(
      `DELETE FROM sends WHERE session = ? AND event_id <= (
         SELECT event_id FROM sends WHERE session = ? ORDER BY event_id DESC LIMIT 1 OFFSET ?)`,
    ),
    deleteSends: db.prepare("DELETE FROM sends WHERE session = ?"),
    setTopic: db.prepare("UPDATE rooms SET topic = nullif(?, '') WHERE name = ?"),
    setPair: db.prepare("UPDATE rooms SET pair_a = ?, pair_b = ? WHERE name = ?"),
    editEvent: db.prepare(
      `UPDATE events SET text = ?, flags = flags | ${EDITED} WHERE id = ? AND type = 'message'`,
    ),
    editSend: db.prepare(
      "UPDATE sends SET event = json_set(event, '$.text', ?, '$.edited', json('true')) WHERE event_id = ?",
    ),
    eraseEvent: db.prepare(
      `UPDATE events SET text = NULL, flags = (flags & ~${EDITED}) | ${DELETED} WHERE id = ?`,
    ),
    eraseEdits: db.prepare("UPDATE events SET text = NULL WHERE ref = ? AND type = 'edit'"),
    eraseSend: db.prepare(
      `UPDATE sends SET event = json_set(json_remove(event, '$.text', '$.edited'),
         '$.deleted', json('true')) WHERE event_id = ?`,
    ),
    deleteRoomEvents: db.prepare("DELETE FROM events WHERE room = ?"),
    roomLastId: db.prepare("SELECT coalesce(max(id), 0) AS id FROM events WHERE room = ?"),
    keepLastId: db.prepare("UPDATE meta SET value = max(value, ?) WHERE key = 'last_id'"),
    forgetRoom: db.prepare(
      `UPDATE sessions SET forgot = max(forgot, ?)
       WHERE id IN (SELECT session FROM memberships WHERE room = ?)`,
    ),
    deleteRoomMemberships: db.prepare("DELETE FROM memberships WHERE room = ?"),
    deleteRoomSends: db.prepare("DELETE FROM sends WHERE room = ?"),
    deleteRoom: db.prepare("DELETE FROM rooms WHERE name = ?"),
    putBan: db.prepare(
      `INSERT OR REPLACE INTO bans (id, nick, address, until, reason, by_nick, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteBan: db.prepare("DELETE FROM bans WHERE id = ?"),
    probe: db.prepare(
      `INSERT INTO meta (key, value) VALUES ('probe', ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ),
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
  const flags = int(row.flags);
  return {
    id: int(row.id),
    type: str(row.type) as EventType,
    room: str(row.room),
    nick: str(row.nick),
    ...(row.text != null ? { text: str(row.text) } : {}),
    ts: Number(row.ts),
    ...(row.client_id != null ? { clientId: str(row.client_id) } : {}),
    ...(row.ref != null ? { ref: int(row.ref) } : {}),
    ...(row.by_nick != null ? { by: str(row.by_nick) } : {}),
    ...(row.reason != null ? { reason: str(row.reason) } : {}),
    ...(flags & EDITED ? { edited: true as const } : {}),
    ...(flags & DELETED ? { deleted: true as const } : {}),
    session: str(row.session),
  };
}

/** A remembered send's event: JSON written by `write` (or the migration, with nulls). */
function jsonEvent(json: string): StoredEvent {
  const raw = JSON.parse(json) as Record<string, unknown>;
  for (const key of Object.keys(raw)) if (raw[key] === null) delete raw[key];
  return storedEvent(raw.id as number, raw as unknown as StoredEvent);
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
