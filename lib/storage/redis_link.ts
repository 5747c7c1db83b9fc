/**
 * What `RedisClient` and `RedisSubscriber` share: one connection to Redis at a time (TCP, or TLS
 * via `Deno.connectTls`), the login on every connection (AUTH, SELECT, PING), replies matched to
 * their commands in order under one deadline, reconnect with capped exponential back-off and
 * jitter, and "up"/"down" listeners so the server can report its health.
 *
 * While the connection is down nothing is queued: a command fails at once with
 * `RedisUnavailableError` (a `StorageError`, so the caller answers 503), and every command in flight
 * when a connection drops fails with it too. Queueing them would only turn an outage into a burst of
 * stale writes when Redis returns.
 */
import { StorageError } from "./event_log.ts";
import {
  DEFAULT_MAX_REPLY_BYTES,
  type RedisArg,
  RespDecoder,
  RespEncoder,
  RespError,
  RespProtocolError,
  type RespReply,
} from "./resp.ts";

/** Where Redis is, how to log in, and the deadlines and bounds of the link. */
export interface RedisOptions {
  /** A name or address; an IPv6 address without brackets. */
  hostname: string;
  port: number;
  /** Speak TLS (`rediss://`). */
  tls?: boolean;
  /** PEM certificates trusted besides the system's, for TLS. */
  caCerts?: string[];
  /** A PEM file read at `connect()` and trusted like `caCerts`. */
  caFile?: string;
  /** ACL user for AUTH (Redis 6+); without it AUTH sends the password alone. */
  username?: string;
  password?: string;
  /** Database for SELECT; 0 (the default) sends none. */
  db?: number;
  /** Deadline of one TCP (and TLS) connect, in ms; default 5000. */
  connectTimeoutMs?: number;
  /** Deadline of every reply, in ms; default 5000. A late reply tears the connection down. */
  commandTimeoutMs?: number;
  /** First reconnect delay, doubled per failed attempt up to `reconnectMaxMs`; default 50. */
  reconnectMinMs?: number;
  /** Cap of the reconnect delay, in ms; default 2000. */
  reconnectMaxMs?: number;
  /** Commands waiting for replies at most; more fail at once. Default 100,000. */
  maxPending?: number;
  /** Largest reply accepted, in bytes; default 512 MiB (Redis's `proto-max-bulk-len`). */
  maxReplyBytes?: number;
  /** Source of jitter in [0, 1); tests pin it. */
  random?: () => number;
}

/** Redis cannot be reached, dropped the connection or did not answer in time: 503 for that call. */
export class RedisUnavailableError extends StorageError {
  /** Why, without the address: `the connection was closed by Redis`, `no reply within 5000 ms`. */
  readonly reason: string;
  constructor(message: string, reason: string = message) {
    super(message);
    this.name = "RedisUnavailableError";
    this.reason = reason;
  }
}

/** No reply within `commandTimeoutMs`; the connection was torn down since later replies would be misaligned. */
export class RedisTimeoutError extends RedisUnavailableError {
  constructor(address: string, ms: number) {
    super(`Redis at ${address} did not answer within ${ms} ms`, `no reply within ${ms} ms`);
    this.name = "RedisTimeoutError";
  }
}

/** Redis answered a command with an error reply (`NOSCRIPT …`, `WRONGTYPE …`, `OOM …`). */
export class RedisReplyError extends StorageError {
  /** The first word of the message: `NOSCRIPT`, `WRONGTYPE`, `ERR`, … */
  readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = "RedisReplyError";
    const space = message.indexOf(" ");
    this.code = space < 0 ? message : message.slice(0, space);
  }
}

/** The first `connect()` failed; the message reads `Cannot connect to Redis HOST:PORT: reason`. */
export class RedisConnectError extends StorageError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RedisConnectError";
  }
}

/** `HOST:PORT`, with an IPv6 address in brackets. */
export function redisAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first): `minMs` doubled per attempt, at
 * most `maxMs`, then a random point in its upper half, so instances that lost Redis together do
 * not all return in the same millisecond.
 */
export function backoffDelay(
  attempt: number,
  minMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** One line of an error, for logs and for `Cannot connect to Redis …: reason`. */
export function describeError(error: unknown): string {
  if (error instanceof RedisUnavailableError) return error.reason;
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0]!.trim() || (error instanceof Error ? error.name : "unknown error");
}

const DEFAULTS = {
  connectTimeoutMs: 5000,
  commandTimeoutMs: 5000,
  reconnectMinMs: 50,
  reconnectMaxMs: 2000,
  maxPending: 100_000,
} as const;

const READ_BUFFER_BYTES = 64 * 1024;
const NOOP = () => {};

/** Calls a listener or callback; a throw is reported (`reportError`), never breaks the link. */
export function call<A extends unknown[]>(fn: (...args: A) => void, ...args: A): void {
  try {
    fn(...args);
  } catch (error) {
    reportError(error);
  }
}

/** Where a link is: before `connect()`, first connect, up, reconnecting, closed. */
export type RedisLinkState = "new" | "connecting" | "up" | "down" | "closed";
type Resolve = (reply: RespReply) => void;
type Reject = (error: Error) => void;

/** One connection's state. A new one per connect, so loops of a dropped one see they are stale. */
class Wire {
  readonly conn: Deno.Conn;
  readonly decoder: RespDecoder;
  readonly encoder = new RespEncoder();
  readonly readBuffer = new Uint8Array(READ_BUFFER_BYTES);
  flushScheduled = false;
  writing = false;
  flush: () => void = NOOP;

  constructor(conn: Deno.Conn, maxReplyBytes: number) {
    this.conn = conn;
    this.decoder = new RespDecoder({ maxReplyBytes });
  }
}

/** Listener types by event name. */
export interface RedisLinkEvents {
  /** Connected and logged in (after the first `connect()` too). */
  up: () => void;
  /** A working connection was lost; reconnecting has begun. */
  down: (error: RedisUnavailableError) => void;
}

/** The connection, login, reply matching and reconnect under `RedisClient` and `RedisSubscriber`. */
export abstract class RedisLink {
  /** `HOST:PORT` of the server, for messages and logs. */
  readonly address: string;
  readonly #options: RedisOptions;
  readonly #commandTimeoutMs: number;
  readonly #maxPending: number;
  #caCerts: string[] | undefined;
  #state: RedisLinkState = "new";
  #wire: Wire | undefined;
  #lastError: string | undefined;
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #dialAbort: AbortController | undefined;
  #establishing: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Read and write loops still running, awaited by `close()`. */
  #loops = new Set<Promise<void>>();
  #listeners = { up: new Set<RedisLinkEvents["up"]>(), down: new Set<RedisLinkEvents["down"]>() };

  // Commands waiting for replies, oldest at `#head`, as a ring of parallel arrays: no object per command.
  #resolves: (Resolve | undefined)[] = new Array(1024);
  #rejects: (Reject | undefined)[] = new Array(1024);
  #deadlines = new Float64Array(1024);
  #head = 0;
  #count = 0;
  /** One timer for all deadlines: replies come in order, so only the oldest can be late first. */
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: RedisOptions) {
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new RangeError(`Redis port must be 1 to 65535, got ${options.port}`);
    }
    this.#options = options;
    this.address = redisAddress(options.hostname, options.port);
    this.#commandTimeoutMs = options.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs;
    this.#maxPending = options.maxPending ?? DEFAULTS.maxPending;
  }

  /** Where the link is: `new`, `connecting`, `up`, `down` (reconnecting) or `closed`. */
  get state(): RedisLinkState {
    return this.#state;
  }

  /** True while a connection is up and logged in. */
  get connected(): boolean {
    return this.#state === "up";
  }

  /** True once `close()` was called, or after a failed first `connect()`. */
  get closed(): boolean {
    return this.#state === "closed";
  }

  /** Why the link is down (`Connection refused (os error 111)`); undefined while up. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Commands sent (or about to be) and waiting for their replies. */
  get pending(): number {
    return this.#count;
  }

  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof RedisLinkEvents>(event: E, listener: RedisLinkEvents[E]): () => void {
    const set = this.#listeners[event] as Set<RedisLinkEvents[E]>;
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Connects and logs in once, without retrying: an unreachable Redis at start fails fast with
   * `RedisConnectError` (`Cannot connect to Redis HOST:PORT: reason`) and leaves the link closed.
   * After this, a lost connection is re-established by itself.
   */
  async connect(): Promise<void> {
    if (this.#state !== "new") {
      throw new Error(
        this.#state === "closed"
          ? "Cannot connect to Redis: the link is closed"
          : "Cannot connect to Redis: connect() was called already",
      );
    }
    this.#state = "connecting";
    try {
      if (this.#options.caFile !== undefined) {
        const pem = await Deno.readTextFile(this.#options.caFile).catch((error) => {
          throw new Error(`cannot read CA file ${this.#options.caFile}: ${describeError(error)}`);
        });
        this.#caCerts = [...(this.#options.caCerts ?? []), pem];
      } else {
        this.#caCerts = this.#options.caCerts;
      }
      this.#establishing = this.#establish();
      await this.#establishing;
    } catch (error) {
      this.#state = "closed";
      await Promise.allSettled([...this.#loops]);
      throw new RedisConnectError(
        `Cannot connect to Redis ${this.address}: ${describeError(error)}`,
        { cause: error },
      );
    } finally {
      this.#establishing = undefined;
    }
  }

  /** Closes the connection and stops reconnecting; commands in flight fail. Idempotent. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#state = "closed";
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#dialAbort?.abort();
    const wire = this.#wire;
    if (wire) this.#drop(wire, this.#unavailable());
    const establishing = this.#establishing;
    this.#closing = (async () => {
      await establishing?.catch(NOOP);
      await Promise.allSettled([...this.#loops]);
    })();
    return this.#closing;
  }

  /** `await using link = …` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Encodes `args` on the current connection and registers `replies` waiters for it, in order.
   * Fails through `reject` (never throws) when there is no connection, when `requireUp` and the
   * link is still logging in, at the pending bound, or on a bad argument (TypeError).
   */
  protected enqueue(
    args: readonly RedisArg[],
    resolve: Resolve,
    reject: Reject,
    requireUp: boolean,
    replies = 1,
  ): void {
    const wire = this.#wire;
    if (wire === undefined || (requireUp && this.#state !== "up")) {
      reject(this.#unavailable());
      return;
    }
    if (this.#count + replies > this.#maxPending) {
      reject(
        new RedisUnavailableError(
          `Cannot send to Redis at ${this.address}: ${this.#count} commands already wait for replies`,
        ),
      );
      return;
    }
    try {
      wire.encoder.append(args);
    } catch (error) {
      reject(error as Error);
      return;
    }
    const deadline = performance.now() + this.#commandTimeoutMs;
    for (let i = 0; i < replies; i++) {
      if (this.#count === this.#resolves.length) this.#grow();
      const at = (this.#head + this.#count) & (this.#resolves.length - 1);
      this.#resolves[at] = resolve;
      this.#rejects[at] = reject;
      this.#deadlines[at] = deadline;
      this.#count++;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, this.#commandTimeoutMs);
    }
    if (!wire.flushScheduled && !wire.writing) {
      wire.flushScheduled = true;
      queueMicrotask(wire.flush);
    }
  }

  /** True while a connection exists, logged in or still logging in. */
  protected get hasConnection(): boolean {
    return this.#wire !== undefined;
  }

  /**
   * Handles one reply from Redis. The default hands it to the oldest waiter; a throw here (e.g.
   * `RespProtocolError`) drops the connection.
   */
  protected onReply(reply: RespReply): void {
    this.settleNext(reply);
  }

  /** Hands `reply` to the oldest waiter: an error reply rejects it with `RedisReplyError`. */
  protected settleNext(reply: RespReply): void {
    if (this.#count === 0) throw new RespProtocolError("Redis sent a reply nobody waits for");
    const at = this.#head;
    const resolve = this.#resolves[at]!;
    const reject = this.#rejects[at]!;
    this.#resolves[at] = undefined;
    this.#rejects[at] = undefined;
    this.#head = (at + 1) & (this.#resolves.length - 1);
    this.#count--;
    if (reply instanceof RespError) reject(new RedisReplyError(reply.message));
    else resolve(reply);
  }

  /** Runs on every new connection after login, before it counts as up; a throw fails the attempt. */
  protected prepare(): Promise<void> {
    return Promise.resolve();
  }

  /** Runs when a connection is up, before the "up" listeners. */
  protected onEstablished(): void {}

  /** Runs when a connection is dropped, after its waiters were rejected. */
  protected onDropped(_error: RedisUnavailableError): void {}

  /** The error for a call made while no connection is up. */
  #unavailable(): RedisUnavailableError {
    if (this.#state === "closed") {
      return new RedisUnavailableError(`Redis link to ${this.address} is closed`);
    }
    if (this.#state === "new") {
      return new RedisUnavailableError(`Redis link to ${this.address} is not connected yet`);
    }
    return this.#unreachable(this.#lastError ?? "still connecting");
  }

  #unreachable(reason: string): RedisUnavailableError {
    return new RedisUnavailableError(`Redis at ${this.address} is unreachable: ${reason}`, reason);
  }

  /** Opens a connection, logs in and runs `prepare()`; on success the link is up. */
  async #establish(): Promise<void> {
    const conn = await this.#dial();
    if (this.#state === "closed") {
      conn.close();
      throw new Error("the link was closed");
    }
    const wire = new Wire(conn, this.#options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES);
    wire.flush = () => this.#track(this.#flush(wire));
    this.#wire = wire;
    this.#track(this.#read(wire));
    try {
      const { username, password, db } = this.#options;
      const login: Promise<RespReply>[] = [];
      const send = (args: RedisArg[]) =>
        login.push(new Promise((resolve, reject) => this.enqueue(args, resolve, reject, false)));
      if (password !== undefined) {
        send(username === undefined ? ["AUTH", password] : ["AUTH", username, password]);
      }
      if (db !== undefined && db !== 0) send(["SELECT", db]);
      // Proves the server speaks Redis and needs no login we did not give (NOAUTH).
      send(["PING"]);
      for (const result of await Promise.allSettled(login)) {
        if (result.status === "rejected") throw result.reason;
      }
      await this.prepare();
    } catch (error) {
      this.#drop(wire, this.#unreachable(describeError(error)));
      throw error;
    }
    if (this.#wire !== wire || (this.#state !== "connecting" && this.#state !== "down")) {
      throw new Error(this.closed ? "the link was closed" : "the connection was lost");
    }
    this.#state = "up";
    this.#attempt = 0;
    this.#lastError = undefined;
    this.onEstablished();
    for (const listener of this.#listeners.up) call(listener);
  }

  /** TCP or TLS connect under the connect deadline; `close()` aborts it. */
  async #dial(): Promise<Deno.Conn> {
    const { hostname, port } = this.#options;
    const ms = this.#options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    const abort = new AbortController();
    this.#dialAbort = abort;
    const timer = setTimeout(() => abort.abort(new Error(`no connection within ${ms} ms`)), ms);
    try {
      if (!this.#options.tls) {
        const conn = await Deno.connect({ hostname, port, signal: abort.signal }).catch((error) => {
          throw abort.signal.aborted ? abort.signal.reason : error;
        });
        conn.setNoDelay(true);
        conn.setKeepAlive(true);
        return conn;
      }
      const options: Deno.ConnectTlsOptions = { hostname, port };
      if (this.#caCerts) options.caCerts = this.#caCerts;
      const dialing = Deno.connectTls(options).then(async (conn) => {
        try {
          await conn.handshake();
          return conn;
        } catch (error) {
          conn.close();
          throw error;
        }
      });
      const aborted = new Promise<never>((_, reject) => {
        abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true });
      });
      try {
        return await Promise.race([dialing, aborted]);
      } catch (error) {
        dialing.then((conn) => conn.close(), NOOP);
        throw error;
      }
    } finally {
      clearTimeout(timer);
      if (this.#dialAbort === abort) this.#dialAbort = undefined;
    }
  }

  async #read(wire: Wire): Promise<void> {
    const onReply = (reply: RespReply) => {
      if (this.#wire === wire) this.onReply(reply);
    };
    let reason: string;
    try {
      while (true) {
        const n = await wire.conn.read(wire.readBuffer);
        if (this.#wire !== wire) return;
        if (n === null) {
          reason = "the connection was closed by Redis";
          break;
        }
        wire.decoder.feed(wire.readBuffer.subarray(0, n), onReply);
      }
    } catch (error) {
      if (this.#wire !== wire) return;
      reason = describeError(error);
    }
    this.#lost(wire, this.#unreachable(reason));
  }

  /** Writes everything encoded, batch after batch: commands of one tick go out in one write. */
  async #flush(wire: Wire): Promise<void> {
    wire.flushScheduled = false;
    if (this.#wire !== wire || wire.writing) return;
    wire.writing = true;
    try {
      while (this.#wire === wire && wire.encoder.length > 0) {
        const bytes = wire.encoder.take();
        for (let at = 0; at < bytes.length;) at += await wire.conn.write(bytes.subarray(at));
      }
    } catch (error) {
      this.#lost(wire, this.#unreachable(describeError(error)));
    } finally {
      wire.writing = false;
    }
  }

  #track(loop: Promise<void>): void {
    this.#loops.add(loop);
    loop.finally(() => this.#loops.delete(loop));
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    const wire = this.#wire;
    if (this.#count === 0 || wire === undefined) return;
    const left = this.#deadlines[this.#head]! - performance.now();
    if (left > 0) {
      this.#timer = setTimeout(this.#onTimer, left + 1);
      return;
    }
    this.#lost(wire, new RedisTimeoutError(this.address, this.#commandTimeoutMs));
  };

  /** A connection failed: drop it, and if it was up, tell the listeners and start reconnecting. */
  #lost(wire: Wire, error: RedisUnavailableError): void {
    if (this.#wire !== wire) return;
    this.#drop(wire, error);
    if (this.#state !== "up") return; // a connect attempt in progress fails and retries by itself
    this.#state = "down";
    for (const listener of this.#listeners.down) call(listener, error);
    if (this.#state === "down") this.#scheduleReconnect(); // a listener may have closed the link
  }

  /** Closes `wire` and fails everything waiting on it with `error`. */
  #drop(wire: Wire, error: RedisUnavailableError): void {
    if (this.#wire !== wire) return;
    this.#wire = undefined;
    if (this.#state !== "closed") this.#lastError = error.reason;
    try {
      wire.conn.close();
    } catch {
      // Already closed by the peer.
    }
    wire.encoder.clear();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const mask = this.#resolves.length - 1;
    for (; this.#count > 0; this.#count--) {
      const at = this.#head;
      const reject = this.#rejects[at]!;
      this.#resolves[at] = this.#rejects[at] = undefined;
      this.#head = (at + 1) & mask;
      reject(error);
    }
    this.#head = 0;
    this.onDropped(error);
  }

  #scheduleReconnect(): void {
    const delay = backoffDelay(
      this.#attempt++,
      this.#options.reconnectMinMs ?? DEFAULTS.reconnectMinMs,
      this.#options.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
      this.#options.random,
    );
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#reconnect();
    }, delay);
  }

  async #reconnect(): Promise<void> {
    if (this.#state !== "down") return;
    this.#establishing = this.#establish();
    try {
      await this.#establishing;
    } catch (error) {
      if (this.#state !== "down") return;
      this.#lastError = describeError(error);
      this.#scheduleReconnect();
    } finally {
      this.#establishing = undefined;
    }
  }

  #grow(): void {
    const size = this.#resolves.length;
    const resolves: (Resolve | undefined)[] = new Array(size * 2);
    const rejects: (Reject | undefined)[] = new Array(size * 2);
    const deadlines = new Float64Array(size * 2);
    for (let i = 0; i < this.#count; i++) {
      const at = (this.#head + i) & (size - 1);
      resolves[i] = this.#resolves[at];
      rejects[i] = this.#rejects[at];
      deadlines[i] = this.#deadlines[at]!;
    }
    this.#resolves = resolves;
    this.#rejects = rejects;
    this.#deadlines = deadlines;
    this.#head = 0;
  }
}
