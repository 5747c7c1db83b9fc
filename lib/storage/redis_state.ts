/**
 * The shared state in Redis, for several instances behind a load balancer: nothing an instance
 * needs from another stays in its memory. Every operation is one function of the Lua library in
 * `redis_state.lua` (key layout documented there), so it checks and writes atomically whatever the
 * other instances do; committed events reach every instance over pub/sub, and an instance whose
 * subscription dropped re-reads every waiting poll once it is back (`resync`), so none misses one.
 */
import type { Rate } from "../chat/rate_limiter.ts";
import library from "./redis_state.lua" with { type: "text" };
import {
  type EventType,
  type Membership,
  StorageError,
  type StoredBan,
  type StoredEvent,
  storedEvent,
} from "./event_log.ts";
import { RedisClient, type RedisOptions, RedisReplyError, type RespReply } from "./redis_client.ts";
import { RedisSubscriber } from "./redis_subscriber.ts";
import {
  type BackendHealth,
  type DirectResult,
  type JoinResult,
  type MaybePromise,
  type MembersPage,
  type NewBan,
  type NewSession,
  type Notice,
  type ReadResult,
  Refusal,
  type RefusalCode,
  type RoomRange,
  type RoomSummary,
  type SessionInfo,
  type SharedState,
  type StateListener,
} from "./shared_state.ts";

/** Options of {@linkcode RedisState.open}. */
export interface RedisStateOptions {
  /** Where Redis is and how to log in. */
  redis: RedisOptions;
  /** Every key starts with `PREFIX:`, so several deployments can share one Redis. */
  prefix: string;
  /** Events kept per room (`--history`). */
  history: number;
}

/** A session as Redis answered it (a snapshot: `refresh` reads it again). */
class RedisSession implements SessionInfo {
  constructor(
    readonly id: string,
    readonly token: string,
    readonly nick: string,
    readonly createdAt: number,
    readonly address: string,
    readonly moderator: boolean,
    readonly rooms: ReadonlyMap<string, Membership>,
    readonly forgot: number,
  ) {}
}

const decoder = new TextDecoder();
/** How long a known session answers `authenticate(…, fresh = false)` without asking Redis. */
const KNOWN_MS = 2000;
/** Known sessions kept at most (forgotten all at once beyond). */
const KNOWN_MAX = 100_000;

/** The `SharedState` in Redis: see the module comment. */
export class RedisState implements SharedState {
  readonly kind = "redis";
  #client: RedisClient;
  #subscriber: RedisSubscriber;
  #prefix: string;
  #history: number;
  #listener: StateListener | null = null;
  #loading: Promise<void> | null = null;
  /** The highest event id heard of (pub/sub, or read), a lower bound of Redis's own. */
  #heardLastId = 0;
  /** The subscription is up: what it tells is current. */
  #subscribed = false;
  /**
   * Sessions by token as Redis last answered them: requests that only need the session's id skip
   * a round trip for a while (every function checks the session is alive anyway).
   */
  #known = new Map<string, { session: SessionInfo; at: number }>();

  private constructor(options: RedisStateOptions) {
    this.#prefix = options.prefix;
    this.#history = options.history;
    this.#client = new RedisClient(options.redis);
    this.#subscriber = new RedisSubscriber({
      ...options.redis,
      channels: [`${options.prefix}:events`],
      onMessage: (_channel, message) => this.#onMessage(message),
      // Whatever was published while the subscription was away is in the streams: re-read.
      onSubscribed: () => {
        // From here on pub/sub tells every event; what came before, one read of the order says.
        this.#client.command("GET", `${options.prefix}:seq`).then((value) => {
          this.#heard(Number(value ?? 0));
          this.#subscribed = true;
        }, () => {});
        this.#listener?.resync();
      },
    });
    this.#client.on(
      "down",
      (error) => this.#listener?.health({ ok: false, reason: error.message }),
    );
    this.#subscriber.on("down", () => {
      this.#subscribed = false;
    });
    this.#client.on("up", () => {
      this.#listener?.health({ ok: true });
      this.#listener?.resync();
    });
  }

  /**
   * Connects (failing fast with `Cannot connect to Redis HOST:PORT: reason` when Redis is not
   * there), loads the function library and subscribes to the events channel.
   */
  static async open(options: RedisStateOptions): Promise<RedisState> {
    const state = new RedisState(options);
    try {
      await state.#client.connect();
      await state.#load();
      await state.#subscriber.connect();
      await state.lastId(Infinity);
    } catch (error) {
      await state.close();
      throw error;
    }
    return state;
  }

  listen(listener: StateListener): void {
    this.#listener = listener;
  }

  lastId(atLeast?: number): MaybePromise<number> {
    // For a poll, what pub/sub told is enough unless its cursor claims more (given by a faster
    // instance); asked without a cursor, Redis says.
    if (atLeast !== undefined && this.#heardLastId >= atLeast && this.#subscribed) {
      return this.#heardLastId;
    }
    return this.#client.command("GET", `${this.#prefix}:seq`).then((value) => {
      const id = Number(value ?? 0);
      this.#heard(id);
      return id;
    });
  }

  #heard(id: number): void {
    if (id > this.#heardLastId) this.#heardLastId = id;
  }

  async counts(): Promise<{ sessions: number; rooms: number }> {
    const [sessions, rooms] = await this.#call("parley_counts", []);
    return { sessions: Number(sessions), rooms: Number(rooms) };
  }

  async takeRate(purpose: string, key: string, rate: Rate, now: number): Promise<number> {
    if (rate.tokens === 0) return 0;
    const [wait] = await this.#call("parley_rate", [purpose, key, rate.tokens, rate.periodMs, now]);
    return Number(wait);
  }

  async createSession(input: NewSession, now: number): Promise<SessionInfo> {
    const id = crypto.randomUUID();
    const token = randomToken();
    await this.#call("parley_create_session", [
      id,
      token,
      input.nick,
      input.key,
      input.address,
      input.moderator ? 1 : 0,
      now,
    ]);
    return new RedisSession(
      id,
      token,
      input.nick,
      now,
      input.address,
      input.moderator,
      new Map(),
      0,
    );
  }

  async authenticate(token: string, now: number, fresh = true): Promise<SessionInfo | null> {
    if (!fresh) {
      const cached = this.#known.get(token);
      if (cached !== undefined && now - cached.at < KNOWN_MS) return cached.session;
    }
    const found = session(await this.#call("parley_authenticate", [token, now], true));
    if (found === null) this.#known.delete(token);
    else {
      if (this.#known.size >= KNOWN_MAX) this.#known.clear();
      this.#known.set(token, { session: found, at: now });
    }
    return found;
  }

  async refresh(info: SessionInfo): Promise<SessionInfo | null> {
    return session(await this.#call("parley_refresh", [info.id], true));
  }

  async touch(seen: ReadonlyMap<string, number>): Promise<void> {
    if (seen.size === 0) return;
    const args: (string | number)[] = [];
    for (const [id, at] of seen) args.push(id, at);
    await this.#call("parley_touch", args);
  }

  async endSession(id: string, now: number): Promise<void> {
    await this.#call("parley_end_session", [id, now]);
  }

  async expire(now: number, graceMs: number): Promise<number> {
    const [count] = await this.#call("parley_expire", [now, graceMs]);
    return Number(count);
  }

  async join(id: string, room: string, now: number): Promise<JoinResult> {
    const [view] = await this.#call("parley_join", [id, room, now]);
    const [history, members, count, topic] = view as RespReply[];
    const result: JoinResult = {
      room,
      members: strings(members),
      memberCount: Number(count),
      history: events(history),
    };
    if (typeof topic === "string") result.topic = topic;
    return result;
  }

  async leave(id: string, room: string, now: number): Promise<void> {
    await this.#call("parley_leave", [id, room, now]);
  }

  async members(
    id: string,
    room: string,
    after: string | null,
    limit: number,
  ): Promise<MembersPage> {
    const [list] = await this.#call("parley_members", [id, room, after ?? "", limit]);
    const nicks = strings(list);
    if (nicks.length <= limit) return { members: nicks };
    const members = nicks.slice(0, limit);
    return { members, next: members.at(-1)! };
  }

  async rooms(): Promise<RoomSummary[]> {
    const [flat] = await this.#call("parley_rooms", []);
    const list = flat as RespReply[];
    const out: RoomSummary[] = [];
    for (let i = 0; i < list.length; i += 2) {
      out.push({ name: text(list[i]!), members: Number(list[i + 1]) });
    }
    return out;
  }

  async history(id: string, room: string, before: number, limit: number): Promise<StoredEvent[]> {
    const [list] = await this.#call("parley_history", [id, room, boundary(before), limit]);
    return events(list);
  }

  async read(ranges: readonly RoomRange[], limit: number): Promise<ReadResult> {
    if (ranges.length === 0) return { events: [], gap: false };
    const args: (string | number)[] = [limit];
    for (const r of ranges) args.push(r.room, r.from, r.to === Infinity ? "inf" : r.to);
    const [list, gap] = await this.#call("parley_read", args);
    let found = events(list);
    if (ranges.length > 1) found.sort((a, b) => a.id - b.id);
    if (found.length > limit) found = found.slice(0, limit);
    return { events: found, gap: Number(gap) === 1 };
  }

  async send(
    id: string,
    room: string,
    text: string,
    clientId: string | undefined,
    now: number,
    rate: Rate,
  ): Promise<{ event: StoredEvent; created: boolean }> {
    const [json, created] = await this.#call("parley_send", [
      id,
      room,
      text,
      clientId ?? "",
      now,
      rate.tokens,
      rate.periodMs,
    ]);
    return { event: parseEvent(json), created: Number(created) === 1 };
  }

  async edit(
    id: string,
    room: string,
    ref: number,
    text: string,
    now: number,
    windowMs: number,
  ): Promise<StoredEvent> {
    const [json] = await this.#call("parley_edit", [id, room, ref, text, now, windowMs]);
    return parseEvent(json);
  }

  async remove(id: string, room: string, ref: number, now: number): Promise<void> {
    await this.#call("parley_remove", [id, room, ref, now]);
  }

  async setTopic(id: string, room: string, topic: string, now: number): Promise<StoredEvent> {
    const [json] = await this.#call("parley_topic", [id, room, topic, now]);
    return parseEvent(json);
  }

  async kick(
    id: string,
    room: string,
    key: string,
    reason: string | undefined,
    now: number,
  ): Promise<void> {
    await this.#call("parley_kick", [id, room, key, reason ?? "", now]);
  }

  async ban(id: string, request: NewBan, now: number): Promise<StoredBan> {
    const session = await this.refresh({ id } as SessionInfo);
    if (!session) throw new Refusal("unauthorized");
    const ban: StoredBan = {
      id: crypto.randomUUID(),
      ...(request.nick !== undefined ? { nick: request.nick } : {}),
      ...(request.address !== undefined ? { address: request.address } : {}),
      until: request.until,
      ...(request.reason !== undefined ? { reason: request.reason } : {}),
      by: session.nick,
      createdAt: now,
    };
    const stored = JSON.stringify({
      ...ban,
      ...(request.key !== undefined ? { key: request.key } : {}),
    });
    await this.#call("parley_ban", [
      id,
      ban.id,
      stored,
      request.key ?? "",
      request.address ?? "",
      request.reason ?? "",
      now,
    ]);
    return ban;
  }

  async bans(now: number): Promise<StoredBan[]> {
    const [list] = await this.#call("parley_bans", []);
    return strings(list)
      .map((json) => {
        const { key: _, ...ban } = JSON.parse(json) as StoredBan & { key?: string };
        return ban;
      })
      .filter((ban) => ban.until > now)
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  async unban(id: string, banId: string): Promise<void> {
    await this.#call("parley_unban", [id, banId]);
  }

  async direct(id: string, key: string, now: number): Promise<DirectResult> {
    const [room, other, history] = await this.#call("parley_direct", [id, key, now]);
    return { room: text(room!), with: text(other!), history: events(history) };
  }

  async typing(id: string, room: string, now: number): Promise<void> {
    await this.#call("parley_typing", [id, room, now]);
  }

  async probe(now: number): Promise<void> {
    await this.#client.command("SET", `${this.#prefix}:probe`, now);
  }

  checkHealth(): Promise<BackendHealth> {
    if (this.#client.connected) return Promise.resolve({ ok: true });
    return Promise.resolve({
      ok: false,
      reason: `Redis ${this.#client.address} is unreachable: ${this.#client.lastError ?? "down"}`,
    });
  }

  async close(): Promise<number> {
    await Promise.allSettled([this.#subscriber.close(), this.#client.close()]);
    return 0;
  }

  /** Loads (or replaces) the function library; concurrent callers share one load. */
  #load(): Promise<void> {
    this.#loading ??= this.#client.command("FUNCTION", "LOAD", "REPLACE", library)
      .then(() => {})
      .finally(() => {
        this.#loading = null;
      });
    return this.#loading;
  }

  /**
   * Calls a function of the library (loading it again if Redis lost it, e.g. restarted without
   * persistence): its `refused` answers become `Refusal`s; `none` answers null when `nullable`.
   */
  async #call(name: string, args: (string | number)[], nullable?: false): Promise<RespReply[]>;
  async #call(name: string, args: (string | number)[], nullable: true): Promise<RespReply[] | null>;
  async #call(
    name: string,
    args: (string | number)[],
    nullable = false,
  ): Promise<RespReply[] | null> {
    const command = ["FCALL", name, 0, this.#prefix, this.#history, ...args];
    let reply: RespReply;
    try {
      reply = await this.#client.send(command);
    } catch (error) {
      if (!(error instanceof RedisReplyError) || !/function not found/i.test(error.message)) {
        throw error;
      }
      await this.#load();
      reply = await this.#client.send(command);
    }
    if (!Array.isArray(reply) || reply.length === 0) {
      throw new StorageError(`Redis answered ${name} with something unexpected`);
    }
    const [status, ...rest] = reply;
    if (status === "ok") return rest;
    if (status === "none" && nullable) return null;
    if (status === "refused") {
      const code = text(rest[0]!) as RefusalCode;
      if (code === "unauthorized") this.#forgetSession(args[0]);
      const detail = rest[1];
      if (code === "rate_limited") throw new Refusal(code, { retryMs: Number(detail) });
      if (code === "banned" && typeof detail === "string") {
        const { key: _, ...ban } = JSON.parse(detail) as StoredBan & { key?: string };
        throw new Refusal(code, { ban });
      }
      throw new Refusal(code);
    }
    throw new StorageError(`Redis answered ${name} with ${String(status)}`);
  }

  /** An ended session: a cached token of it must not answer any more. */
  #forgetSession(id: string | number | undefined): void {
    for (const [token, entry] of this.#known) {
      if (entry.session.id === id) this.#known.delete(token);
    }
  }

  #onMessage(message: string): void {
    const listener = this.#listener;
    if (!listener) return;
    if (message.startsWith("E")) {
      const flat = JSON.parse(message.slice(1)) as (Record<string, unknown> | string | null)[];
      const list: StoredEvent[] = [];
      for (let i = 0; i < flat.length; i += 2) {
        list.push(eventOf(flat[i] as Record<string, unknown>, flat[i + 1] as string | null, null));
      }
      const last = list.at(-1);
      if (last !== undefined) this.#heard(last.id);
      if (list.length > 0) listener.events(list);
    } else if (message.startsWith("N")) {
      listener.notice(JSON.parse(message.slice(1)) as Notice);
    }
  }
}

/** A reply value as text. */
function text(value: RespReply): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return decoder.decode(value);
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  throw new StorageError(`Redis answered ${String(value)} where text was expected`);
}

function strings(value: RespReply | undefined): string[] {
  return Array.isArray(value) ? value.map(text) : [];
}

/** An event from its JSON without text, its text and its mark (`edited`, `deleted`). */
function eventOf(
  raw: Record<string, unknown>,
  body: string | null,
  mark: string | null,
): StoredEvent {
  const event = raw as unknown as StoredEvent;
  const full: Omit<StoredEvent, "id"> = { ...event, type: event.type as EventType };
  if (body !== null) full.text = body;
  if (mark === "edited") full.edited = true;
  if (mark === "deleted") full.deleted = true;
  return storedEvent(event.id, full);
}

/** Events from the library's flat triples `[json, text|null, mark|null, …]`. */
function events(value: RespReply | undefined): StoredEvent[] {
  const list = Array.isArray(value) ? value : [];
  const out: StoredEvent[] = [];
  for (let i = 0; i < list.length; i += 3) {
    const body = list[i + 1];
    const mark = list[i + 2];
    out.push(eventOf(
      JSON.parse(text(list[i]!)),
      body === null || body === undefined ? null : text(body),
      mark === null || mark === undefined ? null : text(mark),
    ));
  }
  return out;
}

/** An event the library answered as whole JSON (text inside). */
function parseEvent(value: RespReply | undefined): StoredEvent {
  const raw = JSON.parse(text(value!)) as Record<string, unknown>;
  const body = typeof raw.text === "string" ? raw.text : null;
  const mark = raw.deleted ? "deleted" : raw.edited ? "edited" : null;
  delete raw.text;
  delete raw.edited;
  delete raw.deleted;
  return eventOf(raw, body, mark);
}

/** A session from `{"ok", id, [session hash, memberships hash]}`, or null. */
function session(reply: RespReply[] | null): SessionInfo | null {
  if (reply === null) return null;
  const id = text(reply[0]!);
  const [hash, memberships] = reply[1] as RespReply[];
  const fields = new Map<string, string>();
  const flat = hash as RespReply[];
  for (let i = 0; i < flat.length; i += 2) fields.set(text(flat[i]!), text(flat[i + 1]!));
  if (!fields.has("token")) return null;
  const rooms = new Map<string, Membership>();
  const list = memberships as RespReply[];
  for (let i = 0; i < list.length; i += 2) {
    // "JOINID[:LEFTID]" then ";JOINID:LEFTID" per earlier stretch and ";!LEFTID" for the
    // forgotten ones (redis_state.lua).
    const [current, ...parts] = text(list[i + 1]!).split(";");
    const [joinId, leftId] = current!.split(":");
    const m: Membership = leftId
      ? { joinId: Number(joinId), leftId: Number(leftId) }
      : { joinId: Number(joinId) };
    const earlier: (readonly [number, number])[] = [];
    for (const part of parts) {
      if (part.startsWith("!")) {
        m.forgot = Number(part.slice(1));
        continue;
      }
      const [j, l] = part.split(":");
      earlier.push([Number(j), Number(l)]);
    }
    if (earlier.length > 0) m.earlier = earlier;
    rooms.set(text(list[i]!), m);
  }
  return new RedisSession(
    id,
    fields.get("token")!,
    fields.get("nick")!,
    Number(fields.get("createdAt")),
    fields.get("address") ?? "",
    fields.get("moderator") === "1",
    rooms,
    Number(fields.get("forgot") ?? 0),
  );
}

/** `before` as the library takes it: `+inf` for "the latest". */
function boundary(before: number): string | number {
  return before >= Number.MAX_SAFE_INTEGER ? "+inf" : before;
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
