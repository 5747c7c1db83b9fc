import { type HttpError, STATUS_TEXT } from "./errors.ts";
import type { HttpResponse } from "./types.ts";

const encoder = new TextEncoder();

/** Headers every API response carries (DESIGN.md, "HTTP API"). */
export const JSON_HEADERS = Object.freeze(
  {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store",
  } as const,
);

/** A JSON response; `body` may be a value or text that is already JSON. */
export function jsonResponse(
  status: number,
  value: unknown,
  headers?: Record<string, string>,
): HttpResponse {
  // The shared headers object is only read, so most answers need no copy of it.
  const all = headers ? { ...JSON_HEADERS, ...headers } : JSON_HEADERS;
  return { status, headers: all, body: JSON.stringify(value) };
}

/** The contract's error body `{"error": {"code", "message"}}` for an {@linkcode HttpError}. */
export function errorResponse(error: HttpError): HttpResponse {
  return {
    status: error.status,
    headers: { ...JSON_HEADERS, ...error.headers },
    body: JSON.stringify({ error: { code: error.code, message: error.message, ...error.details } }),
    close: error.close,
  };
}

/**
 * Headers on every response the server writes, whatever wrote it (DESIGN.md, "The page"): no MIME
 * sniffing, no Referer to other sites, no framing. Handlers must not set them again.
 */
export const SECURITY_HEADERS = Object.freeze(
  {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
  } as const,
);

/**
 * `Strict-Transport-Security` with TLS on: one year, the common floor for HSTS; no
 * `includeSubDomains`, since Parley cannot speak for the other hosts of its domain, and no
 * `preload`, which is a commitment for the domain's owner to make.
 */
export const HSTS = "max-age=31536000";

/**
 * The header lines every response of a server carries, serialized once per server so the hot path
 * only appends one constant string; `tls` adds `Strict-Transport-Security`.
 */
export function fixedHeaderBlock(tls: boolean): string {
  let block = "";
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) block += `${name}: ${value}\r\n`;
  if (tls) block += `Strict-Transport-Security: ${HSTS}\r\n`;
  return block;
}

let cachedSecond = -1;
let cachedDate = "";

/** The IMF-fixdate for `now`, recomputed once a second. */
export function httpDate(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedDate = new Date(second * 1000).toUTCString();
  }
  return cachedDate;
}

/** How the connection wants a response framed. */
export interface FramingOptions {
  version: "HTTP/1.0" | "HTTP/1.1";
  /** Keep the connection open after this response. */
  keepAlive: boolean;
  /** A HEAD request: headers as for GET, no body. */
  head: boolean;
  now: number;
  /** The server's {@linkcode fixedHeaderBlock}: required, so no writer can leave it out. */
  fixedHeaders: string;
}

/** Statuses that never carry a body or `Content-Length` (RFC 9110 §8.6, §15.3.5, §15.4.5). */
function bodyless(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

/** String bodies up to this length are encoded together with the head: one encoder call. */
const SHORT_BODY = 4096;

/**
 * Serializes a response into one buffer: status line, `Date`, the fixed (security) headers, the
 * response's headers, framing, body.
 */
export function serializeResponse(res: HttpResponse, framing: FramingOptions): Uint8Array {
  if (res.shared) return serializeShared(res, framing);
  return serializeOnce(res, framing);
}

/** The last serialization of a shared response, and the framing it was made for. */
interface SharedBytes {
  version: string;
  keepAlive: boolean;
  head: boolean;
  second: number;
  fixedHeaders: string;
  bytes: Uint8Array;
}

const sharedBytes = new WeakMap<HttpResponse, SharedBytes>();

/**
 * A shared response's bytes, made again only when the framing or the `Date` second differ from
 * the last request's: a poll answer written to 10,000 waiters is serialized about once.
 */
function serializeShared(res: HttpResponse, framing: FramingOptions): Uint8Array {
  const second = Math.floor(framing.now / 1000);
  const c = sharedBytes.get(res);
  if (
    c !== undefined && c.second === second && c.keepAlive === framing.keepAlive &&
    c.version === framing.version && c.head === framing.head &&
    c.fixedHeaders === framing.fixedHeaders
  ) {
    return c.bytes;
  }
  const bytes = serializeOnce(res, framing);
  sharedBytes.set(res, {
    version: framing.version,
    keepAlive: framing.keepAlive,
    head: framing.head,
    second,
    fixedHeaders: framing.fixedHeaders,
    bytes,
  });
  return bytes;
}

function serializeOnce(res: HttpResponse, framing: FramingOptions): Uint8Array {
  const status = res.status;
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Unknown"}\r\nDate: ${
    httpDate(framing.now)
  }\r\n${framing.fixedHeaders}`;
  const headers = res.headers;
  if (headers) {
    for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
  }
  let body: Uint8Array | string = "";
  if (!bodyless(status)) {
    const raw = res.body ?? "";
    body = typeof raw === "string" && raw.length > SHORT_BODY ? encoder.encode(raw) : raw;
    const length = typeof body === "string" ? utf8Length(body) : body.byteLength;
    head += `Content-Length: ${length}\r\n`;
  }
  if (!framing.keepAlive) head += "Connection: close\r\n\r\n";
  else if (framing.version === "HTTP/1.0") head += "Connection: keep-alive\r\n\r\n";
  else head += "\r\n";
  if (framing.head) return encoder.encode(head);
  if (typeof body === "string") return encoder.encode(head + body);
  const headBytes = encoder.encode(head);
  if (body.byteLength === 0) return headBytes;
  const out = new Uint8Array(headBytes.byteLength + body.byteLength);
  out.set(headBytes, 0);
  out.set(body, headBytes.byteLength);
  return out;
}

/** Bytes of `text` in UTF-8, as TextEncoder writes it (a lone surrogate becomes U+FFFD). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      // A surrogate pair is 4 bytes for 2 UTF-16 units; a lone one is U+FFFD, 3 bytes.
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2;
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}
