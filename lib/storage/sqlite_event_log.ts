import { clearImmediate, setImmediate } from "node:timers";
import {
  type Change,
  EVENT_TYPES,
  type EventLog,
  type EventLogOptions,
  type NewEvent,
  type Snapshot,
  StorageError,
  type StoredEvent,
  storedEvent,
  type StoredSession,
} from "./event_log.ts";
import {
  type BatchData,
  type BatchResult,
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
  type Reply,
  type ReplyValues,
  type Request,
  type SqliteSynchronous,
} from "./sqlite_protocol.ts";
import { errorLine } from "../error_line.ts";

export { SCHEMA_VERSION } from "./sqlite_db.ts";
export type { SqliteSynchronous } from "./sqlite_protocol.ts";

/**
 * The worker's module. `deno compile` must be told about it (`--include
 * lib/storage/sqlite_worker.ts`, see the `compile` task): nothing imports it statically.
 */
const WORKER_URL = new URL("./sqlite_worker.ts", import.meta.url).href;

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

/** A queued commit: its events, ids set once the batch it joined committed. */
interface Op {
  resolve: (events: StoredEvent[]) => void;
  reject: Reject;
  events: StoredEvent[];
}

/** A request the worker has not answered yet; replies come in request order. */
type Pending =
  | { kind: "batch"; ops: Op[] }
  | { kind: "call"; resolve: (value: unknown) => void; reject: Reject };

/**
 * An `EventLog` in one SQLite file (`node:sqlite`), in WAL mode, held exclusively by this process.
 * The connection lives on a worker thread (`sqlite_worker.ts`, core in `sqlite_db.ts`): SQLite is
 * synchronous, and a commit waits for an fsync, which must not stop this thread from serving.
 *
 * Writes are group-committed and pipelined: at most one batch is at the worker; every
 * `append`/`putSession`/`deleteSession` made meanwhile joins the next batch, which is sent as soon
 * as the reply comes (when the worker is idle, at the next `setImmediate`, so everything that
 * became ready in this loop turn joins). A batch is written in ONE transaction, so one fsync covers
 * it all. Promises settle in call order only after COMMIT returned; if the transaction fails, all
 * of its calls reject with `StorageError`, nothing of it is kept (ids included), and the next batch
 * starts afresh. The worker assigns ids, so a failed batch can never skew them.
 *
 * Two servers on one file are refused: see `SqliteDb`. Open fails with a one-line StorageError.
 */
export class SqliteEventLog implements EventLog {
  /** Short name for logs and metrics. */
  readonly kind = "sqlite";
  #worker: Worker;
  /** Requests sent, oldest first. */
  #pending: Pending[] = [];
  /** Batches among #pending. */
  #inFlight = 0;
  /** Calls waiting for the next batch, and that batch, built as they come. */
  #ops: Op[] = [];
  #data: BatchData = [];
  #timer: ReturnType<typeof setImmediate> | undefined;
  /** Whether the worker answered `open`: failures before say "Cannot open", after "Cannot use". */
  #opened = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Set when the worker died: every call rejects with it from then on. */
  #failure: StorageError | undefined;
  #stats: SqliteEventLogStats = { transactions: 0, appended: 0 };
  #path: string;
  /** The file's device and inode at open, to notice it deleted or replaced; null: not a file. */
  #identity: { dev: number; ino: number | null } | null = null;

  /**
   * Opens (creating if needed) and checks the database at `path`: readable, a SQLite file, not
   * corrupt (quick_check), not newer than this code, writable and not held by another log. Rejects
   * with `StorageError` with a one-line reason, e.g. `Cannot open database parley.db: file is not
   * a database`.
   */
  static async open(path: string, options: SqliteEventLogOptions): Promise<SqliteEventLog> {
    checkHistory(options.history);
    let worker: Worker;
    try {
      worker = new Worker(WORKER_URL, { type: "module" });
    } catch (e) {
      throw new StorageError(
        `Cannot open database ${path}: cannot start the storage worker: ${errorLine(e)}`,
        { cause: e },
      );
    }
    const log = new SqliteEventLog(path, worker);
    try {
      await log.#call({
        t: "open",
        path,
        history: options.history,
        synchronous: options.synchronous ?? "full",
      });
    } catch (e) {
      worker.terminate();
      throw e;
    }
    log.#opened = true;
    if (path !== ":memory:" && !path.startsWith("file:")) {
      try {
        const stat = await Deno.stat(path);
        log.#identity = { dev: stat.dev, ino: stat.ino };
      } catch {
        // Unknown identity: the periodic check is skipped rather than guessing.
      }
    }
    return log;
  }

  private constructor(path: string, worker: Worker) {
    this.#path = path;
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<Reply>) => this.#onReply(event.data);
    const failed = (why: string) =>
      new StorageError(`Cannot ${this.#opened ? "use" : "open"} database ${path}: ${why}`);
    worker.onerror = (event: ErrorEvent) => {
      // Handled here: unhandled, a worker error would end the whole process.
      event.preventDefault();
      this.#fail(failed(`storage worker failed: ${errorLine(event.message)}`));
    };
    worker.onmessageerror = () => this.#fail(failed("unreadable reply from the storage worker"));
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
    return this.#call({ t: "load" });
  }

  /** Queues a change for the next group commit; resolves with its events once committed. */
  commit(change: Change): Promise<StoredEvent[]> {
    if (this.#closed) return closedError("commit");
    if (this.#failure) return Promise.reject(this.#failure);
    const events = change.events ?? [];
    for (const event of events) {
      const problem = checkEvent(event);
      if (problem !== undefined) return Promise.reject(new TypeError(`Cannot commit: ${problem}`));
    }
    const data = this.#data;
    for (const session of change.putSessions ?? []) putSession(data, session);
    const stored: StoredEvent[] = new Array(events.length);
    if (events.length > 0) data.push(OP_APPEND, events.length);
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      // The id is set once the worker says which ids the batch got.
      stored[i] = storedEvent(0, e);
      data.push(
        e.type,
        e.room,
        e.nick,
        e.text ?? null,
        e.ts,
        e.clientId ?? null,
        e.session,
        e.ref ?? null,
        e.by ?? null,
        e.reason ?? null,
      );
    }
    for (const [room, [a, b]] of Object.entries(change.pairs ?? {})) data.push(OP_PAIR, room, a, b);
    for (const edit of change.edits ?? []) {
      data.push(OP_EDIT, edit.room, edit.id, edit.author, edit.text);
    }
    for (const erase of change.erase ?? []) data.push(OP_ERASE, erase.room, erase.id, erase.author);
    for (const room of change.deleteRooms ?? []) data.push(OP_DELETE_ROOM, room);
    for (const id of change.deleteSessions ?? []) data.push(OP_DELETE, id);
    for (const ban of change.putBans ?? []) {
      data.push(
        OP_PUT_BAN,
        ban.id,
        ban.nick ?? null,
        ban.address ?? null,
        ban.until,
        ban.reason ?? null,
        ban.by,
        ban.createdAt,
      );
    }
    for (const id of change.deleteBans ?? []) data.push(OP_DELETE_BAN, id);
    if (change.probe !== undefined) data.push(OP_PROBE, change.probe);
    return new Promise((resolve, reject) => this.#enqueue({ resolve, reject, events: stored }));
  }

  /** `commit({events})`. */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    return this.commit({ events });
  }

  /** Queues a session upsert (memberships replaced) for the next group commit. */
  async putSession(session: StoredSession): Promise<void> {
    await this.commit({ putSessions: [session] });
  }

  /** Queues a session delete for the next group commit; a missing one is no error. */
  async deleteSession(id: string): Promise<void> {
    await this.commit({ deleteSessions: [id] });
  }

  /**
   * The database file as it was at open, or why not: deleted (writes would go to a file nobody
   * can reopen) or replaced. Once it reports a problem, every write fails with it.
   */
  async check(): Promise<string | null> {
    if (this.#failure) return this.#failure.message;
    if (this.#identity === null || this.#closed) return null;
    let problem: string | null = null;
    try {
      const stat = await Deno.stat(this.#path);
      if (stat.dev !== this.#identity.dev || stat.ino !== this.#identity.ino) {
        problem = `the database file ${this.#path} was replaced while the server ran`;
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) return null;
      problem = `the database file ${this.#path} was deleted while the server ran`;
    }
    if (problem !== null) {
      this.#fail(
        new StorageError(`Cannot use database ${this.#path}: ${problem}; restart to recover`),
      );
    }
    return problem;
  }

  /**
   * Commits what is queued, closes the file (releasing its lock) and ends the worker, so it keeps
   * nothing alive; idempotent (later calls wait for the first). With `deadlineMs`, a worker that
   * does not answer in time (a stalled disk) is terminated anyway, and the number of writes it
   * never confirmed is the answer.
   */
  close(deadlineMs?: number): Promise<number> {
    if (!this.#closing) {
      this.#closed = true;
      this.#closing = (async () => {
        try {
          if (!this.#failure) await this.#call({ t: "close" });
        } finally {
          this.#worker.terminate();
        }
      })();
    }
    const closing = this.#closing.then(() => 0, () => 0);
    if (deadlineMs === undefined) return closing;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<number>((resolve) => {
      timer = setTimeout(() => {
        const unconfirmed = this.#unconfirmed();
        this.#fail(
          new StorageError(`Cannot use database ${this.#path}: closed before it answered`),
        );
        resolve(unconfirmed);
      }, Math.max(0, deadlineMs));
    });
    return Promise.race([closing, late]).finally(() => clearTimeout(timer));
  }

  /** Writes queued or sent and not yet confirmed by the worker. */
  #unconfirmed(): number {
    let n = this.#ops.length;
    for (const p of this.#pending) if (p.kind === "batch") n += p.ops.length;
    return n;
  }

  /** Test hook: the database size in pages. */
  _pageCount(): Promise<number> {
    if (this.#closed) return closedError("_pageCount");
    return this.#call({ t: "pageCount" });
  }

  /** Test hook: caps the database at `pages` pages (`max_page_count`), to simulate a full disk. */
  _setMaxPageCount(pages: number): Promise<number> {
    if (this.#closed) return closedError("_setMaxPageCount");
    if (!Number.isSafeInteger(pages) || pages < 1) {
      return Promise.reject(new RangeError(`pages must be a positive integer, got ${pages}`));
    }
    return this.#call({ t: "setMaxPageCount", pages });
  }

  /** Sends a request after whatever is queued (so it sees every earlier write); awaits its reply. */
  #call<R extends Exclude<Request, { t: "batch" }>>(request: R): Promise<ReplyValues[R["t"]]> {
    if (this.#failure) return Promise.reject(this.#failure);
    this.#flush();
    return new Promise((resolve, reject) => {
      this.#pending.push({ kind: "call", resolve: resolve as (value: unknown) => void, reject });
      this.#worker.postMessage(request);
    });
  }

  #enqueue(op: Op): void {
    this.#ops.push(op);
    // With a batch at the worker, this one goes when its reply comes. Otherwise setImmediate, not
    // setTimeout(0): timers set from timer callbacks get clamped to ~4 ms once nested, which would
    // cap one-at-a-time writers at ~250 commits/s. An immediate runs after the current I/O phase,
    // so every request that became ready in this loop turn joins the batch.
    if (this.#inFlight === 0) {
      this.#timer ??= setImmediate(() => {
        this.#timer = undefined;
        this.#flush();
      });
    }
  }

  /** Sends the queued calls as one batch, now. */
  #flush(): void {
    if (this.#timer !== undefined) {
      clearImmediate(this.#timer);
      this.#timer = undefined;
    }
    if (this.#ops.length === 0) return;
    const ops = this.#ops;
    const data = this.#data;
    this.#ops = [];
    this.#data = [];
    this.#pending.push({ kind: "batch", ops });
    this.#inFlight++;
    this.#worker.postMessage({ t: "batch", data } satisfies Request);
  }

  #onReply(reply: Reply): void {
    const pending = this.#pending.shift();
    if (pending === undefined) return; // Only after #fail; nothing waits for it.
    if (pending.kind === "call") {
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(new StorageError(reply.error));
      return;
    }
    // The next batch goes before this one's callers run, so the worker commits meanwhile.
    this.#inFlight--;
    if (this.#inFlight === 0) this.#flush();
    const { ops } = pending;
    if (!reply.ok) {
      const error = new StorageError(reply.error);
      for (const op of ops) op.reject(error);
      return;
    }
    const { firstId, appended } = reply.value as BatchResult;
    this.#stats.transactions++;
    this.#stats.appended += appended;
    let id = firstId;
    for (const op of ops) {
      for (const event of op.events) event.id = id++;
      op.resolve(op.events);
    }
  }

  /** The worker is gone: every call waiting or queued, and every later one, rejects. */
  #fail(error: StorageError): void {
    if (this.#failure) return;
    this.#failure = error;
    if (this.#timer !== undefined) {
      clearImmediate(this.#timer);
      this.#timer = undefined;
    }
    const pending = this.#pending;
    const ops = this.#ops;
    this.#pending = [];
    this.#ops = [];
    this.#data = [];
    this.#inFlight = 0;
    this.#worker.terminate();
    for (const p of pending) {
      if (p.kind === "call") p.reject(error);
      else for (const op of p.ops) op.reject(error);
    }
    for (const op of ops) op.reject(error);
  }
}

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
  if (e.ref !== undefined && !Number.isSafeInteger(e.ref)) return "ref must be an integer";
  return undefined;
}

/** Appends `OP_PUT` for a session to a batch. */
function putSession(data: BatchData, session: StoredSession): void {
  const rooms = Object.entries(session.rooms);
  data.push(
    OP_PUT,
    session.id,
    session.token,
    session.nick,
    session.createdAt,
    session.address,
    session.moderator ? 1 : 0,
    rooms.length,
  );
  for (const [room, m] of rooms) data.push(room, m.joinId, m.leftId ?? null);
}

function checkHistory(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`history must be a non-negative integer, got ${n}`);
  }
}

function closedError<T>(method: string): Promise<T> {
  return Promise.reject(new StorageError(`Cannot ${method}: the event log is closed`));
}
