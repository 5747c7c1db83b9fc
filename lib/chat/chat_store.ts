/**
 * What one instance owns (DESIGN.md, "What is local and what is shared"): its waiting polls with
 * their timers, and the fan-out that answers them. Everything else lives in the `SharedState`
 * (memory, SQLite or Redis); this store validates requests, asks the state, turns its refusals and
 * failures into HTTP errors, and answers polls when the state reports committed events.
 */
import { HttpError, STATUS } from "../http/errors.ts";
import { JSON_HEADERS } from "../http/response.ts";
import type { Abortable, HttpResponse } from "../http/types.ts";
import type { Logger } from "../log.ts";
import { StorageError, type StoredBan, type StoredEvent } from "../storage/event_log.ts";
import {
  type MaybePromise,
  maybeThen,
  type MembersPage,
  type Notice,
  type ReadResult,
  Refusal,
  type RefusalCode,
  type RoomRange,
  type RoomSummary,
  type SessionInfo,
  type SharedState,
} from "../storage/shared_state.ts";
import type { Rate } from "./rate_limiter.ts";
import { Deadlines } from "./deadlines.ts";
import { StoreHealth } from "./store_health.ts";
import {
  clientIdProblem,
  isPrivateRoom,
  nameKey,
  nickProblem,
  normalizeName,
  roomProblem,
  textProblem,
} from "./validation.ts";
import { errorLine } from "../error_line.ts";

/** Options of a {@linkcode ChatStore}, as the flags give them. */
export interface ChatStoreOptions {
  /** Characters in a message at most. */
  maxMessage: number;
  /** Seconds a session stays present without a poll or request. */
  presenceGrace: number;
  /** New sessions per client address. */
  sessionRate: Rate;
  /** Sends per session (and typing notices, counted apart). */
  sendRate: Rate;
  /** Minutes an author may edit a message; 0 = never. */
  editWindow: number;
  /** The moderators' secret (`--admin-token-file`); null: nobody is a moderator. */
  adminSecret: string | null;
  /** Seconds a store call may take before it is answered 503 and the store counts as stalled. */
  storeTimeout: number;
  /** The clock (milliseconds since the epoch); tests inject one. */
  now?: () => number;
  /** Where store failures and recoveries are logged. */
  logger?: Logger;
}

/**
 * What a long poll answers: a response shared by every waiter that gets the same events, so its
 * body is encoded and its bytes serialized once for all of them.
 */
export interface PollAnswer extends HttpResponse {
  body: Uint8Array;
  /** The server is shutting down: close the connection so the client reconnects elsewhere. */
  close: boolean;
  /** Events in the body. */
  count: number;
  /** Events after the cursor were dropped by retention: the client should reload history. */
  gap: boolean;
}

/** Waiting polls that read the same ranges from the same cursor: one answer serves them all. */
interface Group {
  key: string;
  cursor: number;
  ranges: RoomRange[];
  waiters: Set<Waiter>;
}

interface Waiter {
  session: SessionInfo;
  group: Group;
  /**
   * Reads of its session on their way after it joined or left a room: until they are back its
   * group's answers are not for it, as their cursor could pass events of a room just joined.
   */
  moving: number;
  resolve: (answer: PollAnswer) => void;
  signal: Abortable;
  onAbort: () => void;
}

/** How a store call is run: whether it writes, and how its refusals are answered. */
interface CallOptions {
  /** A write: its success shows the store works (again). */
  write?: boolean;
  /** Statuses overriding a refusal code's default. */
  statuses?: Partial<Record<RefusalCode, number>>;
  /** Messages overriding a refusal code's default. */
  messages?: Partial<Record<RefusalCode, string>>;
}

/** A store call in flight, for its deadline. */
interface InFlight {
  started: number;
  expire: () => void;
}

/** The `#call` options of a write. */
const WRITE: CallOptions = Object.freeze({ write: true });
/** Events one poll may return at most; the client continues from the returned cursor. */
const MAX_EVENTS_PER_POLL = 500;
/** Longest time between two marks of the sessions with polls open as present. */
const TOUCH_OPEN_MS = 15_000;
/** Answers kept for polls from the same cursor at most (cleared by every event anyway). */
const RECENT_ANSWERS = 10_000;
/** Sessions' latest joins and leaves remembered for polls on their way (see `#moved`). */
const MOVES_KEPT = 4096;
/** Characters in a topic, a kick reason and a ban reason at most. */
const MAX_TOPIC = 300;
const MAX_REASON = 200;
/** Longest ban: ten years, in minutes. */
const MAX_BAN_MINUTES = 10 * 365 * 24 * 60;

const encoder = new TextEncoder();

/** HTTP status and message of each refusal of the state. */
const REFUSALS: Record<RefusalCode, [number, string]> = {
  unauthorized: [STATUS.Unauthorized, "The session has ended"],
  nick_taken: [STATUS.Conflict, "That nick is taken"],
  banned: [STATUS.Forbidden, "You are banned"],
  not_member: [STATUS.Forbidden, "You are not in that room"],
  private_room: [STATUS.Forbidden, "That room is private"],
  rate_limited: [STATUS.TooManyRequests, "Too many requests"],
  not_found: [STATUS.NotFound, "There is no such message"],
  not_author: [STATUS.Forbidden, "Only its author may change a message"],
  edit_window_passed: [STATUS.Forbidden, "The time to edit that message has passed"],
  no_such_nick: [STATUS.NotFound, "Nobody has that nick"],
  own_nick: [STATUS.UnprocessableContent, "That is your own nick"],
  forbidden: [STATUS.Forbidden, "Only moderators may do that"],
};

/** The instance's side of the chat: see the module comment. */
export class ChatStore {
  #state: SharedState;
  #options: ChatStoreOptions;
  #now: () => number;
  #health: StoreHealth;
  #groups = new Map<string, Group>();
  #byRoom = new Map<string, Set<Group>>();
  /** Waiting polls by session: one waiter, or a set when it has several. */
  #bySession = new Map<string, Waiter | Set<Waiter>>();
  /** When each waiting poll's `wait` ends: one timer for all. */
  #deadlines = new Deadlines<Waiter>((waiter) => waiter.onAbort());
  #waiting = 0;
  /** Sessions whose poll ended since the last sweep, and when: they were seen then. */
  #seen = new Map<string, number>();
  /** When the sweep last marked every session with a poll open here present. */
  #touchedOpen = -Infinity;
  /** A sweep's store calls are on their way. */
  #sweeping = false;
  /** The last sweep found the store out. */
  #storeOut = false;
  /** No session is ended for absence before this time (a grace after the store came back). */
  #expireFrom = -Infinity;
  #inFlight = new Set<InFlight>();
  /** Calls answered 503 for their deadline whose store operation has not finished yet. */
  #stalled = 0;
  #json = new WeakMap<StoredEvent, string>();
  #draining = false;
  /** Batches of events heard from the state, to notice those that arrive during a read. */
  #heard = 0;
  /**
   * Sessions that joined or left lately, oldest first, with the `#heard` count of it: a poll
   * whose session was read before such a move reads it again (see `poll`).
   */
  #moved = new Map<string, number>();
  /** The highest count of a move dropped from `#moved` (a session not there may have moved then). */
  #movesForgotten = 0;
  /** Answers with events given since the last event, by group key: later polls share them. */
  #recent = new Map<string, PollAnswer>();
  /** Counters for /metrics. */
  readonly counters = { events: 0, delivered: 0 };

  constructor(state: SharedState, options: ChatStoreOptions) {
    this.#state = state;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#health = new StoreHealth(this.#now, options.logger);
    state.listen({
      events: (events) => this.#onEvents(events),
      notice: (notice) => this.#onNotice(notice),
      resync: () => this.#resync(),
      health: (health) => this.#health.backend(health),
    });
  }

  /** The shared state behind the store. */
  get state(): SharedState {
    return this.#state;
  }

  /** Whether the store works, for `/healthz` and `/metrics`. */
  get health(): StoreHealth {
    return this.#health;
  }

  /** Gauges for /metrics. */
  gauges(): MaybePromise<{ sessions: number; rooms: number; waitingPolls: number }> {
    return maybeThen(this.#call(() => this.#state.counts()), (counts) => ({
      ...counts,
      waitingPolls: this.#waiting,
    }));
  }

  /** True once shutdown began. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Creates a session; the answer's cursor is the present. */
  async createSession(
    body: Record<string, unknown>,
    clientAddr: string,
  ): Promise<{ session: SessionInfo; cursor: string }> {
    const now = this.#now();
    const wait = await this.#call(() =>
      this.#state.takeRate("session", clientAddr, this.#options.sessionRate, now)
    );
    if (wait > 0) throw rateLimited("Too many new sessions from your address", wait);
    const nick = normalizeName(body.nick);
    const problem = nickProblem(nick);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_nick", problem);
    let moderator = false;
    if (body.admin !== undefined) {
      const secret = this.#options.adminSecret;
      if (secret === null || typeof body.admin !== "string" || !sameSecret(body.admin, secret)) {
        throw new HttpError(STATUS.Forbidden, "forbidden", "That is not the moderators' secret");
      }
      moderator = true;
    }
    const name = nick as string;
    const session = await this.#call(() =>
      this.#state.createSession(
        { nick: name, key: nameKey(name), address: clientAddr, moderator },
        now,
      ), WRITE);
    const cursor = await this.#call(() => this.#state.lastId());
    return { session, cursor: String(cursor) };
  }

  /** The session of a bearer token, marked seen; null for an unknown or expired one. */
  authenticate(token: string, fresh = true): MaybePromise<SessionInfo | null> {
    const now = this.#now();
    return maybeThen(this.#call(() => this.#state.authenticate(token, now, fresh)), (session) => {
      // A cached answer did not mark the session present: the next sweep does.
      if (session !== null && !fresh) this.#seen.set(session.id, now);
      return session;
    });
  }

  /** Ends a session: it leaves every room (leave events) and its token stops working. */
  async deleteSession(session: SessionInfo): Promise<void> {
    await this.#call(() => this.#state.endSession(session.id, this.#now()), WRITE);
  }

  /** Joins a room (creating it); joining again just answers the view. */
  async join(session: SessionInfo, roomName: string) {
    const room = normalizeName(roomName);
    const problem = isPrivateRoom(room) ? null : roomProblem(room);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_room", problem);
    return await this.#call(() => this.#state.join(session.id, room, this.#now()), WRITE);
  }

  /** Leaves a room, with a leave event. */
  async leave(session: SessionInfo, room: string): Promise<void> {
    await this.#call(
      () => this.#state.leave(session.id, normalizeName(room), this.#now()),
      { write: true, statuses: { not_member: STATUS.NotFound } },
    );
  }

  /** A page of a room's members in nick order. */
  members(
    session: SessionInfo,
    room: string,
    after: string | null,
    limit: number,
  ): MaybePromise<MembersPage> {
    return this.#call(() =>
      this.#state.members(session.id, normalizeName(room), after && normalizeName(after), limit)
    );
  }

  /** Sends a message; a repeated client id answers the first event (`created: false`). */
  async send(
    session: SessionInfo,
    room: string,
    text: unknown,
    clientId: unknown,
  ): Promise<{ event: StoredEvent; created: boolean }> {
    const problem = textProblem(text, this.#options.maxMessage) ?? clientIdProblem(clientId);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_message", problem);
    return await this.#call(() =>
      this.#state.send(
        session.id,
        normalizeName(room),
        text as string,
        clientId as string | undefined,
        this.#now(),
        this.#options.sendRate,
      ), WRITE);
  }

  /** Older events of a room the session is in, oldest first. */
  history(
    session: SessionInfo,
    room: string,
    beforeId: number,
    limit: number,
  ): MaybePromise<StoredEvent[]> {
    return this.#call(() => this.#state.history(session.id, normalizeName(room), beforeId, limit));
  }

  /** Every public room with its member count, by name. */
  rooms(): MaybePromise<RoomSummary[]> {
    return this.#call(() => this.#state.rooms());
  }

  /** Replaces the text of the session's own message (within `--edit-window`). */
  async edit(session: SessionInfo, room: string, ref: number, text: unknown): Promise<StoredEvent> {
    const problem = textProblem(text, this.#options.maxMessage);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_message", problem);
    const windowMs = this.#options.editWindow * 60_000;
    return await this.#call(
      () =>
        this.#state.edit(
          session.id,
          normalizeName(room),
          ref,
          text as string,
          this.#now(),
          windowMs,
        ),
      WRITE,
    );
  }

  /** Deletes a message (own, or any as a moderator). */
  async remove(session: SessionInfo, room: string, ref: number): Promise<void> {
    await this.#call(
      () => this.#state.remove(session.id, normalizeName(room), ref, this.#now()),
      WRITE,
    );
  }

  /** A moderator sets or clears a room's topic. */
  async setTopic(session: SessionInfo, roomName: string, topic: unknown): Promise<StoredEvent> {
    const room = normalizeName(roomName);
    const problem = roomProblem(room) ?? topicProblem(topic);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_topic", problem);
    const text = (topic as string).trim();
    return await this.#call(
      () => this.#state.setTopic(session.id, room, text, this.#now()),
      WRITE,
    );
  }

  /** A moderator removes a member from a room. */
  async kick(session: SessionInfo, room: string, body: Record<string, unknown>): Promise<void> {
    const nick = normalizeName(body.nick);
    const problem = nickProblem(nick) ?? reasonProblem(body.reason);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_kick", problem);
    const reason = body.reason as string | undefined;
    await this.#call(
      () =>
        this.#state.kick(
          session.id,
          normalizeName(room),
          nameKey(nick as string),
          reason,
          this.#now(),
        ),
      {
        write: true,
        statuses: { not_member: STATUS.NotFound },
        messages: { not_member: `${nick as string} is not in that room` },
      },
    );
  }

  /** A moderator bans a nick or address for some minutes; matching sessions end now. */
  async ban(session: SessionInfo, body: Record<string, unknown>): Promise<StoredBan> {
    const nick = normalizeName(body.nick);
    const { address, minutes, reason } = body;
    const problem = (nick === undefined && address === undefined)
      ? "A ban needs a nick or an address"
      : (nick !== undefined ? nickProblem(nick) : null) ??
        (address !== undefined &&
            (typeof address !== "string" || !/^[0-9A-Za-z.:%_-]{1,64}$/.test(address))
          ? "The address must be an IP address"
          : null) ??
        (!Number.isSafeInteger(minutes) || (minutes as number) < 1 ||
            (minutes as number) > MAX_BAN_MINUTES
          ? `minutes must be a whole number from 1 to ${MAX_BAN_MINUTES}`
          : null) ??
        reasonProblem(reason);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_ban", problem);
    const now = this.#now();
    return await this.#call(() =>
      this.#state.ban(session.id, {
        ...(nick !== undefined ? { nick: nick as string, key: nameKey(nick as string) } : {}),
        ...(address !== undefined ? { address: address as string } : {}),
        until: now + (minutes as number) * 60_000,
        ...(reason !== undefined ? { reason: reason as string } : {}),
      }, now), WRITE);
  }

  /** Bans in force (moderators only). */
  bans(session: SessionInfo): MaybePromise<StoredBan[]> {
    if (!session.moderator) throw refusal(new Refusal("forbidden"));
    return this.#call(() => this.#state.bans(this.#now()));
  }

  /** Lifts a ban (moderators only). */
  async unban(session: SessionInfo, id: string): Promise<void> {
    await this.#call(() => this.#state.unban(session.id, id), {
      write: true,
      messages: { not_found: "There is no such ban" },
    });
  }

  /** Opens the private room with the session of `nick`. */
  async direct(session: SessionInfo, nickValue: unknown) {
    const nick = normalizeName(nickValue);
    const problem = nickProblem(nick);
    if (problem) throw new HttpError(STATUS.UnprocessableContent, "invalid_nick", problem);
    return await this.#call(
      () => this.#state.direct(session.id, nameKey(nick as string), this.#now()),
      WRITE,
    );
  }

  /** A typing notice for the room's waiting members; rate-limited like sends, never stored. */
  async typing(session: SessionInfo, room: string): Promise<void> {
    const now = this.#now();
    const wait = await this.#call(() =>
      this.#state.takeRate("typing", session.id, this.#options.sendRate, now)
    );
    if (wait > 0) throw rateLimited("You are sending typing notices too fast", wait);
    await this.#call(() => this.#state.typing(session.id, normalizeName(room), now));
  }

  /** A count of the batches of events heard: what `poll` takes as `since`. */
  get eventsHeard(): number {
    return this.#heard;
  }

  /**
   * The long poll: events after `cursor` in the session's rooms, at once if there are any, else
   * when the next one comes or after `waitSeconds` (then with no events and the same cursor).
   * `since` is `eventsHeard` from before `session` was read: should the session join or leave a
   * room after that (another instance, or while a read was on its way), the poll reads the
   * session again rather than wait on the rooms it had.
   */
  poll(
    session: SessionInfo,
    cursorText: string | null,
    waitSeconds: number,
    signal: Abortable,
    since = this.#heard,
  ): MaybePromise<PollAnswer> {
    // Events heard while a read is on its way (a remote backend) may be missing from it: the
    // waiter then checks once more after it is registered, so no wake-up falls between the two.
    const heard = since;
    const asked = cursorText === null ? 0 : cursorNumber(cursorText);
    return maybeThen(this.#call(() => this.#state.lastId(asked)), (lastId) => {
      const cursor = cursorText === null ? lastId : cursorAtMost(asked, lastId);
      const ranges = rangesOf(session, cursor);
      const forgot = forgotAfter(session, cursor);
      let key = groupKey(cursor, ranges);
      if (forgot > 0) key += `|!${forgot}`;
      // Polls from the same cursor over the same rooms, since the last event: the same answer.
      const recent = this.#recent.get(key);
      if (recent !== undefined && !this.#movedSince(session.id, heard)) {
        this.counters.delivered += recent.count;
        return recent;
      }
      return maybeThen(this.#read(ranges), (read) => {
        // Its rooms changed meanwhile: answering from the old ones could move the cursor past
        // events of a room just joined, and waiting on them would miss those to come.
        if (this.#movedSince(session.id, heard)) {
          const again = this.#heard;
          return maybeThen(
            this.#call(() => this.#state.refresh(session)),
            // An ended session answers from what it had; its next poll gets the 401.
            (fresh) => this.poll(fresh ?? session, cursorText, waitSeconds, signal, again),
          );
        }
        const ready = this.#answer(read, cursor, forgot);
        if (ready.count > 0 || ready.gap) {
          if (this.#heard === heard) this.#remember(key, ready);
          this.counters.delivered += ready.count;
          return ready;
        }
        if (waitSeconds <= 0 || this.#draining || signal.aborted) return ready;
        return new Promise<PollAnswer>((resolve) => {
          const waiter: Waiter = {
            session,
            group: this.#group(key, cursor, ranges),
            moving: 0,
            resolve,
            signal,
            onAbort: () => this.#finish(waiter, this.#answer({ events: [], gap: false }, cursor)),
          };
          signal.addEventListener("abort", waiter.onAbort, { once: true });
          this.#enter(waiter);
          this.#deadlines.add(waiter, waitSeconds * 1000);
          if (this.#heard !== heard) this.#check(waiter.group);
        });
      });
    });
  }

  /**
   * Keeps presence and deadlines: marks sessions with polls open here (or that polled since the
   * last sweep) present, ends those absent for the grace, answers store calls past their deadline
   * 503, and checks the backend's health. The app calls it every second.
   */
  async sweep(): Promise<void> {
    this.expireCalls();
    // One sweep at a time: calls queued behind a stalled one would reach the store when it comes
    // back, with the times of before (an expiry then ends sessions nobody could mark meanwhile).
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      await this.#sweepStore();
    } finally {
      this.#sweeping = false;
    }
  }

  async #sweepStore(): Promise<void> {
    const now = this.#now();
    const present = this.#seen;
    this.#seen = new Map();
    // A session with a poll open is present, but marking it so once per quarter grace (at most
    // every 15 s) keeps it as far from expiring, without walking every waiting poll each second.
    const graceMs = this.#options.presenceGrace * 1000;
    if (now - this.#touchedOpen >= Math.min(TOUCH_OPEN_MS, graceMs / 4)) {
      this.#touchedOpen = now;
      // forEach: no iterator result per entry, as a loop run once a second (never optimised) has.
      this.#bySession.forEach((_, id) => present.set(id, now));
    }
    try {
      if (present.size > 0) await this.#call(() => this.#state.touch(present));
      // Out at the last sweep: a read tells whether it is back.
      else if (this.#storeOut) await this.#call(() => this.#state.lastId());
    } catch (error) {
      // Failures are counted and logged by #call; the next sweep tries again with these too,
      // and the polls open here are marked present again at once.
      if (!(error instanceof HttpError)) throw error;
      for (const [id, at] of present) if (!(this.#seen.get(id)! >= at)) this.#seen.set(id, at);
      this.#touchedOpen = -Infinity;
      this.#storeOut = true;
      return;
    }
    if (this.#storeOut) {
      // While the store was out, no instance could mark its sessions present: none is ended for
      // absence until a whole grace after it came back, so every instance has marked its own.
      this.#storeOut = false;
      this.#expireFrom = now + graceMs;
    }
    if (now < this.#expireFrom) return;
    try {
      await this.#call(() => this.#state.expire(now, graceMs));
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      this.#storeOut = true;
    }
  }

  /** Checks what no failed call would show (a replaced database file); the app calls it now and then. */
  async checkHealth(): Promise<void> {
    try {
      this.#health.backend(await this.#state.checkHealth());
    } catch (error) {
      this.#health.backend({ ok: false, reason: errorLine(error) });
    }
    // Calls failed and none succeeded since (maybe no traffic comes, e.g. a load balancer took
    // this instance out on its 503): a write of its own shows whether the store works again.
    if (this.#health.failing && this.#stalled === 0) {
      try {
        await this.#call(() => this.#state.probe(this.#now()), WRITE);
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
      }
    }
  }

  /** Answers 503 every store call that has run past `--store-timeout`. */
  expireCalls(): void {
    const now = this.#now();
    const limit = this.#options.storeTimeout * 1000;
    for (const call of this.#inFlight) {
      // Insertion order is start order: the first one still in time ends the walk.
      if (now - call.started < limit) break;
      call.expire();
    }
  }

  /** Starts shutdown: waiting polls answer now with `close`, new polls do not wait. */
  shutdown(): void {
    this.#draining = true;
    this.#recent.clear();
    for (const group of [...this.#groups.values()]) {
      const answer = this.#answer({ events: [], gap: false }, group.cursor);
      for (const waiter of [...group.waiters]) this.#finish(waiter, answer);
    }
  }

  /**
   * Runs a state call: its refusals become HTTP errors, its failures 503 store_unavailable
   * (counted and logged), and a call still running after `--store-timeout` is answered 503 while
   * it goes on (the store counts as stalled until it finishes).
   */
  #call<T>(op: () => MaybePromise<T>, how: CallOptions = {}): MaybePromise<T> {
    let result: MaybePromise<T>;
    try {
      result = op();
    } catch (error) {
      throw this.#error(error, how);
    }
    if (!(result instanceof Promise)) return result;
    return new Promise<T>((resolve, reject) => {
      const call: InFlight = {
        started: this.#now(),
        expire: () => {
          this.#inFlight.delete(call);
          this.#stalled++;
          const seconds = this.#options.storeTimeout;
          this.#health.failed(`a store call did not finish within ${seconds} s`);
          reject(unavailable());
        },
      };
      this.#inFlight.add(call);
      // Only a write that succeeds while nothing is stalled shows the store works again.
      const succeeded = () => {
        if (how.write && this.#stalled === 0) this.#health.succeeded();
      };
      result.then(
        (value) => {
          if (!this.#inFlight.delete(call)) {
            // Answered 503 already; that it finished at all means the store moves again.
            this.#stalled--;
            return succeeded();
          }
          succeeded();
          resolve(value);
        },
        (error) => {
          if (!this.#inFlight.delete(call)) {
            this.#stalled--;
            return;
          }
          try {
            reject(this.#error(error, how));
          } catch (unexpected) {
            reject(unexpected);
          }
        },
      );
    });
  }

  #error(error: unknown, how: CallOptions): unknown {
    if (error instanceof Refusal) return refusal(error, how.statuses, how.messages);
    if (error instanceof StorageError) {
      this.#health.failed(error.message);
      return unavailable();
    }
    return error;
  }

  #read(ranges: readonly RoomRange[]): MaybePromise<ReadResult> {
    return this.#call(() => this.#state.read(ranges, MAX_EVENTS_PER_POLL));
  }

  /** Keeps an answer for later polls with the same key, until the next event. */
  #remember(key: string, answer: PollAnswer): void {
    if (this.#recent.size >= RECENT_ANSWERS) this.#recent.clear();
    this.#recent.set(key, answer);
  }

  #group(key: string, cursor: number, ranges: RoomRange[]): Group {
    let group = this.#groups.get(key);
    if (!group) {
      group = { key, cursor, ranges, waiters: new Set() };
      this.#groups.set(key, group);
      for (const r of ranges) {
        let groups = this.#byRoom.get(r.room);
        if (!groups) this.#byRoom.set(r.room, groups = new Set());
        groups.add(group);
      }
    }
    return group;
  }

  #enter(waiter: Waiter): void {
    waiter.group.waiters.add(waiter);
    const id = waiter.session.id;
    const held = this.#bySession.get(id);
    if (held === undefined) this.#bySession.set(id, waiter);
    else if (held instanceof Set) held.add(waiter);
    else this.#bySession.set(id, new Set([held, waiter]));
    this.#waiting++;
  }

  /** The waiting polls of a session, as a list safe to change the indexes under. */
  #waitersOf(id: string): Waiter[] {
    const held = this.#bySession.get(id);
    return held === undefined ? [] : held instanceof Set ? [...held] : [held];
  }

  /** Takes a waiter out of its group and indexes; false when it had already left them. */
  #leave(waiter: Waiter): boolean {
    const group = waiter.group;
    if (!group.waiters.delete(waiter)) return false;
    if (group.waiters.size === 0) {
      this.#groups.delete(group.key);
      for (const r of group.ranges) {
        const groups = this.#byRoom.get(r.room);
        groups?.delete(group);
        if (groups?.size === 0) this.#byRoom.delete(r.room);
      }
    }
    const id = waiter.session.id;
    const held = this.#bySession.get(id);
    if (held === waiter) this.#bySession.delete(id);
    else if (held instanceof Set) {
      held.delete(waiter);
      if (held.size === 1) this.#bySession.set(id, held.values().next().value!);
    }
    this.#waiting--;
    return true;
  }

  #finish(waiter: Waiter, answer: PollAnswer): void {
    if (!this.#leave(waiter)) return;
    this.#deadlines.remove(waiter);
    waiter.signal.removeEventListener("abort", waiter.onAbort);
    this.#seen.set(waiter.session.id, this.#now());
    this.counters.delivered += answer.count;
    waiter.resolve(answer);
  }

  /** Committed events: answers the groups reading their rooms, each with one encoded answer. */
  #onEvents(events: readonly StoredEvent[]): void {
    this.#heard++;
    this.#recent.clear();
    this.counters.events += events.length;
    const touched = new Set<Group>();
    let movers: Set<string> | null = null;
    for (const event of events) {
      const groups = this.#byRoom.get(event.room);
      if (groups) { for (const group of groups) touched.add(group); }
      if (event.type === "join" || event.type === "leave") {
        this.#noteMove(event.session);
        if (this.#bySession.has(event.session)) (movers ??= new Set()).add(event.session);
      }
    }
    // A session that joined or left reads other ranges now: move its waiters to their new group.
    for (const id of movers ?? []) {
      for (const waiter of this.#waitersOf(id)) {
        this.#regroup(waiter, touched);
      }
    }
    for (const group of touched) this.#check(group);
  }

  /** Records that a session joined or left now; only the latest moves are kept. */
  #noteMove(id: string): void {
    const moved = this.#moved;
    moved.delete(id);
    moved.set(id, this.#heard);
    if (moved.size > MOVES_KEPT) {
      const [oldest, at] = moved.entries().next().value!;
      moved.delete(oldest);
      this.#movesForgotten = at;
    }
  }

  /** Whether the session joined or left after `heard` (true when that is no longer known). */
  #movedSince(id: string, heard: number): boolean {
    if (this.#heard === heard) return false;
    return (this.#moved.get(id) ?? this.#movesForgotten) > heard;
  }

  #regroup(waiter: Waiter, touched: Set<Group>): void {
    const move = (session: SessionInfo | null, touched: Set<Group>) => {
      if (session === null) {
        // The session ended: its poll answers now with what it may still read (its leaves).
        const cursor = waiter.group.cursor;
        const read = this.#read(rangesOf(waiter.session, cursor));
        const finish = (result: ReadResult) => this.#finish(waiter, this.#answer(result, cursor));
        if (read instanceof Promise) read.then(finish, () => finish({ events: [], gap: false }));
        else finish(read);
        return;
      }
      const cursor = waiter.group.cursor;
      const forgot = forgotAfter(session, cursor);
      if (forgot > 0) {
        // Stretches it would read were forgotten meanwhile: the client reloads history instead.
        this.#finish(waiter, this.#answer({ events: [], gap: true }, cursor, forgot));
        return;
      }
      if (!this.#leave(waiter)) return;
      waiter.session = session;
      const ranges = rangesOf(session, cursor);
      waiter.group = this.#group(groupKey(cursor, ranges), cursor, ranges);
      this.#enter(waiter);
      touched.add(waiter.group);
    };
    const fresh = this.#state.refresh(waiter.session);
    if (!(fresh instanceof Promise)) return move(fresh, touched);
    waiter.moving++;
    fresh.then((session) => {
      waiter.moving--;
      const later = new Set<Group>();
      move(session, later);
      for (const group of later) this.#check(group);
    }, () => {
      waiter.moving--;
      // Its rooms are unknown: it answers nothing, and the next poll reads the session again.
      this.#finish(waiter, this.#answer({ events: [], gap: false }, waiter.group.cursor));
    });
  }

  /** Reads a group's ranges and answers its waiters if there is something for them. */
  #check(group: Group): void {
    if (group.waiters.size === 0) return;
    let read: MaybePromise<ReadResult>;
    try {
      read = this.#read(group.ranges);
    } catch {
      return; // Counted by #call; the waiters keep waiting and a later event retries.
    }
    const answer = (result: ReadResult) => {
      if (result.events.length === 0 && !result.gap) return;
      const reply = this.#answer(result, group.cursor);
      for (const waiter of [...group.waiters]) {
        if (waiter.moving === 0) this.#finish(waiter, reply);
      }
    };
    if (read instanceof Promise) read.then(answer, () => {});
    else answer(read);
  }

  #onNotice(notice: Notice): void {
    const groups = this.#byRoom.get(notice.room);
    if (!groups) return;
    const ephemeral = JSON.stringify({
      type: notice.type,
      room: notice.room,
      nick: notice.nick,
      ts: notice.ts,
    });
    for (const group of [...groups]) {
      const body = encoder.encode(
        `{"events":[],"cursor":"${group.cursor}","ephemeral":[${ephemeral}]}`,
      );
      const answer = pollAnswer(body, this.#draining, 0, false);
      for (const waiter of [...group.waiters]) {
        if (waiter.session.id !== notice.session) this.#finish(waiter, answer);
      }
    }
  }

  /** Events may have been missed: every waiting poll reads again. */
  #resync(): void {
    for (const group of [...this.#groups.values()]) this.#check(group);
  }

  /**
   * The poll answer for what was read after `cursor`; `forgot` (see `forgotAfter`) adds the gap
   * and, once all was read, moves the cursor past it so the next poll does not answer it again.
   */
  #answer(read: ReadResult, cursor: number, forgot = 0): PollAnswer {
    const events = read.events;
    let next = events.length > 0 ? events[events.length - 1]!.id : cursor;
    if (forgot > next && events.length < MAX_EVENTS_PER_POLL) next = forgot;
    const gap = read.gap || forgot > 0;
    const body = `{"events":${this.eventsJson(events)},"cursor":"${next}"${
      gap ? ',"gap":true' : ""
    }}`;
    return pollAnswer(encoder.encode(body), this.#draining, events.length, gap);
  }

  /** A JSON array of events as clients see them, each encoded once (joins repeat history). */
  eventsJson(events: readonly StoredEvent[]): string {
    let json = "[";
    for (let i = 0; i < events.length; i++) {
      json += (i > 0 ? "," : "") + this.#eventJson(events[i]!);
    }
    return json + "]";
  }

  /** The public JSON of an event (without its session), computed once per event object. */
  #eventJson(event: StoredEvent): string {
    let json = this.#json.get(event);
    if (json === undefined) {
      json = JSON.stringify(publicEvent(event));
      this.#json.set(event, json);
    }
    return json;
  }
}

/** A poll answer: `200` with the JSON headers, shared by the waiters it is given to. */
function pollAnswer(body: Uint8Array, close: boolean, count: number, gap: boolean): PollAnswer {
  return { status: STATUS.OK, headers: JSON_HEADERS, body, close, shared: true, count, gap };
}

/** An event as clients see it: the stored one without the author's session id. */
export function publicEvent(event: StoredEvent): Omit<StoredEvent, "session"> {
  const { session: _, ...rest } = event;
  return rest;
}

/** A ban as clients see it. */
export function publicBan(ban: StoredBan): Omit<StoredBan, "by" | "createdAt"> {
  const { by: _, createdAt: __, ...rest } = ban;
  return rest;
}

/** The key of what a poll reads: its cursor and ranges (polls with one key get one answer). */
function groupKey(cursor: number, ranges: readonly RoomRange[]): string {
  let key = String(cursor);
  for (const r of ranges) key += `|${r.room}:${r.from}:${r.to}`;
  return key;
}

/**
 * What a session reads from `cursor` on: each room from its join, up to its leave, and the earlier
 * stretches of rooms it left and joined again.
 */
function rangesOf(session: SessionInfo, cursor: number): RoomRange[] {
  const ranges: RoomRange[] = [];
  for (const [room, m] of session.rooms) {
    for (const [joinId, leftId] of m.earlier ?? []) {
      addStretch(ranges, room, cursor, joinId, leftId);
    }
    addStretch(ranges, room, cursor, m.joinId, m.leftId ?? Infinity);
  }
  if (ranges.length > 1) ranges.sort((a, b) => (a.room < b.room ? -1 : a.room > b.room ? 1 : 0));
  return ranges;
}

/**
 * The newest forgotten stretch's leave after `cursor` in any of the session's rooms, or 0: what it
 * saw then cannot be read any more (`Membership.forgot`).
 */
function forgotAfter(session: SessionInfo, cursor: number): number {
  let forgot = session.forgot > cursor ? session.forgot : 0;
  for (const m of session.rooms.values()) {
    if (m.forgot !== undefined && m.forgot > cursor && m.forgot > forgot) forgot = m.forgot;
  }
  return forgot;
}

/** Adds what a stretch of membership (from its join to its leave) holds after `cursor`, if any. */
function addStretch(
  ranges: RoomRange[],
  room: string,
  cursor: number,
  joinId: number,
  to: number,
): void {
  const from = Math.max(cursor, joinId - 1);
  if (from < to) ranges.push({ room, from, to });
}

/** A cursor's number; 400 invalid_cursor for text no server gives. */
function cursorNumber(text: string): number {
  if (!/^\d{1,15}$/.test(text)) {
    throw new HttpError(
      STATUS.BadRequest,
      "invalid_cursor",
      "The cursor is not one this server gave",
    );
  }
  return Number(text);
}

/** A cursor no later than the last event; 400 invalid_cursor for one from the future. */
function cursorAtMost(cursor: number, lastId: number): number {
  if (cursor > lastId) {
    throw new HttpError(
      STATUS.BadRequest,
      "invalid_cursor",
      "The cursor is ahead of this server's events; start again without a cursor",
    );
  }
  return cursor;
}

function refusal(
  error: Refusal,
  statuses?: Partial<Record<RefusalCode, number>>,
  messages?: Partial<Record<RefusalCode, string>>,
): HttpError {
  if (error.code === "rate_limited") return rateLimited("You are sending too fast", error.retryMs);
  const [status, text] = REFUSALS[error.code];
  const code = error.code === "own_nick" ? "invalid_nick" : error.code;
  const headers: Record<string, string> = error.code === "unauthorized"
    ? { "WWW-Authenticate": "Bearer" }
    : {};
  const ban = error.ban;
  if (ban) {
    return new HttpError(
      STATUS.Forbidden,
      "banned",
      `You are banned${ban.reason ? `: ${ban.reason}` : ""}`,
      {
        details: { until: ban.until, ...(ban.reason !== undefined ? { reason: ban.reason } : {}) },
      },
    );
  }
  return new HttpError(statuses?.[error.code] ?? status, code, messages?.[error.code] ?? text, {
    headers,
  });
}

function unavailable(): HttpError {
  return new HttpError(
    STATUS.ServiceUnavailable,
    "store_unavailable",
    "The store could not do this now; try again",
    { headers: { "Retry-After": "1" } },
  );
}

function rateLimited(message: string, waitMs: number): HttpError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return new HttpError(
    STATUS.TooManyRequests,
    "rate_limited",
    `${message}; retry in ${seconds} s`,
    { headers: { "Retry-After": String(seconds) } },
  );
}

function topicProblem(topic: unknown): string | null {
  if (typeof topic !== "string") return "The topic must be a string";
  if (topic.trim() === "") return null; // clears it
  return textProblem(topic, MAX_TOPIC, "topic");
}

function reasonProblem(reason: unknown): string | null {
  if (reason === undefined) return null;
  return textProblem(reason, MAX_REASON, "reason");
}

/** Compares secrets in time independent of where they differ. */
function sameSecret(given: string, secret: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(secret);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i % (a.length || 1)] ?? 0) ^ b[i]!;
  return diff === 0;
}
