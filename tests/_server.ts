/** Shared helpers of the integration tests: a real server on an ephemeral loopback port. */
import { type App, startApp } from "../lib/app.ts";
import { type Config, parseCommand } from "../lib/config.ts";
import { Logger } from "../lib/log.ts";
import type { EventLog } from "../lib/storage/event_log.ts";
import { FakeClock } from "./_clock.ts";

export { FakeClock };

/**
 * The kind of plain TCP sockets test servers use: tests/sockets_node_test.ts runs the integration
 * tests again with PARLEY_TEST_SOCKETS=node.
 */
export const TEST_SOCKETS: "deno" | "node" = Deno.env.get("PARLEY_TEST_SOCKETS") === "node"
  ? "node"
  : "deno";

/** A config from flags, with test defaults: loopback, any port, memory store, no rate limits. */
export function testConfig(flags: string[] = []): Config {
  const defaults: Record<string, string> = {
    "--host": "127.0.0.1",
    "--port": "0",
    "--store": "memory",
    "--session-rate": "0",
    "--send-rate": "0",
    "--log-level": "error",
    "--sockets": TEST_SOCKETS,
  };
  // A flag the test gives replaces its default (a flag given twice is an error).
  for (const flag of flags) delete defaults[flag.split("=", 1)[0]!];
  const command = parseCommand([...Object.entries(defaults).flat(), ...flags]);
  if (command.kind !== "serve") throw new Error("testConfig: flags did not make a serve command");
  return command.config;
}

/** Options of {@linkcode withServer}. */
export interface TestServerOptions {
  flags?: string[];
  clock?: FakeClock;
  eventLog?: EventLog;
  /** Collects the server's log lines (warn and above) instead of dropping them. */
  logLines?: string[];
  /** Milliseconds between sweeps when no clock is given (default: the app's). */
  sweepInterval?: number;
  /** The moderators' secret: written to a temp file passed as `--admin-token-file`. */
  adminSecret?: string;
}

/** Starts a server, runs `fn`, and always shuts it down. */
export async function withServer(
  options: TestServerOptions,
  fn: (app: App, client: ApiClient) => Promise<void>,
): Promise<void> {
  const lines = options.logLines;
  if (options.adminSecret !== undefined) {
    const secret = options.adminSecret;
    const { adminSecret: _, ...rest } = options;
    await withSecretFile(
      secret,
      (path) =>
        withServer({ ...rest, flags: [...rest.flags ?? [], "--admin-token-file", path] }, fn),
    );
    return;
  }
  const app = await startApp(testConfig(options.flags), {
    ...(options.sweepInterval !== undefined ? { sweepInterval: options.sweepInterval } : {}),
    ...(options.clock ? { now: options.clock.now, sweepInterval: 0 } : {}),
    ...(options.eventLog ? { eventLog: options.eventLog } : {}),
    logger: lines
      ? new Logger("warn", "text", (line) => lines.push(line))
      : new Logger("error", "text", () => {}),
  });
  try {
    await fn(app, new ApiClient(app.url));
  } finally {
    await app.shutdown(2000);
  }
}

/** Writes `secret` to a file in a fresh temp dir for `fn`, and removes it afterwards. */
export async function withSecretFile(
  secret: string,
  fn: (path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley-admin-" });
  try {
    const path = `${dir}/admin-token`;
    await Deno.writeTextFile(path, `${secret}\n`);
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
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

  /**
   * Sends a request; `body` objects are sent as JSON, strings and bytes as they are. `headers`
   * are sent as well (an `authorization` there wins over `token`).
   */
  async call(
    method: string,
    path: string,
    options: {
      token?: string;
      body?: unknown;
      signal?: AbortSignal;
      headers?: Record<string, string>;
    } = {},
  ): Promise<ApiAnswer> {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string"
        ? options.body
        : options.body instanceof Uint8Array
        ? options.body as Uint8Array<ArrayBuffer>
        : JSON.stringify(options.body);
      headers["content-type"] = "application/json";
    }
    Object.assign(headers, options.headers);
    const res = await fetch(this.url + path, {
      method,
      headers,
      body,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  }

  /** A GET whose body is read as bytes, not JSON (static files, `/metrics`). */
  async raw(
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: Headers; bytes: Uint8Array; text: string }> {
    const res = await fetch(this.url + path, { headers });
    const bytes = new Uint8Array(await res.arrayBuffer());
    return {
      status: res.status,
      headers: res.headers,
      bytes,
      text: new TextDecoder().decode(bytes),
    };
  }

  /** The samples of `/metrics` by series (`name` or `name{labels}`). */
  async metrics(): Promise<Map<string, number>> {
    const { status, text } = await this.raw("/metrics");
    if (status !== 200) throw new Error(`/metrics answered ${status}`);
    return parseMetrics(text);
  }

  /** One sample of `/metrics`; throws when the series is missing. */
  async metric(series: string): Promise<number> {
    const value = (await this.metrics()).get(series);
    if (value === undefined) throw new Error(`/metrics has no ${series}`);
    return value;
  }

  /** Resolves once `/metrics` reports `value` for `series`; throws after `timeoutMs`. */
  async untilMetric(series: string, value: number, timeoutMs = 3000): Promise<void> {
    let last: number | undefined;
    await eventually(async () => (last = await this.metric(series)) === value, {
      timeoutMs,
      what: () => `${series} to be ${value} (last seen ${last})`,
    });
  }

  /**
   * Creates a session and returns its token and cursor (and `moderator`); `admin` is the
   * moderators' secret, `headers` go with the request (e.g. `X-Forwarded-For`).
   */
  async session(
    nick: string,
    extra: { admin?: string; headers?: Record<string, string> } = {},
  ): Promise<{ token: string; cursor: string; moderator?: true }> {
    const body = extra.admin === undefined ? { nick } : { nick, admin: extra.admin };
    const res = await this.call("POST", "/api/session", {
      body,
      ...(extra.headers ? { headers: extra.headers } : {}),
    });
    if (res.status !== 201) {
      throw new Error(`session ${nick}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res.body;
  }

  /**
   * Sessions alice and bob, each joined to `rooms` (alice first), and the cursor after those
   * joins: the common start of tests about what one sees of the other.
   */
  async aliceAndBob(
    rooms: string[] = ["lobby"],
  ): Promise<
    {
      alice: { token: string; cursor: string };
      bob: { token: string; cursor: string };
      cursor: string;
    }
  > {
    const alice = await this.session("alice");
    const bob = await this.session("bob");
    for (const session of [alice, bob]) {
      for (const room of rooms) await this.join(session.token, room);
    }
    const cursor: string = (await this.poll(alice.token, null, 0)).body.cursor;
    return { alice, bob, cursor };
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
  async poll(
    token: string,
    cursor: string | null,
    wait = 0,
    signal?: AbortSignal,
  ): Promise<ApiAnswer> {
    const query = new URLSearchParams({ wait: String(wait) });
    if (cursor !== null) query.set("cursor", cursor);
    return await this.call("GET", `/api/events?${query}`, { token, ...(signal ? { signal } : {}) });
  }
}

/**
 * Asserts an API error: `status`, the JSON content type and `{"error": {"code", "message", …}}`
 * with `code`; answers the error object (for its further fields).
 */
export function assertApiError(
  res: ApiAnswer,
  status: number,
  code: string,
): Record<string, unknown> {
  const detail = JSON.stringify(res.body);
  if (res.status !== status) {
    throw new Error(`expected ${status} ${code}, got ${res.status} ${detail}`);
  }
  if (res.headers.get("content-type") !== "application/json; charset=utf-8") {
    throw new Error(`an error without the JSON content type: ${res.headers.get("content-type")}`);
  }
  const error = res.body?.error;
  if (error?.code !== code || typeof error.message !== "string" || error.message === "") {
    throw new Error(`expected error ${code} with a message, got ${detail}`);
  }
  return error;
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
      new Promise<"timeout">((resolve) =>
        timer = setTimeout(() => resolve("timeout"), deadline - Date.now())
      ),
    ]);
    clearTimeout(timer);
    if (n === "timeout" || n === null) break;
    chunks.push(decoder.decode(buf.subarray(0, n)));
  }
  return chunks.join("");
}

/** Parses Prometheus text format samples into `series → value` (comments skipped). */
export function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/**
 * Calls `check` until it returns true, a few milliseconds apart; throws after `timeoutMs`. For
 * what happens on the other side of a socket, where no clock can be injected.
 */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; what?: () => string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 3000);
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${options.what?.() ?? "a condition"}`);
    }
    await delay(10);
  }
}

/**
 * Starts a long poll of `token` from `cursor` and resolves once the server holds it waiting; the
 * answer comes in `answer` (wrapped, so awaiting this does not await the poll).
 */
export async function waitingPoll(
  app: App,
  client: ApiClient,
  token: string,
  cursor: string,
  wait = 10,
): Promise<{ answer: Promise<ApiAnswer> }> {
  const before = (await app.store.gauges()).waitingPolls;
  const answer = client.poll(token, cursor, wait);
  await eventually(async () => (await app.store.gauges()).waitingPolls > before, {
    what: () => "the poll to wait",
  });
  return { answer };
}

/** Resolves after `ms` milliseconds of real time. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A response read from a raw connection. */
export interface RawResponse {
  status: number;
  /** The status line and header lines as sent. */
  head: string;
  /** Header values by lower-case name. */
  headers: Map<string, string>;
  body: Uint8Array;
  /** The body decoded as UTF-8. */
  text: string;
}

/**
 * A plain TCP connection that speaks HTTP by hand: for what fetch hides (`Connection: close`,
 * 100 Continue, invalid bytes, shutdown) and for requests sent in pieces.
 */
export class RawHttp {
  #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Connects to the server at `url`. */
  static async connect(url: string): Promise<RawHttp> {
    const { hostname, port } = new URL(url);
    return new RawHttp(await Deno.connect({ hostname, port: Number(port) }));
  }

  /** Writes bytes (strings as latin1-safe ASCII via UTF-8). */
  async send(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    while (bytes.byteLength > 0) bytes = bytes.subarray(await this.#conn.write(bytes));
  }

  /** Reads one response (framed by `Content-Length`); throws on EOF or after `timeoutMs`. */
  async readResponse(timeoutMs = 3000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    let end: number;
    while ((end = indexOfHeadEnd(this.#buffer)) < 0) await this.#fill(deadline);
    const head = new TextDecoder("latin1").decode(this.#buffer.subarray(0, end));
    const [statusLine = "", ...lines] = head.split("\r\n");
    const status = Number(statusLine.split(" ")[1]);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const bodyless = status < 200 || status === 204 || status === 304;
    const length = bodyless ? 0 : Number(headers.get("content-length") ?? 0);
    while (this.#buffer.byteLength < end + 4 + length) await this.#fill(deadline);
    const body = this.#buffer.slice(end + 4, end + 4 + length);
    this.#buffer = this.#buffer.slice(end + 4 + length);
    return { status, head, headers, body, text: new TextDecoder().decode(body) };
  }

  /** True when the server closed the connection (EOF) within `timeoutMs` with nothing more sent. */
  async closedByServer(timeoutMs = 3000): Promise<boolean> {
    try {
      await this.#fill(Date.now() + timeoutMs);
      return false;
    } catch (error) {
      return error instanceof Deno.errors.UnexpectedEof;
    }
  }

  /** Closes the connection; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // closed already
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Reads more bytes into the buffer; throws UnexpectedEof at EOF, TimedOut at the deadline. */
  async #fill(deadline: number): Promise<void> {
    const chunk = new Uint8Array(65536);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
    });
    const read = this.#conn.read(chunk).catch(() => null);
    const n = await Promise.race([read, timeout]);
    clearTimeout(timer);
    if (n === "timeout") {
      // The read stays pending; close the connection so it settles and nothing leaks.
      this.close();
      await read;
      throw new Deno.errors.TimedOut("No answer from the server in time");
    }
    if (n === null) throw new Deno.errors.UnexpectedEof("The server closed the connection");
    const next = new Uint8Array(this.#buffer.byteLength + n);
    next.set(this.#buffer);
    next.set(chunk.subarray(0, n), this.#buffer.byteLength);
    this.#buffer = next;
  }
}

function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.byteLength; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}
