/** HTTP status codes Parley uses, by name. */
export const STATUS = {
  Continue: 100,
  OK: 200,
  Created: 201,
  NoContent: 204,
  NotModified: 304,
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  RequestTimeout: 408,
  Conflict: 409,
  ContentTooLarge: 413,
  UriTooLong: 414,
  UnprocessableContent: 422,
  TooManyRequests: 429,
  RequestHeaderFieldsTooLarge: 431,
  InternalServerError: 500,
  NotImplemented: 501,
  ServiceUnavailable: 503,
  HttpVersionNotSupported: 505,
} as const;

/** One of the status codes above. */
export type Status = (typeof STATUS)[keyof typeof STATUS];

/** Reason phrases for the status line. */
export const STATUS_TEXT: Record<number, string> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  204: "No Content",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  414: "URI Too Long",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** Options of an {@linkcode HttpError}. */
export interface HttpErrorOptions {
  /** Close the connection after the error response (framing errors must). */
  close?: boolean;
  /** Extra response headers, e.g. `Retry-After` or `Allow`. */
  headers?: Record<string, string>;
  /** Extra fields of the error object beside `code` and `message`, e.g. a ban's `until`. */
  details?: Record<string, unknown>;
}

/** An error a client caused, answered with `status` and a JSON body `{"error": {code, message}}`. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly close: boolean;
  readonly headers: Record<string, string>;
  readonly details: Record<string, unknown> | undefined;

  constructor(status: number, code: string, message: string, options: HttpErrorOptions = {}) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.close = options.close ?? false;
    this.headers = options.headers ?? {};
    this.details = options.details;
  }
}
