import type { Connection, ConnectionHandler } from "../net/connection.ts";
import { HttpError, STATUS } from "./errors.ts";
import { type ParsedRequest, type ParserLimits, RequestParser, trimOws } from "./parser.ts";
import { errorResponse, serializeResponse } from "./response.ts";
import type { HttpRequest, HttpResponse } from "./types.ts";

/** Timeouts of a connection, in milliseconds. */
export interface HttpTimeouts {
  /** From the first byte of a request (or the connection's start) to the end of its head. */
  header: number;
  /** From the end of the head to the end of the body. */
  body: number;
  /** Between requests on a keep-alive connection. */
  idle: number;
}

/** What every connection of one server shares. */
export interface HttpConnectionContext {
  limits: ParserLimits;
  timeouts: HttpTimeouts;
  /** Requests read ahead of their responses at most; reading pauses above it. */
  maxPipeline: number;
  /** Take the client address from `X-Forwarded-For`. */
  trustProxy: boolean;
  now(): number;
  /** Answers a request; must not throw (errors are turned into responses before this). */
  respond(req: HttpRequest): HttpResponse | Promise<HttpResponse>;
  /** Counts a written response. */
  count(status: number): void;
  /** True while the server shuts down: every response closes its connection. */
  draining(): boolean;
}

interface Slot {
  method: string;
  version: "HTTP/1.0" | "HTTP/1.1";
  keepAlive: boolean;
  /** The request while its handler may still be waiting; null once answered. */
  abort: IncomingRequest | null;
  bytes: Uint8Array | null;
  close: boolean;
}

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");

/**
 * HTTP/1.1 over one connection: feeds bytes to the parser, dispatches requests, and writes
 * responses in request order even when an earlier one (a long poll) answers last.
 */
export class HttpConnection implements ConnectionHandler {
  readonly conn: Connection;
  #ctx: HttpConnectionContext;
  #parser: RequestParser;
  #pending: Slot[] = [];
  /** No further request is read: the last one asked to close, or framing failed. */
  #closing = false;
  /** When the current request's first byte (or the connection) arrived; null when idle. */
  #requestStart: number | null;
  #bodyStart: number | null = null;
  #idleSince: number;
  #paused = false;
  /** A request behind others expects `100 Continue`: sent once the responses ahead are written. */
  #continueOwed = false;

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

  /** Bytes of a request arrived. */
  onData(bytes: Uint8Array): void {
    if (this.#closing) return;
    this.#parser.push(bytes);
    this.#drive();
  }

  /** The client closed its side: waiting requests are abandoned, and we close once answered. */
  onEnd(): void {
    this.#closing = true;
    if (this.#pending.length === 0) {
      // The last answer may still be queued or half written: end() sends it before closing.
      this.conn.end();
      return;
    }
    for (const slot of this.#pending) slot.abort?.abort();
  }

  /** The socket is gone: release waiting handlers at once. */
  onClose(): void {
    this.#closing = true;
    for (const slot of this.#pending) slot.abort?.abort();
    this.#pending = [];
  }

  /** Applies the header, body and idle timeouts; called by the server's periodic sweep. */
  sweep(now: number): void {
    if (this.conn.closed || this.#closing || this.#pending.length > 0) return;
    const t = this.#ctx.timeouts;
    if (this.#parser.phase === "body" && this.#bodyStart !== null) {
      if (now - this.#bodyStart >= t.body) this.#timeout("The request body did not arrive in time");
    } else if (this.#requestStart !== null) {
      if (now - this.#requestStart >= t.header) {
        this.#timeout("The request head did not arrive in time");
      }
    } else if (now - this.#idleSince >= t.idle) {
      this.#closing = true;
      this.conn.end();
    }
  }

  /** Shutdown: idle connections close now, busy ones after their current responses. */
  drain(): void {
    if (this.#pending.length === 0 && this.#parser.phase === "idle" && this.#parser.pending === 0) {
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
    const slot = this.#push({
      method: "GET",
      version: "HTTP/1.1",
      keepAlive: false,
      abort: null,
      bytes: null,
      close: true,
    });
    this.#fill(slot, errorResponse(error));
  }

  #drive(): void {
    const ctx = this.#ctx;
    while (!this.#closing) {
      if (this.#pending.length >= ctx.maxPipeline) {
        // Too many requests read ahead of their responses: stop reading until some are written.
        this.#paused = true;
        this.conn.pause();
        break;
      }
      const step = this.#parser.next();
      if (step.kind === "incomplete") break;
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
        return;
      }
      this.#continueOwed = false;
      this.#dispatch(step.request);
    }
    if (this.#parser.phase === "idle") this.#requestStart = null;
    else this.#requestStart ??= ctx.now();
  }

  #push(slot: Slot): Slot {
    this.#pending.push(slot);
    return slot;
  }

  #dispatch(parsed: ParsedRequest): void {
    const ctx = this.#ctx;
    this.#requestStart = null;
    if (!parsed.keepAlive) this.#closing = true;
    const req = new IncomingRequest(parsed, this.conn.remoteAddr, ctx.trustProxy);
    const slot = this.#push({
      method: parsed.method,
      version: parsed.version,
      keepAlive: parsed.keepAlive,
      abort: req,
      bytes: null,
      close: !parsed.keepAlive,
    });
    const result = ctx.respond(req);
    if (result instanceof Promise) result.then((res) => this.#fill(slot, res));
    else this.#fill(slot, result);
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
    });
    ctx.count(res.status);
    slot.abort = null;
    this.#flush();
  }

  /** Writes finished responses from the front of the pipeline, in order. */
  #flush(): void {
    const pending = this.#pending;
    while (pending.length > 0 && pending[0]!.bytes !== null) {
      const slot = pending.shift()!;
      this.conn.write(slot.bytes!);
      if (slot.close) {
        this.#closing = true;
        for (const rest of pending) rest.abort?.abort();
        this.#pending = [];
        this.conn.end();
        return;
      }
    }
    if (pending.length > 0) return;
    if (this.#continueOwed && !this.#closing) {
      this.#continueOwed = false;
      this.conn.write(CONTINUE);
    }
    this.#idleSince = this.#ctx.now();
    if (this.#closing) {
      // The client went away (EOF) and every answer is written.
      this.conn.end();
      return;
    }
    if (this.#ctx.draining() && this.#parser.phase === "idle" && this.#parser.pending === 0) {
      this.#closing = true;
      this.conn.end();
      return;
    }
    if (this.#paused) {
      this.#paused = false;
      this.conn.resume();
      this.#drive();
    }
  }
}

/**
 * A request with the parts most handlers never touch made on first use: the query parameters
 * and the abort signal (an AbortController per request is measurable at this layer's rates).
 */
class IncomingRequest implements HttpRequest {
  readonly method: string;
  readonly target: string;
  readonly path: string;
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Uint8Array;
  readonly remoteAddr: string;
  #rawQuery: string;
  #query: URLSearchParams | null = null;
  #controller: AbortController | null = null;
  #aborted = false;

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

  get query(): URLSearchParams {
    return this.#query ??= new URLSearchParams(this.#rawQuery);
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
    this.#aborted = true;
    this.#controller?.abort();
  }
}
