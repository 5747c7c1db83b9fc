import { type OutputArena, releaseOutput } from "../net/output_arena.ts";
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
  /**
   * Where the bytes of an answer to one request go: a view of a shared chunk instead of a new
   * buffer (the writer releases it once written). Never used for shared responses.
   */
  arena?: OutputArena;
}

/** Statuses that never carry a body or `Content-Length` (RFC 9110 §8.6, §15.3.5, §15.4.5). */
function bodyless(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

const NON_ASCII = /[^\0-\x7f]/;

/** String bodies up to this length are encoded together with the head: one encoder call. */
const SHORT_BODY = 4096;

/**
 * Serializes a response into one buffer: status line, `Date`, the fixed (security) headers, the
 * response's headers, framing, body.
 */
export function serializeResponse(res: HttpResponse, framing: FramingOptions): Uint8Array {
  if (res.shared) return serializeShared(res, framing);
  return serializeOnce(res, framing, framing.arena ?? null);
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
  // Kept and written to many connections: bytes of its own, never an arena's.
  const bytes = serializeOnce(res, framing, null);
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

function serializeOnce(
  res: HttpResponse,
  framing: FramingOptions,
  arena: OutputArena | null,
): Uint8Array {
  if (arena !== null) {
    const out = serializeInto(arena, res, framing);
    if (out !== null) return out;
  }
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
  head += framingEnd(framing);
  if (framing.head) return encoder.encode(head);
  if (typeof body === "string") return encoder.encode(head + body);
  const headBytes = encoder.encode(head);
  if (body.byteLength === 0) return headBytes;
  const out = new Uint8Array(headBytes.byteLength + body.byteLength);
  out.set(headBytes, 0);
  out.set(body, headBytes.byteLength);
  return out;
}

/** The `Connection` field (when one is needed) and the blank line ending the head. */
function framingEnd(framing: FramingOptions): string {
  if (!framing.keepAlive) return "Connection: close\r\n\r\n";
  if (framing.version === "HTTP/1.0") return "Connection: keep-alive\r\n\r\n";
  return "\r\n";
}

/** Status line, `Date` and fixed headers as bytes, per status, for the current second. */
const prefixes = new Map<number, Uint8Array>();
let prefixSecond = -1;
let prefixFixed = "";

function prefixBytes(status: number, now: number, fixedHeaders: string): Uint8Array {
  const second = Math.floor(now / 1000);
  if (second !== prefixSecond || fixedHeaders !== prefixFixed) {
    prefixes.clear();
    prefixSecond = second;
    prefixFixed = fixedHeaders;
  }
  let bytes = prefixes.get(status);
  if (bytes === undefined) {
    bytes = encoder.encode(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Unknown"}\r\nDate: ${
        httpDate(now)
      }\r\n${fixedHeaders}`,
    );
    prefixes.set(status, bytes);
  }
  return bytes;
}

/** Header fields of frozen header objects (shared by many answers, e.g. JSON_HEADERS) as bytes. */
const headerBytes = new WeakMap<Record<string, string>, Uint8Array>();

function frozenHeaderBytes(headers: Record<string, string>): Uint8Array | null {
  const cached = headerBytes.get(headers);
  if (cached !== undefined || !Object.isFrozen(headers)) return cached ?? null;
  let block = "";
  for (const name in headers) block += `${name}: ${headers[name]}\r\n`;
  const bytes = encoder.encode(block);
  headerBytes.set(headers, bytes);
  return bytes;
}

const CONTENT_LENGTH = encoder.encode("Content-Length: ");
const END_CLOSE = encoder.encode("Connection: close\r\n\r\n");
const END_KEEP_ALIVE = encoder.encode("Connection: keep-alive\r\n\r\n");
const END = encoder.encode("\r\n");
/** ASCII string bodies up to this length are copied by a loop, longer ones by the encoder. */
const LOOP_BODY = 256;

/**
 * Writes `text` at `at` if it is ASCII, returning the offset after it; -1 at the first other
 * character. A loop over a flat string beats the encoder's call for the short pieces of a head.
 */
function writeAscii(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return -1;
    out[at + i] = c;
  }
  return at + text.length;
}

/**
 * The answer to one request as a view of an arena chunk, assembled from bytes: the constant parts
 * (status line, `Date`, fixed headers, frozen header objects) are copied, the rest written piece by
 * piece (one string built by concatenation costs more to encode than all of this). Null when it
 * does not fit the arena or a header is not ASCII: the caller serializes it as text.
 */
function serializeInto(
  arena: OutputArena,
  res: HttpResponse,
  framing: FramingOptions,
): Uint8Array | null {
  const status = res.status;
  const prefix = prefixBytes(status, framing.now, framing.fixedHeaders);
  const headers = res.headers;
  const fixed = headers ? frozenHeaderBytes(headers) : null;
  let fieldsLength = 0;
  if (fixed !== null) fieldsLength = fixed.byteLength;
  else if (headers) {
    for (const name in headers) fieldsLength += name.length + headers[name]!.length + 4;
  }
  const hasLength = !bodyless(status);
  const raw = hasLength ? res.body ?? "" : "";
  const length = typeof raw === "string" ? utf8Length(raw) : raw.byteLength;
  const digits = hasLength ? String(length) : "";
  const end = !framing.keepAlive
    ? END_CLOSE
    : framing.version === "HTTP/1.0"
    ? END_KEEP_ALIVE
    : END;
  const bodyBytes = framing.head ? 0 : length;
  const total = prefix.byteLength + fieldsLength +
    (hasLength ? CONTENT_LENGTH.byteLength + digits.length + 2 : 0) + end.byteLength + bodyBytes;
  if (total > arena.maxView) return null;
  // Every byte of the view is written below: a reused chunk still holds earlier answers.
  const out = arena.alloc(total);
  out.set(prefix, 0);
  let at = prefix.byteLength;
  if (fixed !== null) {
    out.set(fixed, at);
    at += fieldsLength;
  } else if (headers) {
    for (const name in headers) {
      at = writeAscii(out, at, name);
      if (at < 0) break;
      out[at] = 58; // ":"
      out[at + 1] = 32;
      at = writeAscii(out, at + 2, headers[name]!);
      if (at < 0) break;
      out[at] = 13;
      out[at + 1] = 10;
      at += 2;
    }
    if (at < 0) {
      // A field value that is not ASCII: the text path encodes it.
      releaseOutput(out);
      return null;
    }
  }
  if (hasLength) {
    out.set(CONTENT_LENGTH, at);
    at = writeAscii(out, at + CONTENT_LENGTH.byteLength, digits);
    out[at] = 13;
    out[at + 1] = 10;
    at += 2;
  }
  out.set(end, at);
  at += end.byteLength;
  if (bodyBytes > 0) {
    if (typeof raw !== "string") out.set(raw, at);
    else if (length === raw.length && length <= LOOP_BODY) writeAscii(out, at, raw);
    else if (encoder.encodeInto(raw, out.subarray(at)).written !== length) {
      releaseOutput(out); // not reached: utf8Length counts as the encoder writes
      return null;
    }
  }
  return out;
}

/** Bytes of `text` in UTF-8, as TextEncoder writes it (a lone surrogate becomes U+FFFD). */
export function utf8Length(text: string): number {
  // ASCII, the usual case, by the regexp engine: it flattens a string built by concatenation
  // once, where charCodeAt would walk its pieces for every character.
  if (!NON_ASCII.test(text)) return text.length;
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
