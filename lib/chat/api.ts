import { HttpError, STATUS } from "../http/errors.ts";
import { JSON_HEADERS, jsonResponse } from "../http/response.ts";
import { Router } from "../http/router.ts";
import type { StaticFiles } from "../http/static_files.ts";
import type { HttpRequest, HttpResponse } from "../http/types.ts";
import { maybeThen, type SessionInfo } from "../storage/shared_state.ts";
import { type ChatStore, publicBan, publicEvent } from "./chat_store.ts";
import { type MetricValues, renderMetrics } from "./metrics.ts";

/** What the API needs besides the store. */
export interface ApiContext {
  store: ChatStore;
  static: StaticFiles;
  /** Current metric values (the app joins server and store figures). */
  metrics(): MetricValues | Promise<MetricValues>;
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
/** Decodes faster than `utf8` (no decoder per call), and drops a BOM alike, but turns bad bytes into U+FFFD. */
const utf8Lenient = new TextDecoder("utf-8");
const NO_CONTENT: HttpResponse = Object.freeze({ status: STATUS.NoContent, headers: JSON_HEADERS });

/** The router for every route of the HTTP API contract and the embedded page. */
export function createApi(ctx: ApiContext): Router {
  const { store } = ctx;
  const router = new Router();
  /** A route that needs a session: 401 without a valid bearer token. */
  // Only polls read the session's memberships, so only they need it fresh from the store (their
  // route asks itself); the rest may take one a backend cached (every store operation checks the
  // session anyway).
  const authed = (
    handler: (
      session: SessionInfo,
      req: HttpRequest,
      params: Record<string, string>,
    ) => HttpResponse | Promise<HttpResponse>,
  ) =>
  (req: HttpRequest, params: Record<string, string>) =>
    maybeThen(authenticate(store, req, false), (session) => handler(session, req, params));

  router.post("/api/session", async (req) => {
    const body = readJson(req);
    const { session, cursor } = await store.createSession(body, req.remoteAddr);
    return jsonResponse(STATUS.Created, {
      token: session.token,
      nick: session.nick,
      cursor,
      ...(session.moderator ? { moderator: true } : {}),
    });
  });

  router.delete(
    "/api/session",
    authed(async (session) => {
      await store.deleteSession(session);
      return NO_CONTENT;
    }),
  );

  router.get(
    "/api/rooms",
    () => maybeThen(store.rooms(), (rooms) => jsonResponse(STATUS.OK, { rooms })),
  );

  router.post(
    "/api/rooms/:room/join",
    authed(async (session, _req, params) => {
      const view = await store.join(session, params.room!);
      // Written by hand around the history, whose events are each encoded once for all joins.
      const body = `{"room":${JSON.stringify(view.room)},"members":${
        JSON.stringify(view.members)
      },"memberCount":${view.memberCount},"history":${store.eventsJson(view.history)}${
        view.topic !== undefined ? `,"topic":${JSON.stringify(view.topic)}` : ""
      }}`;
      return { status: STATUS.OK, headers: JSON_HEADERS, body };
    }),
  );

  router.post(
    "/api/rooms/:room/leave",
    authed(async (session, _req, params) => {
      await store.leave(session, params.room!);
      return NO_CONTENT;
    }),
  );

  router.get(
    "/api/rooms/:room/members",
    authed((session, req, params) => {
      const limit = optionalInteger(req.query.get("limit"), "limit", 1, MEMBERS_MAX);
      const page = store.members(
        session,
        params.room!,
        req.query.get("after"),
        limit ?? MEMBERS_DEFAULT,
      );
      return maybeThen(page, (value) => jsonResponse(STATUS.OK, value));
    }),
  );

  router.post(
    "/api/rooms/:room/messages",
    authed(async (session, req, params) => {
      const body = readJson(req, "invalid_message");
      const { event, created } = await store.send(session, params.room!, body.text, body.clientId);
      return jsonResponse(created ? STATUS.Created : STATUS.OK, { event: publicEvent(event) });
    }),
  );

  router.add(
    "PATCH",
    "/api/rooms/:room/messages/:id",
    authed(async (session, req, params) => {
      const body = readJson(req, "invalid_message");
      const event = await store.edit(session, params.room!, messageId(params.id!), body.text);
      return jsonResponse(STATUS.OK, { event: publicEvent(event) });
    }),
  );

  router.delete(
    "/api/rooms/:room/messages/:id",
    authed(async (session, _req, params) => {
      await store.remove(session, params.room!, messageId(params.id!));
      return NO_CONTENT;
    }),
  );

  router.get(
    "/api/rooms/:room/history",
    authed((session, req, params) => {
      const beforeId = optionalInteger(
        req.query.get("before"),
        "before",
        1,
        Number.MAX_SAFE_INTEGER,
      );
      const limit = optionalInteger(req.query.get("limit"), "limit", 1, HISTORY_MAX);
      const events = store.history(
        session,
        params.room!,
        beforeId ?? Number.MAX_SAFE_INTEGER,
        limit ?? HISTORY_DEFAULT,
      );
      return maybeThen(
        events,
        (list) => ({
          status: STATUS.OK,
          headers: JSON_HEADERS,
          body: `{"events":${store.eventsJson(list)}}`,
        }),
      );
    }),
  );

  router.post(
    "/api/rooms/:room/typing",
    authed(async (session, _req, params) => {
      await store.typing(session, params.room!);
      return NO_CONTENT;
    }),
  );

  router.add(
    "PUT",
    "/api/rooms/:room/topic",
    authed(async (session, req, params) => {
      const event = await store.setTopic(session, params.room!, readJson(req).topic);
      return jsonResponse(STATUS.OK, { event: publicEvent(event) });
    }),
  );

  router.post(
    "/api/rooms/:room/kick",
    authed(async (session, req, params) => {
      await store.kick(session, params.room!, readJson(req));
      return NO_CONTENT;
    }),
  );

  router.post(
    "/api/dm",
    authed(async (session, req) => {
      const view = await store.direct(session, readJson(req).nick);
      return {
        status: STATUS.OK,
        headers: JSON_HEADERS,
        body: `{"room":${JSON.stringify(view.room)},"with":${JSON.stringify(view.with)},"history":${
          store.eventsJson(view.history)
        }}`,
      };
    }),
  );

  router.post(
    "/api/bans",
    authed(async (session, req) => {
      const ban = await store.ban(session, readJson(req));
      return jsonResponse(STATUS.Created, { ban: publicBan(ban) });
    }),
  );

  router.get(
    "/api/bans",
    authed((session) =>
      maybeThen(
        store.bans(session),
        (bans) => jsonResponse(STATUS.OK, { bans: bans.map(publicBan) }),
      )
    ),
  );

  router.delete(
    "/api/bans/:id",
    authed(async (session, _req, params) => {
      await store.unban(session, params.id!);
      return NO_CONTENT;
    }),
  );

  router.get("/api/events", (req) => {
    // Taken before the session is read: a join or leave heard after it makes the poll read the
    // session again (it may come from another instance while the read is on its way).
    const since = store.eventsHeard;
    return maybeThen(authenticate(store, req, true), (session) => {
      const wait = parseWait(req.query.get("wait"));
      return store.poll(session, req.query.get("cursor"), wait, req.abortable, since);
    });
  });

  router.get("/healthz", () => {
    if (ctx.draining()) {
      throw new HttpError(
        STATUS.ServiceUnavailable,
        "shutting_down",
        "The server is shutting down",
        { headers: { "Retry-After": "1" } },
      );
    }
    const health = store.health;
    if (!health.ok) {
      throw new HttpError(
        STATUS.ServiceUnavailable,
        "store_unavailable",
        `The store is not working: ${health.reason}`,
        { headers: { "Retry-After": "1" } },
      );
    }
    return jsonResponse(STATUS.OK, { status: "ok" });
  });

  router.get("/metrics", async () => ({
    status: STATUS.OK,
    headers: {
      "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      "Cache-Control": "no-store",
    },
    body: renderMetrics(await ctx.metrics()),
  }));

  for (const path of ctx.static.paths) router.get(path, (req) => ctx.static.serve(req));
  return router;
}

/** The session of the request's bearer token; 401 without a valid one. */
function authenticate(
  store: ChatStore,
  req: HttpRequest,
  fresh: boolean,
): SessionInfo | Promise<SessionInfo> {
  const header = req.headers.get("authorization") ?? "";
  // Only SP and HTAB around the token (RFC 9110 §11.4), never other Unicode spaces; the scheme's
  // case does not matter (§11.1).
  const match = /^bearer[ \t]+([0-9a-f]{32})[ \t]*$/i.exec(header);
  const refuse = () =>
    new HttpError(
      STATUS.Unauthorized,
      "unauthorized",
      header ? "The session token is unknown or expired" : "This needs Authorization: Bearer TOKEN",
      { headers: { "WWW-Authenticate": "Bearer" } },
    );
  if (!match) throw refuse();
  return maybeThen(store.authenticate(match[1]!.toLowerCase(), fresh), (session) => {
    if (!session) throw refuse();
    return session;
  });
}

/** A message id from the path; a malformed one names no message. */
function messageId(text: string): number {
  const id = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!(id >= 1)) throw new HttpError(STATUS.NotFound, "not_found", "There is no such message");
  return id;
}

/**
 * The body as a JSON object; 400 bad_json otherwise. Bytes that are not UTF-8 are bad JSON, or,
 * where the body carries message text, `invalidTextCode` (422: not valid text).
 */
function readJson(req: HttpRequest, invalidTextCode?: string): Record<string, unknown> {
  let text: string;
  try {
    text = utf8Lenient.decode(req.body);
    // A U+FFFD is bad bytes or a real one: only the strict decoder tells, so only then ask it.
    if (text.includes("\uFFFD")) text = utf8.decode(req.body);
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

/** A decimal number as text: sign, digits with a fraction, exponent; no hex, no spaces, no words. */
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i;

/** `wait` in seconds: absent is the default, above the maximum is the maximum. */
function parseWait(text: string | null): number {
  if (text === null) return DEFAULT_WAIT;
  // Any length: however many digits, it is a number (DESIGN.md), and one too big for a double
  // (1e400) is Infinity, which the maximum caps like any other.
  const seconds = DECIMAL.test(text) ? Number(text) : NaN;
  if (!(seconds >= 0)) {
    throw new HttpError(
      STATUS.BadRequest,
      "bad_request",
      "wait must be a number of seconds from 0 to 60",
    );
  }
  return Math.min(seconds, MAX_WAIT);
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
