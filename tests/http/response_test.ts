import assert from "node:assert/strict";
import {
  fixedHeaderBlock,
  HSTS,
  SECURITY_HEADERS,
  serializeResponse,
  utf8Length,
} from "../../lib/http/response.ts";

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
