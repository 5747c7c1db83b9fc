/**
 * A Redis client over one connection: every `command()` is written at once (all commands of one
 * tick in one write) and replies are matched in order, so concurrent callers share the connection
 * without waiting for each other. Connection, login, deadlines and reconnect: `RedisLink`.
 */
import { RedisLink, type RedisOptions, RedisReplyError } from "./redis_link.ts";
import type { RedisArg, RespReply } from "./resp.ts";

export {
  RedisConnectError,
  type RedisOptions,
  RedisReplyError,
  RedisTimeoutError,
  RedisUnavailableError,
} from "./redis_link.ts";
export type { RedisArg, RespReply } from "./resp.ts";

/** Scripts whose SHA-1 is remembered; the callers have a handful, so more means misuse. */
const MAX_SCRIPTS = 256;

/**
 * Sends commands to Redis. Call `connect()` first; it fails fast when Redis is unreachable, and
 * from then on the client reconnects by itself. Commands fail with:
 * - `RedisReplyError` for an error reply (`code` is `NOSCRIPT`, `WRONGTYPE`, …);
 * - `RedisUnavailableError` while Redis is unreachable, for every command in flight when the
 *   connection drops, and (as its subclass `RedisTimeoutError`) when a reply is late.
 * Both are `StorageError`s.
 */
export class RedisClient extends RedisLink {
  #shas = new Map<string, string>();

  constructor(options: RedisOptions) {
    super(options);
  }

  /** Sends one command, e.g. `command("INCR", "n")`; resolves with its reply. */
  command(...args: RedisArg[]): Promise<RespReply> {
    return new Promise((resolve, reject) => this.enqueue(args, resolve, reject, true));
  }

  /** Sends one command given as an array, e.g. `send(["MGET", ...keys])`. */
  send(args: readonly RedisArg[]): Promise<RespReply> {
    return new Promise((resolve, reject) => this.enqueue(args, resolve, reject, true));
  }

  /**
   * Runs a Lua script by its SHA-1 (EVALSHA); when Redis does not have it (NOSCRIPT, e.g. after a
   * restart) sends the whole script (EVAL), which also loads it for the next call.
   */
  async evalScript(
    script: string,
    keys: readonly RedisArg[],
    args: readonly RedisArg[],
  ): Promise<RespReply> {
    const sha = this.#shas.get(script) ?? await this.#remember(script);
    try {
      return await this.send(["EVALSHA", sha, keys.length, ...keys, ...args]);
    } catch (error) {
      if (!(error instanceof RedisReplyError) || error.code !== "NOSCRIPT") throw error;
      return await this.send(["EVAL", script, keys.length, ...keys, ...args]);
    }
  }

  async #remember(script: string): Promise<string> {
    const sha = await sha1Hex(script);
    if (this.#shas.size >= MAX_SCRIPTS) this.#shas.clear();
    this.#shas.set(script, sha);
    return sha;
  }
}

/** The SHA-1 of `text`'s UTF-8 bytes in lowercase hex, as Redis names scripts. */
export async function sha1Hex(text: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text)),
  );
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}
