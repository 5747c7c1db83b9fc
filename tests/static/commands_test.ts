import assert from "node:assert/strict";
import { actionText, COMMANDS, parseCommand } from "../../static/commands.js";

Deno.test("text without a leading slash is a message, as typed", () => {
  assert.deepEqual(parseCommand("hello /join x"), { kind: "message", text: "hello /join x" });
  assert.deepEqual(parseCommand(" /join x"), { kind: "message", text: " /join x" });
});

Deno.test("a double slash sends a message starting with one slash", () => {
  assert.deepEqual(parseCommand("//join is a command"), {
    kind: "message",
    text: "/join is a command",
  });
});

Deno.test("/me is sent as a message and shown as an action", () => {
  assert.deepEqual(parseCommand("/me waves"), { kind: "message", text: "/me waves" });
  assert.deepEqual(parseCommand("/ME  waves\nhello"), {
    kind: "message",
    text: "/me waves\nhello",
  });
  assert.deepEqual(parseCommand("/me"), { kind: "error", error: "Usage: /me TEXT" });
  assert.deepEqual(parseCommand("/me   "), { kind: "error", error: "Usage: /me TEXT" });
  assert.equal(actionText("/me waves"), "waves");
  assert.equal(actionText("/me  waves at bob"), "waves at bob");
  assert.equal(actionText("/me"), null);
  assert.equal(actionText("/meow"), null);
  assert.equal(actionText("hi /me waves"), null);
});

Deno.test("/join takes one room name, checked like a typed one", () => {
  assert.deepEqual(parseCommand("/join #dev"), { kind: "join", room: "dev" });
  assert.deepEqual(parseCommand("/JOIN café"), { kind: "join", room: "café" });
  assert.deepEqual(parseCommand("/join"), { kind: "error", error: "Usage: /join ROOM" });
  assert.deepEqual(parseCommand("/join a b"), { kind: "error", error: "Usage: /join ROOM" });
  const bad = parseCommand("/join ../x");
  assert.equal(bad.kind, "error");
});

Deno.test("/leave takes nothing", () => {
  assert.deepEqual(parseCommand("/leave"), { kind: "leave" });
  assert.deepEqual(parseCommand("/leave  "), { kind: "leave" });
  assert.deepEqual(parseCommand("/leave now"), { kind: "error", error: "Usage: /leave" });
});

Deno.test("/msg takes a nick (with or without @) and the rest as the message", () => {
  assert.deepEqual(parseCommand("/msg bob hi there\nsecond line"), {
    kind: "msg",
    nick: "bob",
    text: "hi there\nsecond line",
  });
  assert.deepEqual(parseCommand("/msg @bob"), { kind: "msg", nick: "bob", text: "" });
  assert.deepEqual(parseCommand("/msg"), { kind: "error", error: "Usage: /msg NICK [TEXT]" });
});

Deno.test("/topic without text asks for the topic, with text sets it", () => {
  assert.deepEqual(parseCommand("/topic"), { kind: "topic", text: null });
  assert.deepEqual(parseCommand("/topic  Release on Friday "), {
    kind: "topic",
    text: "Release on Friday",
  });
});

Deno.test("/kick takes a nick and an optional reason", () => {
  assert.deepEqual(parseCommand("/kick spammer"), { kind: "kick", nick: "spammer" });
  assert.deepEqual(parseCommand("/kick spammer too many links"), {
    kind: "kick",
    nick: "spammer",
    reason: "too many links",
  });
  assert.deepEqual(parseCommand("/kick"), { kind: "error", error: "Usage: /kick NICK [REASON]" });
});

Deno.test("/ban takes a nick, whole minutes from 1 and an optional reason", () => {
  assert.deepEqual(parseCommand("/ban spammer 10 flooding"), {
    kind: "ban",
    nick: "spammer",
    minutes: 10,
    reason: "flooding",
  });
  assert.deepEqual(parseCommand("/ban spammer 10"), { kind: "ban", nick: "spammer", minutes: 10 });
  const usage = { kind: "error", error: "Usage: /ban NICK MINUTES [REASON]" };
  for (const bad of ["/ban", "/ban spammer", "/ban spammer 0", "/ban spammer 1.5", "/ban x ten"]) {
    assert.deepEqual(parseCommand(bad), usage, bad);
  }
  assert.deepEqual(parseCommand(`/ban x ${10 * 365 * 24 * 60 + 1}`), usage);
});

Deno.test("unknown commands are errors that point to /help", () => {
  assert.deepEqual(parseCommand("/frob x"), {
    kind: "error",
    error: "Unknown command /frob. Type /help for the list.",
  });
  assert.equal(parseCommand("/").kind, "error");
  assert.deepEqual(parseCommand("/help"), { kind: "help" });
});

Deno.test("/help lists every command the parser knows", () => {
  for (const { name } of COMMANDS) {
    const parsed = parseCommand(`/${name}`);
    assert.ok(
      parsed.kind !== "error" || !parsed.error.startsWith("Unknown"),
      `/${name} is known to the parser`,
    );
  }
  assert.deepEqual(
    COMMANDS.map((c) => c.name),
    ["join", "leave", "msg", "me", "topic", "kick", "ban", "help"],
  );
});
