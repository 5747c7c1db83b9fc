import { HttpError, STATUS } from "../http/errors.ts";
import { JSON_HEADERS, jsonResponse } from "../http/response.ts";
import { Router } from "../http/router.ts";
import type { StaticFiles } from "../http/static_files.ts";
import type { HttpRequest, HttpResponse } from "../http/types.ts";
import { type ChatStore, publicEvent } from "./chat_store.ts";
import { type MetricValues, renderMetrics } from "./metrics.ts";
import type { Session } from "./session.ts";

/** What the API needs besides the store. */
export interface ApiContext {
  store: ChatStore;
  static: StaticFiles;
  /** Current metric values (the app joins server and store figures). */
  metrics(): MetricValues;
  /** True while the server shuts down. */
  draining(): boolean;
}

/** Seconds a poll waits by default and at most (DESIGN.md). */
const DEFAULT_WAIT = 25;
const MAX_WAIT = 60;
const HISTORY_DEFAULT = 50;
const HISTORY_MAX = 200;
const MEMBERS_DEFAULT = 100;
const MEMBERS_MAX = 500;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The router for every route of the HTTP API contract and the embedded page. */
export function createApi(ctx: ApiContext): Router {
  const { store } = ctx;
  const router = new Router();

  router.post("/api/session", async (req) => {
    const body = readJson(req);
    const { session, cursor } = await store.createSession(body.nick, req.remoteAddr);
    return jsonResponse(STATUS.Created, { token: session.token, nick: session.nick, cursor });
  });

  router.delete("/api/session", async (req) => {
    await store.deleteSession(authenticate(store, req));
    return { status: STATUS.NoContent, headers: JSON_HEADERS };
  });

  router.get("/api/rooms", () => jsonResponse(STATUS.OK, { rooms: store.listRooms() }));

  router.post("/api/rooms/:room/join", async (req, params) => {
    const session = authenticate(store, req);
    const view = await store.join(session, params.room!);
    return jsonResponse(STATUS.OK, {
      room: view.room,
      members: view.members,
      memberCount: view.memberCount,
      history: view.history.map(publicEvent),
    });
  });

  router.get("/api/rooms/:room/members", (req, params) => {
    const session = authenticate(store, req);
    const limit = optionalInteger(req.query.get("limit"), "limit", 1, MEMBERS_MAX);
    return jsonResponse(
      STATUS.OK,
      store.members(session, params.room!, req.query.get("after"), limit ?? MEMBERS_DEFAULT),
    );
  });

  router.post("/api/rooms/:room/leave", async (req, params) => {
    await store.leave(authenticate(store, req), params.room!);
    return { status: STATUS.NoContent, headers: JSON_HEADERS };
  });

  router.post("/api/rooms/:room/messages", async (req, params) => {
    const session = authenticate(store, req);
    const body = readJson(req, "invalid_message");
    const { event, created } = await store.send(session, params.room!, body.text, body.clientId);
    return jsonResponse(created ? STATUS.Created : STATUS.OK, { event: publicEvent(event) });
  });

  router.get("/api/rooms/:room/history", (req, params) => {
    const session = authenticate(store, req);
    const beforeId = optionalInteger(req.query.get("before"), "before", 1, Number.MAX_SAFE_INTEGER);
    const limit = optionalInteger(req.query.get("limit"), "limit", 1, HISTORY_MAX);
    const events = store.history(
      session,
      params.room!,
      beforeId ?? Number.MAX_SAFE_INTEGER,
      limit ?? HISTORY_DEFAULT,
    );
    return jsonResponse(STATUS.OK, { events: events.map(publicEvent) });
  });

  router.get("/api/events", (req) => {
    const session = authenticate(store, req);
    const wait = parseWait(req.query.get("wait"));
    const answer = store.poll(session, req.query.get("cursor"), wait, req.signal);
    if (answer instanceof Promise) return answer.then(pollResponse);
    return pollResponse(answer);
  });

  router.get("/healthz", () => {
    if (ctx.draining()) {
      throw new HttpError(
        STATUS.ServiceUnavailable,
        "shutting_down",
        "The server is shutting down",
      );
    }
    return jsonResponse(STATUS.OK, { status: "ok" });
  });

  router.get("/metrics", () => ({
    status: STATUS.OK,
    headers: {
      "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      "Cache-Control": "no-store",
    },
    body: renderMetrics(ctx.metrics()),
  }));

  for (const path of ctx.static.paths) router.get(path, (req) => ctx.static.serve(req));
  return router;
}

function pollResponse(answer: { body: Uint8Array; close: boolean }): HttpResponse {
  return {
    status: STATUS.OK,
    headers: JSON_HEADERS,
    body: answer.body,
    close: answer.close,
  };
}

/** The session of the request's bearer token; 401 without a valid one. */
function authenticate(store: ChatStore, req: HttpRequest): Session {
  const header = req.headers.get("authorization") ?? "";
  const match = /^Bearer\s+([0-9a-f]{32})\s*$/i.exec(header);
  const session = match ? store.authenticate(match[1]!.toLowerCase()) : null;
  if (!session) {
    throw new HttpError(
      STATUS.Unauthorized,
      "unauthorized",
      header ? "The session token is unknown or expired" : "This needs Authorization: Bearer TOKEN",
      { headers: { "WWW-Authenticate": "Bearer" } },
    );
  }
  return session;
}

/**
 * The body as a JSON object; 400 bad_json otherwise. Bytes that are not UTF-8 are bad JSON, or,
 * where the body carries message text, `invalidTextCode` (422: not valid text).
 */
function readJson(req: HttpRequest, invalidTextCode?: string): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(req.body);
  } catch {
    if (invalidTextCode) {
      throw new HttpError(
        STATUS.UnprocessableContent,
        invalidTextCode,
        "The body is not valid UTF-8 text",
      );
    }
    throw new HttpError(STATUS.BadRequest, "bad_json", "The body is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(STATUS.BadRequest, "bad_json", "The body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(STATUS.BadRequest, "bad_json", "The body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** `wait` in seconds: absent is the default, above the maximum is the maximum. */
function parseWait(text: string | null): number {
  if (text === null) return DEFAULT_WAIT;
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(text)) {
    throw new HttpError(
      STATUS.BadRequest,
      "bad_request",
      "wait must be a number of seconds from 0 to 60",
    );
  }
  return Math.min(Number(text), MAX_WAIT);
}

function optionalInteger(
  text: string | null,
  name: string,
  min: number,
  max: number,
): number | null {
  if (text === null) return null;
  const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) {
    throw new HttpError(
      STATUS.BadRequest,
      "bad_request",
      `${name} must be a whole number from ${min} to ${max}`,
    );
  }
  return n;
}
