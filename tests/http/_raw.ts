/** Raw-socket helpers of the HTTP tests: a server on an ephemeral loopback port and a client that speaks bytes. */
import { HttpServer, type HttpServerOptions, type ServerHandler } from "../../lib/http/server.ts";
import { TEST_SOCKETS } from "../_server.ts";

export { FakeClock as ManualClock } from "../_clock.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Starts an HttpServer on 127.0.0.1, runs `fn`, and always closes the server. */
export async function withHttpServer(
  handler: ServerHandler,
  options: HttpServerOptions,
  fn: (server: HttpServer, port: number) => Promise<void>,
): Promise<void> {
  const server = new HttpServer(handler, {
    sweepInterval: 0,
    sockets: TEST_SOCKETS,
    ...options,
    hostname: "127.0.0.1",
    port: 0,
  });
  const { port } = await server.listen();
  try {
    await fn(server, port);
  } finally {
    await server.close();
  }
}

/** One parsed response. */
export interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated fields joined with `, `. */
  headers: Map<string, string>;
  /** The raw header lines in order, as sent. */
  lines: string[];
  body: string;
}

/** Bytes of `text`, each char one byte (latin1). */
export function bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/**
 * A TCP client that reads a response at a time. `readResponse` knows HEAD and bodyless statuses;
 * the rest of what arrives stays buffered for the next call.
 */
export class RawClient {
  readonly conn: Deno.TcpConn;
  #buf = "";
  #eof = false;
  #closed = false;
  #pendingRead: Promise<number | null> | null = null;
  #chunk = new Uint8Array(65536);

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /** Connects to 127.0.0.1:`port`. */
  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** True once the server closed its side. */
  get eof(): boolean {
    return this.#eof;
  }

  /** What was received and not yet consumed. */
  get buffered(): string {
    return this.#buf;
  }

  /** Writes all of `data`. */
  async send(data: string | Uint8Array): Promise<void> {
    const all = typeof data === "string" ? bytes(data) : data;
    let off = 0;
    while (off < all.byteLength) off += await this.conn.write(all.subarray(off));
  }

  /** Reads once more; false on EOF or when `timeoutMs` passes first. */
  async fill(timeoutMs: number): Promise<boolean> {
    if (this.#eof) return false;
    this.#pendingRead ??= this.conn.read(this.#chunk).catch(() => null);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const n = await Promise.race([this.#pendingRead, timeout]);
    clearTimeout(timer);
    if (n === "timeout") return false;
    this.#pendingRead = null;
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#buf += latin1.decode(this.#chunk.subarray(0, n));
    return true;
  }

  /** Reads until EOF (true) or until `timeoutMs` passes (false). */
  async waitEof(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#eof) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.fill(left);
    }
    return true;
  }

  /** Reads until EOF or `timeoutMs` and returns everything unconsumed. */
  async readAll(timeoutMs = 2000): Promise<string> {
    await this.waitEof(timeoutMs);
    const all = this.#buf;
    this.#buf = "";
    return all;
  }

  /** True if nothing arrives within `ms` (and the connection stays open). */
  async quiet(ms: number): Promise<boolean> {
    if (this.#buf.length > 0) return false;
    const got = await this.fill(ms);
    return !got && !this.#eof;
  }

  /**
   * Reads one response (interim 1xx included, as their own responses); throws if it does not
   * arrive complete within `timeoutMs`.
   */
  async readResponse(options: { head?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? 2000);
    for (;;) {
      const res = takeResponse(this.#buf, options.head ?? false);
      if (res) {
        this.#buf = this.#buf.slice(res.length);
        return res.response;
      }
      const left = deadline - Date.now();
      if (this.#eof || left <= 0) {
        throw new Error(
          `No complete response (eof=${this.#eof}); got ${JSON.stringify(this.#buf)}`,
        );
      }
      await this.fill(left);
    }
  }

  /** Closes the socket; idempotent. Waits for a read still pending to settle. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // closed already
    }
    await this.#pendingRead;
  }
}

/** Parses one response from the front of `text`; null while incomplete. */
export function takeResponse(
  text: string,
  head: boolean,
): { response: RawResponse; length: number } | null {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/.exec(statusLine);
  if (!m) throw new Error(`Malformed status line: ${JSON.stringify(statusLine)}`);
  const status = Number(m[1]);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`Malformed header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = headers.get(name);
    headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
  }
  const start = end + 4;
  const length = status < 200 || status === 204 || status === 304 || head
    ? 0
    : Number(headers.get("content-length") ?? "0");
  if (text.length < start + length) return null;
  return {
    response: { status, headers, lines, body: text.slice(start, start + length) },
    length: start + length,
  };
}

/** Sends `request` on a fresh connection and reads until the server closes (or `timeoutMs`). */
export async function exchange(
  port: number,
  request: string | Uint8Array,
  timeoutMs = 2000,
): Promise<{
  text: string;
  closed: boolean;
}> {
  const client = await RawClient.connect(port);
  try {
    await client.send(request);
    const closed = await client.waitEof(timeoutMs);
    return { text: client.buffered, closed };
  } finally {
    await client.close();
  }
}

/** Parses every complete response in `text`, in order. */
export function parseAll(text: string, head = false): RawResponse[] {
  const out: RawResponse[] = [];
  for (;;) {
    const res = takeResponse(text, head);
    if (!res) return out;
    out.push(res.response);
    text = text.slice(res.length);
  }
}

/** The UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}
