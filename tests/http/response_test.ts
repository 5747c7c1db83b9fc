import assert from "node:assert/strict";
import {
  fixedHeaderBlock,
  HSTS,
  JSON_HEADERS,
  SECURITY_HEADERS,
  serializeResponse,
  utf8Length,
} from "../../lib/http/response.ts";
import type { HttpResponse } from "../../lib/http/types.ts";
import { OutputArena, releaseOutput } from "../../lib/net/output_arena.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const FRAMING = {
  version: "HTTP/1.1",
  keepAlive: true,
  head: false,
  now: 0,
  fixedHeaders: fixedHeaderBlock(false),
} as const;

Deno.test("utf8Length counts bytes exactly as TextEncoder writes them", () => {
  const samples = [
    "",
    "abc",
    "é",
    "€",
    "😀",
    "a😀b",
    "\ud800",
    "\udc00",
    "\ud800x",
    "x\ud800",
    "\ud800\ud800",
    "日本語",
    "\u07ff\u0800",
  ];
  for (const text of samples) {
    assert.equal(utf8Length(text), encoder.encode(text).byteLength, JSON.stringify(text));
  }
});

Deno.test("serializeResponse frames a non-ASCII string body with its byte length", () => {
  const bytes = serializeResponse({ status: 200, body: "héllo 😀" }, FRAMING);
  const text = decoder.decode(bytes);
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(text, /\r\nContent-Length: 11\r\n/);
  assert.ok(text.endsWith("\r\n\r\nhéllo 😀"));
});

Deno.test("serializeResponse sends HEAD answers without the body but with its length", () => {
  const text = decoder.decode(
    serializeResponse({ status: 200, body: "hello" }, { ...FRAMING, head: true }),
  );
  assert.match(text, /Content-Length: 5\r\n/);
  assert.ok(text.endsWith("\r\n\r\n"));
});

Deno.test("serializeResponse writes long string and byte bodies whole", () => {
  const long = "x".repeat(10_000) + "é";
  const text = decoder.decode(serializeResponse({ status: 200, body: long }, FRAMING));
  assert.match(text, /Content-Length: 10002\r\n/);
  assert.ok(text.endsWith(long));
  const bytes = serializeResponse({ status: 200, body: encoder.encode("abc") }, FRAMING);
  assert.ok(decoder.decode(bytes).endsWith("Content-Length: 3\r\n\r\nabc"));
});

Deno.test("serializeResponse leaves out Content-Length on 204 and 304", () => {
  for (const status of [204, 304]) {
    const text = decoder.decode(serializeResponse({ status, body: "ignored" }, FRAMING));
    assert.doesNotMatch(text, /Content-Length/);
    assert.ok(text.endsWith("\r\n\r\n"));
  }
});

Deno.test("serializeResponse closes HTTP/1.0 unless kept alive, and says so for keep-alive", () => {
  const close = decoder.decode(
    serializeResponse({ status: 200 }, { ...FRAMING, version: "HTTP/1.0", keepAlive: false }),
  );
  assert.match(close, /Connection: close\r\n/);
  const keep = decoder.decode(
    serializeResponse({ status: 200 }, { ...FRAMING, version: "HTTP/1.0" }),
  );
  assert.match(keep, /Connection: keep-alive\r\n/);
});

Deno.test("fixedHeaderBlock holds nosniff, no-referrer and DENY, and HSTS only with TLS", () => {
  assert.deepEqual(SECURITY_HEADERS, {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
  });
  assert.equal(HSTS, "max-age=31536000");
  const plain = fixedHeaderBlock(false);
  assert.equal(
    plain,
    "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n",
  );
  assert.equal(fixedHeaderBlock(true), `${plain}Strict-Transport-Security: max-age=31536000\r\n`);
});

Deno.test("serializeResponse writes the fixed headers once on every status, bodyless and HEAD included", () => {
  const fixed = fixedHeaderBlock(true);
  for (const status of [200, 204, 304, 404, 500, 503]) {
    for (const head of [false, true]) {
      const text = decoder.decode(
        serializeResponse(
          { status, headers: { "Cache-Control": "no-store" }, body: "x" },
          { ...FRAMING, head, fixedHeaders: fixed },
        ),
      );
      const headEnd = text.indexOf("\r\n\r\n") + 2;
      // After the status line and Date, before the response's own headers.
      assert.match(text.slice(0, headEnd), /^HTTP\/1\.1 \d{3} [^\r]*\r\nDate: [^\r]*\r\n/);
      assert.equal(text.split(fixed).length, 2, `${status} head=${head}: once`);
      assert.ok(text.indexOf(fixed) < text.indexOf("Cache-Control"), `${status}: first`);
    }
  }
});

Deno.test("serializeResponse into an output arena writes the same bytes as without, over reused chunks", () => {
  const arena = new OutputArena();
  const responses: HttpResponse[] = [
    { status: 200, headers: { "Content-Type": "text/plain" }, body: "hello" },
    { status: 200, headers: { "X-Name": "café" }, body: "日本語 😀 \ud800" },
    { status: 201, headers: JSON_HEADERS, body: '{"text":"héllo"}' },
    { status: 200, headers: JSON_HEADERS, body: "z".repeat(300) },
    { status: 500, headers: Object.freeze({ "X-Frozen": "ñ" }), body: "" },
    { status: 200, body: new Uint8Array([1, 2, 3, 250]) },
    { status: 204 },
    { status: 404, body: "x".repeat(3000) },
    { status: 200, body: "y".repeat(20_000) },
  ];
  const framings = [
    FRAMING,
    { ...FRAMING, head: true },
    { ...FRAMING, keepAlive: false },
    { ...FRAMING, version: "HTTP/1.0" as const },
  ];
  const chunks = new Set<ArrayBufferLike>();
  // Enough rounds that chunks are retired, released and filled again with other answers.
  for (let round = 0; round < 50; round++) {
    for (const res of responses) {
      for (const framing of framings) {
        const plain = serializeResponse(res, framing);
        const pooled = serializeResponse(res, { ...framing, arena });
        assert.deepEqual(pooled, plain);
        if (pooled.buffer.byteLength > pooled.byteLength) chunks.add(pooled.buffer);
        releaseOutput(pooled);
      }
    }
  }
  assert.equal(chunks.size, 1, "the one chunk was reused");
});

Deno.test("serializeResponse never puts a shared answer in an arena", () => {
  const arena = new OutputArena();
  const res = { status: 200, body: "shared", shared: true };
  const bytes = serializeResponse(res, { ...FRAMING, arena });
  assert.equal(bytes.buffer.byteLength, bytes.byteLength);
});
