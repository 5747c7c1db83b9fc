import { Connection } from "../net/connection.ts";
import { Listener } from "../net/listener.ts";
import { type Selectable, Selector } from "../net/selector.ts";
import { HttpError, STATUS } from "./errors.ts";
import { HttpConnection, type HttpTimeouts } from "./http_connection.ts";
import { DEFAULT_LIMITS, type ParserLimits } from "./parser.ts";
import { errorResponse, jsonResponse, serializeResponse } from "./response.ts";
import type { HttpRequest, HttpResponse } from "./types.ts";

/** Options of an {@linkcode HttpServer}; every limit has the default of DESIGN.md. */
export interface HttpServerOptions {
  hostname?: string;
  port?: number;
  limits?: Partial<ParserLimits>;
  /** Seconds, as the flags take them. */
  timeouts?: Partial<HttpTimeouts>;
  maxConns?: number;
  maxConnsPerIp?: number;
  maxPipeline?: number;
  /**
   * Unsent response bytes per connection (queued or inside an unfinished write) above which it
   * reads and answers nothing more until the client takes some; default 64 KiB.
   */
  maxUnsent?: number;
  trustProxy?: boolean;
  /** Milliseconds between timeout sweeps; 0 = no timer (tests call `sweep()`). */
  sweepInterval?: number;
  /** The clock for timeouts; tests inject one. */
  now?: () => number;
  /** Called with errors handlers threw (they are answered with 500). */
  onError?: (error: unknown, req: HttpRequest | null) => void;
  /** Called with every handler's final response and its time in milliseconds (access logs). */
  onResponse?: (req: HttpRequest, res: HttpResponse, ms: number) => void;
  /** Called with every failed accept (EMFILE, ...); accepting goes on until the server closes. */
  onAcceptError?: (error: Error) => void;
}

/** Counters the server keeps for `/metrics`. */
export interface HttpStats {
  /** Responses written by status class: index 1 = 1xx … 5 = 5xx. */
  readonly responses: number[];
  readonly refused: number;
  /** Connections closed because their output made no progress within the write timeout. */
  readonly writeTimeouts: number;
}

/** The request handler of a server; may throw {@linkcode HttpError}. */
export type ServerHandler = (req: HttpRequest) => HttpResponse | Promise<HttpResponse>;

const DEFAULT_TIMEOUTS_S = { header: 10, body: 30, idle: 75, write: 30 } as const;
const DEFAULT_MAX_UNSENT = 64 * 1024;

/**
 * An HTTP/1.1 server on `Deno.listen`: one selector loop over the listener and every
 * connection, as in DESIGN.md's "The selector in Deno".
 */
export class HttpServer {
  #selector = new Selector<Selectable>();
  #handler: ServerHandler;
  #options: HttpServerOptions;
  #connections = new Set<HttpConnection>();
  #listener: Listener | null = null;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #loop: Promise<void> | null = null;
  #draining = false;
  #closed = false;
  #stats = { responses: [0, 0, 0, 0, 0, 0], refused: 0, writeTimeouts: 0 };
  #ctx;

  constructor(handler: ServerHandler, options: HttpServerOptions = {}) {
    this.#handler = handler;
    this.#options = options;
    const timeouts = { ...DEFAULT_TIMEOUTS_S, ...options.timeouts };
    const now = options.now ?? Date.now;
    this.#ctx = {
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      timeouts: {
        header: timeouts.header * 1000,
        body: timeouts.body * 1000,
        idle: timeouts.idle * 1000,
        write: timeouts.write * 1000,
      },
      maxPipeline: options.maxPipeline ?? 16,
      trustProxy: options.trustProxy ?? false,
      now,
      respond: (req: HttpRequest) => this.#respond(req),
      count: (status: number) => this.#stats.responses[Math.floor(status / 100)]!++,
      draining: () => this.#draining,
      onWriteTimeout: () => this.#stats.writeTimeouts++,
    };
  }

  /** Starts listening; resolves with the bound address. Throws `Deno.errors.AddrInUse` etc. */
  listen(): Deno.NetAddr {
    if (this.#listener) throw new Error("Cannot listen: the server is already listening");
    const raw = Deno.listen({
      hostname: this.#options.hostname ?? "0.0.0.0",
      port: this.#options.port ?? 8080,
    });
    const tooMany = errorResponse(
      new HttpError(
        STATUS.ServiceUnavailable,
        "too_many_connections",
        "Too many connections; try again shortly",
        { close: true, headers: { "Retry-After": "1" } },
      ),
    );
    // Serialized per refusal, so its Date is the server's current time (a few hundred bytes).
    const refusal = () =>
      serializeResponse(tooMany, {
        version: "HTTP/1.1",
        keepAlive: false,
        head: false,
        now: this.#ctx.now(),
      });
    this.#listener = new Listener(
      raw,
      this.#selector,
      {
        maxConns: this.#options.maxConns ?? 10000,
        maxConnsPerIp: this.#options.maxConnsPerIp ?? 0,
      },
      {
        onConnection: (conn) => this.#track(conn),
        onRefused: () => this.#stats.refused++,
        onAcceptError: (error) => this.#options.onAcceptError?.(error),
      },
      refusal,
      {
        maxBuffer: this.#ctx.limits.maxHeader,
        highWaterMark: this.#options.maxUnsent ?? DEFAULT_MAX_UNSENT,
      },
    );
    this.#listener.start();
    this.#loop = this.#run();
    const interval = this.#options.sweepInterval ?? 1000;
    if (interval > 0) this.#sweepTimer = setInterval(() => this.sweep(), interval);
    return this.#listener.addr;
  }

  /** The bound address. */
  get addr(): Deno.NetAddr {
    if (!this.#listener) throw new Error("Cannot get addr: the server is not listening");
    return this.#listener.addr;
  }

  /** Open client connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** True while shutting down. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Response and refusal counters. */
  get stats(): HttpStats {
    return this.#stats;
  }

  /** Applies timeouts to every connection; the timer calls it, tests may too. */
  sweep(): void {
    const now = this.#ctx.now();
    for (const conn of this.#connections) conn.sweep(now);
  }

  /**
   * Stops accepting and lets connections finish: idle ones close now, busy ones after their
   * current response (which carries `Connection: close`). Resolves when all are closed or after
   * `timeoutMs`, when the rest are closed forcibly.
   */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    this.#draining = true;
    this.#listener?.close();
    for (const conn of this.#connections) conn.drain();
    const deadline = Date.now() + timeoutMs;
    while (this.#connections.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await this.close();
  }

  /** Closes the listener and every connection now; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#draining = true;
    clearInterval(this.#sweepTimer);
    this.#listener?.close();
    // Every open connection, tracked or refused and lingering, is a selector member.
    for (const member of [...this.#selector.members()]) {
      if (member instanceof Connection) member.close();
    }
    this.#selector.close();
    await this.#loop;
  }

  #track(conn: Connection): void {
    const http = new HttpConnection(conn, this.#ctx);
    conn.handler = http;
    this.#connections.add(http);
    conn.onClosed(() => this.#connections.delete(http));
  }

  async #run(): Promise<void> {
    const selector = this.#selector;
    while (!selector.closed && selector.size > 0) {
      for (const member of await selector.select()) {
        try {
          member.onReadable();
        } catch (error) {
          // One broken connection must not stop the loop that serves all the others.
          if (member instanceof Connection) member.close();
          this.#options.onError?.(error, null);
        }
      }
    }
  }

  #respond(req: HttpRequest): HttpResponse | Promise<HttpResponse> {
    const onResponse = this.#options.onResponse;
    if (!onResponse) return this.#answer(req);
    const now = this.#ctx.now;
    const start = now();
    const report = (res: HttpResponse) => {
      onResponse(req, res, now() - start);
      return res;
    };
    const answer = this.#answer(req);
    return answer instanceof Promise ? answer.then(report) : report(answer);
  }

  #answer(req: HttpRequest): HttpResponse | Promise<HttpResponse> {
    try {
      const result = this.#handler(req);
      if (result instanceof Promise) {
        return result.then((res) => this.#check(res, req), (error) => this.#fail(error, req));
      }
      return this.#check(result, req);
    } catch (error) {
      return this.#fail(error, req);
    }
  }

  /** A handler that answers something other than a response is a bug: 500, never a crash. */
  #check(res: HttpResponse, req: HttpRequest): HttpResponse {
    if (typeof res?.status === "number") return res;
    return this.#fail(new TypeError(`Handler answered ${String(res)} instead of a response`), req);
  }

  #fail(error: unknown, req: HttpRequest): HttpResponse {
    if (error instanceof HttpError) return errorResponse(error);
    this.#options.onError?.(error, req);
    return jsonResponse(STATUS.InternalServerError, {
      error: { code: "internal_error", message: "The server failed to handle this request" },
    });
  }
}
