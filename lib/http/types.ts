/** A complete request as the router and handlers see it. */
export interface HttpRequest {
  /** Upper-case method token as sent, e.g. `GET`. */
  readonly method: string;
  /** The raw request-target, e.g. `/api/events?cursor=3`. */
  readonly target: string;
  /** Path of the target as sent (still percent-encoded), without the query. */
  readonly path: string;
  /** Query parameters of the target. */
  readonly query: QueryParams;
  /** `HTTP/1.0` or `HTTP/1.1`. */
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  /** Header fields by lower-case name; repeated fields joined with `, `. */
  readonly headers: ReadonlyMap<string, string>;
  /** The decoded body (empty when there is none). */
  readonly body: Uint8Array;
  /** The client's address (the peer, or `X-Forwarded-For` with `--trust-proxy`). */
  readonly remoteAddr: string;
  /** Aborted when the client goes away before the response is written. */
  readonly signal: AbortSignal;
  /** The same as `signal` without its cost (no AbortController): for requests that wait. */
  readonly abortable: Abortable;
}

/** What a waiting handler needs of an AbortSignal; `AbortSignal` itself is one. */
export interface Abortable {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** Query parameters; `URLSearchParams` is one. */
export interface QueryParams {
  /** The first value of `name`, percent-decoded (`+` as space), or null. */
  get(name: string): string | null;
  /** Every name and value, in order. */
  [Symbol.iterator](): IterableIterator<[string, string]>;
}

/** What a handler answers; the connection adds `Date`, `Content-Length` and `Connection`. */
export interface HttpResponse {
  status: number;
  /** Header fields; names as they should be written. */
  headers?: Record<string, string>;
  /** A string is sent as UTF-8; a Uint8Array as is (encode once, share among many responses). */
  body?: string | Uint8Array;
  /** Close the connection after this response. */
  close?: boolean;
  /**
   * The same object answers many requests (a poll answer shared by its waiters): its bytes are
   * serialized once per framing and second, not once per request.
   */
  shared?: boolean;
}

/** Path parameters captured by the router, e.g. `{room: "lobby"}`. */
export type Params = Record<string, string>;

/** A request handler; may wait (long polls) by returning a promise. */
export type Handler = (req: HttpRequest, params: Params) => HttpResponse | Promise<HttpResponse>;
