import type { Connection, ConnectionHandler } from "../net/connection.ts";
import { type OutputArena, releaseOutput } from "../net/output_arena.ts";
import { HttpError, STATUS } from "./errors.ts";
import { type ParsedRequest, type ParserLimits, RequestParser, trimOws } from "./parser.ts";
import { errorResponse, serializeResponse } from "./response.ts";
import { RawQuery } from "./query.ts";
import type { Abortable, HttpRequest, HttpResponse } from "./types.ts";

/** What an error report names of a request, which may be gone by then (a waiting poll's). */
export type RequestSummary = Pick<HttpRequest, "method" | "path">;

/** Free parsers kept for reuse at most: enough for a burst of requests starting at once. */
const MAX_SPARE_PARSERS = 64;

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
  /**
   * Answers a request: a response, or a handler's promise that the connection finishes with
   * `settled` or `failed`, so a waiting answer costs one promise reaction and keeps only what its
   * place in the pipeline needs, not the request. Must not throw.
   */
  respond(req: HttpRequest): HttpResponse | Promise<unknown>;
  /** The response for what a handler's promise fulfilled with (something else is a bug: 500). */
  settled(value: unknown, req: RequestSummary): HttpResponse;
  /** The response for what a handler's promise rejected with. */
  failed(error: unknown, req: RequestSummary): HttpResponse;
  /**
   * Idle parsers shared by the connections of this context: a connection holds one only while a
   * request arrives, so a waiting poll holds none.
   */
  parsers?: RequestParser[];
  /** Where answers to single requests are serialized (shared answers never are). */
  arena?: OutputArena;
  /** Called once when a connection has closed (the server stops tracking it). */
  closed?(http: HttpConnection): void;
  /** Counts a written response. */
  count(status: number): void;
  /** True while the server shuts down: every response closes its connection. */
  draining(): boolean;
  /** Counts a connection closed by the write timeout. */
  onWriteTimeout?(): void;
}

/**
 * A request's place in the pipeline, and the abort signal its handler may wait on: all of the
 * request that a waiting handler keeps alive (the request itself, headers and all, is not).
 */
class Slot implements Abortable, RequestSummary {
  readonly method: string;
  readonly path: string;
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  /** The serialized response, once answered. */
  bytes: Uint8Array | null = null;
  close: boolean;
  /** Not a safe method: nothing after it starts before its handler answered. */
  readonly unsafe: boolean;
  #aborted = false;
  /** Who hears the abort: one waiting handler, usually. */
  #listener: (() => void) | null = null;
  #more: (() => void)[] | null = null;
  #controller: AbortController | null = null;

  constructor(
    method: string,
    path: string,
    version: "HTTP/1.0" | "HTTP/1.1",
    close: boolean,
    unsafe: boolean,
  ) {
    this.method = method;
    this.path = path;
    this.version = version;
    this.close = close;
    this.unsafe = unsafe;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  addEventListener(_type: "abort", listener: () => void): void {
    if (this.#aborted) return;
    if (this.#listener === null) this.#listener = listener;
    else (this.#more ??= []).push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    if (this.#listener === listener) {
      this.#listener = this.#more?.shift() ?? null;
      return;
    }
    const at = this.#more?.indexOf(listener) ?? -1;
    if (at >= 0) this.#more!.splice(at, 1);
  }

  /** An AbortSignal made on first use, for handlers that pass it on (fetch, streams). */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  /** The client went away before the answer was written; only while its handler has not answered. */
  abort(): void {
    if (this.#aborted || this.bytes !== null) return;
    this.#aborted = true;
    this.#controller?.abort();
    const listener = this.#listener;
    const more = this.#more;
    this.#listener = this.#more = null;
    listener?.();
    for (const other of more ?? []) other();
  }
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
  /** Held while a request arrives or parsed ones wait; given back to the context when idle. */
  #parser: RequestParser | null;
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
  /**
   * A request head was parsed on this connection: only then is "idle" idle. Before it, empty
   * lines the parser skips (RFC 9112 §2.2) leave the header timeout running from the start.
   */
  #begun = false;
  #bodyStart: number | null = null;
  /** The body being received is a refused request's, skipped: its 413 or 414 was its answer. */
  #skipping = false;
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
    this.#parser = null;
    this.#requestStart = ctx.now();
    this.#idleSince = this.#requestStart;
  }

  /** Requests dispatched and not yet written. */
  get inFlight(): number {
    return this.#pending.length;
  }

  /** Requests parsed and not yet dispatched (bounded by the parser's queue and one held). */
  get parsedAhead(): number {
    return (this.#parser?.pending ?? 0) + (this.#held === null ? 0 : 1);
  }

  /** Bytes received and not yet parsed. */
  get unparsedBytes(): number {
    return this.#parser?.buffered ?? 0;
  }

  /** Bytes the parser has allocated for unparsed input. */
  get parserCapacity(): number {
    return this.#parser?.capacity ?? 0;
  }

  /** Bytes of a request arrived. */
  onData(bytes: Uint8Array): void {
    if (this.#closing) return;
    this.#parser ??= this.#ctx.parsers?.pop() ?? new RequestParser(this.#ctx.limits);
    this.#parser.push(bytes);
    this.#drive();
  }

  /** Where parsing stands: no parser held is an idle one. */
  #phase(): "idle" | "head" | "body" {
    return this.#parser?.phase ?? "idle";
  }

  /** Parsed requests the parser still holds. */
  #parsedPending(): number {
    return this.#parser?.pending ?? 0;
  }

  /**
   * The client closed its side. It may still read (a half-close), so every complete request it
   * sent is still answered; waiting handlers are told to answer now (their signal aborts).
   */
  onEnd(): void {
    this.#eof = true;
    for (const slot of this.#pending) slot.abort();
    this.#drive();
  }

  /**
   * Input waits behind requests still in their handlers, more than the connection takes while
   * paused: waiting handlers (polls) answer now, as at a half-close, so the requests behind them
   * go on and the rest of the input, or the client's close behind it, is read. Otherwise a client
   * that pipelined that much and left would hold its polls until their wait ran out.
   */
  onHeldFull(): void {
    for (const slot of this.#pending) slot.abort();
  }

  /** The socket is gone: release waiting handlers at once. */
  onClose(): void {
    this.#closing = true;
    for (const slot of this.#pending) {
      slot.abort();
      // Answered, waiting for an earlier answer, never to be written.
      if (slot.bytes !== null) releaseOutput(slot.bytes);
    }
    this.#pending = [];
    this.#held = null;
    this.#parser = null;
    this.#ctx.closed?.(this);
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
      this.#parsedPending() > 0 || conn.needsDrain
    ) {
      return;
    }
    if (this.#phase() === "body" && this.#bodyStart !== null) {
      if (now - this.#bodyStart < t.body) return;
      if (!this.#skipping) this.#timeout("The request body did not arrive in time");
      else {
        // The refused request was answered already: a second answer would look like the next's.
        this.#closing = true;
        conn.end();
      }
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
      this.#pending.length === 0 && this.#held === null && this.#phase() === "idle" &&
      this.#parsedPending() === 0
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
    const slot = new Slot("GET", "", "HTTP/1.1", true, false);
    this.#enqueue(slot);
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
          const parser = this.#parser;
          if (parser === null) {
            starved = true;
            break;
          }
          const step = parser.next();
          if (step.kind === "incomplete") {
            starved = true;
            break;
          }
          this.#begun = true;
          this.#skipping = false;
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
          if (step.kind === "refused") {
            // Its answer is final: no 100 Continue may follow it.
            this.#continueOwed = false;
            // Over a limit, its framing known: answered in its turn while its body is skipped.
            if (this.#phase() === "body") {
              this.#bodyStart = ctx.now();
              this.#skipping = true;
            }
            const slot = new Slot(step.method, "", step.version, false, false);
            this.#enqueue(slot);
            this.#fill(slot, errorResponse(step.error));
            continue;
          }
          if (step.kind === "error") {
            if (step.answered) {
              // Bad framing in a refused request's body: it was answered; close after the answers
              // before it instead of a second one.
              this.#closing = true;
              this.#held = null;
            } else {
              this.#fail(step.error);
            }
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
    const phase = this.#phase();
    if (phase === "idle") {
      if (this.#begun) this.#requestStart = null;
      // The request is parsed: a read buffer grown for a large head goes back to its first size.
      conn.shrinkBuffer();
      // Nothing begun or waiting in it: the parser goes back for the next request on any connection.
      if (parser !== null && parser.fresh) {
        this.#parser = null;
        const spare = this.#ctx.parsers;
        if (spare !== undefined && spare.length < MAX_SPARE_PARSERS) spare.push(parser);
      }
    } else {
      this.#requestStart ??= this.#ctx.now();
    }
    // After the client's EOF no request can complete any more.
    if (starved && this.#eof) this.#closing = true;
    if (
      !this.#closing && this.#pending.length === 0 && this.#held === null &&
      phase === "idle" && this.#parsedPending() === 0 && this.#ctx.draining()
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
    const unsafe = !_isSafe(parsed.method);
    const req = new IncomingRequest(parsed, this.conn.remoteAddr, ctx.trustProxy);
    const slot = new Slot(parsed.method, req.path, parsed.version, !parsed.keepAlive, unsafe);
    req.slot = slot;
    // Half-closed: waiting handlers (polls) answer at once instead of holding up the rest.
    if (this.#eof) slot.abort();
    this.#enqueue(slot);
    this.#unanswered++;
    if (unsafe) this.#unsafeRunning = true;
    const result = ctx.respond(req);
    if (result instanceof Promise) {
      // The callbacks keep the slot, never the request: a waiting poll holds no headers.
      result.then(
        (value) => this.#answered(slot, ctx.settled(value, slot)),
        (error) => this.#answered(slot, ctx.failed(error, slot)),
      );
    } else {
      this.#answered(slot, result);
    }
  }

  /** Adds a slot at the end of the pipeline; the usual single one in an array of its size. */
  #enqueue(slot: Slot): void {
    if (this.#pending.length === 0) this.#pending = [slot];
    else this.#pending.push(slot);
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
      ...(ctx.arena ? { arena: ctx.arena } : {}),
    });
    ctx.count(res.status);
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
        for (const rest of pending) {
          rest.abort();
          if (rest.bytes !== null) releaseOutput(rest.bytes);
        }
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
        // The client sends its body once it reads the 100: its time starts now, not at the head.
        this.#bodyStart = this.#ctx.now();
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
 * and the abort signal (its slot's: an AbortController per request is measurable at this layer's
 * rates).
 */
class IncomingRequest implements HttpRequest {
  readonly method: string;
  readonly target: string;
  readonly path: string;
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Uint8Array;
  readonly remoteAddr: string;
  /** Its place in the pipeline, which aborts when the client goes away; set before dispatch. */
  slot: Slot | null = null;
  #rawQuery: string;
  #query: RawQuery | null = null;

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
    return this.slot!;
  }

  get signal(): AbortSignal {
    return this.slot!.signal;
  }
}
