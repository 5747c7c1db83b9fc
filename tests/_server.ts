/** Shared helpers of the integration tests: a real server on an ephemeral loopback port. */
import { type App, startApp } from "../lib/app.ts";
import { type Config, parseCommand } from "../lib/config.ts";
import { Logger } from "../lib/log.ts";
import type { EventLog } from "../lib/storage/event_log.ts";

/** A config from flags, with test defaults: loopback, any port, memory store, no rate limits. */
export function testConfig(flags: string[] = []): Config {
  const command = parseCommand([
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--store",
    "memory",
    "--session-rate",
    "0",
    "--send-rate",
    "0",
    "--log-level",
    "error",
    ...flags,
  ]);
  if (command.kind !== "serve") throw new Error("testConfig: flags did not make a serve command");
  return command.config;
}

/** A clock tests move by hand. */
export class FakeClock {
  #now: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }
  /** The current fake time, in milliseconds. */
  now = (): number => this.#now;
  /** Moves time forward. */
  advance(ms: number): void {
    this.#now += ms;
  }
}

/** Options of {@linkcode withServer}. */
export interface TestServerOptions {
  flags?: string[];
  clock?: FakeClock;
  eventLog?: EventLog;
}

/** Starts a server, runs `fn`, and always shuts it down. */
export async function withServer(
  options: TestServerOptions,
  fn: (app: App, client: ApiClient) => Promise<void>,
): Promise<void> {
  const app = await startApp(testConfig(options.flags), {
    ...(options.clock ? { now: options.clock.now, sweepInterval: 0 } : {}),
    ...(options.eventLog ? { eventLog: options.eventLog } : {}),
    logger: new Logger("error", "text", () => {}),
  });
  try {
    await fn(app, new ApiClient(app.url));
  } finally {
    await app.shutdown(2000);
  }
}

/** A parsed API answer. */
export interface ApiAnswer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** A small fetch-based client of the HTTP API. */
export class ApiClient {
  constructor(readonly url: string) {}

  /** Sends a request; `body` objects are sent as JSON, strings as they are. */
  async call(
    method: string,
    path: string,
    options: { token?: string; body?: unknown; signal?: AbortSignal } = {},
  ): Promise<ApiAnswer> {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["content-type"] = "application/json";
    }
    const res = await fetch(this.url + path, {
      method,
      headers,
      body,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  }

  /** Creates a session and returns its token and cursor. */
  async session(nick: string): Promise<{ token: string; cursor: string }> {
    const res = await this.call("POST", "/api/session", { body: { nick } });
    if (res.status !== 201) throw new Error(`session ${nick}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** Joins a room. */
  async join(token: string, room: string): Promise<ApiAnswer> {
    return await this.call("POST", `/api/rooms/${encodeURIComponent(room)}/join`, { token });
  }

  /** Sends a message. */
  async send(token: string, room: string, text: string, clientId?: string): Promise<ApiAnswer> {
    return await this.call("POST", `/api/rooms/${encodeURIComponent(room)}/messages`, {
      token,
      body: clientId === undefined ? { text } : { text, clientId },
    });
  }

  /** One long poll. */
  async poll(token: string, cursor: string | null, wait = 0, signal?: AbortSignal): Promise<ApiAnswer> {
    const query = new URLSearchParams({ wait: String(wait) });
    if (cursor !== null) query.set("cursor", cursor);
    return await this.call("GET", `/api/events?${query}`, { token, ...(signal ? { signal } : {}) });
  }
}

/** Sends raw bytes over a fresh TCP connection and reads until the server closes or `timeoutMs`. */
export async function rawExchange(
  url: string,
  request: string | Uint8Array,
  timeoutMs = 2000,
): Promise<string> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(typeof request === "string" ? new TextEncoder().encode(request) : request);
    return await readUntilClose(conn, timeoutMs);
  } finally {
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
}

/** Reads from `conn` until EOF or `timeoutMs`, decoding as latin1. */
export async function readUntilClose(conn: Deno.Conn, timeoutMs: number): Promise<string> {
  const chunks: string[] = [];
  const buf = new Uint8Array(65536);
  const decoder = new TextDecoder("latin1");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), deadline - Date.now())),
    ]);
    clearTimeout(timer);
    if (n === "timeout" || n === null) break;
    chunks.push(decoder.decode(buf.subarray(0, n)));
  }
  return chunks.join("");
}
