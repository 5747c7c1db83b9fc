/**
 * The shared state of one process (`--store memory` and `sqlite:`): everything hot in memory,
 * every change written through an `EventLog` first and applied here only once it committed, so
 * nothing answered 2xx is lost and listeners see one total order.
 *
 * Every decision is made synchronously on the state as it is at that moment, with changes still
 * committing counted as done (a leave in flight makes the session no member; a join in flight is
 * awaited, then the decision is made again): no check is ever acted on after an await.
 */
import { type Rate, RateLimiter, TokenBucket } from "../chat/rate_limiter.ts";
import { isPrivateRoom, nameKey } from "../chat/validation.ts";
import {
  type Change,
  editedEvent,
  erasedEvent,
  type EventLog,
  LEFT_KEPT,
  type Membership,
  type NewEvent,
  rejoined,
  SENDS_KEPT,
  type StoredBan,
  type StoredEvent,
  type StoredSession,
  withEarlier,
} from "./event_log.ts";
import { LazyMap } from "./lazy_map.ts";
import {
  type BackendHealth,
  type DirectResult,
  JOIN_HISTORY,
  JOIN_MEMBERS,
  type JoinResult,
  type MembersPage,
  type NewBan,
  type NewSession,
  type ReadResult,
  Refusal,
  type RoomRange,
  type RoomSummary,
  type SessionInfo,
  type SharedState,
  type StateListener,
  TYPING_INTERVAL_MS,
  TYPING_MAX_MEMBERS,
} from "./shared_state.ts";

/** Options of {@linkcode LocalState.open}. */
export interface LocalStateOptions {
  /** Events kept per room (`--history`). */
  history: number;
  /** The clock, for what loading decides (sessions it ends). */
  now?: () => number;
  /** Told about data it had to repair at load (nick collisions). */
  warn?: (message: string, fields: Record<string, string>) => void;
}

/** A session with the state only this backend keeps. */
class LocalSession implements SessionInfo {
  readonly id: string;
  readonly token: string;
  readonly nick: string;
  readonly key: string;
  readonly createdAt: number;
  readonly address: string;
  readonly moderator: boolean;
  readonly rooms = new Map<string, Membership>();
  forgot = 0;
  lastSeen: number;
  bucket: TokenBucket | null = null;
  /** Committed sends by client id, oldest first. */
  readonly sent = new LazyMap<string, StoredEvent>();
  /** Sends by client id still committing: a repeat waits for the first. */
  readonly sending = new LazyMap<string, Promise<StoredEvent>>();
  /** Joins and leaves still committing, by room. */
  readonly joining = new LazyMap<string, Promise<unknown>>();
  readonly leaving = new LazyMap<string, Promise<unknown>>();
  /** The end of the session while it commits: every other operation waits for it. */
  ending: Promise<void> | null = null;
  ended = false;

  constructor(stored: StoredSession, now: number) {
    this.id = stored.id;
    this.token = stored.token;
    this.nick = stored.nick;
    this.key = nameKey(stored.nick);
    this.createdAt = stored.createdAt;
    this.address = stored.address;
    this.moderator = stored.moderator;
    this.forgot = stored.forgot ?? 0;
    for (const [room, m] of Object.entries(stored.rooms)) this.rooms.set(room, { ...m });
    this.lastSeen = now;
  }

  /** Whether the session is in `room` now (joined, not left, no leave committing). */
  isMember(room: string): boolean {
    const m = this.rooms.get(room);
    return m !== undefined && m.leftId === undefined && !this.leaving.has(room);
  }

  toStored(): StoredSession {
    return {
      id: this.id,
      token: this.token,
      nick: this.nick,
      createdAt: this.createdAt,
      address: this.address,
      moderator: this.moderator,
      rooms: Object.fromEntries(this.rooms),
    };
  }
}

interface LocalRoom {
  name: string;
  /** The last `history` events, oldest first, ids increasing. */
  events: StoredEvent[];
  droppedThrough: number;
  /** Nicks of the members, sorted by code point (`compare`). */
  members: string[];
  topic?: string;
  pair?: [string, string];
}

const noop = () => {};

/** The `SharedState` of one process: see the module comment. */
export class LocalState implements SharedState {
  readonly kind: string;
  #log: EventLog;
  #history: number;
  #listener: StateListener | null = null;
  #lastId = 0;
  #rooms = new Map<string, LocalRoom>();
  #byToken = new Map<string, LocalSession>();
  #byId = new Map<string, LocalSession>();
  /** Sessions by nick key; null while a new session with that nick commits. */
  #byKey = new Map<string, LocalSession | null>();
  #bans = new Map<string, StoredBan>();
  #limiters = new Map<string, RateLimiter>();
  /** Last typing notice passed on, by session and room. */
  #typing = new Map<string, number>();
  /** Messages whose delete is committing: an edit racing it must not bring the text back. */
  #removing = new Set<number>();
  /** Private rooms being opened, by name. */
  #opening = new Map<string, Promise<unknown>>();
  /** Names of the private rooms, and by session id the private rooms of each session. */
  #private = new Set<string>();
  #privateOf = new Map<string, Set<string>>();
  /** Sessions still committing their creation: a ban that matches one waits for it. */
  #creating = new Set<{ key: string; address: string; done: Promise<unknown> }>();
  /** Bans still committing: they refuse new sessions already. */
  #banning = new Set<StoredBan>();

  private constructor(log: EventLog, history: number) {
    this.#log = log;
    this.kind = log.kind;
    this.#history = history;
  }

  /** Loads what `log` persisted; sessions whose nicks collide by case folding keep the earlier. */
  static async open(log: EventLog, options: LocalStateOptions): Promise<LocalState> {
    const state = new LocalState(log, options.history);
    const now = (options.now ?? Date.now)();
    const snapshot = await log.load();
    state.#lastId = snapshot.lastId;
    for (const ban of snapshot.bans) state.#bans.set(ban.id, ban);
    const collisions: LocalSession[] = [];
    const sessions = [...snapshot.sessions].sort((a, b) =>
      a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    );
    for (const stored of sessions) {
      const session = new LocalSession(stored, now);
      state.#byId.set(session.id, session);
      const holder = state.#byKey.get(session.key);
      if (holder) {
        // Files from before full case folding may hold two sessions that are one nick now.
        options.warn?.("two stored sessions have one nick; ending the later", {
          kept: holder.nick,
          ended: session.nick,
        });
        collisions.push(session);
        continue;
      }
      state.#byToken.set(session.token, session);
      state.#byKey.set(session.key, session);
    }
    for (const stored of snapshot.rooms) {
      const room = state.#room(stored.name, stored.pair);
      room.events = stored.events.slice(-options.history);
      // Events cut here (a log holding more than --history) are dropped too: polls from before
      // them must see the gap.
      const cut = stored.events.length - room.events.length;
      room.droppedThrough = cut > 0
        ? Math.max(stored.droppedThrough, stored.events[cut - 1]!.id)
        : stored.droppedThrough;
      if (stored.topic !== undefined) room.topic = stored.topic;
    }
    state.#rebuildEarlier();
    for (const session of state.#byId.values()) {
      for (const [name, m] of session.rooms) {
        if (m.leftId === undefined) state.#room(name).members.push(session.nick);
      }
      for (const send of snapshot.sends[session.id] ?? []) {
        session.sent.set(send.clientId, send.event);
      }
    }
    for (const room of state.#rooms.values()) room.members.sort(compare);
    if (collisions.length > 0) await state.#end(collisions, now, {});
    return state;
  }

  /**
   * The earlier stretches of loaded memberships, from the joins and leaves among the kept events
   * (a log persists each session's latest membership of a room, not the ones before it), and
   * where the rooms a session left and forgot end (`SessionInfo.forgot`).
   */
  #rebuildEarlier(): void {
    for (const room of this.#rooms.values()) {
      const open = new Map<string, number>();
      const stretches = new Map<string, [number, number][]>();
      for (const event of room.events) {
        if (event.type === "join") open.set(event.session, event.id);
        if (event.type !== "leave") continue;
        // A join older than the kept events: from there on, so a poll from before it sees the gap.
        const joinId = open.get(event.session) ?? room.droppedThrough;
        open.delete(event.session);
        let list = stretches.get(event.session);
        if (!list) stretches.set(event.session, list = []);
        list.push([joinId, event.id]);
      }
      for (const [id, list] of stretches) {
        const session = this.#byId.get(id);
        if (!session) continue;
        const m = session.rooms.get(room.name);
        // A room left and forgotten (over LEFT_KEPT): polls from before its leave see the gap.
        if (!m) session.forgot = Math.max(session.forgot, list.at(-1)![1]);
        if (!m || m.earlier !== undefined) continue;
        const before = list.filter(([, leftId]) => leftId < m.joinId);
        if (before.length === 0) continue;
        const leftId = m.leftId;
        const rebuilt = withEarlier(m.joinId, before, m.forgot);
        session.rooms.set(room.name, leftId === undefined ? rebuilt : { ...rebuilt, leftId });
      }
    }
    // Stretches before the events a room kept are unknown: polls from before the drop read what
    // they can with a gap (the client reloads history) rather than as if there had been none.
    for (const session of this.#byId.values()) {
      for (const [name, m] of session.rooms) {
        const dropped = this.#rooms.get(name)?.droppedThrough ?? 0;
        const first = m.earlier?.[0]?.[0] ?? m.joinId;
        if (dropped === 0 || first <= dropped || (m.forgot ?? 0) >= dropped) continue;
        session.rooms.set(name, { ...m, forgot: dropped });
      }
    }
  }

  listen(listener: StateListener): void {
    this.#listener = listener;
  }

  lastId(): number {
    return this.#lastId;
  }

  counts(): { sessions: number; rooms: number } {
    return { sessions: this.#byToken.size, rooms: this.#rooms.size - this.#private.size };
  }

  takeRate(purpose: string, key: string, rate: Rate, now: number): number {
    let limiter = this.#limiters.get(purpose);
    if (!limiter) this.#limiters.set(purpose, limiter = new RateLimiter(rate));
    return limiter.take(key, now);
  }

  async createSession(input: NewSession, now: number): Promise<SessionInfo> {
    const ban = this.#banOf(input.key, input.address, now);
    if (ban) throw new Refusal("banned", { ban });
    if (this.#byKey.has(input.key)) throw new Refusal("nick_taken");
    // Held while the session commits, so two concurrent requests cannot both get the nick.
    this.#byKey.set(input.key, null);
    const session = new LocalSession({
      id: crypto.randomUUID(),
      token: randomToken(),
      nick: input.nick,
      createdAt: now,
      address: input.address,
      moderator: input.moderator,
      rooms: {},
    }, now);
    const done = this.#log.putSession(session.toStored());
    const creating = { key: input.key, address: input.address, done };
    this.#creating.add(creating);
    try {
      await done;
    } catch (error) {
      this.#byKey.delete(input.key);
      throw error;
    } finally {
      this.#creating.delete(creating);
    }
    this.#byToken.set(session.token, session);
    this.#byId.set(session.id, session);
    this.#byKey.set(session.key, session);
    return session;
  }

  authenticate(token: string, now: number): SessionInfo | null {
    const session = this.#byToken.get(token);
    if (!session || session.ended) return null;
    session.lastSeen = now;
    return session;
  }

  refresh(session: SessionInfo): SessionInfo | null {
    const live = this.#byId.get(session.id);
    return live && !live.ended ? live : null;
  }

  touch(seen: ReadonlyMap<string, number>): void {
    for (const [id, at] of seen) {
      const session = this.#byId.get(id);
      if (session && at > session.lastSeen) session.lastSeen = at;
    }
  }

  async endSession(id: string, now: number): Promise<void> {
    const session = this.#live(id);
    await (session.ending ?? this.#end([session], now, {}));
  }

  async expire(now: number, graceMs: number): Promise<number> {
    for (const limiter of this.#limiters.values()) limiter.prune(now);
    for (const [key, at] of this.#typing) {
      if (now - at >= TYPING_INTERVAL_MS) this.#typing.delete(key);
    }
    const lapsed = [...this.#bans.values()].filter((ban) => ban.until <= now).map((ban) => ban.id);
    if (lapsed.length > 0) await this.#commit({ deleteBans: lapsed });
    const expired: LocalSession[] = [];
    this.#byToken.forEach((s) => {
      if (s.ending === null && now - s.lastSeen >= graceMs) expired.push(s);
    });
    if (expired.length > 0) await this.#end(expired, now, {});
    return expired.length;
  }

  async join(id: string, name: string, now: number): Promise<JoinResult> {
    for (;;) {
      const session = this.#live(id);
      if (session.ending) {
        await session.ending.catch(noop);
        continue;
      }
      const room = this.#rooms.get(name);
      if (isPrivateRoom(name) && !room?.pair?.includes(session.id)) {
        throw new Refusal("private_room");
      }
      // A leave still committing would undo this join after it answered: let it land first.
      const pending = session.leaving.get(name) ?? session.joining.get(name);
      if (pending) {
        await pending.catch(noop);
        continue;
      }
      if (session.isMember(name)) return this.#joinView(name, Infinity);
      const joining = this.#commit({ events: [presence("join", session, name, now)] });
      session.joining.set(name, joining);
      try {
        const [event] = await joining;
        return this.#joinView(name, event!.id);
      } finally {
        session.joining.delete(name);
      }
    }
  }

  async leave(id: string, room: string, now: number): Promise<void> {
    await this.#leave(() => this.#live(id), room, now, {});
  }

  members(id: string, name: string, after: string | null, limit: number): MembersPage {
    this.#member(id, name);
    return memberPage(this.#rooms.get(name)!.members, after, limit);
  }

  rooms(): RoomSummary[] {
    const out: RoomSummary[] = [];
    for (const room of this.#rooms.values()) {
      if (!room.pair) out.push({ name: room.name, members: room.members.length });
    }
    return out.sort((a, b) => compare(a.name, b.name));
  }

  history(id: string, name: string, beforeId: number, limit: number): StoredEvent[] {
    this.#member(id, name);
    return before(this.#rooms.get(name)!.events, beforeId, limit);
  }

  read(ranges: readonly RoomRange[], limit: number): ReadResult {
    let gap = false;
    let events: StoredEvent[] = [];
    for (const { room: name, from, to } of ranges) {
      const room = this.#rooms.get(name);
      if (!room) continue;
      if (room.droppedThrough > from) gap = true;
      const found = between(room.events, from, to);
      if (found.length > 0) events = events.length === 0 ? found : events.concat(found);
    }
    if (ranges.length > 1) events.sort((a, b) => a.id - b.id);
    if (events.length > limit) events = events.slice(0, limit);
    return { events, gap };
  }

  async send(
    id: string,
    room: string,
    text: string,
    clientId: string | undefined,
    now: number,
    rate: Rate,
  ): Promise<{ event: StoredEvent; created: boolean }> {
    const settled = this.#settled(id);
    const session = settled instanceof Promise ? await settled : settled;
    const joining = session.joining.get(room);
    if (joining) {
      // A join still committing was asked for first: decide once it landed.
      await joining.catch(noop);
      return await this.send(id, room, text, clientId, now, rate);
    }
    // A leave still committing counts as done: a message stored after it would come from someone
    // who already left.
    if (!session.isMember(room)) throw new Refusal("not_member");
    if (clientId !== undefined) {
      const earlier = session.sent.get(clientId);
      if (earlier) return { event: earlier, created: false };
      const sending = session.sending.get(clientId);
      if (sending) return { event: await sending, created: false };
    }
    session.bucket ??= new TokenBucket(rate, now);
    const wait = session.bucket.take(now);
    if (wait > 0) throw new Refusal("rate_limited", { retryMs: wait });
    const event: NewEvent = {
      type: "message",
      room,
      nick: session.nick,
      text,
      ts: now,
      session: id,
    };
    if (clientId !== undefined) event.clientId = clientId;
    const sending = this.#commit({ events: [event] }).then((events) => events[0]!);
    if (clientId === undefined) return { event: await sending, created: true };
    session.sending.set(clientId, sending);
    try {
      return { event: await sending, created: true };
    } finally {
      session.sending.delete(clientId);
    }
  }

  async edit(
    id: string,
    room: string,
    ref: number,
    text: string,
    now: number,
    windowMs: number,
  ): Promise<StoredEvent> {
    const settled = this.#settled(id);
    const session = settled instanceof Promise ? await settled : settled;
    // No membership check: an author keeps their messages after leaving the room (DESIGN.md).
    const original = this.#message(room, ref);
    if (original.session !== session.id) throw new Refusal("not_author");
    if (windowMs <= 0 || now - original.ts > windowMs) throw new Refusal("edit_window_passed");
    const [event] = await this.#commit({
      events: [{ type: "edit", room, nick: session.nick, text, ts: now, ref, session: id }],
      edits: [{ room, id: ref, author: original.session, text }],
    });
    return event!;
  }

  async remove(id: string, room: string, ref: number, now: number): Promise<void> {
    const settled = this.#settled(id);
    const session = settled instanceof Promise ? await settled : settled;
    const original = this.#message(room, ref);
    const own = original.session === session.id;
    if (!own && !session.moderator) throw new Refusal("not_author");
    const event: NewEvent = {
      type: "delete",
      room,
      nick: original.nick,
      ts: now,
      ref,
      session: id,
    };
    if (!own) event.by = session.nick;
    this.#removing.add(ref);
    try {
      await this.#commit({ events: [event], erase: [{ room, id: ref, author: original.session }] });
    } finally {
      this.#removing.delete(ref);
    }
  }

  async setTopic(id: string, room: string, topic: string, now: number): Promise<StoredEvent> {
    const settled = this.#settled(id);
    const session = settled instanceof Promise ? await settled : settled;
    if (!session.moderator) throw new Refusal("forbidden");
    if (isPrivateRoom(room)) throw new Refusal("private_room");
    const [event] = await this.#commit({
      events: [{ type: "topic", room, nick: session.nick, text: topic, ts: now, session: id }],
    });
    return event!;
  }

  async kick(
    id: string,
    room: string,
    key: string,
    reason: string | undefined,
    now: number,
  ): Promise<void> {
    const settled = this.#settled(id);
    const moderator = settled instanceof Promise ? await settled : settled;
    if (!moderator.moderator) throw new Refusal("forbidden");
    await this.#leave(
      () => {
        const target = this.#byKey.get(key);
        if (!target || target.ended) throw new Refusal("not_member");
        return target;
      },
      room,
      now,
      { by: moderator.nick, ...(reason !== undefined ? { reason } : {}) },
    );
  }

  async ban(id: string, request: NewBan, now: number): Promise<StoredBan> {
    const settled = this.#settled(id);
    const moderator = settled instanceof Promise ? await settled : settled;
    if (!moderator.moderator) throw new Refusal("forbidden");
    const ban: StoredBan = {
      id: crypto.randomUUID(),
      ...(request.nick !== undefined ? { nick: request.nick } : {}),
      ...(request.address !== undefined ? { address: request.address } : {}),
      until: request.until,
      ...(request.reason !== undefined ? { reason: request.reason } : {}),
      by: moderator.nick,
      createdAt: now,
    };
    // In force while it commits: a session asked for meanwhile is refused, and one whose creation
    // was already committing is awaited, then ended with the others.
    this.#banning.add(ban);
    try {
      const creating = [...this.#creating].filter((c) => matches(ban, c.key, c.address));
      if (creating.length > 0) await Promise.allSettled(creating.map((c) => c.done));
      const matched = [...this.#byToken.values()].filter((s) =>
        s.ending === null && matches(ban, s.key, s.address)
      );
      const extra = {
        putBans: [ban],
        by: moderator.nick,
        ...(ban.reason !== undefined ? { reason: ban.reason } : {}),
      };
      if (matched.length > 0) await this.#end(matched, now, extra);
      else await this.#commit({ putBans: [ban] });
    } finally {
      this.#banning.delete(ban);
    }
    return ban;
  }

  bans(now: number): StoredBan[] {
    return [...this.#bans.values()].filter((ban) => ban.until > now)
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  async unban(id: string, banId: string): Promise<void> {
    const settled = this.#settled(id);
    const moderator = settled instanceof Promise ? await settled : settled;
    if (!moderator.moderator) throw new Refusal("forbidden");
    if (!this.#bans.has(banId)) throw new Refusal("not_found");
    await this.#commit({ deleteBans: [banId] });
  }

  async direct(id: string, key: string, now: number): Promise<DirectResult> {
    for (;;) {
      const settled = this.#settled(id);
      const session = settled instanceof Promise ? await settled : settled;
      const other = this.#byKey.get(key);
      if (!other || other.ended || other.ending) throw new Refusal("no_such_nick");
      if (other === session) throw new Refusal("own_nick");
      const name = await privateRoomName(session.id, other.id);
      const pending = this.#opening.get(name) ?? session.joining.get(name) ??
        other.joining.get(name) ?? session.leaving.get(name) ?? other.leaving.get(name);
      if (pending) {
        await pending.catch(noop);
        continue;
      }
      // Decided again after the hash above (an await): nothing checked before it is trusted.
      if (session.ending || other.ending || other.ended || session.ended) continue;
      // The other session joins first: it sees events from its own join on, so the opener's join
      // after it tells it who wrote to it.
      const joining = [other, session].filter((s) => !s.isMember(name));
      if (joining.length > 0) {
        const change: Change = { events: joining.map((s) => presence("join", s, name, now)) };
        if (!this.#rooms.has(name)) {
          change.pairs = { [name]: [session.id, other.id].sort() as [string, string] };
        }
        const opening = this.#commit(change);
        this.#opening.set(name, opening);
        for (const s of joining) s.joining.set(name, opening);
        try {
          await opening;
        } finally {
          this.#opening.delete(name);
          for (const s of joining) s.joining.delete(name);
        }
      }
      const room = this.#rooms.get(name)!;
      return { room: name, with: other.nick, history: before(room.events, Infinity, JOIN_HISTORY) };
    }
  }

  typing(id: string, room: string, now: number): void {
    const session = this.#member(id, room);
    if (this.#rooms.get(room)!.members.length > TYPING_MAX_MEMBERS) return;
    const key = `${id}\n${room}`;
    const last = this.#typing.get(key);
    if (last !== undefined && now - last < TYPING_INTERVAL_MS) return;
    this.#typing.set(key, now);
    this.#listener?.notice({ type: "typing", room, nick: session.nick, ts: now, session: id });
  }

  async probe(now: number): Promise<void> {
    await this.#commit({ probe: now });
  }

  async checkHealth(): Promise<BackendHealth> {
    const problem = await this.#log.check?.();
    return problem ? { ok: false, reason: problem } : { ok: true };
  }

  close(deadlineMs?: number): Promise<number> {
    return this.#log.close(deadlineMs);
  }

  /** The live session `id`; `unauthorized` once it ended. */
  #live(id: string): LocalSession {
    const session = this.#byId.get(id);
    if (!session || session.ended) throw new Refusal("unauthorized");
    return session;
  }

  /**
   * The live session once no end of it is committing: at once (no promise, so no other call slips
   * in) when none is, as callers must decide and act in the same turn.
   */
  #settled(id: string): LocalSession | Promise<LocalSession> {
    const session = this.#live(id);
    return session.ending ? session.ending.catch(noop).then(() => this.#settled(id)) : session;
  }

  /** The live session `id`, a member of `room` now. */
  #member(id: string, room: string): LocalSession {
    const session = this.#live(id);
    if (!session.isMember(room)) throw new Refusal("not_member");
    return session;
  }

  /** A kept, undeleted message of a room, not being deleted. */
  #message(name: string, ref: number): StoredEvent {
    const room = this.#rooms.get(name);
    const event = room ? find(room.events, ref) : undefined;
    if (!event || event.type !== "message" || event.deleted || this.#removing.has(ref)) {
      throw new Refusal("not_found");
    }
    return event;
  }

  async #leave(
    target: () => LocalSession,
    room: string,
    now: number,
    extra: { by?: string; reason?: string },
  ): Promise<void> {
    for (;;) {
      const session = target();
      const pending = session.ending ?? session.joining.get(room);
      if (pending) {
        await pending.catch(noop);
        continue;
      }
      // A leave already committing counts: a second one would store a second leave event.
      if (!session.isMember(room)) throw new Refusal("not_member");
      const leaving = this.#commit({
        events: [{ ...presence("leave", session, room, now), ...extra }],
      });
      session.leaving.set(room, leaving);
      try {
        await leaving;
        return;
      } finally {
        session.leaving.delete(room);
      }
    }
  }

  /**
   * Ends sessions in one commit with `extra` (a ban): their leaves, their private rooms deleted.
   * Each session's `ending` makes every other call on it wait; a failure leaves all as they were.
   */
  #end(
    sessions: LocalSession[],
    now: number,
    extra: { putBans?: StoredBan[]; by?: string; reason?: string },
  ): Promise<void> {
    const ending = (async () => {
      // Joins and leaves still committing change which rooms to leave: let them land first.
      await Promise.allSettled(
        sessions.flatMap((s) => [...s.joining.values(), ...s.leaving.values()]),
      );
      const events: NewEvent[] = [];
      const deleteRooms = new Set<string>();
      const mark = {
        ...(extra.by !== undefined ? { by: extra.by } : {}),
        ...(extra.reason !== undefined ? { reason: extra.reason } : {}),
      };
      for (const session of sessions) {
        for (const name of session.rooms.keys()) {
          if (session.isMember(name)) {
            events.push({ ...presence("leave", session, name, now), ...mark });
          }
        }
        // Its private rooms go with it, also those it had left.
        for (const name of this.#privateOf.get(session.id) ?? []) deleteRooms.add(name);
      }
      const change: Change = {
        events,
        deleteRooms: [...deleteRooms],
        deleteSessions: sessions.map((s) => s.id),
      };
      if (extra.putBans) change.putBans = extra.putBans;
      await this.#commit(change);
    })();
    for (const session of sessions) session.ending = ending;
    // Whatever happened, nothing waits on this end any more; a failed one changed nothing.
    ending.then(noop, noop).finally(() => {
      for (const session of sessions) if (session.ending === ending) session.ending = null;
    });
    return ending;
  }

  /** Commits through the log, then applies the change and tells the listener, in commit order. */
  #commit(change: Change): Promise<StoredEvent[]> {
    return this.#log.commit(change).then((events) => {
      this.#apply(change, events);
      return events;
    });
  }

  #apply(change: Change, events: StoredEvent[]): void {
    for (const event of events) this.#applyEvent(event, change.pairs);
    for (const ban of change.putBans ?? []) this.#bans.set(ban.id, ban);
    for (const id of change.deleteBans ?? []) this.#bans.delete(id);
    if (events.length > 0) this.#listener?.events(events);
    // After the listener: waiting polls got the leaves before their rooms disappear.
    for (const name of change.deleteRooms ?? []) {
      const room = this.#rooms.get(name);
      if (!room) continue;
      this.#rooms.delete(name);
      this.#private.delete(name);
      const last = room.events.at(-1)?.id ?? 0;
      for (const id of room.pair ?? []) {
        const session = this.#byId.get(id);
        if (session?.rooms.delete(name)) session.forgot = Math.max(session.forgot, last);
        // Its remembered sends go with its history.
        for (const [clientId, event] of session?.sent ?? []) {
          if (event.room === name) session!.sent.delete(clientId);
        }
        const rooms = this.#privateOf.get(id);
        rooms?.delete(name);
        if (rooms?.size === 0) this.#privateOf.delete(id);
      }
    }
    for (const id of change.deleteSessions ?? []) {
      const session = this.#byId.get(id);
      if (!session) continue;
      session.ended = true;
      this.#byId.delete(id);
      this.#byToken.delete(session.token);
      if (this.#byKey.get(session.key) === session) this.#byKey.delete(session.key);
    }
  }

  #applyEvent(event: StoredEvent, pairs: Change["pairs"]): void {
    if (event.id > this.#lastId) this.#lastId = event.id;
    const room = this.#room(event.room, pairs?.[event.room]);
    const author = this.#byId.get(event.session);
    switch (event.type) {
      case "join":
        if (author) {
          const previous = author.rooms.get(room.name);
          author.rooms.delete(room.name); // re-inserted last: newest memberships last
          author.rooms.set(room.name, rejoined(event.id, previous));
          if (previous === undefined || previous.leftId !== undefined) {
            insert(room.members, author.nick);
          }
        }
        break;
      case "leave":
        if (author) {
          const m = author.rooms.get(room.name);
          if (m && m.leftId === undefined) {
            author.rooms.set(room.name, { ...m, leftId: event.id });
            remove(room.members, author.nick);
            forgetOldLeaves(author);
          }
        }
        break;
      case "message":
        if (author && event.clientId !== undefined) {
          author.sent.set(event.clientId, event);
          if (author.sent.size > SENDS_KEPT) author.sent.delete(author.sent.keys().next().value!);
        }
        break;
      case "edit":
        this.#rewrite(
          room,
          event.ref!,
          (e) => e.type === "message" ? editedEvent(e, event.text!) : e,
        );
        break;
      case "delete":
        this.#rewrite(room, event.ref!, erasedEvent);
        break;
      case "topic":
        if (event.text) room.topic = event.text;
        else delete room.topic;
        break;
    }
    room.events.push(event);
    if (room.events.length > this.#history) room.droppedThrough = room.events.shift()!.id;
  }

  /** Replaces a message (and, for deletes, its edits) with `change` of it, kept sends included. */
  #rewrite(room: LocalRoom, ref: number, change: (event: StoredEvent) => StoredEvent): void {
    const events = room.events;
    const at = index(events, ref);
    if (at < events.length && events[at]!.id === ref) {
      const original = events[at]!;
      const updated = change(original);
      events[at] = updated;
      const author = this.#byId.get(original.session);
      // By id: after a load the remembered send is a copy of the room's event, not the same object.
      if (original.clientId !== undefined && author?.sent.get(original.clientId)?.id === ref) {
        author.sent.set(original.clientId, updated);
      }
    }
    if (change === erasedEvent) {
      for (let i = at + 1; i < events.length; i++) {
        const e = events[i]!;
        if (e.type === "edit" && e.ref === ref) events[i] = erasedEvent(e);
      }
    }
  }

  #room(name: string, pair?: [string, string]): LocalRoom {
    let room = this.#rooms.get(name);
    if (!room) {
      room = { name, events: [], droppedThrough: 0, members: [] };
      if (pair) {
        room.pair = pair;
        this.#private.add(name);
        for (const id of pair) {
          let rooms = this.#privateOf.get(id);
          if (!rooms) this.#privateOf.set(id, rooms = new Set());
          rooms.add(name);
        }
      }
      this.#rooms.set(name, room);
    }
    return room;
  }

  #joinView(name: string, joinId: number): JoinResult {
    const room = this.#rooms.get(name)!;
    const view: JoinResult = {
      room: name,
      members: room.members.slice(0, JOIN_MEMBERS),
      memberCount: room.members.length,
      // A fresh join gets what came before it (its own join and later come by poll); joining
      // again, e.g. after a page reload, gets the latest events, which the client dedupes by id.
      history: before(room.events, joinId, JOIN_HISTORY),
    };
    if (room.topic !== undefined) view.topic = room.topic;
    return view;
  }

  #banOf(key: string, address: string, now: number): StoredBan | undefined {
    for (const bans of [this.#bans.values(), this.#banning]) {
      for (const ban of bans) if (ban.until > now && matches(ban, key, address)) return ban;
    }
    return undefined;
  }
}

/** Whether a ban matches a session's nick key or address. */
function matches(ban: StoredBan, key: string, address: string): boolean {
  return (ban.nick !== undefined && nameKey(ban.nick) === key) ||
    (ban.address !== undefined && ban.address === address);
}

/**
 * The name of the private room of two sessions: the same whichever of them opens it, and the same
 * in every backend (`redis_state.lua` computes it as well): `@` and the first 16 hex digits of the
 * SHA-1 of the two ids, sorted, joined by a newline.
 */
export async function privateRoomName(a: string, b: string): Promise<string> {
  const pair = a < b ? `${a}\n${b}` : `${b}\n${a}`;
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-1", new TextEncoder().encode(pair)),
  );
  return "@" + Array.from(digest.subarray(0, 8), (x) => x.toString(16).padStart(2, "0")).join("");
}

/** A session's join or leave event in a room. */
function presence(
  type: "join" | "leave",
  session: SessionInfo,
  room: string,
  ts: number,
): NewEvent {
  return { type, room, nick: session.nick, ts, session: session.id };
}

/** Drops the oldest left memberships beyond `LEFT_KEPT`. */
function forgetOldLeaves(session: LocalSession): void {
  let left = 0;
  for (const m of session.rooms.values()) if (m.leftId !== undefined) left++;
  if (left <= LEFT_KEPT) return;
  let oldest: string | undefined;
  let oldestId = Infinity;
  for (const [room, m] of session.rooms) {
    if (m.leftId !== undefined && m.leftId < oldestId) {
      oldest = room;
      oldestId = m.leftId;
    }
  }
  if (oldest !== undefined) {
    session.rooms.delete(oldest);
    session.forgot = Math.max(session.forgot, oldestId);
  }
}

/**
 * Code point order (the UTF-8 byte order Redis sorts by), not JavaScript's UTF-16 code unit order:
 * the two differ where a surrogate (a character above U+FFFF) meets a unit from U+E000 to U+FFFF.
 */
function compare(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** A code unit moved so that surrogates sort after U+E000–U+FFFF, as their code points do. */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/** Inserts into an array sorted by `compare` (binary search; one move of the tail). */
function insert(sorted: string[], value: string): void {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(sorted[mid]!, value) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (sorted[lo] !== value) sorted.splice(lo, 0, value);
}

function remove(sorted: string[], value: string): void {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(sorted[mid]!, value) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (sorted[lo] === value) sorted.splice(lo, 1);
}

/** A page of sorted nicks after `after`. */
export function memberPage(
  sorted: readonly string[],
  after: string | null,
  limit: number,
): MembersPage {
  let start = 0;
  if (after !== null) {
    let hi = sorted.length;
    while (start < hi) {
      const mid = (start + hi) >>> 1;
      if (compare(sorted[mid]!, after) <= 0) start = mid + 1;
      else hi = mid;
    }
  }
  const members = sorted.slice(start, start + limit);
  return start + limit < sorted.length ? { members, next: members.at(-1)! } : { members };
}

/** Index of the first event with id >= `id` (ids increase). */
function index(events: readonly StoredEvent[], id: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function find(events: readonly StoredEvent[], id: number): StoredEvent | undefined {
  const event = events[index(events, id)];
  return event?.id === id ? event : undefined;
}

/** Events with `from < id <= to`. */
function between(events: StoredEvent[], from: number, to: number): StoredEvent[] {
  const start = index(events, from + 1);
  if (start === events.length) return [];
  const end = to === Infinity ? events.length : index(events, to + 1);
  return start === 0 && end === events.length ? events.slice() : events.slice(start, end);
}

/** The last `limit` events with id < `id`, oldest first. */
function before(events: StoredEvent[], id: number, limit: number): StoredEvent[] {
  const end = index(events, id);
  return events.slice(Math.max(0, end - limit), end);
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
