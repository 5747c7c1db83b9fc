import assert from "node:assert/strict";
import {
  countChars,
  isDirectRoom,
  linkSegments,
  mentionSegments,
  messageSegments,
  normalizeRoom,
  retryAfterSeconds,
  roomPath,
  roomProblem,
  safeHref,
  shorten,
} from "../../static/text.js";

Deno.test("room names start with a letter or digit and hold letters, marks, digits, _ . -", () => {
  for (const good of ["lobby", "dev-ops", "a.b_c", "café", "שיחה", "日本語", "x".repeat(64)]) {
    assert.equal(roomProblem(good), null, good);
  }
  for (const bad of ["", "..", ".", "-x", "_x", "a/b", "a b", "a%2Fb", "x".repeat(65), "a\u0000"]) {
    assert.ok(roomProblem(bad), JSON.stringify(bad));
  }
  // A combining mark after the first letter is allowed (decomposed input that NFC cannot merge).
  assert.equal(roomProblem("q\u0307"), null);
  assert.ok(roomProblem("\u0301a"));
});

Deno.test("room names are normalised to NFC without a leading # or spaces", () => {
  assert.equal(normalizeRoom("  #cafe\u0301 "), "café");
});

Deno.test("room paths are percent-encoded and refuse names that are not rooms", () => {
  assert.equal(roomPath("café", "join"), "/api/rooms/caf%C3%A9/join");
  assert.equal(roomPath("lobby"), "/api/rooms/lobby");
  assert.throws(() => roomPath("..", "join"), TypeError);
  assert.throws(() => roomPath("a/b", "join"), TypeError);
  assert.equal(
    roomPath("@0123456789abcdef", "messages"),
    "/api/rooms/%400123456789abcdef/messages",
  );
  assert.throws(() => roomPath("@0123456789ABCDEF"), TypeError);
  assert.throws(() => roomPath("@0123"), TypeError);
});

Deno.test("direct-message rooms are @ and 16 lowercase hex characters", () => {
  assert.equal(isDirectRoom("@0123456789abcdef"), true);
  for (const not of ["0123456789abcdef", "@0123456789abcde", "@0123456789abcdefa", "@lobby"]) {
    assert.equal(isDirectRoom(not), false, not);
  }
});

Deno.test("message length counts code points, as the server does", () => {
  assert.equal(countChars("😀😀"), 2);
  assert.equal(countChars("e\u0301"), 2);
  assert.equal(countChars(""), 0);
});

Deno.test("Retry-After is read as 1 to 60 whole seconds", () => {
  assert.equal(retryAfterSeconds("3"), 3);
  assert.equal(retryAfterSeconds("0.2"), 1);
  assert.equal(retryAfterSeconds(null), 1);
  assert.equal(retryAfterSeconds("soon"), 1);
  assert.equal(retryAfterSeconds("3600"), 60);
});

Deno.test("only http and https URLs become links", () => {
  assert.deepEqual(linkSegments("go to https://example.com/x now"), [
    { text: "go to " },
    { text: "https://example.com/x", href: "https://example.com/x" },
    { text: " now" },
  ]);
  for (const text of ["javascript:alert(1)", "data:text/html,x", "vbscript:x", "ftp://x.y/z"]) {
    assert.deepEqual(linkSegments(text), [{ text }], text);
  }
  assert.equal(safeHref("javascript:alert(1)"), null);
  assert.equal(safeHref("https://"), null);
  assert.equal(safeHref("HTTP://Example.COM"), "http://example.com/");
});

Deno.test("punctuation after a link is not part of it, a closing parenthesis inside is", () => {
  assert.deepEqual(
    linkSegments("(see https://en.wikipedia.org/wiki/Foo_(bar)).").map((s) => s.href ?? null),
    [null, "https://en.wikipedia.org/wiki/Foo_(bar)", null],
  );
  assert.deepEqual(linkSegments("http://a.b/c, and"), [
    { text: "http://a.b/c", href: "http://a.b/c" },
    { text: ", and" },
  ]);
});

Deno.test("a nick is mentioned as a whole word, ignoring case, with or without @", () => {
  const marked = (text: string, nick: string) =>
    mentionSegments(text, nick).filter((s) => s.mention).map((s) => s.text);
  assert.deepEqual(marked("hi @alice and ALICE", "alice"), ["@alice", "ALICE"]);
  assert.deepEqual(marked("malice alice_b alice2 xalice", "alice"), []);
  assert.deepEqual(marked("a.b: hi", "a.b"), ["a.b"]);
  assert.deepEqual(marked("axb", "a.b"), [], "the dot is not a wildcard");
  assert.deepEqual(marked("דנה, שלום", "דנה"), ["דנה"]);
  assert.deepEqual(mentionSegments("no nick", ""), [{ text: "no nick" }]);
});

Deno.test("message text keeps every character across links and mentions", () => {
  const text = "alice: https://x.example/alice?alice (alice) javascript:alice";
  const segments = messageSegments(text, "alice");
  assert.equal(segments.map((s) => s.text).join(""), text);
  assert.deepEqual(segments.filter((s) => s.href).map((s) => s.href), [
    "https://x.example/alice?alice",
  ]);
  assert.equal(segments.filter((s) => s.mention).length, 3);
});

Deno.test("long names are shortened with an ellipsis", () => {
  assert.equal(shorten("abcdef", 4), "abc…");
  assert.equal(shorten("abcd", 4), "abcd");
  assert.equal(shorten("😀😀😀", 2), "😀…");
});
