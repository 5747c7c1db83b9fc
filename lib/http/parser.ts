/**
 * An incremental, byte-level HTTP/1.1 request parser (RFC 9112, RFC 9110): bytes in, requests
 * out, no sockets. Strict about framing, because a server that guesses where a request ends can
 * be made to disagree with a proxy in front of it (request smuggling).
 *
 * @module
 */

import { HttpError, STATUS } from "./errors.ts";

/**
 * Results a {@linkcode RequestParser} holds for {@linkcode RequestParser.next} at most: a push
 * of many small pipelined requests parses this many and keeps the rest as unparsed bytes, parsed
 * as `next()` takes the results, so one push cannot turn into thousands of request objects.
 */
export const MAX_QUEUED_STEPS = 16;

/** Size limits of a {@linkcode RequestParser}; exceeding one is a 431, 414 or 413. */
export interface ParserLimits {
  /** Bytes of request line and header block including CRLFs (431 above). */
  maxHeader: number;
  /** Bytes of the request-target (414 above). */
  maxTarget: number;
  /** Bytes of the decoded body (413 above). */
  maxBody: number;
}

/** The limits a parser uses for those not given: the defaults of `--max-header` and friends. */
export const DEFAULT_LIMITS: ParserLimits = Object.freeze({
  maxHeader: 16384,
  maxTarget: 8192,
  maxBody: 65536,
});

/** The request line and header fields of a request, and how its body is framed. */
export interface RequestHead {
  /** The method token, case-sensitive, as sent, e.g. `GET`. */
  method: string;
  /** The raw request-target. */
  target: string;
  /** The protocol version; others are rejected. */
  version: "HTTP/1.0" | "HTTP/1.1";
  /** Field values by lower-case name; repeated fields joined with `, `; values trimmed of OWS. */
  headers: Map<string, string>;
  /** Whether the client wants the connection kept open after the response. */
  keepAlive: boolean;
  /** `Expect: 100-continue` on an HTTP/1.1 request. */
  expectContinue: boolean;
  /** How the body is framed. */
  bodyKind: "none" | "length" | "chunked";
  /** The `Content-Length` for `"length"`; 0 otherwise. */
  contentLength: number;
}

/** A complete request: its head and decoded body (empty when there is none). */
export interface ParsedRequest extends RequestHead {
  body: Uint8Array;
}

/** What {@linkcode RequestParser.next} found. */
export type ParseStep =
  | { kind: "incomplete" }
  | { kind: "head"; head: RequestHead }
  | { kind: "request"; request: ParsedRequest }
  /**
   * A request over the target or body limit (414, 413) whose framing is known: answered with
   * `error` in its turn, its body (if any) skipped, and parsing goes on (DESIGN.md: the
   * connection keeps working).
   */
  | {
    kind: "refused";
    error: HttpError;
    method: string;
    version: RequestHead["version"];
  }
  /**
   * Bad framing: answered with `error`, then the connection closes; `answered` when it is in the
   * body of a request already refused (that answer went out: none more).
   */
  | { kind: "error"; error: HttpError; answered?: true };

/** The closed set of error codes the parser answers with. */
export const PARSE_ERROR = {
  BadRequestLine: "bad_request_line",
  TargetTooLong: "target_too_long",
  VersionNotSupported: "version_not_supported",
  InvalidHeader: "invalid_header",
  HeaderTooLarge: "header_too_large",
  InvalidHost: "invalid_host",
  InvalidContentLength: "invalid_content_length",
  ConflictingLength: "conflicting_length",
  InvalidTransferEncoding: "invalid_transfer_encoding",
  ChunkedNotLast: "chunked_not_last",
  UnsupportedTransferCoding: "unsupported_transfer_coding",
  InvalidChunk: "invalid_chunk",
  BodyTooLarge: "too_large",
} as const;

/** One of the parser's error codes. */
export type ParseErrorCode = (typeof PARSE_ERROR)[keyof typeof PARSE_ERROR];
/** The limits a request may be refused for while its connection goes on. */
type OverLimitCode = typeof PARSE_ERROR.TargetTooLong | typeof PARSE_ERROR.BodyTooLarge;

/**
 * Parses a `Content-Length` field value: 1*DIGIT, or a comma list of identical such values
 * (RFC 9110 §8.6). Returns null for anything else, including more than 15 digits after
 * leading zeros.
 */
export function parseContentLength(value: string): number | null {
  const n = value.length;
  let result = -1;
  let i = 0;
  for (;;) {
    while (i < n && _isOws(value.charCodeAt(i))) i++;
    const start = i;
    // Leading zeros are valid digits (1*DIGIT) that add nothing: only the rest count below.
    while (i < n && value.charCodeAt(i) === 48) i++;
    const significant = i;
    let v = 0;
    for (; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
    }
    // 15 digits stay below Number.MAX_SAFE_INTEGER (16 digits), so `v` is exact.
    if (i === start || i - significant > 15) return null;
    while (i < n && _isOws(value.charCodeAt(i))) i++;
    if (result >= 0 && v !== result) return null;
    result = v;
    if (i === n) return result;
    if (value.charCodeAt(i) !== 44) return null;
    i++;
  }
}

/**
 * `value` without leading and trailing OWS: SP and HTAB, and nothing else (RFC 9110 §5.6.3).
 * `String#trim` would also strip U+00A0 and other Unicode spaces, which are bytes of a value.
 */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && _isOws(value.charCodeAt(start))) start++;
  while (end > start && _isOws(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const DEL = 127;
const COLON = 58;
const SEMICOLON = 59;
const EQUALS = 61;
const DQUOTE = 34;
const BACKSLASH = 92;
const SLASH = 47;
const STAR = 42;
const HASH = 35;

/** Longest chunk-size line (with extensions and CRLF) we accept. */
const MAX_CHUNK_LINE = 4096;
/** A chunk size of more hex digits than this is absurd rather than merely too large. */
const MAX_CHUNK_DIGITS = 12;
/** Bodies grow by doubling from here, so a large Content-Length alone reserves no memory. */
const BODY_INITIAL = 65536;
/** Unparsed-bytes buffers above this size are released once mostly empty. */
const OWN_SHRINK = 65536;
/** Unparsed-bytes buffers up to this size are kept for reuse once empty; larger ones released. */
const OWN_MIN = 1024;
/** `String.fromCharCode.apply` argument count per call, well under engine limits. */
const LATIN1_CHUNK = 4096;

const ST_HEAD = 0;
const ST_LENGTH = 1;
const ST_CHUNK_SIZE = 2;
const ST_CHUNK_DATA = 3;
const ST_CHUNK_END = 4;
const ST_TRAILER = 5;
const ST_ERROR = 6;
/** Skipping the Content-Length body of a refused request. */
const ST_SKIP = 7;

// #fieldLine results besides a line end.
const STARVED = -1;
const FAILED = -2;

const EMPTY = new Uint8Array(0);
// Only ever given ASCII, where it matches latin-1; BOM kept so offsets stay aligned.
const ASCII = new TextDecoder("utf-8", { ignoreBOM: true });
const INCOMPLETE: ParseStep = Object.freeze({ kind: "incomplete" });

/** tchar (RFC 9110 §5.6.2): 1 for bytes allowed in tokens (methods, field names, codings). */
const TCHAR = _table("!#$%&'*+-.^_`|~", true);
/** reg-name characters (RFC 3986 unreserved, sub-delims and "%") allowed in Host. */
const HOST_CHAR = _table("-._~!$&'()*+,;=%", true);
/** Hex digit values, 255 for other bytes. */
const HEX = new Uint8Array(256).fill(255);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[65 + i] = HEX[97 + i] = 10 + i;

/** Incrementally parses HTTP/1.1 requests from bytes pushed in as they arrive. */
export class RequestParser {
  readonly #maxHeader: number;
  readonly #maxTarget: number;
  readonly #maxBody: number;

  #state = ST_HEAD;
  #error: ParseStep | null = null;
  // Steps found by push() and not yet returned by next(): a queue in an array that is rewound
  // when drained; parsing stops at MAX_QUEUED_STEPS, so it never grows past that (plus a head).
  #steps: ParseStep[] = [];
  #stepIndex = 0;
  #stepCount = 0;
  // Parsing stopped at MAX_QUEUED_STEPS with bytes left in #own; next() goes on once drained.
  #held = false;

  // Unparsed bytes (an unfinished line or CRLF) live in #own[#ownStart, #ownEnd).
  #own = EMPTY;
  #ownStart = 0;
  #ownEnd = 0;

  // Bytes of the current unfinished line already scanned, relative to its start.
  #scanned = 0;
  // Where the unfinished field line is: colon and value start (relative to the line), -1 before.
  #colon = -1;
  #valueStart = -1;
  #valueHigh = false;
  #headBytes = 0;
  #sp1 = -1;
  #sp2 = -1;
  #method = "";
  #target = "";
  #version: RequestHead["version"] = "HTTP/1.1";
  #headers: Map<string, string> | null = null;
  /** Bit i set: a field named KNOWN_NAMES[i] is in #headers (skips Map lookups for the rest). */
  #seenKnown = 0;
  #hostCount = 0;
  // Header strings are cut from one decode of the bytes they span, made when the head ends or
  // the buffer runs out; decoding each name and value apart costs several times more.
  // #spans holds [nameStart, nameEnd, valueStart, valueEnd, knownName] per field.
  #spans: number[] = [];
  #spanCount = 0;
  #pendFrom = -1;
  #pendTo = 0;
  #pendHigh = false;
  #targetStart = -1;
  #targetEnd = 0;

  #request: ParsedRequest | null = null;
  #headEmitted = false;
  // The body being received: Content-Length bodies and decoded chunks alike are copied in
  // once, into an array grown by doubling (no per-read objects for a trickled body).
  #body = EMPTY;
  #bodyFilled = 0;
  #bodyLength = 0;
  #chunkLeft = 0;
  #extBytes = 0;
  #trailerBytes = 0;
  /** The request-target is over the limit: the request is refused once its head ends (414). */
  #targetTooLong = false;
  /** The chunked body of a refused request is parsed for its framing and dropped. */
  #skipping = false;
  /** Bytes of a refused request's Content-Length body still to skip. */
  #skipLeft = 0;

  /** Creates a parser; limits not given come from {@linkcode DEFAULT_LIMITS}. */
  constructor(limits: Partial<ParserLimits> = {}) {
    this.#maxHeader = _limit("maxHeader", limits.maxHeader ?? DEFAULT_LIMITS.maxHeader, 1);
    this.#maxTarget = _limit("maxTarget", limits.maxTarget ?? DEFAULT_LIMITS.maxTarget, 1);
    this.#maxBody = _limit("maxBody", limits.maxBody ?? DEFAULT_LIMITS.maxBody, 0);
  }

  /**
   * Parses `bytes` as far as possible and keeps a copy of what is left unparsed; the caller may
   * reuse `bytes` afterwards. Results come out of {@linkcode next}. Ignored after an error.
   */
  push(bytes: Uint8Array): void {
    if (this.#error !== null || bytes.length === 0) return;
    if (this.#held) {
      // The queue is full: these wait behind the bytes already held.
      this.#append(bytes);
      return;
    }
    if (this.#ownEnd === this.#ownStart) {
      // Common case: nothing pending, so parse straight from the caller's buffer.
      const pos = this.#run(bytes, 0);
      if (this.#error === null && pos < bytes.length) this.#keep(bytes.subarray(pos), this.#held);
      return;
    }
    this.#append(bytes);
    this.#runOwn();
  }

  // Parses on from the unparsed bytes in #own.
  #runOwn(): void {
    const pos = this.#run(this.#own.subarray(0, this.#ownEnd), this.#ownStart);
    if (this.#error !== null) return;
    this.#ownStart = pos;
    if (pos === this.#ownEnd) {
      this.#ownStart = this.#ownEnd = 0;
      // A buffer that grew for one large head or a held burst is not kept for the life of a
      // keep-alive connection.
      if (this.#own.length > OWN_MIN) this.#own = EMPTY;
    } else if (this.#own.length > OWN_SHRINK && this.#ownEnd - this.#ownStart <= OWN_SHRINK / 4) {
      const rest = this.#own.subarray(this.#ownStart, this.#ownEnd);
      this.#own = EMPTY;
      this.#ownStart = this.#ownEnd = 0;
      this.#keep(rest);
    }
  }

  /**
   * Returns the next result: a head (body still to come), a complete request, an error (then
   * forever the same error), or `incomplete` when more bytes are needed.
   */
  next(): ParseStep {
    const index = this.#stepIndex;
    if (index < this.#stepCount) {
      const steps = this.#steps;
      const step = steps[index]!;
      // Drop the reference so a served request can be collected.
      steps[index] = INCOMPLETE;
      if (index + 1 === this.#stepCount) this.#stepIndex = this.#stepCount = 0;
      else this.#stepIndex = index + 1;
      return step;
    }
    if (this.#held) {
      this.#held = false;
      this.#runOwn();
      if (this.#stepCount > 0) return this.next();
    }
    return this.#error ?? INCOMPLETE;
  }

  /** `idle` before a request starts, `head` inside request line and headers, `body` after. */
  get phase(): "idle" | "head" | "body" {
    switch (this.#state) {
      case ST_HEAD:
        return this.#headers !== null || this.#ownEnd > this.#ownStart ? "head" : "idle";
      case ST_ERROR:
        return "idle";
      default:
        return "body";
    }
  }

  /**
   * Nothing begun, held, queued or failed: the parser is as good as new, so it may serve another
   * connection (a connection between requests need not keep one).
   */
  get fresh(): boolean {
    return this.#state === ST_HEAD && this.#headers === null && this.#ownEnd === this.#ownStart &&
      this.#stepCount === this.#stepIndex && !this.#held && this.#scanned === 0;
  }

  /** Bytes held unparsed (an unfinished line); parsed body bytes do not count. */
  get buffered(): number {
    return this.#ownEnd - this.#ownStart;
  }

  /** Results parsed by {@linkcode push} and not yet taken by {@linkcode next}; for backpressure. */
  get pending(): number {
    return this.#stepCount - this.#stepIndex;
  }

  /** Bytes allocated for unparsed input (whether in use or not); parsed bodies do not count. */
  get capacity(): number {
    return this.#own.length;
  }

  // Runs the state machine over buf[pos..]; returns where the unparsed rest starts.
  #run(buf: Uint8Array, pos: number): number {
    const end = buf.length;
    for (;;) {
      let next: number;
      switch (this.#state) {
        case ST_HEAD:
          next = this.#head(buf, pos, end);
          break;
        case ST_LENGTH:
          next = this.#lengthBody(buf, pos, end);
          break;
        case ST_CHUNK_SIZE:
          next = this.#chunkSize(buf, pos, end);
          break;
        case ST_CHUNK_DATA:
          next = this.#chunkData(buf, pos, end);
          break;
        case ST_CHUNK_END:
          next = this.#chunkEnd(buf, pos, end);
          break;
        case ST_TRAILER:
          next = this.#trailer(buf, pos, end);
          break;
        case ST_SKIP:
          next = this.#skip(pos, end);
          break;
        default:
          return end;
      }
      if (this.#error !== null) return end;
      // Handlers return ~pos when they need more bytes, the new position otherwise.
      if (next < 0) {
        pos = ~next;
        break;
      }
      pos = next;
      if (
        this.#stepCount - this.#stepIndex >= MAX_QUEUED_STEPS && this.#state === ST_HEAD &&
        this.#headers === null
      ) {
        // Between two requests with the queue full: the rest waits as bytes.
        this.#held = pos < end;
        break;
      }
    }
    if (this.#state !== ST_HEAD && !this.#headEmitted) {
      this.#headEmitted = true;
      this.#steps[this.#stepCount++] = { kind: "head", head: this.#request! };
    }
    return pos;
  }

  #head(buf: Uint8Array, pos: number, end: number): number {
    if (this.#headers === null) {
      pos = this.#requestLine(buf, pos, end);
      if (pos < 0 || this.#error !== null) return pos;
    }
    for (;;) {
      const ls = pos;
      const le = this.#fieldLine(buf, ls, end, this.#maxHeader - this.#headBytes, true);
      if (le < 0) {
        if (le === FAILED) return end;
        // The recorded spans point into buf, which the caller may reuse: make strings now.
        this.#flush(buf);
        return ~ls;
      }
      this.#headBytes += le + 1 - ls;
      pos = le + 1;
      if (le === ls || (le === ls + 1 && buf[ls] === CR)) return this.#endHead(buf, pos, end);
    }
  }

  // Every check below happens at the byte it concerns, and scanning stops at the first byte
  // over a limit, so an error does not depend on how the bytes were split into pushes.
  #requestLine(buf: Uint8Array, pos: number, end: number): number {
    if (this.#scanned === 0) {
      // RFC 9112 §2.2: ignore empty lines before a request line; clients send a stray CRLF
      // after a POST body.
      while (pos < end) {
        const b = buf[pos];
        if (b === LF) {
          pos++;
        } else if (b === CR) {
          if (pos + 1 === end) return ~pos;
          if (buf[pos + 1] !== LF) return this.#badLine("bare CR before the request line");
          pos += 2;
        } else {
          break;
        }
      }
      if (pos === end) return ~pos;
    }
    const ls = pos;
    const limit = ls + this.#maxHeader;
    const stop = end < limit ? end : limit;
    let i = ls + this.#scanned;
    let sp1 = this.#sp1;
    if (sp1 < 0) {
      for (; i < stop; i++) {
        const b = buf[i]!;
        if (TCHAR[b] === 1) continue;
        if (b !== SP) return this.#badLine("method has an invalid character");
        if (i === ls) return this.#badLine("method is empty");
        sp1 = this.#sp1 = i - ls;
        i++;
        break;
      }
    }
    let sp2 = this.#sp2;
    if (sp1 >= 0 && sp2 < 0) {
      const ts = ls + sp1 + 1;
      const tooLong = ts + this.#maxTarget;
      for (; i < stop; i++) {
        const b = buf[i]!;
        if (b > SP && b < DEL) {
          // A fragment is never part of a request-target (RFC 9112 §3.2): refused, so that no
          // part of the server reads a path from behind it (issue 14).
          if (b === HASH) return this.#badLine("request-target has a '#'");
          // Refused once the head ends (its framing known), so the connection goes on; the line
          // is still bounded by the header limit.
          if (i >= tooLong) this.#targetTooLong = true;
          continue;
        }
        if (b !== SP) return this.#badLine("request-target has an invalid character");
        if (i === ts) return this.#badLine("request-target is empty");
        sp2 = this.#sp2 = i - ls;
        i++;
        break;
      }
    }
    if (sp2 < 0) {
      this.#scanned = i - ls;
      return stop < end ? this.#headerTooLarge() : ~ls;
    }
    const vs = ls + sp2 + 1;
    // "HTTP/1.1\r\n" puts the LF at vs + 9 at the latest.
    const versionStop = stop < vs + 10 ? stop : vs + 10;
    const le = _indexOfLf(buf, i, versionStop);
    if (le < 0) {
      if (versionStop === vs + 10) return this.#badLine("HTTP-version is malformed");
      this.#scanned = versionStop - ls;
      return stop < end ? this.#headerTooLarge() : ~ls;
    }
    const ce = buf[le - 1] === CR ? le - 1 : le;
    if (
      ce - vs !== 8 || buf[vs] !== 72 || buf[vs + 1] !== 84 || buf[vs + 2] !== 84 ||
      buf[vs + 3] !== 80 || buf[vs + 4] !== SLASH || !_isDigit(buf[vs + 5]!) ||
      buf[vs + 6] !== 46 || !_isDigit(buf[vs + 7]!)
    ) {
      return this.#badLine("HTTP-version is malformed");
    }
    const major = buf[vs + 5]!;
    const minor = buf[vs + 7]!;
    if (major === 49 && minor === 49) this.#version = "HTTP/1.1";
    else if (major === 49 && minor === 48) this.#version = "HTTP/1.0";
    else {
      return this.#fail(
        STATUS.HttpVersionNotSupported,
        PARSE_ERROR.VersionNotSupported,
        `HTTP version ${String.fromCharCode(major, 46, minor)} is not supported`,
      );
    }
    const method = _method(buf, ls, sp1);
    const ts = ls + sp1 + 1;
    const te = ls + sp2;
    if (buf[ts] !== SLASH) {
      if (buf[ts] === STAR && te - ts === 1) {
        if (method !== "OPTIONS") return this.#badLine("'*' is only allowed with OPTIONS");
      } else if (!_isAbsoluteForm(buf, ts, te)) {
        return this.#badLine("request-target must start with '/' or 'http://'");
      } else if (_hasUserinfo(buf, ts, te)) {
        // RFC 9110 §4.2.4: userinfo in an http(s) URI is to be treated as an error.
        return this.#badLine("request-target has userinfo ('@' in its authority)");
      }
    }
    this.#method = method;
    this.#targetStart = this.#pendFrom = ts;
    this.#targetEnd = this.#pendTo = te;
    this.#headers = new Map();
    this.#seenKnown = 0;
    this.#headBytes = le + 1 - ls;
    this.#scanned = 0;
    return le + 1;
  }

  /**
   * Scans one field line (or the empty line ending the section) from `ls`, resuming where the
   * last call stopped, validating each byte once. Returns the index of its LF, STARVED or FAILED.
   * Header fields are recorded in #spans; trailer fields (`header` false) are only checked, and
   * must end in CRLF since they are body framing.
   */
  #fieldLine(buf: Uint8Array, ls: number, end: number, budget: number, header: boolean): number {
    const what = header ? "header" : "trailer";
    const limit = ls + budget;
    const stop = end < limit ? end : limit;
    let i = ls + this.#scanned;
    let colon = this.#colon;
    let vs = this.#valueStart;
    if (colon < 0) {
      if (i === ls) {
        if (i === stop) return stop < end ? this.#headerTooLarge() : STARVED;
        const b = buf[ls];
        if (b === LF) {
          return header ? ls : this.#badChunk("trailer section must end in CRLF");
        }
        if (b === CR) {
          if (ls + 1 === stop) return stop < end ? this.#headerTooLarge() : STARVED;
          if (buf[ls + 1] === LF) return ls + 1;
          return this.#badField(`Cannot parse ${what} field: bare CR`);
        }
        if (b === SP || b === HT) {
          // obs-fold (RFC 9112 §5.2); this also catches whitespace after the request line.
          return this.#badField(`Cannot parse ${what} field: line folding is not allowed`);
        }
      }
      for (; i < stop; i++) {
        const b = buf[i]!;
        if (TCHAR[b] === 1) continue;
        if (b === COLON) break;
        return this.#badField(
          // RFC 9112 §5.1: whitespace before the colon must be rejected, not trimmed.
          b === SP || b === HT
            ? `Cannot parse ${what} field: whitespace before the colon`
            : b === LF || b === CR
            ? `Cannot parse ${what} field: colon is missing`
            : `Cannot parse ${what} field: name has an invalid character`,
        );
      }
      if (i === stop) {
        this.#scanned = i - ls;
        return stop < end ? this.#headerTooLarge() : STARVED;
      }
      if (i === ls) return this.#badField(`Cannot parse ${what} field: name is empty`);
      colon = i - ls;
      i++;
    }
    if (vs < 0) {
      while (i < stop && (buf[i] === SP || buf[i] === HT)) i++;
      if (i === stop) {
        this.#scanned = i - ls;
        this.#colon = colon;
        return stop < end ? this.#headerTooLarge() : STARVED;
      }
      vs = i - ls;
    }
    let high = this.#valueHigh;
    let le = -1;
    for (; i < stop; i++) {
      const b = buf[i]!;
      if (b > SP) {
        if (b >= DEL) {
          if (b === DEL) return this.#badValue(what);
          high = true;
        }
        continue;
      }
      if (b === SP || b === HT) continue;
      if (b === LF) {
        if (!header) return this.#badChunk("trailer line must end in CRLF");
        le = i;
        break;
      }
      // NUL, bare CR, and other CTLs except HTAB are not allowed (RFC 9110 §5.5).
      if (b !== CR) return this.#badValue(what);
      if (i + 1 === stop) break; // decided by the next byte, or by the limit
      if (buf[i + 1] !== LF) return this.#badField(`Cannot parse ${what} field: bare CR`);
      le = i + 1;
      break;
    }
    if (le < 0) {
      this.#scanned = i - ls;
      this.#colon = colon;
      this.#valueStart = vs;
      this.#valueHigh = high;
      return stop < end ? this.#headerTooLarge() : STARVED;
    }
    this.#scanned = 0;
    this.#colon = this.#valueStart = -1;
    this.#valueHigh = false;
    if (!header) return le;
    let ve = i;
    vs += ls;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HT)) ve--;
    const known = _knownName(buf, ls, ls + colon);
    if (known === HOST_INDEX) {
      if (!_isValidHost(buf, vs, ve)) {
        return this.#fail(
          STATUS.BadRequest,
          PARSE_ERROR.InvalidHost,
          "Host is not a valid host[:port]",
        );
      }
      this.#hostCount++;
    }
    if (high) this.#pendHigh = true;
    if (this.#pendFrom < 0) this.#pendFrom = ls;
    this.#pendTo = ve;
    const spans = this.#spans;
    const k = this.#spanCount;
    spans[k] = ls;
    spans[k + 1] = ls + colon;
    spans[k + 2] = vs;
    spans[k + 3] = ve;
    spans[k + 4] = known;
    this.#spanCount = k + 5;
    return le;
  }

  // Turns the recorded target and field spans of buf into strings, then forgets them.
  #flush(buf: Uint8Array): void {
    const from = this.#pendFrom;
    if (from < 0) return;
    // Byte i of the range is char i - from: ASCII decodes 1:1, and other bytes take latin-1.
    const text = this.#pendHigh
      ? _latin1(buf, from, this.#pendTo)
      : ASCII.decode(buf.subarray(from, this.#pendTo));
    if (this.#targetStart >= 0) {
      this.#target = text.slice(this.#targetStart - from, this.#targetEnd - from);
      this.#targetStart = -1;
    }
    const spans = this.#spans;
    const headers = this.#headers!;
    for (let k = 0; k < this.#spanCount; k += 5) {
      const known = spans[k + 4]!;
      const value = text.slice(spans[k + 2]! - from, spans[k + 3]! - from);
      if (known >= 0) {
        const name = KNOWN_NAMES[known]!;
        const bit = 1 << known;
        if ((this.#seenKnown & bit) === 0) {
          this.#seenKnown |= bit;
          headers.set(name, value);
        } else headers.set(name, `${headers.get(name)}, ${value}`);
        continue;
      }
      const name = known === NAME_LOWER
        ? text.slice(spans[k]! - from, spans[k + 1]! - from)
        // Names were checked to be tchar (ASCII) byte by byte, so this is ASCII lower-casing.
        : text.slice(spans[k]! - from, spans[k + 1]! - from).toLowerCase();
      const previous = headers.get(name);
      headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
    }
    this.#spanCount = 0;
    this.#pendFrom = -1;
    this.#pendHigh = false;
  }

  #endHead(buf: Uint8Array, pos: number, end: number): number {
    this.#flush(buf);
    const headers = this.#headers!;
    const http11 = this.#version === "HTTP/1.1";
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1; never more than one.
    if (this.#hostCount > 1) {
      return this.#fail(STATUS.BadRequest, PARSE_ERROR.InvalidHost, "Host is repeated");
    }
    if (this.#hostCount === 0 && http11) {
      return this.#fail(
        STATUS.BadRequest,
        PARSE_ERROR.InvalidHost,
        "HTTP/1.1 request has no Host header",
      );
    }

    let bodyKind: RequestHead["bodyKind"] = "none";
    let contentLength = 0;
    const seen = this.#seenKnown;
    const transferEncoding = seen & TRANSFER_ENCODING_BIT
      ? headers.get("transfer-encoding")
      : undefined;
    const contentLengthField = seen & CONTENT_LENGTH_BIT
      ? headers.get("content-length")
      : undefined;
    if (transferEncoding !== undefined) {
      // RFC 9112 §6.1: an HTTP/1.0 request with Transfer-Encoding has faulty framing.
      if (!http11) {
        return this.#fail(
          STATUS.BadRequest,
          PARSE_ERROR.InvalidTransferEncoding,
          "Transfer-Encoding is not allowed in HTTP/1.0",
        );
      }
      if (contentLengthField !== undefined) {
        return this.#fail(
          STATUS.BadRequest,
          PARSE_ERROR.ConflictingLength,
          "Content-Length and Transfer-Encoding are both present",
        );
      }
      const error = _transferCodingError(transferEncoding);
      if (error !== null) return this.#failWith(error);
      bodyKind = "chunked";
    } else if (contentLengthField !== undefined) {
      const length = parseContentLength(contentLengthField);
      if (length === null) {
        return this.#fail(
          STATUS.BadRequest,
          PARSE_ERROR.InvalidContentLength,
          `Content-Length is invalid: ${JSON.stringify(contentLengthField)}`,
        );
      }
      bodyKind = "length";
      contentLength = length;
    }

    const connection = seen & CONNECTION_BIT ? headers.get("connection") : undefined;
    const expect = http11 && seen & EXPECT_BIT ? headers.get("expect") : undefined;
    const request: ParsedRequest = {
      method: this.#method,
      target: this.#target,
      version: this.#version,
      headers,
      keepAlive: http11
        ? connection === undefined || !_hasToken(connection, "close")
        : connection !== undefined && _hasToken(connection, "keep-alive") &&
          !_hasToken(connection, "close"),
      expectContinue: expect !== undefined && _equalsLower(expect, "100-continue"),
      bodyKind,
      contentLength,
      // Shared: a zero-length array cannot be written to.
      body: EMPTY,
    };
    if (this.#targetTooLong) {
      return this.#refuse(request, PARSE_ERROR.TargetTooLong, pos);
    }
    if (contentLength > this.#maxBody) {
      return this.#refuse(request, PARSE_ERROR.BodyTooLarge, pos);
    }
    if (bodyKind === "chunked") {
      this.#request = request;
      this.#state = ST_CHUNK_SIZE;
      return pos;
    }
    if (contentLength === 0) {
      this.#emit(request);
      return pos;
    }
    if (end - pos >= contentLength) {
      // slice, not subarray: the caller reuses its buffer.
      request.body = buf.slice(pos, pos + contentLength);
      this.#emit(request);
      return pos + contentLength;
    }
    this.#request = request;
    this.#bodyLength = contentLength;
    this.#body = new Uint8Array(Math.min(contentLength, BODY_INITIAL));
    this.#bodyFilled = 0;
    this.#state = ST_LENGTH;
    return pos;
  }

  #lengthBody(buf: Uint8Array, pos: number, end: number): number {
    if (pos === end) return ~pos;
    const n = Math.min(end - pos, this.#bodyLength - this.#bodyFilled);
    this.#bodyAppend(buf, pos, n, this.#bodyLength);
    pos += n;
    if (this.#bodyFilled < this.#bodyLength) return ~pos;
    const request = this.#request!;
    request.body = this.#body;
    this.#emit(request);
    return pos;
  }

  #chunkSize(buf: Uint8Array, pos: number, end: number): number {
    const ls = pos;
    const le = _indexOfLf(buf, ls + this.#scanned, end);
    if (le < 0) {
      if (end - ls >= MAX_CHUNK_LINE) return this.#badChunk("chunk-size line is too long");
      this.#scanned = end - ls;
      return ~ls;
    }
    this.#scanned = 0;
    if (le + 1 - ls > MAX_CHUNK_LINE) return this.#badChunk("chunk-size line is too long");
    // Body framing takes no bare LF: lenient line endings here are a known smuggling vector.
    if (le === ls || buf[le - 1] !== CR) return this.#badChunk("chunk-size line must end in CRLF");
    const ce = le - 1;
    let i = ls;
    // Leading zeros are valid digits (1*HEXDIG) that add nothing: only the rest count below.
    while (i < ce && buf[i] === 48) i++;
    const significant = i;
    let size = 0;
    for (; i < ce; i++) {
      const d = HEX[buf[i]!]!;
      if (d === 255) break;
      size = size * 16 + d;
    }
    if (i === ls) return this.#badChunk("chunk size is not a hex number");
    if (i - significant > MAX_CHUNK_DIGITS) return this.#badChunk("chunk size has too many digits");
    if (i < ce) {
      this.#extBytes += ce - i;
      if (this.#extBytes > this.#maxHeader) return this.#badChunk("chunk extensions are too long");
      if (!_isChunkExt(buf, i, ce)) return this.#badChunk("chunk extension is malformed");
    }
    if (size === 0) {
      this.#state = ST_TRAILER;
      return le + 1;
    }
    if (!this.#skipping && this.#bodyFilled + size > this.#maxBody) {
      const request = this.#request!;
      // Its 100 Continue went out (or none was asked): the client sends the rest, to be skipped.
      if (!request.keepAlive) {
        return this.#failWith(this.#overLimit(PARSE_ERROR.BodyTooLarge, true));
      }
      this.#queueRefusal(request, PARSE_ERROR.BodyTooLarge);
      this.#skipping = true;
      this.#body = EMPTY;
      // Head and chunk in one push: the refusal stands for the head too (no 100, no body timer).
      this.#headEmitted = true;
    }
    this.#chunkLeft = size;
    this.#state = ST_CHUNK_DATA;
    return le + 1;
  }

  // Appends buf[pos, pos + n) to the body, growing it by doubling up to `limit` bytes.
  #bodyAppend(buf: Uint8Array, pos: number, n: number, limit: number): void {
    const filled = this.#bodyFilled;
    if (filled + n > this.#body.length) {
      const grown = new Uint8Array(Math.min(limit, Math.max(this.#body.length * 2, filled + n)));
      grown.set(this.#body.subarray(0, filled));
      this.#body = grown;
    }
    this.#body.set(buf.subarray(pos, pos + n), filled);
    this.#bodyFilled = filled + n;
  }

  #chunkData(buf: Uint8Array, pos: number, end: number): number {
    if (pos === end) return ~pos;
    const n = Math.min(end - pos, this.#chunkLeft);
    if (!this.#skipping) this.#bodyAppend(buf, pos, n, this.#maxBody);
    this.#chunkLeft -= n;
    pos += n;
    if (this.#chunkLeft > 0) return ~pos;
    this.#state = ST_CHUNK_END;
    return pos;
  }

  #chunkEnd(buf: Uint8Array, pos: number, end: number): number {
    if (end - pos < 2) {
      if (pos < end && buf[pos] !== CR) return this.#badChunk("chunk data must end in CRLF");
      return ~pos;
    }
    if (buf[pos] !== CR || buf[pos + 1] !== LF) {
      return this.#badChunk("chunk data must end in CRLF");
    }
    this.#state = ST_CHUNK_SIZE;
    return pos + 2;
  }

  #trailer(buf: Uint8Array, pos: number, end: number): number {
    const ls = pos;
    const le = this.#fieldLine(buf, ls, end, this.#maxHeader - this.#trailerBytes, false);
    if (le < 0) return le === FAILED ? end : ~ls;
    this.#trailerBytes += le + 1 - ls;
    // Trailer fields were checked like header fields and are dropped: nothing here needs them.
    if (le !== ls + 1 || buf[ls] !== CR) return le + 1;
    if (this.#skipping) {
      this.#next();
      return le + 1;
    }
    const request = this.#request!;
    const body = this.#body;
    request.body = body.length === this.#bodyFilled ? body : body.slice(0, this.#bodyFilled);
    this.#emit(request);
    return le + 1;
  }

  #emit(request: ParsedRequest): void {
    this.#steps[this.#stepCount++] = { kind: "request", request };
    this.#next();
  }

  /**
   * Refuses a request over a limit once its head ended: answered in its turn and its body skipped
   * when its framing lets the connection go on; else the error closes it, as framing errors do (a
   * client expecting 100 Continue may never send the body it declared; one that asked to close
   * gets nothing more read).
   */
  #refuse(request: ParsedRequest, code: OverLimitCode, pos: number): number {
    if (!request.keepAlive || (request.expectContinue && request.bodyKind !== "none")) {
      return this.#failWith(this.#overLimit(code, true));
    }
    this.#queueRefusal(request, code);
    if (request.bodyKind === "chunked") {
      this.#request = request;
      this.#skipping = true;
      this.#state = ST_CHUNK_SIZE;
      // The refusal stands for its head: no head step for it.
      this.#headEmitted = true;
    } else if (request.contentLength > 0) {
      this.#skipLeft = request.contentLength;
      this.#state = ST_SKIP;
      this.#headEmitted = true;
    } else {
      this.#next();
    }
    return pos;
  }

  #queueRefusal(request: RequestHead, code: OverLimitCode): void {
    this.#steps[this.#stepCount++] = {
      kind: "refused",
      error: this.#overLimit(code, false),
      // A HEAD's refusal has no body either: the client would read it as the next answer.
      method: request.method,
      version: request.version,
    };
  }

  /** Drops the bytes of a refused request's Content-Length body. */
  #skip(pos: number, end: number): number {
    if (pos === end) return ~pos;
    const n = Math.min(end - pos, this.#skipLeft);
    this.#skipLeft -= n;
    if (this.#skipLeft > 0) return ~(pos + n);
    this.#next();
    return pos + n;
  }

  /** Ready for the next request. */
  #next(): void {
    this.#state = ST_HEAD;
    this.#headers = null;
    this.#hostCount = 0;
    this.#headBytes = 0;
    this.#scanned = 0;
    this.#sp1 = this.#sp2 = -1;
    this.#request = null;
    this.#headEmitted = false;
    this.#body = EMPTY;
    this.#bodyFilled = 0;
    this.#bodyLength = 0;
    this.#chunkLeft = 0;
    this.#extBytes = 0;
    this.#trailerBytes = 0;
    this.#targetTooLong = false;
    this.#skipping = false;
    this.#skipLeft = 0;
  }

  // Keeps a copy of unparsed bytes when #own is empty; room to append to them unless `exact`
  // (held bytes are parsed before anything is appended).
  #keep(rest: Uint8Array, exact = false): void {
    if (this.#own.length < rest.length) {
      this.#own = new Uint8Array(Math.max(OWN_MIN, exact ? rest.length : rest.length * 2));
    }
    this.#own.set(rest);
    this.#ownStart = 0;
    this.#ownEnd = rest.length;
  }

  #append(bytes: Uint8Array): void {
    const kept = this.#ownEnd - this.#ownStart;
    if (this.#ownEnd + bytes.length > this.#own.length) {
      if (kept + bytes.length <= this.#own.length) {
        this.#own.copyWithin(0, this.#ownStart, this.#ownEnd);
      } else {
        const grown = new Uint8Array(Math.max(this.#own.length * 2, kept + bytes.length));
        grown.set(this.#own.subarray(this.#ownStart, this.#ownEnd));
        this.#own = grown;
      }
      this.#ownStart = 0;
      this.#ownEnd = kept;
    }
    this.#own.set(bytes, this.#ownEnd);
    this.#ownEnd += bytes.length;
  }

  #fail(status: number, code: ParseErrorCode, message: string): number {
    return this.#failWith(new HttpError(status, code, message, { close: true }));
  }

  #failWith(error: HttpError): number {
    this.#error = this.#skipping
      ? { kind: "error", error, answered: true }
      : { kind: "error", error };
    this.#state = ST_ERROR;
    this.#held = false;
    this.#own = EMPTY;
    this.#ownStart = this.#ownEnd = 0;
    this.#body = EMPTY;
    this.#request = null;
    this.#spanCount = 0;
    this.#pendFrom = -1;
    return FAILED;
  }

  #badLine(reason: string): number {
    return this.#fail(
      STATUS.BadRequest,
      PARSE_ERROR.BadRequestLine,
      `Cannot parse request line: ${reason}`,
    );
  }

  #badField(message: string): number {
    return this.#fail(STATUS.BadRequest, PARSE_ERROR.InvalidHeader, message);
  }

  #badValue(what: string): number {
    return this.#badField(`Cannot parse ${what} field: value has a control character`);
  }

  #badChunk(reason: string): number {
    return this.#fail(
      STATUS.BadRequest,
      PARSE_ERROR.InvalidChunk,
      `Cannot parse chunked body: ${reason}`,
    );
  }

  #headerTooLarge(): number {
    return this.#fail(
      STATUS.RequestHeaderFieldsTooLarge,
      PARSE_ERROR.HeaderTooLarge,
      `Request line and header fields are larger than ${this.#maxHeader} bytes`,
    );
  }

  /** The 414 or 413 of a request over a limit; `close` when the connection cannot go on. */
  #overLimit(code: OverLimitCode, close: boolean): HttpError {
    return code === PARSE_ERROR.TargetTooLong
      ? new HttpError(
        STATUS.UriTooLong,
        code,
        `Request-target is longer than ${this.#maxTarget} bytes`,
        { close },
      )
      : new HttpError(
        STATUS.ContentTooLarge,
        code,
        `Request body is larger than ${this.#maxBody} bytes`,
        { close },
      );
  }
}

function _limit(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `Cannot create parser: ${name} must be an integer >= ${min}, got ${value}`,
    );
  }
  return value;
}

function _table(extra: string, alnum: boolean): Uint8Array {
  const table = new Uint8Array(256);
  for (let i = 0; i < extra.length; i++) table[extra.charCodeAt(i)] = 1;
  if (alnum) {
    for (let c = 48; c <= 57; c++) table[c] = 1;
    for (let c = 65; c <= 90; c++) table[c] = table[c + 32] = 1;
  }
  return table;
}

function _isOws(c: number): boolean {
  return c === SP || c === HT;
}

function _isDigit(b: number): boolean {
  return b >= 48 && b <= 57;
}

// Latin-1 keeps every byte as one UTF-16 unit (TextDecoder's "latin1" is windows-1252).
function _latin1(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= LATIN1_CHUNK) {
    return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as number[]);
  }
  const pieces: string[] = [];
  for (let i = start; i < end; i += LATIN1_CHUNK) {
    pieces.push(_latin1(buf, i, Math.min(end, i + LATIN1_CHUNK)));
  }
  return pieces.join("");
}

/** Common header names, interned so most fields allocate no name string. */
const KNOWN_NAMES: readonly string[] = [
  "host",
  "user-agent",
  "accept",
  "accept-encoding",
  "accept-language",
  "connection",
  "content-length",
  "content-type",
  "transfer-encoding",
  "authorization",
  "cookie",
  "origin",
  "referer",
  "expect",
  "cache-control",
  "pragma",
  "if-none-match",
  "if-modified-since",
  "x-forwarded-for",
  "upgrade",
  "te",
  "sec-fetch-site",
  "sec-fetch-mode",
  "sec-fetch-dest",
];
// #seenKnown holds one bit per known name.
if (KNOWN_NAMES.length > 31) throw new RangeError("KNOWN_NAMES must fit the bits of an int32");
const HOST_INDEX = 0;
const CONNECTION_BIT = 1 << KNOWN_NAMES.indexOf("connection");
const CONTENT_LENGTH_BIT = 1 << KNOWN_NAMES.indexOf("content-length");
const TRANSFER_ENCODING_BIT = 1 << KNOWN_NAMES.indexOf("transfer-encoding");
const EXPECT_BIT = 1 << KNOWN_NAMES.indexOf("expect");
/** _knownName of a name that is not known: already lower-case, or not. */
const NAME_LOWER = -1;
const NAME_MIXED = -2;
/** Indexes into KNOWN_NAMES by name length, for a cheap first filter. */
const KNOWN_BY_LENGTH: (number[] | undefined)[] = [];
KNOWN_NAMES.forEach((name, index) => (KNOWN_BY_LENGTH[name.length] ??= []).push(index));
const KNOWN_BYTES = KNOWN_NAMES.map((name) => Uint8Array.from(name, (c) => c.charCodeAt(0)));
/** ASCII lower-case of every byte. */
const LOWER = new Uint8Array(256).map((_, b) => (b >= 65 && b <= 90 ? b + 32 : b));

// The KNOWN_NAMES index of the token buf[start, end), compared case-insensitively.
function _knownName(buf: Uint8Array, start: number, end: number): number {
  const candidates = KNOWN_BY_LENGTH[end - start];
  if (candidates !== undefined) {
    outer: for (let k = 0; k < candidates.length; k++) {
      const index = candidates[k]!;
      const name = KNOWN_BYTES[index]!;
      for (let i = 0; i < name.length; i++) {
        if (LOWER[buf[start + i]!] !== name[i]) continue outer;
      }
      return index;
    }
  }
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b >= 65 && b <= 90) return NAME_MIXED;
  }
  return NAME_LOWER;
}

// A loop beats TypedArray#indexOf on lines of typical header length.
function _indexOfLf(buf: Uint8Array, from: number, end: number): number {
  for (let i = from; i < end; i++) if (buf[i] === LF) return i;
  return -1;
}

// Interns the common methods; the rest are decoded.
function _method(buf: Uint8Array, start: number, length: number): string {
  const b0 = buf[start];
  switch (length) {
    case 3:
      if (b0 === 71 && buf[start + 1] === 69 && buf[start + 2] === 84) return "GET";
      if (b0 === 80 && buf[start + 1] === 85 && buf[start + 2] === 84) return "PUT";
      break;
    case 4:
      if (b0 === 80 && buf[start + 1] === 79 && buf[start + 2] === 83 && buf[start + 3] === 84) {
        return "POST";
      }
      if (b0 === 72 && buf[start + 1] === 69 && buf[start + 2] === 65 && buf[start + 3] === 68) {
        return "HEAD";
      }
      break;
    case 6:
      if (_bytesEqual(buf, start, "DELETE")) return "DELETE";
      break;
    case 7:
      if (_bytesEqual(buf, start, "OPTIONS")) return "OPTIONS";
      break;
    case 5:
      if (_bytesEqual(buf, start, "PATCH")) return "PATCH";
      break;
  }
  return _latin1(buf, start, start + length);
}

function _bytesEqual(buf: Uint8Array, start: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

// absolute-form (RFC 9112 §3.2.2) for the schemes an HTTP server can be addressed by.
function _isAbsoluteForm(buf: Uint8Array, start: number, end: number): boolean {
  const prefix = end - start > 8 && (buf[start + 4]! | 0x20) === 115 ? "https://" : "http://";
  if (end - start <= prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    const b = buf[start + i]!;
    const c = prefix.charCodeAt(i);
    if (b !== c && !(b >= 65 && b <= 90 && (b | 0x20) === c)) return false;
  }
  return true;
}

/** Whether the authority of an absolute-form target (up to its first '/', '?' or '#') has '@'. */
function _hasUserinfo(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end && buf[i] !== COLON) i++;
  for (i += 3; i < end; i++) {
    const b = buf[i];
    if (b === SLASH || b === 63 /* ? */ || b === HASH) return false;
    if (b === 64 /* @ */) return true;
  }
  return false;
}

// host [":" port] (RFC 9110 §7.2): reg-name, IPv4 or IP-literal, then up to 5 port digits.
// Empty is valid (RFC 9112 §3.2).
function _isValidHost(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  if (buf[start] === 91) {
    i++;
    while (i < end && (HOST_CHAR[buf[i]!] === 1 || buf[i] === COLON)) i++;
    if (i === start + 1 || i === end || buf[i] !== 93) return false;
    i++;
  } else {
    while (i < end && HOST_CHAR[buf[i]!] === 1) i++;
  }
  if (i === end) return true;
  if (buf[i] !== COLON || end - i - 1 > 5) return false;
  for (i++; i < end; i++) if (!_isDigit(buf[i]!)) return false;
  return true;
}

function _isToken(value: string): boolean {
  if (value === "") return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 255 || TCHAR[c] !== 1) return false;
  }
  return true;
}

// Whether a comma-separated token list (e.g. Connection) holds `token` (lower-case).
function _hasToken(list: string, token: string): boolean {
  const n = list.length;
  let i = 0;
  while (i <= n) {
    let j = list.indexOf(",", i);
    if (j < 0) j = n;
    let s = i;
    let e = j;
    while (s < e && _isOws(list.charCodeAt(s))) s++;
    while (e > s && _isOws(list.charCodeAt(e - 1))) e--;
    if (e - s === token.length && _equalsLowerAt(list, s, token)) return true;
    i = j + 1;
  }
  return false;
}

function _equalsLower(value: string, lower: string): boolean {
  return value.length === lower.length && _equalsLowerAt(value, 0, lower);
}

function _equalsLowerAt(value: string, at: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) {
    let c = value.charCodeAt(at + k);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(k)) return false;
  }
  return true;
}

// RFC 9112 §6.1 and §7: the final coding must be chunked, and chunked only once.
function _transferCodingError(value: string): HttpError | null {
  if (value === "chunked") return null;
  const codings: string[] = [];
  for (const part of value.split(",")) {
    // Only OWS is trimmed: String#trim would also strip U+00A0 (a latin-1 byte here) and read
    // "chunked\xa0" as chunked where a front end does not (issue 14).
    const element = trimOws(part);
    // RFC 9110 §5.6.1: empty list elements are ignored.
    if (element === "") continue;
    const semicolon = element.indexOf(";");
    const raw = semicolon < 0 ? element : trimOws(element.slice(0, semicolon));
    // Checked as a token (ASCII only) before lower-casing, so Unicode case mapping (e.g. of
    // latin-1 letters) never takes part.
    if (!_isToken(raw)) {
      return _error(
        STATUS.BadRequest,
        PARSE_ERROR.InvalidTransferEncoding,
        "Transfer-Encoding is malformed",
      );
    }
    const name = raw.toLowerCase();
    if (name === "chunked" && semicolon >= 0) {
      return _error(
        STATUS.BadRequest,
        PARSE_ERROR.InvalidTransferEncoding,
        "Transfer-Encoding is malformed",
      );
    }
    codings.push(name);
  }
  if (codings.length === 0) {
    return _error(
      STATUS.BadRequest,
      PARSE_ERROR.InvalidTransferEncoding,
      "Transfer-Encoding is empty",
    );
  }
  for (let i = 0; i < codings.length - 1; i++) {
    if (codings[i] === "chunked") {
      return _error(
        STATUS.BadRequest,
        PARSE_ERROR.ChunkedNotLast,
        "chunked must be the last transfer coding",
      );
    }
  }
  for (const coding of codings) {
    if (coding !== "chunked") {
      return _error(
        STATUS.NotImplemented,
        PARSE_ERROR.UnsupportedTransferCoding,
        `Transfer coding ${JSON.stringify(coding)} is not supported`,
      );
    }
  }
  return null;
}

// chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) (RFC 9112 §7.1.1)
function _isChunkExt(buf: Uint8Array, i: number, end: number): boolean {
  while (i < end) {
    while (i < end && (buf[i] === SP || buf[i] === HT)) i++;
    if (i === end || buf[i] !== SEMICOLON) return false;
    i++;
    while (i < end && (buf[i] === SP || buf[i] === HT)) i++;
    const nameStart = i;
    while (i < end && TCHAR[buf[i]!] === 1) i++;
    if (i === nameStart) return false;
    while (i < end && (buf[i] === SP || buf[i] === HT)) i++;
    if (i === end || buf[i] !== EQUALS) continue;
    i++;
    while (i < end && (buf[i] === SP || buf[i] === HT)) i++;
    if (i < end && buf[i] === DQUOTE) {
      i++;
      for (;;) {
        if (i === end) return false;
        const b = buf[i]!;
        if (b === DQUOTE) break;
        if (b === BACKSLASH) {
          i++;
          if (i === end) return false;
          const q = buf[i]!;
          if ((q < SP && q !== HT) || q === DEL) return false;
        } else if ((b < SP && b !== HT) || b === DEL) {
          return false;
        }
        i++;
      }
      i++;
    } else {
      const valueStart = i;
      while (i < end && TCHAR[buf[i]!] === 1) i++;
      if (i === valueStart) return false;
    }
  }
  return true;
}

function _error(status: number, code: ParseErrorCode, message: string): HttpError {
  return new HttpError(status, code, message, { close: true });
}
