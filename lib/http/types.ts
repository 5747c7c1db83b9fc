/** A complete request as the router and handlers see it. */
export interface HttpRequest {
  /** Upper-case method token as sent, e.g. `GET`. */
  readonly method: string;
  /** The raw request-target, e.g. `/api/events?cursor=3`. */
  readonly target: string;
  /** Path of the target as sent (still percent-encoded), without the query. */
  readonly path: string;
  /** Query parameters of the target. */
  readonly query: URLSearchParams;
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
}

/** Path parameters captured by the router, e.g. `{room: "lobby"}`. */
export type Params = Record<string, string>;

/** A request handler; may wait (long polls) by returning a promise. */
export type Handler = (req: HttpRequest, params: Params) => HttpResponse | Promise<HttpResponse>;
