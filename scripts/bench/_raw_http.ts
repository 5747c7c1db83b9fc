/**
 * The benchmark client's HTTP/1.1 over raw TCP: requests are bytes built ahead, responses are
 * parsed incrementally from the socket, and each response is stamped with the time its last bytes
 * were read. No fetch, no streams: the client must cost less than the servers it measures.
 */

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();
const headerPatterns = new Map<string, RegExp>();

/** Milliseconds since the epoch with sub-millisecond precision, comparable across processes. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** One response as the client sees it. */
export interface RawResponse {
  status: number;
  /** The status line and header fields, as sent. */
  head: string;
  body: Uint8Array;
  /** When the read that completed this response returned ({@linkcode now}). */
  at: number;
}

/** The value of a header field in a response head, or null. */
export function headerValue(head: string, name: string): string | null {
  let pattern = headerPatterns.get(name);
  if (!pattern) headerPatterns.set(name, pattern = new RegExp(`\r\n${name}:[ \t]*([^\r\n]*)`, "i"));
  const match = pattern.exec(head);
  return match ? match[1]!.trim() : null;
}

/** A request as bytes: `headers` are `Name: value` lines; a body gets its Content-Length. */
export function encodeRequest(
  method: string,
  path: string,
  headers: string[] = [],
  body?: string,
): Uint8Array {
  let text = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  for (const line of headers) text += `${line}\r\n`;
  if (body !== undefined) {
    text += `Content-Type: application/json\r\nContent-Length: ${encoder.encode(body).length}\r\n`;
  }
  text += "\r\n";
  if (body !== undefined) text += body;
  return encoder.encode(text);
}

const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const CHUNKED = /\r\ntransfer-encoding:[^\r\n]*chunked/i;

/**
 * Splits a byte stream into responses (Content-Length, chunked, or bodyless statuses). Bodies
 * that end only at close are not supported: no server here sends them. Bytes are parsed where
 * they were read; only an incomplete response's bytes are copied aside.
 */
export class ResponseReader {
  /** Bytes of an incomplete response kept from earlier reads: `#kept[0, #length)`. */
  #kept: Uint8Array | null = null;
  #length = 0;
  /** Bytes the incomplete response needs in all, when its head told (0: unknown). */
  #need = 0;

  /** Adds bytes read from the socket and returns the responses they complete. */
  push(chunk: Uint8Array, at: number): RawResponse[] {
    let data = chunk;
    if (this.#kept) {
      if (this.#length + chunk.length > this.#kept.length) {
        const grown = new Uint8Array(Math.max(this.#kept.length * 2, this.#length + chunk.length));
        grown.set(this.#kept.subarray(0, this.#length));
        this.#kept = grown;
      }
      this.#kept.set(chunk, this.#length);
      this.#length += chunk.length;
      if (this.#length < this.#need) return [];
      data = this.#kept.subarray(0, this.#length);
    }
    const out: RawResponse[] = [];
    let offset = 0;
    this.#need = 0;
    while (offset < data.length) {
      const parsed = parseResponse(data, offset, at);
      if (!parsed.response) {
        this.#need = parsed.need;
        break;
      }
      out.push(parsed.response);
      offset = parsed.end;
    }
    const rest = data.length - offset;
    if (rest === 0) {
      this.#kept = null;
      this.#length = 0;
    } else if (data === chunk) {
      // Copied: the caller reuses its read buffer.
      this.#kept = new Uint8Array(Math.max(4096, rest * 2, this.#need));
      this.#kept.set(chunk.subarray(offset));
      this.#length = rest;
    } else {
      this.#kept!.copyWithin(0, offset, this.#length);
      this.#length = rest;
    }
    if (this.#need > 0) this.#need -= offset;
    return out;
  }
}

/** The response that starts at `from`, if `data` holds all of it. */
function parseResponse(
  data: Uint8Array,
  from: number,
  at: number,
): { response: RawResponse; end: number } | { response: null; need: number } {
  const incomplete = { response: null, need: 0 };
  let headEnd = -1;
  for (let i = from; i + 3 < data.length; i++) {
    if (data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 && data[i + 3] === 10) {
      headEnd = i;
      break;
    }
  }
  if (headEnd < 0) return incomplete;
  // Heads are ASCII, which UTF-8 decodes fastest.
  const head = utf8.decode(data.subarray(from, headEnd));
  const status = Number(head.slice(9, 12));
  const bodyStart = headEnd + 4;
  if (status < 200 || status === 204 || status === 304) {
    return { response: { status, head, body: new Uint8Array(0), at }, end: bodyStart };
  }
  const length = CONTENT_LENGTH.exec(head);
  if (length) {
    const end = bodyStart + Number(length[1]);
    if (end > data.length) return { response: null, need: end };
    return { response: { status, head, body: data.slice(bodyStart, end), at }, end };
  }
  if (CHUNKED.test(head)) {
    const chunked = dechunk(data, bodyStart, data.length);
    if (!chunked) return incomplete;
    return { response: { status, head, body: chunked.body, at }, end: chunked.end };
  }
  throw new Error(`response without a length: ${head.split("\r\n")[0]}`);
}

/** A complete chunked body starting at `from`, or null while bytes are missing. */
function dechunk(
  data: Uint8Array,
  from: number,
  length: number,
): { body: Uint8Array; end: number } | null {
  const parts: Uint8Array[] = [];
  let at = from;
  while (true) {
    let lineEnd = at;
    while (lineEnd + 1 < length && !(data[lineEnd] === 13 && data[lineEnd + 1] === 10)) lineEnd++;
    if (lineEnd + 1 >= length) return null;
    const size = parseInt(latin1.decode(data.subarray(at, lineEnd)), 16);
    at = lineEnd + 2;
    if (size === 0) {
      // No trailers from these servers: the last chunk is followed by one empty line.
      if (at + 2 > length) return null;
      const total = parts.reduce((n, p) => n + p.length, 0);
      const body = new Uint8Array(total);
      let offset = 0;
      for (const part of parts) {
        body.set(part, offset);
        offset += part.length;
      }
      return { body, end: at + 2 };
    }
    if (at + size + 2 > length) return null;
    parts.push(data.slice(at, at + size));
    at += size + 2;
  }
}

/**
 * One keep-alive connection: requests are written whole, answers come back in order (requests
 * may be pipelined). A closed connection fails what is still waiting.
 */
export class RawConnection {
  #conn: Deno.TcpConn;
  #reader = new ResponseReader();
  #waiting: { resolve(r: RawResponse): void; reject(e: Error): void }[] = [];
  #closed = false;
  /** Resolves when the server closed the connection or it failed. */
  readonly done: Promise<void>;

  private constructor(conn: Deno.TcpConn, readSize: number) {
    this.#conn = conn;
    this.done = this.#readLoop(new Uint8Array(readSize));
  }

  /** Connects to a loopback port. */
  static async open(port: number, readSize = 16 * 1024): Promise<RawConnection> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new RawConnection(conn, readSize);
  }

  /** Requests written and not yet answered. */
  get inFlight(): number {
    return this.#waiting.length;
  }

  /** True once the connection is closed (by either side). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Writes a request and resolves with its response. */
  request(bytes: Uint8Array): Promise<RawResponse> {
    if (this.#closed) return Promise.reject(new Error("connection closed"));
    const answer = new Promise<RawResponse>((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
    });
    this.#write(bytes).catch((error) => this.#fail(error));
    return answer;
  }

  /** Closes the connection; what still waits is rejected. */
  close(): void {
    if (this.#closed) return;
    try {
      this.#conn.close();
    } catch {
      // Closed by the read loop meanwhile.
    }
    this.#fail(new Error("connection closed"));
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
  }

  async #readLoop(buffer: Uint8Array): Promise<void> {
    try {
      while (true) {
        const n = await this.#conn.read(buffer);
        const at = now();
        if (n === null) break;
        for (const response of this.#reader.push(buffer.subarray(0, n), at)) {
          const waiter = this.#waiting.shift();
          if (!waiter) throw new Error(`unrequested response: ${response.head.split("\r\n")[0]}`);
          waiter.resolve(response);
        }
      }
      this.#fail(new Error("the server closed the connection"));
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #fail(error: Error): void {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    }
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
  }
}
