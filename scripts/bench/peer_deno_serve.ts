/**
 * The smallest honest long-poll build of Parley's HTTP contract on `Deno.serve`, the peer of the
 * benchmarks: sessions, join (members capped at 100 with `memberCount`), members paging, leave,
 * send, and `GET /api/events?cursor&wait` with one total order, all in memory, with the same JSON
 * shapes, the same `Authorization: Bearer` header and the same retention (1000 events a room).
 * Left out: rate limits, presence expiry, clientId dedup, history paging, static files.
 *
 *   deno run -A scripts/bench/peer_deno_serve.ts --port 8081
 */
import { parseArgs } from "node:util";

const HISTORY = 1000;
const JOIN_HISTORY = 50;
const JOIN_MEMBERS = 100;
const MAX_EVENTS_PER_POLL = 500;
const DEFAULT_WAIT = 25;
const MAX_WAIT = 60;
const NAME = /^[\p{L}\p{N}][\p{L}\p{N}_.-]{0,63}$/u;
const HEADERS = { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" };

interface ChatEvent {
  id: number;
  type: "message" | "join" | "leave";
  room: string;
  nick: string;
  text?: string;
  ts: number;
}

interface Session {
  token: string;
  nick: string;
  /** Room name to the id of this session's join event there. */
  rooms: Map<string, number>;
  waiters: Set<Waiter>;
}

interface Room {
  /** The last HISTORY events, with their JSON. */
  events: { id: number; json: string; event: ChatEvent }[];
  droppedThrough: number;
  /** Member nicks in nick order, for the join answer and paging. */
  nicks: string[];
  members: Set<Session>;
}

interface Waiter {
  cursor: number;
  resolve: (body: string) => void;
}

const sessions = new Map<string, Session>();
const nicks = new Set<string>();
const rooms = new Map<string, Room>();
let lastId = 0;
let waiting = 0;

function json(status: number, body: string): Response {
  return new Response(body, { status, headers: HEADERS });
}

function error(status: number, code: string, message: string): Response {
  return json(status, JSON.stringify({ error: { code, message } }));
}

function room(name: string): Room {
  let r = rooms.get(name);
  if (!r) rooms.set(name, r = { events: [], droppedThrough: 0, nicks: [], members: new Set() });
  return r;
}

/** Index of the first nick not below `nick` (binary search). */
function nickIndex(list: string[], nick: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]! < nick) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Events after `cursor` in the session's rooms, from its joins on, as a poll answer. */
function answer(session: Session, cursor: number): { body: string; count: number } {
  let found: { id: number; json: string }[] = [];
  let gap = false;
  for (const [name, joinId] of session.rooms) {
    const r = rooms.get(name)!;
    const from = Math.max(cursor, joinId - 1);
    if (r.droppedThrough > from) gap = true;
    let i = r.events.length;
    while (i > 0 && r.events[i - 1]!.id > from) i--;
    found = found.concat(r.events.slice(i));
  }
  if (session.rooms.size > 1) found.sort((a, b) => a.id - b.id);
  found = found.slice(0, MAX_EVENTS_PER_POLL);
  const next = found.length > 0 ? found[found.length - 1]!.id : cursor;
  const body = `{"events":[${found.map((e) => e.json).join(",")}],"cursor":"${next}"${
    gap ? ',"gap":true' : ""
  }}`;
  return { body, count: found.length };
}

/** Stores an event in the total order and answers the waiting polls of the room's members. */
function publish(event: Omit<ChatEvent, "id">, author: Session): ChatEvent {
  const stored = { id: ++lastId, ...event } as ChatEvent;
  const r = room(stored.room);
  if (stored.type === "join") {
    author.rooms.set(stored.room, stored.id);
    r.members.add(author);
    r.nicks.splice(nickIndex(r.nicks, author.nick), 0, author.nick);
  }
  r.events.push({ id: stored.id, json: JSON.stringify(stored), event: stored });
  if (r.events.length > HISTORY) r.droppedThrough = r.events.shift()!.id;
  // One encoding per distinct (cursor, rooms) among the woken polls.
  const bodies = new Map<string, { body: string; count: number }>();
  for (const member of r.members) {
    for (const waiter of member.waiters) {
      const key = `${waiter.cursor}|${[...member.rooms].join(",")}`;
      let found = bodies.get(key);
      if (!found) bodies.set(key, found = answer(member, waiter.cursor));
      if (found.count > 0) finish(member, waiter, found.body);
    }
  }
  if (stored.type === "leave") {
    author.rooms.delete(stored.room);
    r.members.delete(author);
    r.nicks.splice(nickIndex(r.nicks, author.nick), 1);
  }
  return stored;
}

function finish(session: Session, waiter: Waiter, body: string): void {
  if (session.waiters.delete(waiter)) {
    waiting--;
    waiter.resolve(body);
  }
}

function authenticate(req: Request): Session | null {
  const match = /^Bearer\s+([0-9a-f]{32})\s*$/i.exec(req.headers.get("authorization") ?? "");
  return match ? sessions.get(match[1]!.toLowerCase()) ?? null : null;
}

async function readJson(req: Request): Promise<Record<string, unknown> | null> {
  try {
    const value = await req.json();
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

function token(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function handle(req: Request): Promise<Response> {
  const url = new URL(req.url);
  const path = url.pathname;
  if (path === "/healthz") return json(200, '{"status":"ok"}');
  if (path === "/metrics") {
    return new Response(
      `parley_waiting_polls ${waiting}\nparley_sessions ${sessions.size}\n` +
        `parley_events_total ${lastId}\n`,
    );
  }
  if (path === "/api/session" && req.method === "POST") {
    const body = await readJson(req);
    if (!body) return error(400, "bad_json", "The body is not a JSON object");
    const nick = body.nick;
    if (typeof nick !== "string" || !NAME.test(nick) || nick.length > 32) {
      return error(422, "invalid_nick", "A nick is 1 to 32 letters, digits, '_', '-' or '.'");
    }
    if (nicks.has(nick.toLowerCase())) return error(409, "nick_taken", `The nick ${nick} is taken`);
    const session: Session = { token: token(), nick, rooms: new Map(), waiters: new Set() };
    sessions.set(session.token, session);
    nicks.add(nick.toLowerCase());
    return json(201, JSON.stringify({ token: session.token, nick, cursor: String(lastId) }));
  }
  const session = authenticate(req);
  if (!session) return error(401, "unauthorized", "This needs Authorization: Bearer TOKEN");
  if (path === "/api/session" && req.method === "DELETE") {
    sessions.delete(session.token);
    nicks.delete(session.nick.toLowerCase());
    const ts = Date.now();
    for (const name of [...session.rooms.keys()]) {
      publish({ type: "leave", room: name, nick: session.nick, ts }, session);
    }
    for (const waiter of [...session.waiters]) {
      finish(session, waiter, answer(session, waiter.cursor).body);
    }
    return new Response(null, { status: 204, headers: HEADERS });
  }
  if (path === "/api/events" && req.method === "GET") {
    const cursorText = url.searchParams.get("cursor");
    const cursor = cursorText === null ? lastId : Number(cursorText);
    if (!/^\d{1,15}$/.test(cursorText ?? "0") || cursor > lastId) {
      return error(400, "invalid_cursor", "The cursor is not one this server gave");
    }
    const waitText = url.searchParams.get("wait");
    if (waitText !== null && !/^\d{1,9}(\.\d{1,6})?$/.test(waitText)) {
      return error(400, "bad_request", "wait must be a number of seconds from 0 to 60");
    }
    const wait = Math.min(waitText === null ? DEFAULT_WAIT : Number(waitText), MAX_WAIT);
    const ready = answer(session, cursor);
    if (ready.count > 0 || wait <= 0) return json(200, ready.body);
    const body = await new Promise<string>((resolve) => {
      const waiter: Waiter = { cursor, resolve };
      const timeout = () => finish(session, waiter, answer(session, cursor).body);
      const timer = setTimeout(timeout, wait * 1000);
      // A poll whose client went away is forgotten at once.
      req.signal.addEventListener("abort", timeout, { once: true });
      waiter.resolve = (text) => {
        clearTimeout(timer);
        req.signal.removeEventListener("abort", timeout);
        resolve(text);
      };
      session.waiters.add(waiter);
      waiting++;
    });
    return json(200, body);
  }
  const match = /^\/api\/rooms\/([^/]+)\/(join|leave|messages|members)$/.exec(path);
  if (!match) return error(404, "not_found", "No such route");
  const name = decodeURIComponent(match[1]!);
  const action = match[2]!;
  if (!NAME.test(name)) return error(422, "invalid_room", "Not a room name");
  if (action === "join" && req.method === "POST") {
    if (!session.rooms.has(name)) {
      publish({ type: "join", room: name, nick: session.nick, ts: Date.now() }, session);
    }
    const r = rooms.get(name)!;
    const joinId = session.rooms.get(name)!;
    let end = r.events.length;
    while (end > 0 && r.events[end - 1]!.id >= joinId) end--;
    const history = r.events.slice(Math.max(0, end - JOIN_HISTORY), end).map((e) => e.json);
    return json(
      200,
      `{"room":${JSON.stringify(name)},"members":${
        JSON.stringify(r.nicks.slice(0, JOIN_MEMBERS))
      },"memberCount":${r.members.size},"history":[${history.join(",")}]}`,
    );
  }
  if (!session.rooms.has(name)) return error(403, "not_member", `You are not in room ${name}`);
  if (action === "leave" && req.method === "POST") {
    publish({ type: "leave", room: name, nick: session.nick, ts: Date.now() }, session);
    return new Response(null, { status: 204, headers: HEADERS });
  }
  if (action === "messages" && req.method === "POST") {
    const body = await readJson(req);
    if (!body) return error(400, "bad_json", "The body is not a JSON object");
    const text = body.text;
    if (typeof text !== "string" || text.trim() === "" || text.length > 2000) {
      return error(422, "invalid_message", "The message needs 1 to 2000 characters of text");
    }
    const event = publish(
      { type: "message", room: name, nick: session.nick, text, ts: Date.now() },
      session,
    );
    return json(201, JSON.stringify({ event }));
  }
  if (action === "members" && req.method === "GET") {
    const r = rooms.get(name)!;
    const after = url.searchParams.get("after");
    const limit = Number(url.searchParams.get("limit") ?? 100);
    if (!(Number.isInteger(limit) && limit >= 1 && limit <= 500)) {
      return error(400, "bad_request", "limit must be a whole number from 1 to 500");
    }
    let from = after === null ? 0 : nickIndex(r.nicks, after);
    if (after !== null && r.nicks[from] === after) from++;
    const page = r.nicks.slice(from, from + limit);
    const next = from + limit < r.nicks.length ? `,"next":${JSON.stringify(page.at(-1))}` : "";
    return json(200, `{"members":${JSON.stringify(page)}${next}}`);
  }
  return error(405, "method_not_allowed", "Method not allowed");
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
  Deno.serve({ hostname: "127.0.0.1", port: Number(values.port ?? 8081), onListen() {} }, handle);
}
