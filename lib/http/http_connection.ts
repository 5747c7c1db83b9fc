import type { Connection, ConnectionHandler } from "../net/connection.ts";
import { HttpError, STATUS } from "./errors.ts";
import { type ParsedRequest, type ParserLimits, RequestParser, trimOws } from "./parser.ts";
import { errorResponse, serializeResponse } from "./response.ts";
import { RawQuery } from "./query.ts";
import type { Abortable, HttpRequest, HttpResponse } from "./types.ts";

/** Timeouts of a connection, in milliseconds. */
export interface HttpTimeouts {
  /** From the first byte of a request (or the connection's start) to the end of its head. */
  header: number;
  /** From the end of the head to the end of the body. */
  body: number;
  /** Between requests on a keep-alive connection. */
  idle: number;
  /**
   * Unsent output that makes no progress for this long closes the connection: a client that does
   * not read. Applies in every state, closing and lingering included.
   */
  write: number;
}

/** What every connection of one server shares. */
export interface HttpConnectionContext {
  limits: ParserLimits;
  timeouts: HttpTimeouts;
  /** Requests read ahead of their responses at most; reading pauses above it. */
  maxPipeline: number;
  /** Take the client address from `X-Forwarded-For`. */
  trustProxy: boolean;
  /** The header lines every response carries (`fixedHeaderBlock` of response.ts). */
  fixedHeaders: string;
  now(): number;
  /** Answers a request; must not throw (errors are turned into responses before this). */
  respond(req: HttpRequest): HttpResponse | Promise<HttpResponse>;
  /** Counts a written response. */
  count(status: number): void;
  /** True while the server shuts down: every response closes its connection. */
  draining(): boolean;
  /** Counts a connection closed by the write timeout. */
  onWriteTimeout?(): void;
}

interface Slot {
  method: string;
  version: "HTTP/1.0" | "HTTP/1.1";
  /** The request while its handler may still be waiting; null once answered. */
  abort: IncomingRequest | null;
  bytes: Uint8Array | null;
  close: boolean;
  /** Not a safe method: nothing after it starts before its handler answered. */
  unsafe: boolean;
}

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");

/**
 * HTTP/1.1 over one connection: feeds bytes to the parser, dispatches requests, and writes
 * responses in request order even when an earlier one (a long poll) answers last.
 *
 * Pipelined requests take effect in the order sent (RFC 9112 §9.3.2): safe ones (GET, HEAD,
 * OPTIONS, TRACE) in a row run side by side, but a request with another method starts only once
 * every request before it was answered, and nothing after it starts before it was answered.
 * Input is read only while there is room: fewer than `maxPipeline` requests in flight, no parsed
 * request waiting its turn, and unsent output at or below the connection's high-water mark.
 */
export class HttpConnection implements ConnectionHandler {
  readonly conn: Connection;
  #ctx: HttpConnectionContext;
  #parser: RequestParser;
  /** Dispatched requests whose responses are not yet written, in request order. */
  #pending: Slot[] = [];
  /** Dispatched requests whose handlers have not answered. */
  #unanswered = 0;
  /** An unsafe request's handler has not answered: nothing else starts. */
  #unsafeRunning = false;
  /** A parsed request waiting for its turn (the ordering rule, or room in the pipeline). */
  #held: ParsedRequest | null = null;
  /** No further request is dispatched: the last one asked to close, or framing failed. */
  #closing = false;
  /** The client closed its side: what it sent before is answered, then the connection ends. */
  #eof = false;
  #driving = false;
  /** When the current request's first byte (or the connection) arrived; null when idle. */
  #requestStart: number | null;
  #bodyStart: number | null = null;
  #idleSince: number;
  #paused = false;
  /** A request behind others expects `100 Continue`: sent once the responses ahead are written. */
  #continueOwed = false;
  /** `conn.bytesWritten` when output last moved, and when that was (-1: no output waiting). */
  #writeMark = 0;
  #writeSince = -1;

  constructor(conn: Connection, ctx: HttpConnectionContext) {
    this.conn = conn;
    this.#ctx = ctx;
    this.#parser = new RequestParser(ctx.limits);
    this.#requestStart = ctx.now();
    this.#idleSince = this.#requestStart;
  }

  /** Requests dispatched and not yet written. */
  get inFlight(): number {
    return this.#pending.length;
  }

  /** Requests parsed and not yet dispatched (bounded by the parser's queue and one held). */
  get parsedAhead(): number {
    return this.#parser.pending + (this.#held === null ? 0 : 1);
  }

  /** Bytes received and not yet parsed. */
  get unparsedBytes(): number {
    return this.#parser.buffered;
  }

  /** Bytes the parser has allocated for unparsed input. */
  get parserCapacity(): number {
    return this.#parser.capacity;
  }

  /** Bytes of a request arrived. */
  onData(bytes: Uint8Array): void {
    if (this.#closing) return;
    this.#parser.push(bytes);
    this.#drive();
  }

  /**
   * The client closed its side. It may still read (a half-close), so every complete request it
   * sent is still answered; waiting handlers are told to answer now (their signal aborts).
   */
  onEnd(): void {
    this.#eof = true;
    for (const slot of this.#pending) slot.abort?.abort();
    this.#drive();
  }

  /** The socket is gone: release waiting handlers at once. */
  onClose(): void {
    this.#closing = true;
    for (const slot of this.#pending) slot.abort?.abort();
    this.#pending = [];
    this.#held = null;
  }

  /** Unsent output fell back to the high-water mark: answering may go on. */
  onDrain(): void {
    this.#drive();
  }

  /** Applies the write, header, body and idle timeouts; called by the server's periodic sweep. */
  sweep(now: number): void {
    const conn = this.conn;
    if (conn.closed) return;
    const t = this.#ctx.timeouts;
    // Output waiting must move, whatever else the connection does (waiting for handlers,
    // closing, lingering): a client that never reads would otherwise hold it forever.
    if (conn.writableLength > 0) {
      const written = conn.bytesWritten;
      if (this.#writeSince < 0 || written !== this.#writeMark) {
        this.#writeMark = written;
        this.#writeSince = now;
      } else if (now - this.#writeSince >= t.write) {
        this.#ctx.onWriteTimeout?.();
        conn.close();
        return;
      }
    } else {
      this.#writeSince = -1;
    }
    // The others time the client, not us: not while we hold its requests or output.
    if (
      this.#closing || this.#eof || this.#pending.length > 0 || this.#held !== null ||
      this.#parser.pending > 0 || conn.needsDrain
    ) {
      return;
    }
    if (this.#parser.phase === "body" && this.#bodyStart !== null) {
      if (now - this.#bodyStart >= t.body) this.#timeout("The request body did not arrive in time");
    } else if (this.#requestStart !== null) {
      if (now - this.#requestStart >= t.header) {
        this.#timeout("The request head did not arrive in time");
      }
    } else if (now - this.#idleSince >= t.idle) {
      this.#closing = true;
      conn.end();
    }
  }

  /** Shutdown: idle connections close now, busy ones after their current responses. */
  drain(): void {
    if (
      this.#pending.length === 0 && this.#held === null && this.#parser.phase === "idle" &&
      this.#parser.pending === 0
    ) {
      this.#closing = true;
      this.conn.end();
    }
  }

  #timeout(message: string): void {
    this.#fail(new HttpError(STATUS.RequestTimeout, "request_timeout", message, { close: true }));
  }

  /** Answers a framing error or timeout after the responses before it, then closes. */
  #fail(error: HttpError): void {
    this.#closing = true;
    this.#held = null;
    const slot: Slot = {
      method: "GET",
      version: "HTTP/1.1",
      abort: null,
      bytes: null,
      close: true,
      unsafe: false,
    };
    this.#pending.push(slot);
    this.#fill(slot, errorResponse(error));
  }

  /**
   * Dispatches what the parser has, as far as the pipeline, the ordering rule and the output
   * bound allow, then pauses or resumes reading. Re-entrant calls (a handler answering at once)
   * return at once: the running loop re-checks everything on its next turn.
   */
  #drive(): void {
    if (this.#driving) return;
    this.#driving = true;
    const ctx = this.#ctx;
    let starved = false;
    try {
      while (!this.#closing) {
        if (this.#pending.length >= ctx.maxPipeline || this.conn.needsDrain) break;
        let request = this.#held;
        if (request === null) {
          const step = this.#parser.next();
          if (step.kind === "incomplete") {
            starved = true;
            break;
          }
          if (step.kind === "head") {
            this.#bodyStart = ctx.now();
            if (step.head.expectContinue) {
              // An interim response must not overtake the final ones before it.
              if (this.#pending.length === 0) this.conn.write(CONTINUE);
              else this.#continueOwed = true;
            }
            continue;
          }
          this.#bodyStart = null;
          if (step.kind === "error") {
            this.#fail(step.error);
            break;
          }
          this.#continueOwed = false;
          request = step.request;
        }
        if (this.#unsafeRunning || (this.#unanswered > 0 && !_isSafe(request.method))) {
          this.#held = request;
          break;
        }
        this.#held = null;
        this.#dispatch(request);
      }
    } finally {
      this.#driving = false;
    }
    this.#settle(starved);
  }

  /** After dispatching: pause or resume reading, or end a connection with nothing left to do. */
  #settle(starved: boolean): void {
    const conn = this.conn;
    if (conn.closed) return;
    const parser = this.#parser;
    if (parser.phase === "idle") {
      this.#requestStart = null;
      // The request is parsed: a read buffer grown for a large head goes back to its first size.
      conn.shrinkBuffer();
    } else {
      this.#requestStart ??= this.#ctx.now();
    }
    // After the client's EOF no request can complete any more.
    if (starved && this.#eof) this.#closing = true;
    if (
      !this.#closing && this.#pending.length === 0 && this.#held === null &&
      parser.phase === "idle" && parser.pending === 0 && this.#ctx.draining()
    ) {
      this.#closing = true;
    }
    if (this.#closing) {
      // The last answer may still be queued or half written: end() sends it before closing.
      if (this.#pending.length === 0) conn.end();
      return;
    }
    if (starved) {
      if (this.#paused) {
        this.#paused = false;
        conn.resume();
      }
    } else if (!this.#paused && !this.#eof) {
      // Full: no more input until a response is written (#flush) or output drains (onDrain).
      this.#paused = true;
      conn.pause();
    }
  }

  #dispatch(parsed: ParsedRequest): void {
    const ctx = this.#ctx;
    this.#requestStart = null;
    if (!parsed.keepAlive) this.#closing = true;
    const req = new IncomingRequest(parsed, this.conn.remoteAddr, ctx.trustProxy);
    // Half-closed: waiting handlers (polls) answer at once instead of holding up the rest.
    if (this.#eof) req.abort();
    const unsafe = !_isSafe(parsed.method);
    const slot: Slot = {
      method: parsed.method,
      version: parsed.version,
      abort: req,
      bytes: null,
      close: !parsed.keepAlive,
      unsafe,
    };
    this.#pending.push(slot);
    this.#unanswered++;
    if (unsafe) this.#unsafeRunning = true;
    const result = ctx.respond(req);
    if (result instanceof Promise) result.then((res) => this.#answered(slot, res));
    else this.#answered(slot, result);
  }

  #answered(slot: Slot, res: HttpResponse): void {
    this.#unanswered--;
    if (slot.unsafe) this.#unsafeRunning = false;
    this.#fill(slot, res);
  }

  #fill(slot: Slot, res: HttpResponse): void {
    if (this.conn.closed) return;
    const ctx = this.#ctx;
    slot.close ||= res.close === true || ctx.draining();
    slot.bytes = serializeResponse(res, {
      version: slot.version,
      keepAlive: !slot.close,
      head: slot.method === "HEAD",
      now: ctx.now(),
      fixedHeaders: ctx.fixedHeaders,
    });
    ctx.count(res.status);
    slot.abort = null;
    this.#flush();
  }

  /** Writes finished responses from the front of the pipeline, in order, then refills it. */
  #flush(): void {
    const pending = this.#pending;
    while (pending.length > 0 && pending[0]!.bytes !== null) {
      const slot = pending.shift()!;
      this.conn.write(slot.bytes!);
      if (slot.close) {
        this.#closing = true;
        for (const rest of pending) rest.abort?.abort();
        this.#pending = [];
        this.#held = null;
        this.conn.end();
        return;
      }
    }
    if (pending.length === 0) {
      if (this.#continueOwed && !this.#closing) {
        this.#continueOwed = false;
        this.conn.write(CONTINUE);
      }
      this.#idleSince = this.#ctx.now();
    }
    // An answer frees a place in the pipeline and may be the one a held request waits for.
    this.#drive();
  }
}

/** Safe methods (RFC 9110 §9.2.1): pipelined, they may run side by side (RFC 9112 §9.3.2). */
function _isSafe(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS" || method === "TRACE";
}

/**
 * A request with the parts most handlers never touch made on first use: the query parameters
 * and the abort signal (an AbortController per request is measurable at this layer's rates).
 */
class IncomingRequest implements HttpRequest, Abortable {
  readonly method: string;
  readonly target: string;
  readonly path: string;
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Uint8Array;
  readonly remoteAddr: string;
  #rawQuery: string;
  #query: RawQuery | null = null;
  #controller: AbortController | null = null;
  #aborted = false;
  /** Who `abortable` tells when the client goes away: one waiting handler, usually. */
  #listeners: (() => void)[] | null = null;

  constructor(parsed: ParsedRequest, peer: string, trustProxy: boolean) {
    const target = parsed.target;
    let pathAndQuery = target;
    if (target.charCodeAt(0) !== 47 /* "/" */ && target !== "*") {
      // absolute-form: keep only the path and query of the URL. The authority ends at the first
      // "/", "?" or "#" (RFC 3986 §3.2): in `http://a?/x` the path is empty and "/x" is query.
      pathAndQuery = "/";
      for (let i = target.indexOf("//") + 2; i < target.length; i++) {
        const c = target.charCodeAt(i);
        if (c === 47) {
          pathAndQuery = target.slice(i);
          break;
        }
        if (c === 63 /* "?" */) {
          pathAndQuery = `/${target.slice(i)}`;
          break;
        }
        // The parser refuses "#" in a target; should one get here, nothing after it counts.
        if (c === 35 /* "#" */) break;
      }
    }
    const q = pathAndQuery.indexOf("?");
    this.method = parsed.method;
    this.target = target;
    this.path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
    this.#rawQuery = q < 0 ? "" : pathAndQuery.slice(q + 1);
    this.version = parsed.version;
    this.headers = parsed.headers;
    this.body = parsed.body;
    let remoteAddr = peer;
    if (trustProxy) {
      const forwarded = parsed.headers.get("x-forwarded-for");
      // The rightmost entry is the one our own proxy added: the address it saw.
      const last = forwarded === undefined ? undefined : trimOws(forwarded.split(",").at(-1)!);
      if (last) remoteAddr = last;
    }
    this.remoteAddr = remoteAddr;
  }

  get query(): RawQuery {
    return this.#query ??= new RawQuery(this.#rawQuery);
  }

  get abortable(): Abortable {
    return this;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  addEventListener(_type: "abort", listener: () => void): void {
    if (this.#aborted) return;
    (this.#listeners ??= []).push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const listeners = this.#listeners;
    const at = listeners?.indexOf(listener) ?? -1;
    if (at >= 0) listeners!.splice(at, 1);
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  /** The client went away before the answer was written. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#controller?.abort();
    const listeners = this.#listeners;
    this.#listeners = null;
    for (const listener of listeners ?? []) listener();
  }
}
