import { Connection } from "../net/connection.ts";
import { Listener } from "../net/listener.ts";
import { OutputArena } from "../net/output_arena.ts";
import { type Selectable, Selector } from "../net/selector.ts";
import { type ByteListener, NodeListener } from "../net/node_socket.ts";
import { REFUSED_ROOM } from "../net/open_files.ts";
import { listenTls, type TlsCertificate } from "../net/tls.ts";
import { HttpError, STATUS } from "./errors.ts";
import { HttpConnection, type HttpTimeouts, type RequestSummary } from "./http_connection.ts";
import { DEFAULT_LIMITS, type ParserLimits, type RequestParser } from "./parser.ts";
import { errorResponse, fixedHeaderBlock, jsonResponse, serializeResponse } from "./response.ts";
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
  /**
   * Where plain TCP sockets come from: `Deno.listen` (default), or `node:net`, whose writes are
   * made at once (see node_socket.ts) but which never accepts again once it runs out of
   * descriptors: it holds at most `maxConns` + REFUSED_ROOM sockets.
   */
  sockets?: "deno" | "node";
  maxPipeline?: number;
  /**
   * Unsent response bytes per connection (queued or inside an unfinished write) above which it
   * reads and answers nothing more until the client takes some; default 64 KiB.
   */
  maxUnsent?: number;
  trustProxy?: boolean;
  /**
   * Speak HTTPS only, with this certificate (`Deno.listenTls`); responses then carry
   * `Strict-Transport-Security`. `reloadTls()` swaps it for new connections.
   */
  tls?: TlsCertificate;
  /** Milliseconds between timeout sweeps; 0 = no timer (tests call `sweep()`). */
  sweepInterval?: number;
  /** The clock for timeouts; tests inject one. */
  now?: () => number;
  /**
   * Called with errors handlers threw (they are answered with 500), and what the request was (only
   * method and path: a waiting handler's request is not kept for this).
   */
  onError?: (error: unknown, req: RequestSummary | null) => void;
  /** Called with every handler's final response and its time in milliseconds (access logs). */
  onResponse?: (req: HttpRequest, res: HttpResponse, ms: number) => void;
  /** Called with every failed accept (EMFILE, ...); accepting goes on until the server closes. */
  onAcceptError?: (error: Error) => void;
  /** Called with every TLS handshake that failed or did not finish within the header timeout. */
  onHandshakeError?: (error: Error, remoteAddr: string) => void;
}

/** Counters the server keeps for `/metrics`. */
export interface HttpStats {
  /** Responses written by status class: index 1 = 1xx … 5 = 5xx. */
  readonly responses: number[];
  readonly refused: number;
  /** Connections closed because their output made no progress within the write timeout. */
  readonly writeTimeouts: number;
  /** TLS handshakes that failed or timed out (plain HTTP to the TLS port among them). */
  readonly tlsHandshakeFailures: number;
}

/** The request handler of a server; may throw {@linkcode HttpError}. */
export type ServerHandler = (req: HttpRequest) => HttpResponse | Promise<HttpResponse>;

const DEFAULT_TIMEOUTS_S = { header: 10, body: 30, idle: 75, write: 30 } as const;
const DEFAULT_MAX_UNSENT = 64 * 1024;
const DEFAULT_MAX_CONNS = 10000;

/**
 * An HTTP/1.1 server on `Deno.listen` (`node:net` with `sockets: "node"`; HTTPS: `Deno.listenTls`):
 * one selector loop over the listener and every connection, as in DESIGN.md's "The selector in
 * Deno".
 */
export class HttpServer {
  #selector = new Selector<Selectable>();
  #handler: ServerHandler;
  #options: HttpServerOptions;
  #connections = new Set<HttpConnection>();
  #listener: Listener | null = null;
  /** listen() is binding its socket. */
  #binding = false;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #loop: Promise<void> | null = null;
  #draining = false;
  #closed = false;
  #stats = {
    responses: [0, 0, 0, 0, 0, 0],
    refused: 0,
    writeTimeouts: 0,
    tlsHandshakeFailures: 0,
  };
  #tls: TlsCertificate | null;
  #ctx;

  constructor(handler: ServerHandler, options: HttpServerOptions = {}) {
    this.#handler = handler;
    this.#options = options;
    this.#tls = options.tls ?? null;
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
      fixedHeaders: fixedHeaderBlock(options.tls !== undefined),
      now,
      respond: (req: HttpRequest) => this.#respond(req),
      settled: (value: unknown, req: RequestSummary) => this.#check(value, req),
      failed: (error: unknown, req: RequestSummary) => this.#fail(error, req),
      parsers: [] as RequestParser[],
      arena: new OutputArena(),
      closed: (http: HttpConnection) => this.#connections.delete(http),
      count: (status: number) => this.#stats.responses[Math.floor(status / 100)]!++,
      draining: () => this.#draining,
      onWriteTimeout: () => this.#stats.writeTimeouts++,
    };
  }

  /**
   * Starts listening and resolves with the bound address. Rejects with `Deno.errors.AddrInUse`
   * etc., and a `TlsError` for a certificate and key that do not make a TLS listener.
   */
  async listen(): Promise<Deno.NetAddr> {
    if (this.#listener || this.#binding) {
      throw new Error("Cannot listen: the server is already listening");
    }
    const hostname = this.#options.hostname ?? "0.0.0.0";
    const port = this.#options.port ?? 8080;
    const maxConns = this.#options.maxConns ?? DEFAULT_MAX_CONNS;
    let raw: ByteListener;
    this.#binding = true;
    try {
      raw = this.#tls
        ? listenTls(hostname, port, this.#tls, true)
        : this.#options.sockets === "node"
        ? await NodeListener.listen(hostname, port, {
          maxConnections: maxConns + REFUSED_ROOM,
        })
        : Deno.listen({ hostname, port });
    } finally {
      this.#binding = false;
    }
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
        fixedHeaders: this.#ctx.fixedHeaders,
      });
    this.#listener = new Listener(
      raw,
      this.#selector,
      {
        maxConns,
        maxConnsPerIp: this.#options.maxConnsPerIp ?? 0,
      },
      {
        onConnection: (conn) => this.#track(conn),
        onRefused: () => {
          this.#stats.refused++;
          // Its 503 is a response written like any other: counted by class too.
          this.#ctx.count(STATUS.ServiceUnavailable);
        },
        onAcceptError: (error) => this.#options.onAcceptError?.(error),
      },
      refusal,
      {
        maxBuffer: this.#ctx.limits.maxHeader,
        highWaterMark: this.#options.maxUnsent ?? DEFAULT_MAX_UNSENT,
        // The handshake is part of getting the request head in: the same bound.
        handshakeTimeout: this.#ctx.timeouts.header,
        onHandshakeError: (error, remoteAddr) => {
          this.#stats.tlsHandshakeFailures++;
          this.#options.onHandshakeError?.(error, remoteAddr);
        },
      },
    );
    this.#listener.start();
    this.#loop = this.#run();
    const interval = this.#options.sweepInterval ?? 1000;
    if (interval > 0) this.#sweepTimer = setInterval(() => this.sweep(), interval);
    return this.#listener.addr;
  }

  /**
   * Serves `certificate` to connections accepted from now on; open ones keep theirs. `Deno` cannot
   * change the certificate of a TLS listener, so a new one is bound on the same address beside it
   * (SO_REUSEPORT) and takes over accepting. Throws (a `TlsError` for a bad pair) and keeps the
   * current certificate when that fails.
   */
  reloadTls(certificate: TlsCertificate): void {
    const listener = this.#listener;
    if (!this.#tls) throw new Error("Cannot reload TLS: the server speaks plain HTTP");
    if (!listener || this.#closed || this.#draining) {
      throw new Error("Cannot reload TLS: the server is not listening");
    }
    const { hostname, port } = listener.addr;
    listener.replace(listenTls(hostname, port, certificate, false));
    this.#tls = certificate;
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
    // forEach: no iterator result per connection, as a loop run once a second (never optimised) has.
    this.#connections.forEach((conn) => conn.sweep(now));
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

  /**
   * A handler's response, or its promise as it is: the connection finishes that with `#check` and
   * `#fail` (through the context), so a waiting answer is one promise reaction holding no request.
   */
  #respond(req: HttpRequest): HttpResponse | Promise<unknown> {
    const onResponse = this.#options.onResponse;
    if (onResponse) return this.#logged(req, onResponse);
    try {
      const result = this.#handler(req);
      return result instanceof Promise ? result : this.#check(result, req);
    } catch (error) {
      return this.#fail(error, req);
    }
  }

  /** Answers with the time each took reported (debug logs): the request is kept until then. */
  #logged(
    req: HttpRequest,
    onResponse: (req: HttpRequest, res: HttpResponse, ms: number) => void,
  ): HttpResponse | Promise<HttpResponse> {
    const now = this.#ctx.now;
    const start = now();
    const report = (res: HttpResponse) => {
      onResponse(req, res, now() - start);
      return res;
    };
    let result;
    try {
      result = this.#handler(req);
    } catch (error) {
      return report(this.#fail(error, req));
    }
    if (result instanceof Promise) {
      return result.then(
        (res) => report(this.#check(res, req)),
        (error) => report(this.#fail(error, req)),
      );
    }
    return report(this.#check(result, req));
  }

  /** A handler that answers something other than a response is a bug: 500, never a crash. */
  #check(res: unknown, req: RequestSummary): HttpResponse {
    if (typeof (res as HttpResponse | null)?.status === "number") return res as HttpResponse;
    return this.#fail(new TypeError(`Handler answered ${String(res)} instead of a response`), req);
  }

  #fail(error: unknown, req: RequestSummary): HttpResponse {
    if (error instanceof HttpError) return errorResponse(error);
    this.#options.onError?.(error, req);
    return jsonResponse(STATUS.InternalServerError, {
      error: { code: "internal_error", message: "The server failed to handle this request" },
    });
  }
}
