/**
 * The worker thread of `SqliteEventLog`: owns the `node:sqlite` connection and answers each
 * request (see `sqlite_protocol.ts`) with one reply, in order. Every commit blocks this thread
 * for its fsync, not the one serving HTTP. Errors become one-line messages; nothing is thrown out
 * of the handler, so nothing reaches the main thread as an uncaught worker error.
 */
import { StorageError } from "./event_log.ts";
import { SqliteDb } from "./sqlite_db.ts";
import type { Reply, ReplyValues, Request } from "./sqlite_protocol.ts";

/** What this module uses of the worker global scope (the type checker sees the window one). */
interface WorkerScope {
  onmessage: ((event: MessageEvent<Request>) => void) | null;
  postMessage(message: Reply): void;
}

const scope = globalThis as unknown as WorkerScope;
let db: SqliteDb | undefined;

scope.onmessage = (event) => {
  let reply: Reply;
  try {
    reply = { ok: true, value: handle(event.data) };
  } catch (e) {
    reply = { ok: false, error: errorLine(e) };
  }
  scope.postMessage(reply);
};

function handle(request: Request): ReplyValues[Request["t"]] {
  switch (request.t) {
    case "open":
      db = SqliteDb.open(request.path, request.history, request.synchronous);
      return null;
    case "batch":
      return opened().write(request.data);
    case "load":
      return opened().load();
    case "pageCount":
      return opened().pageCount();
    case "setMaxPageCount":
      return opened().setMaxPageCount(request.pages);
    case "close": {
      const current = db;
      db = undefined;
      current?.close();
      return null;
    }
  }
}

function opened(): SqliteDb {
  if (db === undefined) throw new StorageError("The database is not open");
  return db;
}

/** StorageErrors carry their own one-line message; anything else is a bug, said in one line. */
function errorLine(e: unknown): string {
  if (e instanceof StorageError) return e.message;
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return `Storage worker failed: ${message.split("\n", 1)[0]}`;
}
