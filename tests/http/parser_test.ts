import assert from "node:assert/strict";
import type { HttpError } from "../../lib/http/errors.ts";
import {
  DEFAULT_LIMITS,
  MAX_QUEUED_STEPS,
  parseContentLength,
  type ParsedRequest,
  type ParserLimits,
  type RequestHead,
  RequestParser,
} from "../../lib/http/parser.ts";

/** Encodes text byte for byte (latin-1), so a case can hold any octet. */
function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => {
    const code = c.charCodeAt(0);
    if (code > 255) throw new RangeError(`Cannot encode ${c} as one byte`);
    return code;
  });
}

function text(data: Uint8Array): string {
  return String.fromCharCode(...data);
}

interface Outcome {
  heads: RequestHead[];
  requests: ParsedRequest[];
  /** Requests refused over a limit, the connection going on. */
  refused: HttpError[];
  error: HttpError | null;
}

const scratch = new Uint8Array(1 << 16);

// Pushes through a reused buffer that is scribbled over afterwards, as a connection's read
// buffer would be, so anything the parser kept without copying shows up as corruption.
function feed(parser: RequestParser, piece: Uint8Array): void {
  const view = piece.length <= scratch.length
    ? scratch.subarray(0, piece.length)
    : new Uint8Array(piece.length);
  view.set(piece);
  parser.push(view);
  view.fill(0xee);
}

function drain(parser: RequestParser, outcome: Outcome): void {
  for (;;) {
    const step = parser.next();
    switch (step.kind) {
      case "incomplete":
        return;
      case "head":
        outcome.heads.push(step.head);
        break;
      case "request":
        outcome.requests.push(step.request);
        break;
      case "refused":
        outcome.refused.push(step.error);
        break;
      case "error":
        outcome.error = step.error;
        return;
    }
  }
}

/** Parses `input` pushed in pieces cut at the offsets `cuts`. */
function parseCut(
  input: Uint8Array,
  cuts: number[],
  limits?: Partial<ParserLimits>,
): Outcome {
  const parser = new RequestParser(limits);
  const outcome: Outcome = { heads: [], requests: [], refused: [], error: null };
  let at = 0;
  for (const cut of [...cuts, input.length]) {
    if (cut > at) feed(parser, input.subarray(at, cut));
    drain(parser, outcome);
    at = cut;
  }
  return outcome;
}

function parseBytewise(input: Uint8Array, limits?: Partial<ParserLimits>): Outcome {
  return parseCut(input, Array.from({ length: input.length }, (_, i) => i), limits);
}

type ErrorExpect = { status: number; code: string };
/** Refused over a limit, no error: then `next` (a request after it) or nothing more. */
type RefusedExpect = { refused: number; code: string; next?: string };
type PendingExpect = { pending: true };
type RequestExpect = Partial<Omit<ParsedRequest, "headers" | "body">> & {
  headers?: Record<string, string>;
  absent?: string[];
  body?: string;
};
type Expect = ErrorExpect | RefusedExpect | PendingExpect | RequestExpect;

interface Case {
  name: string;
  input: string;
  limits?: Partial<ParserLimits>;
  expect: Expect;
}

function check(outcome: Outcome, expect: Expect, how: string): void {
  if ("status" in expect) {
    assert.equal(outcome.requests.length, 0, `${how}: parsed a request`);
    assert.ok(outcome.error, `${how}: no error`);
    assert.deepEqual(
      { status: outcome.error.status, code: outcome.error.code, close: outcome.error.close },
      { ...expect, close: true },
      `${how}: ${outcome.error.message}`,
    );
    return;
  }
  assert.equal(outcome.error, null, `${how}: ${outcome.error?.message}`);
  if ("refused" in expect) {
    assert.deepEqual(
      outcome.refused.map((e) => ({ status: e.status, code: e.code, close: e.close })),
      [{ status: expect.refused, code: expect.code, close: false }],
      how,
    );
    assert.deepEqual(outcome.requests.map((r) => r.target), expect.next ? [expect.next] : [], how);
    return;
  }
  assert.equal(outcome.refused.length, 0, `${how}: refused`);
  if ("pending" in expect) {
    assert.equal(outcome.requests.length, 0, `${how}: parsed a request`);
    return;
  }
  assert.equal(outcome.requests.length, 1, `${how}: request count`);
  const request = outcome.requests[0]!;
  const { headers, absent, body, ...fields } = expect;
  for (const [key, value] of Object.entries(fields)) {
    assert.deepEqual(request[key as keyof typeof fields], value, `${how}: ${key}`);
  }
  for (const [name, value] of Object.entries(headers ?? {})) {
    assert.equal(request.headers.get(name), value, `${how}: header ${name}`);
  }
  for (const name of absent ?? []) assert.ok(!request.headers.has(name), `${how}: has ${name}`);
  if (body !== undefined) assert.equal(text(request.body), body, `${how}: body`);
}

const HOST = "Host: a\r\n";
const GET = `GET / HTTP/1.1\r\n${HOST}`;
const POST = `POST /m HTTP/1.1\r\n${HOST}`;
const CHUNKED = `${POST}Transfer-Encoding: chunked\r\n\r\n`;
const EXACT_HEAD = `GET / HTTP/1.1\r\n${HOST}\r\n`;

const bad = (code: string): ErrorExpect => ({ status: 400, code });

const CASES: Case[] = [
  // Request line.
  {
    name: "parses a minimal GET request",
    input: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    expect: {
      method: "GET",
      target: "/",
      version: "HTTP/1.1",
      headers: { host: "example.com" },
      keepAlive: true,
      expectContinue: false,
      bodyKind: "none",
      contentLength: 0,
      body: "",
    },
  },
  {
    name: "keeps the method as sent, case included",
    input: `get / HTTP/1.1\r\n${HOST}\r\n`,
    expect: { method: "get" },
  },
  {
    name: "accepts any token as a method",
    input: `PURGE /cache HTTP/1.1\r\n${HOST}\r\n`,
    expect: { method: "PURGE", target: "/cache" },
  },
  {
    name: "keeps the raw request-target with its query",
    input: `GET /api/events?cursor=3&wait=25%20 HTTP/1.1\r\n${HOST}\r\n`,
    expect: { target: "/api/events?cursor=3&wait=25%20" },
  },
  {
    name: "rejects an empty method",
    input: ` / HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects a method with a non-token character",
    input: `GE(T / HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects two spaces between method and target",
    input: `GET  / HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects two spaces between target and version",
    input: `GET /  HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects a space after the version",
    input: `GET / HTTP/1.1 \r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects a request line without a version",
    input: `GET /\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects a lower-case protocol name",
    input: `GET / http/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects HTTP/2.0 with 505",
    input: `GET / HTTP/2.0\r\n${HOST}\r\n`,
    expect: { status: 505, code: "version_not_supported" },
  },
  {
    name: "rejects HTTP/0.9 with 505",
    input: `GET / HTTP/0.9\r\n${HOST}\r\n`,
    expect: { status: 505, code: "version_not_supported" },
  },
  {
    name: "rejects HTTP/1.2 with 505",
    input: `GET / HTTP/1.2\r\n${HOST}\r\n`,
    expect: { status: 505, code: "version_not_supported" },
  },
  {
    name: "rejects a version with a two-digit minor number",
    input: `GET / HTTP/1.10\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects a version without a dot",
    input: `GET / HTTP/11\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects binary garbage as a request line",
    input: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    expect: bad("bad_request_line"),
  },
  {
    name: "accepts HTTP/1.0 without Host",
    input: "GET / HTTP/1.0\r\n\r\n",
    expect: { version: "HTTP/1.0", keepAlive: false, bodyKind: "none" },
  },
  {
    name: "ignores an empty line before the request line",
    input: `\r\n${GET}\r\n`,
    expect: { method: "GET", target: "/" },
  },
  {
    name: "ignores several empty lines before the request line, bare LF included",
    input: `\r\n\n\r\n${GET}\r\n`,
    expect: { method: "GET", target: "/" },
  },
  {
    name: "rejects a bare CR before the request line",
    input: `\r${GET}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "accepts an absolute-form target",
    input: "GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n",
    expect: { target: "http://example.com/x?y" },
  },
  {
    name: "accepts an absolute-form target with an upper-case https scheme",
    input: "GET HTTPS://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
    expect: { target: "HTTPS://example.com/" },
  },
  {
    name: "accepts '*' as the target of OPTIONS",
    input: `OPTIONS * HTTP/1.1\r\n${HOST}\r\n`,
    expect: { method: "OPTIONS", target: "*" },
  },
  {
    name: "rejects '*' as the target of GET",
    input: `GET * HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects an authority-form target",
    input: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects a relative target",
    input: `GET index.html HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects a control character in the target",
    input: `GET /a\x01b HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects DEL in the target",
    input: `GET /a\x7fb HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects a non-ASCII byte in the target",
    input: `GET /caf\xe9 HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  // Issue 14: "#" starts a fragment, which no request-target may carry (RFC 9112 §3.2).
  {
    name: "rejects '#' in an origin-form target",
    input: `GET /a#b HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects '#' in an absolute-form target",
    input: `GET http://a#/healthz HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "rejects userinfo in an absolute-form target",
    input: `GET http://user@a/healthz HTTP/1.1\r\n${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "accepts '@' after the authority of an absolute-form target",
    input: `GET http://a/x@y?z@w HTTP/1.1\r\n${HOST}\r\n`,
    expect: { target: "http://a/x@y?z@w" },
  },
  {
    name: "keeps an absolute-form target whose authority ends at '?' as sent",
    input: `GET http://a?/healthz HTTP/1.1\r\n${HOST}\r\n`,
    expect: { target: "http://a?/healthz" },
  },
  {
    name: "refuses a target longer than maxTarget with 414, and goes on",
    input: `GET /123456789 HTTP/1.1\r\n${HOST}\r\nGET /next HTTP/1.1\r\n${HOST}\r\n`,
    limits: { maxTarget: 8 },
    expect: { refused: 414, code: "target_too_long", next: "/next" },
  },
  {
    name: "refuses a target longer than maxTarget with 414 and skips its body",
    input: `POST /123456789 HTTP/1.1\r\n${HOST}Content-Length: 22\r\n\r\nGET /hidden HTTP/1.1\r\n` +
      `GET /next HTTP/1.1\r\n${HOST}\r\n`,
    limits: { maxTarget: 8 },
    expect: { refused: 414, code: "target_too_long", next: "/next" },
  },
  {
    name: "rejects a target longer than maxTarget with 414 and closes when the client asked to",
    input: `GET /123456789 HTTP/1.1\r\n${HOST}Connection: close\r\n\r\n`,
    limits: { maxTarget: 8 },
    expect: { status: 414, code: "target_too_long" },
  },
  {
    name: "accepts a target of exactly maxTarget bytes",
    input: `GET /1234567 HTTP/1.1\r\n${HOST}\r\n`,
    limits: { maxTarget: 8 },
    expect: { target: "/1234567" },
  },
  {
    name: "waits for the head of a request whose target is over the limit",
    input: `GET /${"a".repeat(40)}`,
    limits: { maxTarget: 8 },
    expect: { pending: true },
  },
  {
    name: "answers a target over the header limit with 431 before its line ends",
    input: `GET /${"a".repeat(40)}`,
    limits: { maxTarget: 8, maxHeader: 32 },
    expect: { status: 431, code: "header_too_large" },
  },
  {
    name: "rejects a bare CR ending the request line",
    input: `GET / HTTP/1.1\r${HOST}\r\n`,
    expect: bad("bad_request_line"),
  },
  {
    name: "accepts bare LF line endings in the head",
    input: "GET / HTTP/1.1\nHost: a\nX-One: 1\n\n",
    expect: { headers: { host: "a", "x-one": "1" } },
  },

  // Header fields.
  {
    name: "lower-cases field names and trims OWS around values",
    input: `${GET}X-Thing: \t value with  spaces \t\r\nUSER-AGENT: t/1\r\n\r\n`,
    expect: { headers: { "x-thing": "value with  spaces", "user-agent": "t/1" } },
  },
  {
    name: "joins repeated fields with a comma and a space",
    input: `${GET}Accept: a\r\naccept: b\r\nACCEPT: c\r\n\r\n`,
    expect: { headers: { accept: "a, b, c" } },
  },
  {
    name: "keeps an empty field value",
    input: `${GET}X-Empty:\r\nX-Blank:   \r\n\r\n`,
    expect: { headers: { "x-empty": "", "x-blank": "" } },
  },
  {
    name: "keeps obs-text bytes of values as latin-1",
    input: `${GET}X-Name: caf\xe9 \x80\xff\r\n\r\n`,
    expect: { headers: { "x-name": "caf\u00e9 \u0080\u00ff" } },
  },
  {
    name: "accepts HTAB inside a value",
    input: `${GET}X-Tab: a\tb\r\n\r\n`,
    expect: { headers: { "x-tab": "a\tb" } },
  },
  {
    name: "rejects a space between a field name and the colon",
    input: "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a tab between a field name and the colon",
    input: `${GET}X-A\t: 1\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects obs-fold continuation lines",
    input: `${GET}X-A: 1\r\n  continued\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects whitespace before the first field line",
    input: "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    expect: bad("invalid_header"),
  },
  {
    name: "rejects NUL in a field value",
    input: `${GET}X-A: a\x00b\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a bare CR inside a field value",
    input: `${GET}X-A: a\rb\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a bare CR ending a field line",
    input: "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n",
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a bare CR as the first byte of a field line",
    input: `${GET}\rX-A: b\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects other control characters in a field value",
    input: `${GET}X-A: a\x01b\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects DEL in a field value",
    input: `${GET}X-A: a\x7fb\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects an empty field name",
    input: `${GET}: value\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a field line without a colon",
    input: `${GET}NoColon\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a non-token character in a field name",
    input: `${GET}X(Y): 1\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a head larger than maxHeader with 431",
    input: `${GET}X-Long: ${"a".repeat(40)}\r\n\r\n`,
    limits: { maxHeader: 48 },
    expect: { status: 431, code: "header_too_large" },
  },
  {
    name: "accepts a head of exactly maxHeader bytes",
    input: EXACT_HEAD,
    limits: { maxHeader: EXACT_HEAD.length },
    expect: { method: "GET" },
  },
  {
    name: "rejects a head one byte over maxHeader",
    input: EXACT_HEAD,
    limits: { maxHeader: EXACT_HEAD.length - 1 },
    expect: { status: 431, code: "header_too_large" },
  },
  {
    name: "rejects an unfinished head once it exceeds maxHeader",
    input: `${GET}X-A: ${"a".repeat(100)}`,
    limits: { maxHeader: 64 },
    expect: { status: 431, code: "header_too_large" },
  },
  {
    name: "rejects an unfinished request line once it exceeds maxHeader",
    input: `GET /${"a".repeat(100)}`,
    limits: { maxHeader: 32, maxTarget: 1000 },
    expect: { status: 431, code: "header_too_large" },
  },
  {
    name: "waits for more bytes while the head is unfinished",
    input: GET,
    expect: { pending: true },
  },

  // Host.
  {
    name: "rejects an HTTP/1.1 request without Host",
    input: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    expect: bad("invalid_host"),
  },
  {
    name: "rejects two Host fields",
    input: `${GET}Host: b\r\n\r\n`,
    expect: bad("invalid_host"),
  },
  {
    name: "rejects two Host fields in HTTP/1.0",
    input: "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
    expect: bad("invalid_host"),
  },
  {
    name: "rejects a Host with a space inside",
    input: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    expect: bad("invalid_host"),
  },
  {
    name: "rejects a Host with a slash",
    input: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
    expect: bad("invalid_host"),
  },
  {
    name: "rejects a Host with userinfo",
    input: "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
    expect: bad("invalid_host"),
  },
  {
    name: "rejects a Host with a non-numeric port",
    input: "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n",
    expect: bad("invalid_host"),
  },
  {
    name: "accepts an empty Host",
    input: "GET / HTTP/1.1\r\nHost:\r\n\r\n",
    expect: { headers: { host: "" } },
  },
  {
    name: "accepts a Host with a port",
    input: "GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
    expect: { headers: { host: "localhost:8080" } },
  },
  {
    name: "accepts an IPv6 literal Host with a port",
    input: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    expect: { headers: { host: "[::1]:8080" } },
  },
  {
    name: "accepts HTTP/1.0 with one Host",
    input: "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
    expect: { version: "HTTP/1.0", headers: { host: "127.0.0.1" } },
  },

  // Content-Length.
  {
    name: "reads a body framed by Content-Length",
    input: `${POST}Content-Length: 5\r\n\r\nhello`,
    expect: { method: "POST", bodyKind: "length", contentLength: 5, body: "hello" },
  },
  {
    name: "reads Content-Length 0 as an empty body",
    input: `${POST}Content-Length: 0\r\n\r\n`,
    expect: { bodyKind: "length", contentLength: 0, body: "" },
  },
  {
    name: "collapses a list of identical Content-Length values",
    input: `${POST}Content-Length: 5, 5\r\n\r\nhello`,
    expect: { contentLength: 5, body: "hello" },
  },
  {
    name: "collapses repeated identical Content-Length fields",
    input: `${POST}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
    expect: { contentLength: 5, body: "hello" },
  },
  {
    name: "accepts leading zeros in Content-Length",
    input: `${POST}Content-Length: 005\r\n\r\nhello`,
    expect: { contentLength: 5, body: "hello" },
  },
  // Issue 14: 1*DIGIT has no length limit; only the digits after the zeros count.
  {
    name: "accepts a Content-Length of sixteen digits with leading zeros",
    input: `${POST}Content-Length: 0000000000000001\r\n\r\nx`,
    expect: { contentLength: 1, body: "x" },
  },
  {
    name: "accepts a zero Content-Length written with twenty zeros",
    input: `${POST}Content-Length: 00000000000000000000\r\n\r\n`,
    expect: { contentLength: 0, body: "" },
  },
  {
    name: "rejects sixteen significant Content-Length digits behind leading zeros",
    input: `${POST}Content-Length: 0001234567890123456\r\n\r\nx`,
    expect: bad("invalid_content_length"),
  },
  {
    name: "rejects a list of differing Content-Length values",
    input: `${POST}Content-Length: 5, 10\r\n\r\nhello`,
    expect: bad("invalid_content_length"),
  },
  {
    name: "rejects two differing Content-Length fields",
    input: `${POST}Content-Length: 5\r\nContent-Length: 10\r\n\r\nhello`,
    expect: bad("invalid_content_length"),
  },
  ...["+5", "-1", "5 5", "0x5", "5.0", "", "1234567890123456", "99999999999999999999"].map(
    (value): Case => ({
      name: `rejects Content-Length ${JSON.stringify(value)}`,
      input: `${POST}Content-Length: ${value}\r\n\r\nhello`,
      expect: bad("invalid_content_length"),
    }),
  ),
  {
    name: "refuses Content-Length above maxBody with 413 before the body arrives",
    input: `${POST}Content-Length: 11\r\n\r\n`,
    limits: { maxBody: 10 },
    expect: { refused: 413, code: "too_large" },
  },
  {
    name: "refuses Content-Length above maxBody with 413, skips the body and goes on",
    input: `${POST}Content-Length: 11\r\n\r\nGET /x HTTP${GET}\r\n`,
    limits: { maxBody: 10 },
    expect: { refused: 413, code: "too_large", next: "/" },
  },
  {
    name: "rejects Content-Length above maxBody with 413 and closes when 100-continue is expected",
    input: `${POST}Expect: 100-continue\r\nContent-Length: 11\r\n\r\n`,
    limits: { maxBody: 10 },
    expect: { status: 413, code: "too_large" },
  },
  {
    name: "accepts Content-Length equal to maxBody",
    input: `${POST}Content-Length: 5\r\n\r\nhello`,
    limits: { maxBody: 5 },
    expect: { body: "hello" },
  },
  {
    name: "waits for the rest of a Content-Length body",
    input: `${POST}Content-Length: 10\r\n\r\nabc`,
    expect: { pending: true },
  },
  {
    name: "gives a request without Content-Length or Transfer-Encoding no body",
    input: `${POST}\r\n`,
    expect: { bodyKind: "none", contentLength: 0, body: "" },
  },

  // Transfer-Encoding.
  {
    name: "decodes a chunked body",
    input: `${CHUNKED}5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`,
    expect: { bodyKind: "chunked", contentLength: 0, body: "hello world" },
  },
  {
    name: "decodes an empty chunked body",
    input: `${CHUNKED}0\r\n\r\n`,
    expect: { bodyKind: "chunked", body: "" },
  },
  {
    name: "accepts Transfer-Encoding chunked in any case",
    input: `${POST}Transfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n`,
    expect: { bodyKind: "chunked", body: "hi" },
  },
  {
    name: "rejects Content-Length with Transfer-Encoding",
    input: `${POST}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n`,
    expect: bad("conflicting_length"),
  },
  {
    name: "rejects chunked before another coding",
    input: `${POST}Transfer-Encoding: chunked, gzip\r\n\r\n`,
    expect: bad("chunked_not_last"),
  },
  {
    name: "rejects chunked applied twice",
    input: `${POST}Transfer-Encoding: chunked, chunked\r\n\r\n`,
    expect: bad("chunked_not_last"),
  },
  {
    name: "rejects gzip before chunked with 501",
    input: `${POST}Transfer-Encoding: gzip, chunked\r\n\r\n`,
    expect: { status: 501, code: "unsupported_transfer_coding" },
  },
  ...["gzip", "deflate", "x-foo", "identity"].map((coding): Case => ({
    name: `rejects Transfer-Encoding ${coding} with 501`,
    input: `${POST}Transfer-Encoding: ${coding}\r\n\r\n`,
    expect: { status: 501, code: "unsupported_transfer_coding" },
  })),
  {
    name: "combines repeated Transfer-Encoding fields before checking them",
    input: `${POST}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n`,
    expect: { status: 501, code: "unsupported_transfer_coding" },
  },
  {
    name: "rejects an empty Transfer-Encoding",
    input: `${POST}Transfer-Encoding:\r\n\r\n`,
    expect: bad("invalid_transfer_encoding"),
  },
  // Issue 14: U+00A0 is neither tchar nor OWS; trimming it would read the coding as chunked
  // where a front end does not, and the two would split the stream differently (smuggling).
  {
    name: "rejects Transfer-Encoding chunked followed by a no-break space",
    input: `${POST}Transfer-Encoding: chunked\xa0\r\n\r\n0\r\n\r\n`,
    expect: bad("invalid_transfer_encoding"),
  },
  {
    name: "rejects Transfer-Encoding chunked preceded by a no-break space",
    input: `${POST}Transfer-Encoding: \xa0chunked\r\n\r\n0\r\n\r\n`,
    expect: bad("invalid_transfer_encoding"),
  },
  {
    name: "rejects a no-break space between a coding and its parameters",
    input: `${POST}Transfer-Encoding: gzip\xa0;q=1, chunked\r\n\r\n0\r\n\r\n`,
    expect: bad("invalid_transfer_encoding"),
  },
  {
    name: "rejects a list element that is only a no-break space",
    input: `${POST}Transfer-Encoding: chunked,\xa0\r\n\r\n0\r\n\r\n`,
    expect: bad("invalid_transfer_encoding"),
  },
  {
    name: "accepts tabs and spaces around transfer codings and empty list elements",
    input: `${POST}Transfer-Encoding: ,\tchunked \t,\r\n\r\n2\r\nhi\r\n0\r\n\r\n`,
    expect: { bodyKind: "chunked", body: "hi" },
  },
  {
    name: "rejects parameters on chunked",
    input: `${POST}Transfer-Encoding: chunked;q=1\r\n\r\n`,
    expect: bad("invalid_transfer_encoding"),
  },
  {
    name: "rejects Transfer-Encoding in HTTP/1.0",
    input: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    expect: bad("invalid_transfer_encoding"),
  },

  // Chunked bodies.
  {
    name: "accepts upper- and lower-case hex chunk sizes",
    input: `${CHUNKED}a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n`,
    expect: { body: "0123456789abcdefghij" },
  },
  {
    name: "accepts leading zeros in chunk sizes",
    input: `${CHUNKED}005\r\nhello\r\n000\r\n\r\n`,
    expect: { body: "hello" },
  },
  {
    name: "ignores chunk extensions with token and quoted values",
    input: `${CHUNKED}5;name\r\nhello\r\n3 ; a=b;c="x;y\\"z"\r\nabc\r\n0;last\r\n\r\n`,
    expect: { body: "helloabc" },
  },
  {
    name: "rejects a malformed chunk extension",
    input: `${CHUNKED}5;=x\r\nhello\r\n0\r\n\r\n`,
    expect: bad("invalid_chunk"),
  },
  {
    name: "rejects an unterminated quoted chunk extension",
    input: `${CHUNKED}5;a="x\r\nhello\r\n0\r\n\r\n`,
    expect: bad("invalid_chunk"),
  },
  ...["0x5", "+5", "-5", " 5", "5 ", "", "g"].map((size): Case => ({
    name: `rejects chunk size ${JSON.stringify(size)}`,
    input: `${CHUNKED}${size}\r\nhello\r\n0\r\n\r\n`,
    expect: bad("invalid_chunk"),
  })),
  {
    name: "rejects chunk data longer than its size",
    input: `${CHUNKED}5\r\nhelloX\r\n0\r\n\r\n`,
    expect: bad("invalid_chunk"),
  },
  {
    name: "rejects chunk data followed by a bare LF",
    input: `${CHUNKED}5\r\nhello\n0\r\n\r\n`,
    expect: bad("invalid_chunk"),
  },
  {
    name: "rejects a chunk-size line ending in a bare LF",
    input: `${CHUNKED}5\nhello\r\n0\r\n\r\n`,
    expect: bad("invalid_chunk"),
  },
  {
    name: "rejects a chunk size of more than 12 significant hex digits",
    input: `${CHUNKED}1000000000005\r\nhello\r\n0\r\n\r\n`,
    expect: bad("invalid_chunk"),
  },
  // Issue 14: 1*HEXDIG has no length limit; only the digits after the zeros count.
  {
    name: "accepts a chunk size of thirteen digits with leading zeros",
    input: `${CHUNKED}0000000000005\r\nhello\r\n0\r\n\r\n`,
    expect: { body: "hello" },
  },
  {
    name: "accepts a last chunk written with twenty zeros",
    input: `${CHUNKED}2\r\nhi\r\n00000000000000000000\r\n\r\n`,
    expect: { body: "hi" },
  },
  {
    name: "refuses a chunk larger than maxBody with 413",
    input: `${CHUNKED}b\r\n`,
    limits: { maxBody: 10 },
    expect: { refused: 413, code: "too_large" },
  },
  {
    name: "refuses chunks adding up to more than maxBody with 413, skips them and goes on",
    input: `${CHUNKED}6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\nX-T: 1\r\n\r\n${GET}\r\n`,
    limits: { maxBody: 10 },
    expect: { refused: 413, code: "too_large", next: "/" },
  },
  {
    name: "still refuses bad framing in the chunks of a refused body with 400",
    input: `${CHUNKED}6\r\nabcdef\r\n6\r\nabcdef\r\nzz\r\n`,
    limits: { maxBody: 10 },
    expect: { status: 400, code: "invalid_chunk" },
  },
  {
    name: "accepts chunks adding up to exactly maxBody",
    input: `${CHUNKED}5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n`,
    limits: { maxBody: 10 },
    expect: { body: "abcdefghij" },
  },
  {
    name: "rejects a chunk-size line over 4096 bytes",
    input: `${CHUNKED}5;${"a".repeat(5000)}\r\nhello\r\n0\r\n\r\n`,
    expect: bad("invalid_chunk"),
  },
  {
    name: "checks and drops trailer fields",
    input: `${CHUNKED}2\r\nhi\r\n0\r\nX-Trailer: 1\r\nX-Other:  two \r\n\r\n`,
    expect: { body: "hi", absent: ["x-trailer", "x-other"] },
  },
  {
    name: "rejects a malformed trailer field",
    input: `${CHUNKED}0\r\nBad Trailer: 1\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a control character in a trailer value",
    input: `${CHUNKED}0\r\nX-T: a\x00b\r\n\r\n`,
    expect: bad("invalid_header"),
  },
  {
    name: "rejects a trailer line ending in a bare LF",
    input: `${CHUNKED}0\r\nX-T: 1\n\r\n`,
    expect: bad("invalid_chunk"),
  },
  {
    name: "rejects a trailer section over maxHeader with 431",
    input: `${CHUNKED}0\r\nX-T: ${"a".repeat(100)}\r\n\r\n`,
    limits: { maxHeader: 64 },
    expect: { status: 431, code: "header_too_large" },
  },
  {
    name: "waits for the rest of a chunked body",
    input: `${CHUNKED}5\r\nhel`,
    expect: { pending: true },
  },

  // Connection and Expect.
  {
    name: "keeps HTTP/1.1 connections alive by default",
    input: `${GET}\r\n`,
    expect: { keepAlive: true },
  },
  {
    name: "closes an HTTP/1.1 connection on Connection: close",
    input: `${GET}Connection: close\r\n\r\n`,
    expect: { keepAlive: false },
  },
  {
    name: "finds close in a Connection token list in any case",
    input: `${GET}Connection: Keep-Alive, CLOSE\r\n\r\n`,
    expect: { keepAlive: false },
  },
  {
    name: "does not take a longer token for close",
    input: `${GET}Connection: closed\r\n\r\n`,
    expect: { keepAlive: true },
  },
  {
    name: "closes HTTP/1.0 connections by default",
    input: "GET / HTTP/1.0\r\n\r\n",
    expect: { keepAlive: false },
  },
  {
    name: "keeps an HTTP/1.0 connection alive on Connection: keep-alive",
    input: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    expect: { keepAlive: true },
  },
  {
    name: "finds keep-alive in an HTTP/1.0 token list in any case",
    input: "GET / HTTP/1.0\r\nConnection: Upgrade , Keep-Alive\r\n\r\n",
    expect: { keepAlive: true },
  },
  {
    name: "does not take keep-alive-ish tokens for keep-alive in HTTP/1.0",
    input: "GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n",
    expect: { keepAlive: false },
  },
  {
    name: "lets close win over keep-alive in HTTP/1.0",
    input: "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
    expect: { keepAlive: false },
  },
  {
    name: "flags Expect: 100-continue on HTTP/1.1",
    input: `${POST}Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi`,
    expect: { expectContinue: true, body: "hi" },
  },
  {
    name: "matches 100-continue case-insensitively",
    input: `${POST}Expect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi`,
    expect: { expectContinue: true },
  },
  {
    name: "ignores Expect: 100-continue on HTTP/1.0",
    input: "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    expect: { expectContinue: false, body: "hi" },
  },
  {
    name: "ignores Expect values other than 100-continue",
    input: `${POST}Expect: 200-ok\r\nContent-Length: 2\r\n\r\nhi`,
    expect: { expectContinue: false },
  },
];

for (const c of CASES) {
  Deno.test(`parser ${c.name}`, () => {
    const input = bytes(c.input);
    check(parseCut(input, [], c.limits), c.expect, "in one push");
    check(parseBytewise(input, c.limits), c.expect, "byte by byte");
    // Splitting at every offset is quadratic; the long inputs are covered byte by byte.
    if (input.length > 1024) return;
    for (let cut = 1; cut < input.length; cut++) {
      check(parseCut(input, [cut], c.limits), c.expect, `split at ${cut}`);
    }
  });
}

const LENGTH_REQUEST = `POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: localhost:8080\r\n` +
  `Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{"text":"hi"}`;
const CHUNKED_REQUEST = `POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: localhost:8080\r\n` +
  `Transfer-Encoding: chunked\r\n\r\n4;x=y\r\n{"te\r\n9\r\nxt":"hi"}\r\n0\r\nX-T: 1\r\n\r\n`;

Deno.test("parser parses a request split at every offset and byte by byte identically", () => {
  for (const request of [LENGTH_REQUEST, CHUNKED_REQUEST]) {
    const input = bytes(request);
    const whole = parseCut(input, []);
    assert.equal(whole.requests.length, 1);
    assert.equal(text(whole.requests[0]!.body), '{"text":"hi"}');
    for (let cut = 0; cut <= input.length; cut++) {
      const split = parseCut(input, [cut]);
      assert.deepEqual(split.requests, whole.requests, `split at ${cut}`);
      assert.equal(split.error, null);
    }
    for (let a = 1; a < input.length; a += 7) {
      for (let b = a + 1; b < input.length; b += 5) {
        assert.deepEqual(parseCut(input, [a, b]).requests, whole.requests, `split at ${a}, ${b}`);
      }
    }
    assert.deepEqual(parseBytewise(input).requests, whole.requests, "byte by byte");
  }
});

Deno.test("parser returns pipelined requests one by one", () => {
  const input = bytes(
    `GET /1 HTTP/1.1\r\n${HOST}\r\n${LENGTH_REQUEST}\r\n${CHUNKED_REQUEST}` +
      `GET /4 HTTP/1.1\r\n${HOST}Connection: close\r\n\r\nGET /5`,
  );
  const parser = new RequestParser();
  feed(parser, input);
  assert.equal(parser.pending, 4);
  const targets: string[] = [];
  for (let step = parser.next(); step.kind === "request"; step = parser.next()) {
    targets.push(step.request.target);
    if (targets.length === 2) assert.equal(text(step.request.body), '{"text":"hi"}');
  }
  assert.deepEqual(targets, ["/1", "/api/rooms/lobby/messages", "/api/rooms/lobby/messages", "/4"]);
  assert.equal(parser.pending, 0);
  assert.deepEqual(parser.next(), { kind: "incomplete" });
  assert.equal(parser.phase, "head");
  assert.equal(parser.buffered, "GET /5".length);
  feed(parser, bytes(` HTTP/1.1\r\n${HOST}\r\n`));
  const last = parser.next();
  assert.equal(last.kind === "request" && last.request.target, "/5");
});

Deno.test("parser returns pipelined requests split across pushes", () => {
  const input = bytes(`${LENGTH_REQUEST}${CHUNKED_REQUEST}${LENGTH_REQUEST}`);
  for (let cut = 0; cut <= input.length; cut += 3) {
    const outcome = parseCut(input, [cut, Math.min(input.length, cut + 50)]);
    assert.equal(outcome.error, null);
    assert.equal(outcome.requests.length, 3, `split at ${cut}`);
    for (const request of outcome.requests) assert.equal(text(request.body), '{"text":"hi"}');
  }
});

Deno.test("parser holds at most MAX_QUEUED_STEPS results and keeps the rest of a push as bytes", () => {
  const parser = new RequestParser();
  const one = (i: number) => `GET /${i} HTTP/1.1\r\n${HOST}\r\n`;
  let input = "";
  for (let i = 0; i < 500; i++) input += one(i);
  // One push of many small requests (the runaway pipeline of issue 11).
  feed(parser, bytes(input + `POST /last HTTP/1.1\r\n${HOST}Content-Length: 5\r\n\r\nhel`));
  assert.equal(parser.pending, MAX_QUEUED_STEPS);
  assert.ok(parser.buffered > 0 && parser.buffered < input.length, `buffered ${parser.buffered}`);
  const targets: string[] = [];
  let most = 0;
  for (;;) {
    most = Math.max(most, parser.pending);
    const step = parser.next();
    if (step.kind === "incomplete") break;
    assert.equal(step.kind === "request" || step.kind === "head", true, step.kind);
    if (step.kind === "request") targets.push(step.request.target);
  }
  assert.ok(most <= MAX_QUEUED_STEPS + 1, `${most} results queued`);
  assert.deepEqual(targets, Array.from({ length: 500 }, (_, i) => `/${i}`));
  // The unfinished request after them goes on as usual.
  feed(parser, bytes("lo"));
  const last = parser.next();
  assert.equal(last.kind === "request" && text(last.request.body), "hello");
  assert.equal(parser.next().kind, "incomplete");
});

Deno.test("parser keeps later pushes behind held bytes and reports a held error in order", () => {
  const parser = new RequestParser();
  const get = `GET / HTTP/1.1\r\n${HOST}\r\n`;
  feed(parser, bytes(get.repeat(MAX_QUEUED_STEPS + 3)));
  feed(parser, bytes(`${get}BAD\r\n\r\n`));
  assert.equal(parser.pending, MAX_QUEUED_STEPS);
  const outcome: Outcome = { heads: [], requests: [], refused: [], error: null };
  drain(parser, outcome);
  assert.equal(outcome.requests.length, MAX_QUEUED_STEPS + 4);
  assert.equal(outcome.error?.code, "bad_request_line");
});

Deno.test("parser releases the buffer that grew for a large head once the head is parsed", () => {
  const parser = new RequestParser();
  const head = bytes(`GET / HTTP/1.1\r\n${HOST}X-Big: ${"b".repeat(15_000)}\r\n\r\n`);
  // In reads of 2 KiB, as a connection's first reads are: the unfinished head is kept between.
  for (let at = 0; at < head.length; at += 2048) {
    feed(parser, head.subarray(at, Math.min(head.length, at + 2048)));
    if (at + 2048 < head.length) assert.ok(parser.capacity >= at, `capacity ${parser.capacity}`);
  }
  assert.equal(parser.next().kind, "request");
  assert.equal(parser.phase, "idle");
  assert.ok(parser.capacity <= 1024, `capacity ${parser.capacity} after the request`);
});

Deno.test("parser emits a head step before a body that has not arrived", () => {
  const parser = new RequestParser();
  assert.equal(parser.phase, "idle");
  feed(parser, bytes(`${POST}Expect: 100-continue\r\nContent-`));
  assert.equal(parser.phase, "head");
  assert.deepEqual(parser.next(), { kind: "incomplete" });
  feed(parser, bytes("Length: 5\r\n\r\n"));
  const head = parser.next();
  assert.equal(head.kind, "head");
  assert.ok(head.kind === "head" && head.head.expectContinue);
  assert.equal(head.head.contentLength, 5);
  assert.equal(parser.phase, "body");
  assert.deepEqual(parser.next(), { kind: "incomplete" });
  feed(parser, bytes("hel"));
  assert.deepEqual(parser.next(), { kind: "incomplete" }, "a second head step");
  assert.equal(parser.buffered, 0);
  feed(parser, bytes("lo"));
  const done = parser.next();
  assert.ok(done.kind === "request");
  assert.equal(text(done.request.body), "hello");
  assert.equal(done.request.headers, head.head.headers);
  assert.equal(parser.phase, "idle");
});

Deno.test("parser emits a head step before an unfinished chunked body", () => {
  const parser = new RequestParser();
  feed(parser, bytes(`${CHUNKED}5\r\nhe`));
  const head = parser.next();
  assert.ok(head.kind === "head");
  assert.equal(head.head.bodyKind, "chunked");
  assert.equal(parser.phase, "body");
  feed(parser, bytes("llo\r\n0\r\n\r"));
  assert.deepEqual(parser.next(), { kind: "incomplete" });
  assert.equal(parser.buffered, 1);
  feed(parser, bytes("\n"));
  const done = parser.next();
  assert.ok(done.kind === "request");
  assert.equal(text(done.request.body), "hello");
});

Deno.test("parser emits no head step when the body arrived with the head", () => {
  const outcome = parseCut(bytes(`${POST}Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi`), []);
  assert.equal(outcome.heads.length, 0);
  assert.equal(outcome.requests.length, 1);
});

Deno.test("parser keeps returning the same error after an error", () => {
  const parser = new RequestParser();
  feed(parser, bytes(`${GET}Bad Header: 1\r\n\r\n`));
  const first = parser.next();
  assert.ok(first.kind === "error");
  assert.equal(first.error.status, 400);
  assert.equal(first.error.close, true);
  feed(parser, bytes(`${GET}\r\n`));
  assert.equal(parser.next(), first);
  assert.equal(parser.next(), first);
  assert.equal(parser.buffered, 0);
});

Deno.test("parser returns the requests before an error, then the error", () => {
  const parser = new RequestParser();
  feed(parser, bytes(`${GET}\r\n${POST}Content-Length: x\r\n\r\n`));
  const first = parser.next();
  assert.ok(first.kind === "request");
  const second = parser.next();
  assert.ok(second.kind === "error");
  assert.equal(second.error.code, "invalid_content_length");
});

Deno.test("parser reports phase and buffered bytes through a request", () => {
  const parser = new RequestParser();
  feed(parser, bytes("\r\n"));
  assert.equal(parser.phase, "idle");
  assert.equal(parser.buffered, 0);
  feed(parser, bytes("GET / HT"));
  assert.equal(parser.phase, "head");
  assert.equal(parser.buffered, 8);
  feed(parser, bytes(`TP/1.1\r\n${HOST}Content-Length: 4\r\n\r\nab`));
  assert.equal(parser.phase, "body");
  assert.equal(parser.buffered, 0);
  feed(parser, bytes("cd"));
  assert.equal(parser.phase, "idle");
  assert.equal(parser.next().kind, "head");
  assert.equal(parser.next().kind, "request");
});

Deno.test("parser copies the body out of the caller's buffer", () => {
  const input = bytes(`${POST}Content-Length: 5\r\n\r\nhello`);
  const parser = new RequestParser();
  parser.push(input);
  input.fill(0);
  const step = parser.next();
  assert.ok(step.kind === "request");
  assert.equal(text(step.request.body), "hello");
  assert.equal(step.request.target, "/m");
});

Deno.test("parser grows a large Content-Length body as it arrives", () => {
  const size = 150_000;
  const body = new Uint8Array(size).map((_, i) => i % 251);
  const parser = new RequestParser({ maxBody: 200_000 });
  feed(parser, bytes(`${POST}Content-Length: ${size}\r\n\r\n`));
  for (let at = 0; at < size; at += 4000) feed(parser, body.subarray(at, at + 4000));
  assert.equal(parser.next().kind, "head");
  const step = parser.next();
  assert.ok(step.kind === "request");
  assert.deepEqual(step.request.body, body);
});

Deno.test("parser uses DEFAULT_LIMITS when none are given", () => {
  assert.deepEqual({ ...DEFAULT_LIMITS }, { maxHeader: 16384, maxTarget: 8192, maxBody: 65536 });
  const long = (n: number) =>
    parseCut(bytes(`GET /${"a".repeat(n - 1)} HTTP/1.1\r\n${HOST}\r\n`), []);
  assert.equal(long(8192).requests.length, 1);
  assert.equal(long(8193).refused[0]?.status, 414);
  const big = parseCut(bytes(`${GET}X-Big: ${"a".repeat(16384)}\r\n\r\n`), []);
  assert.equal(big.error?.status, 431);
  const body = parseCut(bytes(`${POST}Content-Length: 65537\r\n\r\n`), []);
  assert.equal(body.refused[0]?.status, 413);
});

Deno.test("parser rejects invalid limits with a RangeError", () => {
  assert.throws(() => new RequestParser({ maxHeader: 0 }), RangeError);
  assert.throws(() => new RequestParser({ maxTarget: 1.5 }), RangeError);
  assert.throws(() => new RequestParser({ maxBody: -1 }), RangeError);
  assert.throws(() => new RequestParser({ maxBody: Infinity }), RangeError);
});

const CONTENT_LENGTHS: [string, number | null][] = [
  ["0", 0],
  ["42", 42],
  ["007", 7],
  ["5, 5", 5],
  ["5,5 ,\t5", 5],
  ["999999999999999", 999999999999999],
  ["", null],
  ["5,", null],
  [",5", null],
  ["5, 6", null],
  ["+5", null],
  ["-5", null],
  ["5a", null],
  ["1e3", null],
  ["1234567890123456", null],
  ["0000000000000001", 1],
  ["00000000000000000000", 0],
  ["000999999999999999", 999999999999999],
  ["0001234567890123456", null],
];

for (const [value, expected] of CONTENT_LENGTHS) {
  Deno.test(`parseContentLength reads ${JSON.stringify(value)} as ${expected}`, () => {
    assert.equal(parseContentLength(value), expected);
  });
}
