import { HttpError, STATUS } from "../http/errors.ts";
import {
  type EventLog,
  type NewEvent,
  StorageError,
  type StoredEvent,
} from "../storage/event_log.ts";
import { type Rate, RateLimiter } from "./rate_limiter.ts";
import { Session } from "./session.ts";
import { clientIdProblem, nickProblem, roomProblem, textProblem } from "./validation.ts";

/** Options of a {@linkcode ChatStore}, as the flags give them. */
export interface ChatStoreOptions {
  /** Events kept per room. */
  history: number;
  /** Characters in a message at most. */
  maxMessage: number;
  /** Seconds a session stays present without a poll or request. */
  presenceGrace: number;
  /** New sessions per client address. */
  sessionRate: Rate;
  /** Sends per session. */
  sendRate: Rate;
  /** The clock (milliseconds since the epoch); tests inject one. */
  now?: () => number;
}

/** A room's retained events and its present members. */
interface Room {
  name: string;
  /** The last `history` events, oldest first, ids increasing. */
  events: StoredEvent[];
  droppedThrough: number;
  members: Set<Session>;
}

/** What a long poll answers: the body, shared by every waiter that gets the same events. */
export interface PollAnswer {
  body: Uint8Array;
  /** The server is shutting down: close the connection so the client reconnects elsewhere. */
  close: boolean;
  /** Events in the body. */
  count: number;
  /** Events after the cursor were dropped by retention: the client should reload history. */
  gap: boolean;
}

interface Waiter {
  session: Session;
  cursor: number;
  resolve: (answer: PollAnswer) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal;
  onAbort: () => void;
}

/** A join's answer. */
export interface JoinView {
  room: string;
  /** The first `JOIN_MEMBERS` nicks in nick order. */
  members: string[];
  memberCount: number;
  history: StoredEvent[];
}

/** A page of a room's members in nick order; `next` is the `after` of the following page. */
export interface MembersPage {
  members: string[];
  next?: string;
}

/** Events one poll may return at most; the client continues from the returned cursor. */
const MAX_EVENTS_PER_POLL = 500;
/** Events of history sent with a join. */
const JOIN_HISTORY = 50;
/** Nicks a join answers at most; the rest come from `members()` (DESIGN.md). */
export const JOIN_MEMBERS = 100;

const encoder = new TextEncoder();

/**
 * Rooms, sessions, events and waiting polls. Hot state lives in memory; every change is written
 * through the event log first and applied here only once it committed, so nothing answered 2xx
 * is lost and every poll sees one total order.
 */
export class ChatStore {
  #log: EventLog;
  #options: Required<ChatStoreOptions>;
  #now: () => number;
  #rooms = new Map<string, Room>();
  #byToken = new Map<string, Session>();
  #byId = new Map<string, Session>();
  #byNick = new Map<string, Session | null>();
  #waiters = new Map<Session, Set<Waiter>>();
  #waiting = 0;
  #lastId = 0;
  #sessionLimiter: RateLimiter;
  #json = new WeakMap<StoredEvent, string>();
  /** Joins and leaves still committing, by `membershipKey()`. */
  #joins = new Map<string, Promise<unknown>>();
  #leaves = new Map<string, Promise<unknown>>();
  #draining = false;
  /** Counters for /metrics. */
  readonly counters = { events: 0, delivered: 0 };

  private constructor(log: EventLog, options: ChatStoreOptions) {
    this.#log = log;
    this.#now = options.now ?? Date.now;
    this.#options = { ...options, now: this.#now };
    this.#sessionLimiter = new RateLimiter(options.sessionRate);
  }

  /** Loads what the log persisted and returns a store ready to serve. */
  static async open(log: EventLog, options: ChatStoreOptions): Promise<ChatStore> {
    const store = new ChatStore(log, options);
    const snapshot = await log.load();
    const now = store.#now();
    store.#lastId = snapshot.lastId;
    for (const stored of snapshot.sessions) {
      const session = new Session(stored, options.sendRate, now);
      store.#addSession(session);
    }
    for (const stored of snapshot.rooms) {
      const room = store.#room(stored.name);
      room.events = stored.events.slice(-options.history);
      // Events cut here (a log holding more than --history) are dropped too: polls from before
      // them must see the gap.
      const cut = stored.events.length - room.events.length;
      room.droppedThrough = cut > 0
        ? Math.max(stored.droppedThrough, stored.events[cut - 1]!.id)
        : stored.droppedThrough;
      for (const event of room.events) {
        if (event.clientId !== undefined) store.#byId.get(event.session)?.remember(event);
      }
    }
    for (const session of store.#byId.values()) {
      for (const name of session.rooms.keys()) store.#room(name).members.add(session);
    }
    return store;
  }

  /** The event log behind the store. */
  get log(): EventLog {
    return this.#log;
  }

  /** Gauges for /metrics. */
  get gauges(): { sessions: number; rooms: number; waitingPolls: number; lastId: number } {
    return {
      sessions: this.#byToken.size,
      rooms: this.#rooms.size,
      waitingPolls: this.#waiting,
      lastId: this.#lastId,
    };
  }

  /** True once shutdown began. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Creates a session; the answer's cursor is the present. */
  async createSession(
    nick: unknown,
    clientAddr: string,
  ): Promise<{ session: Session; cursor: string }> {
    const now = this.#now();
    const wait = this.#sessionLimiter.take(clientAddr, now);
    if (wait > 0) throw rateLimited("Too many new sessions from your address", wait);
    const problem = nickProblem(nick);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_nick", problem);
    const name = nick as string;
    const key = name.toLowerCase();
    if (this.#byNick.has(key)) {
      throw new HttpError(STATUS.Conflict, "nick_taken", `The nick ${name} is taken`);
    }
    // Hold the nick while the session commits, so two concurrent requests cannot both get it.
    this.#byNick.set(key, null);
    const session = new Session(
      { id: crypto.randomUUID(), token: randomToken(), nick: name, createdAt: now, rooms: {} },
      this.#options.sendRate,
      now,
    );
    try {
      await this.#write(() => this.#log.putSession(session.toStored()));
    } catch (error) {
      this.#byNick.delete(key);
      throw error;
    }
    this.#addSession(session);
    return { session, cursor: String(this.#lastId) };
  }

  /** The session of a bearer token, marked seen; null for an unknown or expired one. */
  authenticate(token: string): Session | null {
    const session = this.#byToken.get(token);
    if (session) session.lastSeen = this.#now();
    return session ?? null;
  }

  /** Ends a session: it leaves every room (leave events) and its token stops working. */
  async deleteSession(session: Session): Promise<void> {
    if (this.#byToken.get(session.token) !== session) return;
    this.#removeSession(session);
    // Joins and leaves still committing change which rooms to leave (their events carry the
    // memberships in the log): let them finish first, so the leave events match them.
    const prefix = membershipKey(session, "");
    const pending = [...this.#joins, ...this.#leaves].filter(([key]) => key.startsWith(prefix));
    if (pending.length > 0) await Promise.allSettled(pending.map(([, p]) => p));
    const now = this.#now();
    const leaves = [...session.rooms.keys()].map((room) =>
      presenceEvent("leave", session, room, now)
    );
    if (leaves.length > 0) await this.#append(leaves);
    else this.#byId.delete(session.id);
    await this.#write(() => this.#log.deleteSession(session.id));
  }

  /** Joins a room (creating it); joining again just answers the view. */
  async join(session: Session, name: string): Promise<JoinView> {
    const problem = roomProblem(name);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_room", problem);
    const key = membershipKey(session, name);
    const leaving = this.#leaves.get(key);
    if (leaving) {
      // A leave still committing would undo this join after it answered: let it land first.
      await leaving.catch(() => {});
      if (this.#byToken.get(session.token) !== session) {
        throw new HttpError(STATUS.Unauthorized, "unauthorized", "The session has ended");
      }
    }
    let joining = this.#joins.get(key);
    if (!joining && !session.rooms.has(name)) {
      joining = this.#append([presenceEvent("join", session, name, this.#now())])
        .finally(() => this.#joins.delete(key));
      this.#joins.set(key, joining);
    }
    if (joining) await joining;
    const room = this.#rooms.get(name)!;
    // A fresh join gets what came before it (its own join event and later come by poll); joining
    // again, e.g. after a page reload, gets the latest events, which the client dedupes by id.
    const joinId = joining ? session.rooms.get(name) ?? Infinity : Infinity;
    return {
      room: name,
      members: this.#memberPage(room, null, JOIN_MEMBERS).members,
      memberCount: room.members.size,
      history: before(room.events, joinId, JOIN_HISTORY),
    };
  }

  /** Members of a room the session is in, in nick order, after `after`, at most `limit`. */
  members(session: Session, name: string, after: string | null, limit: number): MembersPage {
    if (!session.rooms.has(name)) {
      throw new HttpError(STATUS.Forbidden, "not_member", `Join room ${name} to see its members`);
    }
    return this.#memberPage(this.#rooms.get(name)!, after, limit);
  }

  #memberPage(room: Room, after: string | null, limit: number): MembersPage {
    const nicks = [...room.members].map((s) => s.nick).sort();
    let start = 0;
    if (after !== null) { while (start < nicks.length && nicks[start]! <= after) start++; }
    const members = nicks.slice(start, start + limit);
    return start + limit < nicks.length ? { members, next: members.at(-1)! } : { members };
  }

  /** Leaves a room, with a leave event. */
  async leave(session: Session, name: string): Promise<void> {
    const key = membershipKey(session, name);
    // A leave already committing counts: a second one would store a second leave event.
    if (!session.rooms.has(name) || this.#leaves.has(key)) {
      throw new HttpError(STATUS.NotFound, "not_member", `You are not in room ${name}`);
    }
    const leaving = this.#append([presenceEvent("leave", session, name, this.#now())])
      .finally(() => this.#leaves.delete(key));
    this.#leaves.set(key, leaving);
    await leaving;
  }

  /**
   * Sends a message. A repeated client id answers the first event (`created: false`) and stores
   * nothing; repeats do not use up the send rate.
   */
  async send(
    session: Session,
    room: string,
    text: unknown,
    clientId: unknown,
  ): Promise<{ event: StoredEvent; created: boolean }> {
    // A leave still committing counts as done: a message stored after it would come from someone
    // who already left.
    if (!session.rooms.has(room) || this.#leaves.has(membershipKey(session, room))) {
      throw new HttpError(STATUS.Forbidden, "not_member", `Join room ${room} before sending to it`);
    }
    const problem = textProblem(text, this.#options.maxMessage) ?? clientIdProblem(clientId);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_message", problem);
    const id = clientId as string | undefined;
    if (id !== undefined) {
      const earlier = session.sent.get(id) ?? await session.sending.get(id);
      if (earlier) return { event: earlier, created: false };
    }
    const now = this.#now();
    const wait = session.sendBucket.take(now);
    if (wait > 0) throw rateLimited("You are sending too fast", wait);
    const event: NewEvent = {
      type: "message",
      room,
      nick: session.nick,
      text: text as string,
      ts: now,
      session: session.id,
    };
    if (id !== undefined) event.clientId = id;
    const sending = this.#append([event]).then((events) => events[0]!);
    if (id === undefined) return { event: await sending, created: true };
    session.sending.set(id, sending);
    try {
      const stored = await sending;
      session.remember(stored);
      return { event: stored, created: true };
    } finally {
      session.sending.delete(id);
    }
  }

  /** Older events of a room the session is in, oldest first. */
  history(session: Session, name: string, beforeId: number, limit: number): StoredEvent[] {
    if (!session.rooms.has(name)) {
      throw new HttpError(STATUS.Forbidden, "not_member", `Join room ${name} to read its history`);
    }
    return before(this.#rooms.get(name)!.events, beforeId, limit);
  }

  /** Every room with its member count, by name. */
  listRooms(): { name: string; members: number }[] {
    return [...this.#rooms.values()]
      .map((room) => ({ name: room.name, members: room.members.size }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * The long poll: events after `cursor` in the session's rooms, at once if there are any, else
   * when the next one comes or after `waitSeconds` (then with no events and the same cursor).
   */
  poll(
    session: Session,
    cursorText: string | null,
    waitSeconds: number,
    signal: AbortSignal,
  ): PollAnswer | Promise<PollAnswer> {
    const cursor = cursorText === null ? this.#lastId : parseCursor(cursorText, this.#lastId);
    const ready = this.#answer(session, cursor);
    if (ready.count > 0 || ready.gap || waitSeconds <= 0 || this.#draining || signal.aborted) {
      this.counters.delivered += ready.count;
      return ready;
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        session,
        cursor,
        resolve,
        timer: undefined,
        signal,
        onAbort: () => this.#finish(waiter, this.#answer(session, cursor)),
      };
      waiter.timer = setTimeout(waiter.onAbort, waitSeconds * 1000);
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      let set = this.#waiters.get(session);
      if (!set) this.#waiters.set(session, set = new Set());
      set.add(waiter);
      this.#waiting++;
      session.openPolls++;
    });
  }

  /** Expires sessions that were absent for the grace period; the server calls it every second. */
  async sweep(): Promise<void> {
    const now = this.#now();
    this.#sessionLimiter.prune(now);
    const graceMs = this.#options.presenceGrace * 1000;
    const expired = [...this.#byToken.values()].filter((s) =>
      s.openPolls === 0 && now - s.lastSeen >= graceMs
    );
    await Promise.all(expired.map((s) => this.deleteSession(s).catch(() => {})));
  }

  /** Starts shutdown: waiting polls answer now with `close`, new polls do not wait. */
  shutdown(): void {
    this.#draining = true;
    for (const set of [...this.#waiters.values()]) {
      for (const waiter of [...set]) {
        this.#finish(waiter, this.#answer(waiter.session, waiter.cursor));
      }
    }
  }

  #addSession(session: Session): void {
    this.#byToken.set(session.token, session);
    this.#byId.set(session.id, session);
    this.#byNick.set(session.nick.toLowerCase(), session);
  }

  #removeSession(session: Session): void {
    this.#byToken.delete(session.token);
    this.#byNick.delete(session.nick.toLowerCase());
    // #byId keeps it until its leave events are applied; they need to find it.
    for (const waiter of [...(this.#waiters.get(session) ?? [])]) {
      this.#finish(waiter, this.#answer(session, waiter.cursor));
    }
  }

  #room(name: string): Room {
    let room = this.#rooms.get(name);
    if (!room) {
      room = { name, events: [], droppedThrough: 0, members: new Set() };
      this.#rooms.set(name, room);
    }
    return room;
  }

  /** Appends through the log, then applies the committed events in order and wakes polls. */
  #append(events: NewEvent[]): Promise<StoredEvent[]> {
    return this.#write(() => this.#log.append(events)).then((stored) => {
      this.#publish(stored);
      return stored;
    });
  }

  async #write<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (error) {
      if (error instanceof StorageError) {
        throw new HttpError(
          STATUS.ServiceUnavailable,
          "store_unavailable",
          "The store could not save this; try again",
          { headers: { "Retry-After": "1" } },
        );
      }
      throw error;
    }
  }

  #publish(events: StoredEvent[]): void {
    const touched = new Set<Session>();
    for (const event of events) {
      if (event.id <= this.#lastId) continue;
      this.#lastId = event.id;
      this.counters.events++;
      const room = this.#room(event.room);
      const author = this.#byId.get(event.session);
      if (event.type === "join" && author) {
        author.rooms.set(room.name, event.id);
        room.members.add(author);
      } else if (event.type === "leave" && author) {
        author.rooms.delete(room.name);
        room.members.delete(author);
        if (!this.#byToken.has(author.token) && author.rooms.size === 0) {
          this.#byId.delete(author.id);
        }
      }
      room.events.push(event);
      if (room.events.length > this.#options.history) {
        room.droppedThrough = room.events.shift()!.id;
      }
      for (const member of room.members) touched.add(member);
    }
    this.#wake(touched);
  }

  /** Answers the waiting polls of touched sessions, encoding each distinct answer once. */
  #wake(touched: Set<Session>): void {
    const answers = new Map<string, PollAnswer>();
    for (const session of touched) {
      const set = this.#waiters.get(session);
      if (!set) continue;
      for (const waiter of [...set]) {
        const key = groupKey(session, waiter.cursor);
        let answer = answers.get(key);
        if (!answer) {
          answer = this.#answer(session, waiter.cursor);
          answers.set(key, answer);
        }
        if (answer.count > 0) this.#finish(waiter, answer);
      }
    }
  }

  #finish(waiter: Waiter, answer: PollAnswer): void {
    const set = this.#waiters.get(waiter.session);
    if (!set?.delete(waiter)) return;
    if (set.size === 0) this.#waiters.delete(waiter.session);
    this.#waiting--;
    clearTimeout(waiter.timer);
    waiter.signal.removeEventListener("abort", waiter.onAbort);
    waiter.session.openPolls--;
    waiter.session.lastSeen = this.#now();
    this.counters.delivered += answer.count;
    waiter.resolve(answer);
  }

  /** The poll answer for a session at a cursor: events in its rooms from its joins on. */
  #answer(session: Session, cursor: number): PollAnswer {
    let gap = false;
    let events: StoredEvent[] = [];
    for (const [name, joinId] of session.rooms) {
      const room = this.#rooms.get(name);
      if (!room) continue;
      const from = Math.max(cursor, joinId - 1);
      if (room.droppedThrough > from) gap = true;
      const found = after(room.events, from);
      events = events.length === 0 ? found : events.concat(found);
    }
    if (session.rooms.size > 1) events.sort((a, b) => a.id - b.id);
    if (events.length > MAX_EVENTS_PER_POLL) events = events.slice(0, MAX_EVENTS_PER_POLL);
    const next = events.length > 0 ? events[events.length - 1]!.id : cursor;
    let body = '{"events":[';
    for (let i = 0; i < events.length; i++) {
      body += (i > 0 ? "," : "") + this.#eventJson(events[i]!);
    }
    body += `],"cursor":"${next}"${gap ? ',"gap":true' : ""}}`;
    return { body: encoder.encode(body), close: this.#draining, count: events.length, gap };
  }

  /** The public JSON of an event (without its session), computed once. */
  #eventJson(event: StoredEvent): string {
    let json = this.#json.get(event);
    if (json === undefined) {
      json = JSON.stringify(publicEvent(event));
      this.#json.set(event, json);
    }
    return json;
  }
}

/** An event as clients see it: the stored one without the author's session id. */
export function publicEvent(event: StoredEvent): Omit<StoredEvent, "session"> {
  const { session: _, ...rest } = event;
  return rest;
}

/** The key of a session's join or leave of a room in progress. */
function membershipKey(session: Session, room: string): string {
  return `${session.id}\n${room}`;
}

/** A session's join or leave event in a room. */
function presenceEvent(
  type: "join" | "leave",
  session: Session,
  room: string,
  ts: number,
): NewEvent {
  return { type, room, nick: session.nick, ts, session: session.id };
}

function groupKey(session: Session, cursor: number): string {
  let key = String(cursor);
  const parts: string[] = [];
  for (const [name, joinId] of session.rooms) parts.push(`${name}:${Math.max(cursor, joinId - 1)}`);
  if (parts.length > 1) parts.sort();
  for (const part of parts) key += `|${part}`;
  return key;
}

/** Events with id > `id`, by binary search (ids increase). */
function after(events: StoredEvent[], id: number): StoredEvent[] {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.id <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? events.slice() : events.slice(lo);
}

/** The last `limit` events with id < `id`, oldest first. */
function before(events: StoredEvent[], id: number, limit: number): StoredEvent[] {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.id < id) lo = mid + 1;
    else hi = mid;
  }
  return events.slice(Math.max(0, lo - limit), lo);
}

function parseCursor(text: string, lastId: number): number {
  if (!/^\d{1,15}$/.test(text)) {
    throw new HttpError(
      STATUS.BadRequest,
      "invalid_cursor",
      "The cursor is not one this server gave",
    );
  }
  const cursor = Number(text);
  if (cursor > lastId) {
    throw new HttpError(
      STATUS.BadRequest,
      "invalid_cursor",
      "The cursor is ahead of this server's events; start again without a cursor",
    );
  }
  return cursor;
}

function rateLimited(message: string, waitMs: number): HttpError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return new HttpError(
    STATUS.TooManyRequests,
    "rate_limited",
    `${message}; retry in ${seconds} s`,
    {
      headers: { "Retry-After": String(seconds) },
    },
  );
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
