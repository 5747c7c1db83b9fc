/**
 * Redis pub/sub on its own connection (a subscribed connection takes no other commands). It keeps
 * the set of channels and patterns it was asked for, subscribes them again on every reconnect, and
 * calls `onSubscribed` each time they are confirmed: messages published while the connection was
 * away are lost to pub/sub, so that is when the caller catches up from what is stored.
 */
import { call, RedisLink, type RedisOptions, type RedisUnavailableError } from "./redis_link.ts";
import { RespProtocolError, type RespReply } from "./resp.ts";

/** Options of `RedisSubscriber`: the connection's, plus what to subscribe and whom to tell. */
export interface RedisSubscriberOptions extends RedisOptions {
  /** Channels subscribed at `connect()` and after every reconnect. */
  channels?: readonly string[];
  /** Patterns (PSUBSCRIBE) subscribed at `connect()` and after every reconnect. */
  patterns?: readonly string[];
  /** Each message, in the order Redis sent them; `pattern` is set for pattern subscriptions. */
  onMessage: (channel: string, message: string, pattern: string | undefined) => void;
  /**
   * Called each time the subscriptions are in place on a new connection (at `connect()` and after
   * every reconnect), after Redis confirmed them: anything published from then on is delivered.
   */
  onSubscribed?: () => void;
  /** A PING this often (ms) proves a quiet connection still works; default 5000, 0 = none. */
  pingIntervalMs?: number;
}

type Kind = "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe";

/** A pub/sub connection to Redis that re-subscribes after every reconnect. */
export class RedisSubscriber extends RedisLink {
  #channels = new Set<string>();
  #patterns = new Set<string>();
  #onMessage: RedisSubscriberOptions["onMessage"];
  #onSubscribed: (() => void) | undefined;
  #pingIntervalMs: number;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: RedisSubscriberOptions) {
    super(options);
    for (const channel of options.channels ?? []) this.#channels.add(channel);
    for (const pattern of options.patterns ?? []) this.#patterns.add(pattern);
    this.#onMessage = options.onMessage;
    this.#onSubscribed = options.onSubscribed;
    this.#pingIntervalMs = options.pingIntervalMs ?? 5000;
  }

  /** The channels kept subscribed. */
  get channels(): string[] {
    return [...this.#channels];
  }

  /** The patterns kept subscribed. */
  get patterns(): string[] {
    return [...this.#patterns];
  }

  /**
   * Adds channels; resolves once Redis confirmed them. Before `connect()` they are only recorded.
   * While Redis is away it rejects with `RedisUnavailableError`, but the channels stay recorded
   * and are subscribed (and `onSubscribed` called) when the connection returns.
   */
  subscribe(...channels: string[]): Promise<void> {
    return this.#change(this.#channels, "add", "SUBSCRIBE", "subscribe", channels);
  }

  /** Adds patterns (PSUBSCRIBE); the same rules as `subscribe`. */
  psubscribe(...patterns: string[]): Promise<void> {
    return this.#change(this.#patterns, "add", "PSUBSCRIBE", "psubscribe", patterns);
  }

  /** Removes channels; resolves once Redis confirmed, or at once while not connected. */
  unsubscribe(...channels: string[]): Promise<void> {
    return this.#change(this.#channels, "delete", "UNSUBSCRIBE", "unsubscribe", channels);
  }

  /** Removes patterns; resolves once Redis confirmed, or at once while not connected. */
  punsubscribe(...patterns: string[]): Promise<void> {
    return this.#change(this.#patterns, "delete", "PUNSUBSCRIBE", "punsubscribe", patterns);
  }

  #change(
    set: Set<string>,
    change: "add" | "delete",
    command: string,
    kind: Kind,
    names: string[],
  ): Promise<void> {
    const unique = [...new Set(names)];
    if (unique.length === 0) return Promise.resolve();
    for (const name of unique) set[change](name);
    if (!this.hasConnection && (change === "delete" || this.state === "new")) {
      return Promise.resolve();
    }
    // Sent on a connection still logging in too: its `prepare()` may have read the set already.
    // Without a connection this rejects with RedisUnavailableError.
    return this.#request(command, kind, unique);
  }

  /** Sends a (un)subscribe command; resolves when every name is confirmed, in order. */
  #request(command: string, kind: Kind, names: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      let confirmed = 0;
      const confirm = (reply: RespReply) => {
        const name = names[confirmed];
        if (!Array.isArray(reply) || reply[0] !== kind || reply[1] !== name) {
          throw new RespProtocolError(
            `Redis confirmed ${show(reply)} where ${kind} ${name} was due`,
          );
        }
        if (++confirmed === names.length) resolve();
      };
      this.enqueue([command, ...names], confirm, reject, false, names.length);
    });
  }

  protected override onReply(reply: RespReply): void {
    if (Array.isArray(reply)) {
      const [kind, a, b, c] = reply;
      if (kind === "message" && reply.length === 3 && typeof a === "string") {
        call(this.#onMessage, a, String(b), undefined);
        return;
      }
      if (kind === "pmessage" && reply.length === 4 && typeof a === "string") {
        call(this.#onMessage, String(b), String(c), a);
        return;
      }
    }
    this.settleNext(reply);
  }

  protected override async prepare(): Promise<void> {
    const requests: Promise<void>[] = [];
    if (this.#channels.size > 0) {
      requests.push(this.#request("SUBSCRIBE", "subscribe", [...this.#channels]));
    }
    if (this.#patterns.size > 0) {
      requests.push(this.#request("PSUBSCRIBE", "psubscribe", [...this.#patterns]));
    }
    for (const result of await Promise.allSettled(requests)) {
      if (result.status === "rejected") throw result.reason;
    }
  }

  protected override onEstablished(): void {
    if (this.#onSubscribed) call(this.#onSubscribed);
    this.#schedulePing();
  }

  protected override onDropped(_error: RedisUnavailableError): void {
    clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  /** One PING per interval; its reply is due within the command timeout like any other. */
  #schedulePing(): void {
    if (this.#pingIntervalMs <= 0 || this.closed) return;
    this.#pingTimer = setTimeout(() => {
      this.#pingTimer = undefined;
      const pong = (reply: RespReply) => {
        // ["pong", ""] while subscribed; a plain PONG once everything was unsubscribed.
        if (reply !== "PONG" && (!Array.isArray(reply) || reply[0] !== "pong")) {
          throw new RespProtocolError(`Redis answered PING with ${show(reply)}`);
        }
        this.#schedulePing();
      };
      this.enqueue(["PING"], pong, () => {}, true);
    }, this.#pingIntervalMs);
  }
}

function show(reply: RespReply): string {
  return JSON.stringify(reply, (_key, value) => typeof value === "bigint" ? String(value) : value)
    .slice(0, 200);
}
